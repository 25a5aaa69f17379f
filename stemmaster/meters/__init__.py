"""Meters: loudness (ITU-R BS.1770-4 / EBU R128), true peak, stereo measures."""
