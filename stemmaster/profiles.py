"""Release profiles: a loudness target and a true-peak ceiling per destination.

Streaming services normalise playback loudness; mastering louder than their
reference only buys more limiting, mastering quieter is turned up (and some
services then limit). The ceiling leaves room for the lossy encoder, whose
decoded output overshoots the source's true peak.
"""

from __future__ import annotations

from dataclasses import dataclass

from stemmaster.errors import SettingsError


@dataclass(frozen=True)
class Profile:
    name: str
    target_lufs: float
    ceiling_dbtp: float
    description: str
    source: str


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "spotify", -14.0, -1.0,
            "Spotify's default normalisation level",
            "Spotify for Artists, 'Loudness normalization' FAQ: playback normalised to -14 LUFS "
            "integrated; masters at -1 dBTP or lower (-2 dBTP when louder than -14 LUFS) to avoid "
            "transcoding distortion.",
        ),
        Profile(
            "apple", -16.0, -1.0,
            "Apple Music Sound Check",
            "Apple Digital Masters / Mastered for iTunes guidance: Sound Check normalises to about "
            "-16 LUFS integrated; keep true peak at or below -1 dBTP for AAC encoding.",
        ),
        Profile(
            "youtube", -14.0, -1.0,
            "YouTube's loudness normalisation",
            "YouTube normalises music playback to about -14 LUFS integrated (AES TD1008, 2021, "
            "table of service levels); -1 dBTP for its AAC/Opus transcodes.",
        ),
        Profile(
            "tidal", -14.0, -1.0,
            "TIDAL's normalisation level",
            "TIDAL normalises to -14 LUFS integrated (album or track mode); -1 dBTP per AES TD1008 "
            "for lossy delivery.",
        ),
        Profile(
            "amazon", -14.0, -2.0,
            "Amazon Music's normalisation level",
            "Amazon Music normalises to about -14 LUFS integrated and recommends a true peak of "
            "-2 dBTP in its delivery guidance.",
        ),
        Profile(
            "soundcloud", -14.0, -1.0,
            "SoundCloud (no normalisation; lossy transcode)",
            "SoundCloud does not normalise; it transcodes to 128-256 kbit/s lossy, so the AES TD1008 "
            "streaming recommendation (-14 LUFS region, -1 dBTP) is the safe default.",
        ),
        Profile(
            "club", -9.0, -0.5,
            "Loud master for DJ and club playback",
            "No standard exists: DJ software plays files as they are, and club masters are commonly "
            "-10 to -7 LUFS integrated; -0.5 dBTP keeps the limiter's output clear of converter overs.",
        ),
        Profile(
            "ebu-r128", -23.0, -1.0,
            "EBU R 128 broadcast",
            "EBU R 128 (2020): programme loudness -23.0 LUFS (+/-0.5 LU for live), maximum true peak "
            "-1 dBTP.",
        ),
        Profile(
            "atsc-a85", -24.0, -2.0,
            "ATSC A/85 broadcast (US)",
            "ATSC A/85:2013 (RP): target -24 LKFS integrated, true peak no higher than -2 dBTP.",
        ),
    )
}

DEFAULT_PROFILE = "spotify"


def get_profile(name: str) -> Profile:
    """The profile called ``name`` (case-insensitive); SettingsError listing the known ones."""
    key = name.strip().lower()
    if key not in PROFILES:
        raise SettingsError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})")
    return PROFILES[key]
