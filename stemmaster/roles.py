"""Stem roles, and guessing a stem's role from its file name.

A role says what a stem is (``vocals``, ``drums``, ``bass`` or ``other``);
repair chains and bus decisions key off it. :func:`role_from_name` guesses
from the words of a file name, e.g. ``"LeadVox_01.wav"`` -> vocals,
``"Kick In.wav"`` -> drums, ``"808.wav"`` -> bass; anything unrecognised is
``other``. The guess can always be overridden by the user.

Matching is by whole words, never substrings ("bassoon" is not bass). A name
is split on anything that is not a letter or digit, then on camelCase and
letter/digit boundaries ("LeadVox_01" -> lead, vox, 01); the split words,
the un-split alphanumeric runs ("BVs" -> bvs, "HiHat" -> hihat) and each
pair of neighbouring runs joined ("Hi-Hat" -> hihat, "Ad Lib" -> adlib) are
looked up, with a plural "s" dropped when the plural itself is not a keyword.

When several words match, the more specific wins, in this order:

1. vocal words (vocal, vox, bvs, adlib, choir, ...)
2. drum words (drum, kick, snare, hat, overheads, perc, ...), so
   "Bass Drum" and "808 Kick" are drums
3. bass words (bass, sub, 808), so "Synth Bass" and "Bass Guitar" are bass
4. other-instrument words (guitar, gtr, piano, synth, keys, mix, ...), so
   "Lead Guitar" is other
5. the weak vocal hints lead, backing, harmony ("Lead" alone is vocals)
6. the weak drum hint room
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePath

from stemmaster.errors import SettingsError

ROLES: tuple[str, ...] = ("vocals", "drums", "bass", "other")

_VOCALS = frozenset(
    """
    vocal vocals voc vox vx vocalist voice voices singer sing singing acapella acappella cappella
    bv bvs bgv bgvs bgvox leadvox adlib adlibs choir choral rap rapper
    lv lvs
    """.split()
)
_DRUMS = frozenset(
    """
    drum drums drumkit drumbus bassdrum kit kick kik kck bd snare snr sn sd hat hats hihat hh ohh chh
    tom toms floortom racktom clap claps perc percs percussion cymbal cymbals crash ride splash china
    overhead overheads oh ohs shaker tamb tambourine conga congas bongo bongos cowbell rim rimshot
    clave claves timbale timbales cajon beat beats breakbeat break breaks snap snaps
    """.split()
)
_BASS = frozenset("bass basses bassline sub subs subbass 808 808s basssynth synthbass".split())
_OTHER = frozenset(
    """
    other others guitar guitars gtr gtrs gtrl gtrr acoustic electric piano pianos pno keys keyboard
    keyboards organ rhodes wurli synth synths pad pads strings string violin viola cello
    brass horn horns trumpet sax saxophone trombone flute woodwind bells fx sfx sweep riser noise
    mix mixture master instrumental inst karaoke track music melody arp pluck bassoon
    """.split()
)
_WEAK_VOCALS = frozenset("lead leads backing backings bg bgs harmony harmonies harm harms double doubles dbl".split())
_WEAK_DRUMS = frozenset("room rooms".split())

_ORDER = (
    ("vocals", _VOCALS),
    ("drums", _DRUMS),
    ("bass", _BASS),
    ("other", _OTHER),
    ("vocals", _WEAK_VOCALS),
    ("drums", _WEAK_DRUMS),
)
_ALL = frozenset().union(*(words for _, words in _ORDER))

_FILE_SUFFIXES = frozenset(
    ".wav .wave .flac .aif .aiff .aifc .mp3 .ogg .oga .opus .m4a .aac .wma .caf .w64 .rf64".split()
)
_RUN = re.compile(r"[^\W_]+")  # letters and digits (unicode-aware), split on everything else


def _subwords(run: str) -> list[str]:
    """Split one alphanumeric run at case changes and letter/digit boundaries."""
    parts: list[str] = []
    current = ""
    for i, ch in enumerate(run):
        if current:
            prev = run[i - 1]
            nxt = run[i + 1] if i + 1 < len(run) else ""
            boundary = (
                (prev.isdigit() != ch.isdigit())
                or (prev.islower() and ch.isupper())
                or (prev.isupper() and ch.isupper() and nxt.islower())
            )
            if boundary:
                parts.append(current)
                current = ""
        current += ch
    if current:
        parts.append(current)
    return parts


def name_words(name: str) -> list[str]:
    """The lowercase words a file name is matched on (see the module docstring)."""
    base = PurePath(str(name)).name
    suffix = PurePath(base).suffix
    if suffix.lower() in _FILE_SUFFIXES:
        base = base[: -len(suffix)]
    base = unicodedata.normalize("NFC", base)
    words: list[str] = []
    runs = _RUN.findall(base)
    # two-word spellings of one keyword: "Hi-Hat", "Ad Lib", "A Cappella", "Floor Tom"
    words.extend((a + b).lower() for a, b in zip(runs, runs[1:]))
    for run in runs:
        words.append(run.lower())
        subs = _subwords(run)
        if len(subs) > 1:
            words.extend(s.lower() for s in subs)
        # a digit prefix or suffix on a word ("vox2", "2vox") should not hide the word
        stripped = run.strip("0123456789")
        if stripped and stripped != run:
            words.append(stripped.lower())
    return words


def _keyword(word: str) -> str | None:
    if word in _ALL:
        return word
    if len(word) > 3 and word.endswith("s") and word[:-1] in _ALL:
        return word[:-1]
    return None


def role_from_name(name: str) -> str:
    """Guess a stem's role from its file (or stem) name; ``"other"`` when nothing matches."""
    found = {kw for w in name_words(name) if (kw := _keyword(w)) is not None}
    for role, words in _ORDER:
        if found & words:
            return role
    return "other"


def validate_role(role: str) -> str:
    """Return ``role`` normalised (stripped, lower case) if it is one of :data:`ROLES`, else SettingsError."""
    if isinstance(role, str):
        normal = role.strip().lower()
        if normal in ROLES:
            return normal
    raise SettingsError(f"unknown role {role!r}; allowed roles: {', '.join(ROLES)}")
