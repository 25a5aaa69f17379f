"""roles: guessing a stem's role from its file name."""

from __future__ import annotations

import pytest

from stemmaster.errors import SettingsError
from stemmaster.roles import ROLES, name_words, role_from_name, validate_role


@pytest.mark.parametrize(
    "name, role",
    [
        # vocals
        ("LeadVox_01.wav", "vocals"),
        ("Lead Vox.wav", "vocals"),
        ("vocals.wav", "vocals"),
        ("Vocal.flac", "vocals"),
        ("vox", "vocals"),
        ("BVs.wav", "vocals"),
        ("BGV 2.aiff", "vocals"),
        ("Adlib.wav", "vocals"),
        ("Ad-Libs.wav", "vocals"),
        ("Choir.wav", "vocals"),
        ("Harmony.wav", "vocals"),
        ("Lead.wav", "vocals"),
        ("Backing Vocals.wav", "vocals"),
        ("VOX2.wav", "vocals"),
        ("A Cappella.mp3", "vocals"),
        # drums
        ("Kick In.wav", "drums"),
        ("drums.wav", "drums"),
        ("Drum Bus.wav", "drums"),
        ("overheads.wav", "drums"),
        ("OH L.wav", "drums"),
        ("Snare Top.wav", "drums"),
        ("HiHat.wav", "drums"),
        ("Hi-Hat.wav", "drums"),
        ("hat.wav", "drums"),
        ("Tom 1.wav", "drums"),
        ("Floor Tom.wav", "drums"),
        ("clap.wav", "drums"),
        ("Perc.wav", "drums"),
        ("Percussion.ogg", "drums"),
        ("Bass Drum.wav", "drums"),
        ("808 Kick.wav", "drums"),
        ("Room Mics.wav", "drums"),
        # bass
        ("808.wav", "bass"),
        ("bass.wav", "bass"),
        ("Sub Bass.wav", "bass"),
        ("SynthBass.wav", "bass"),
        ("Bass Guitar DI.wav", "bass"),
        ("Sub.wav", "bass"),
        # other
        ("bassoon.wav", "other"),
        ("Piano.wav", "other"),
        ("gtr.wav", "other"),
        ("Lead Guitar.wav", "other"),
        ("Lead Synth.wav", "other"),
        ("mixture.wav", "other"),
        ("mix.wav", "other"),
        ("other.wav", "other"),
        ("Strings.wav", "other"),
        ("Track 07.wav", "other"),
        ("untitled.wav", "other"),
        ("Kickstarter pitch.wav", "other"),  # whole words only
        ("Basset Hound.wav", "other"),
    ],
)
def test_role_from_name(name, role):
    assert role_from_name(name) == role


def test_role_from_name_ignores_folders_in_a_path():
    assert role_from_name("/music/drums/Lead Vox.wav") == "vocals"


def test_every_guess_is_a_role():
    for name in ("x", "", "   ", "🎸", "123"):
        assert role_from_name(name) in ROLES


def test_name_words_splits_camel_case_and_digits():
    words = name_words("LeadVox_01.wav")
    assert {"lead", "vox", "01"} <= set(words)
    assert "wav" not in words


@pytest.mark.parametrize("role", ROLES)
def test_validate_role_accepts_roles(role):
    assert validate_role(role) == role
    assert validate_role(f"  {role.upper()} ") == role


@pytest.mark.parametrize("bad", ["vocal", "keys", "", None, 3])
def test_validate_role_lists_allowed(bad):
    with pytest.raises(SettingsError, match="allowed roles: vocals, drums, bass, other"):
        validate_role(bad)
