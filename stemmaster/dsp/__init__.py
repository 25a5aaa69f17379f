"""Signal processors. Each takes and returns audio shaped ``(channels, samples)``."""
