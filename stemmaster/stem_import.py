"""Importing a folder of stems (or one finished render) into a project folder.

``import_stems`` turns a folder of WAV/FLAC/AIFF/MP3/OGG files into working
stems: every original is copied byte for byte into ``source/`` (the originals
are only ever read), and a stereo 32-bit float WAV at the project rate is
written to ``stems/<name>.wav`` for each. Mono becomes dual mono, other rates
are resampled (as :func:`stemmaster.audio_io.resample` does, bit for bit), and
shorter stems are padded with silence at the end to the longest. Each stem is
decoded, converted and written a block at a time, and a render is checked the
same way, so memory does not grow with the song's length. The project rate is the
stems' most common one, whatever it is: 8 kHz (telephone) and 192 kHz
material is imported and mastered at its own rate (``sample_rate`` picks
another, from 8000 to 768000 Hz).

It is meant to fill a fresh project folder (the workspace builds projects in a
temporary folder and renames it into place), so it does not clean up after
itself on failure; the caller removes the folder.

Skipped files: only the folder's top level is read. Entries that are not
audio files by extension (``README.txt``, ``.DS_Store``, ``Project.asd``),
hidden files (including macOS ``._Vocals.wav`` resource forks, which carry
an audio extension but are not audio) and sub-folders are skipped;
:func:`scan_stems_dir` returns them so a front end can list them, and
``import_stems`` logs each at INFO level on the ``stemmaster.stem_import``
logger and mentions them in a progress message.

Errors: AudioError naming the file for anything wrong with an audio file
(unreadable, NaN/Inf, more than two channels, a length far from the others:
more than max(2 s, 10 %) shorter or longer), for a song shorter than 0.4 s
(one loudness block: it could not be mastered to a loudness target), for
stems that are all silent, or for a folder with no audio;
SettingsError for a bad role override or sample rate; ProjectError when the
project folder cannot be written (a full disk).
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from stemmaster.atomic import describe_os_error, sha256_file
from stemmaster.audio_io import AUDIO_EXTENSIONS, AudioInfo, AudioReader, audio_info, to_stereo
from stemmaster.audio_source import BlockWriter, ResampledSource
from stemmaster.errors import AudioError, ProjectError, SettingsError
from stemmaster.project import SourceFile, Stem
from stemmaster.repair import default_chain
from stemmaster.roles import role_from_name, validate_role

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]

SOURCE_DIR = "source"
STEMS_DIR = "stems"
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 768000
MIN_DURATION_S = 0.4  # one BS.1770 gating block: anything shorter has no loudness to master to
LENGTH_TOLERANCE_S = 2.0
LENGTH_TOLERANCE_FRACTION = 0.10
_PAD_CHUNK = 1 << 18


def _report(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(min(1.0, max(0.0, fraction)), message)


def _sort_key(p: Path) -> tuple[str, str]:
    return (p.name.casefold(), p.name)


def scan_stems_dir(stems_dir: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """``(audio files, skipped entries)`` at the top level of ``stems_dir``, each sorted by name.

    Audio means a non-hidden regular file whose extension is in
    :data:`~stemmaster.audio_io.AUDIO_EXTENSIONS`. AudioError when the folder
    does not exist or cannot be listed (an empty list is not an error here).
    """
    folder = Path(stems_dir)
    if not folder.exists():
        raise AudioError(f"{folder}: stems folder not found")
    if not folder.is_dir():
        raise AudioError(f"{folder}: not a folder (give the folder that holds the stems)")
    try:
        entries = sorted(folder.iterdir(), key=_sort_key)
    except OSError as exc:
        raise AudioError(f"{folder}: cannot list the folder ({describe_os_error(exc)})") from exc
    audio: list[Path] = []
    skipped: list[Path] = []
    for entry in entries:
        if entry.name.startswith(".") or entry.suffix.lower() not in AUDIO_EXTENSIONS or not entry.is_file():
            skipped.append(entry)
        else:
            audio.append(entry)
    return audio, skipped


def stem_name_from_file(file_name: str) -> str:
    """A readable stem name from a file name: the name without its extension, with characters
    other than letters, digits, spaces and ``-_.()`` replaced by ``_``, spaces collapsed,
    at most 80 characters; ``"stem"`` if nothing is left."""
    base = unicodedata.normalize("NFC", Path(file_name).stem)
    cleaned = "".join(c if (c.isalnum() or c in "-_.() ") else "_" for c in base)
    cleaned = " ".join(cleaned.split()).strip(" .")
    cleaned = cleaned[:80].rstrip(" .")
    return cleaned or "stem"


def unique_names(names: list[str]) -> list[str]:
    """Make names unique, ignoring case: the second "vocals" becomes "vocals-2", and so on."""
    taken: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{name}-{n}"
        taken.add(candidate.casefold())
        out.append(candidate)
    return out


def _check_sample_rate(sample_rate: int | None) -> int | None:
    if sample_rate is None:
        return None
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or not (
        MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE
    ):
        raise SettingsError(
            f"sample_rate = {sample_rate!r} is not allowed (give a whole number of Hz from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE})"
        )
    return int(sample_rate)


def choose_sample_rate(rates: list[int]) -> int:
    """The most common rate (counted per stem); ties go to the highest."""
    counts = Counter(rates)
    return max(counts, key=lambda r: (counts[r], r))


def _resolve_roles(files: list[Path], names: list[str], roles: Mapping[str, str] | None) -> list[str]:
    """The role of each stem: guessed from its file name, or overridden by ``roles``.

    Keys of ``roles`` may be the file name ("Lead Vox.wav"), the file name
    without extension ("Lead Vox") or the stem name; exact matches first, then
    ignoring case. An unknown key or role is a SettingsError.
    """
    result = [role_from_name(f.name) for f in files]
    if not roles:
        return result
    for key, role in roles.items():
        role = validate_role(role)
        matches = [i for i, f in enumerate(files) if key in (f.name, f.stem, names[i])]
        if not matches:
            k = str(key).casefold()
            matches = [i for i, f in enumerate(files) if k in (f.name.casefold(), f.stem.casefold(), names[i].casefold())]
        if not matches:
            raise SettingsError(
                f"role override {key!r}: no such stem (stems: {', '.join(f.name for f in files)})"
            )
        if len(matches) > 1:
            raise SettingsError(
                f"role override {key!r} matches several stems ({', '.join(files[i].name for i in matches)}); use the full file name"
            )
        result[matches[0]] = role
    return result


def check_lengths(items: list[tuple[str, float]]) -> None:
    """AudioError when the lengths ``(file name, duration_s)`` differ by more than max(2 s, 10 %).

    Every stem must be within ``max(2 s, 10 % of the longest)`` of the longest.
    The file named is the odd one out: the longest when it is far from most
    stems (the upper median), else the shortest.
    """
    if len(items) < 2:
        return
    longest_name, longest = max(items, key=lambda it: it[1])
    allowed = max(LENGTH_TOLERANCE_S, LENGTH_TOLERANCE_FRACTION * longest)
    shortest_name, shortest = min(items, key=lambda it: it[1])
    if longest - shortest <= allowed:
        return
    typical = statistics.median_high(d for _, d in items)
    rule = f"stem lengths may differ by at most {allowed:.1f} s (the larger of {LENGTH_TOLERANCE_S:g} s and {LENGTH_TOLERANCE_FRACTION:.0%})"
    if longest - typical > allowed:
        raise AudioError(
            f"{longest_name}: {longest:.2f} s long, but most stems are about {typical:.2f} s "
            f"(shortest: {shortest_name}, {shortest:.2f} s); {rule}"
        )
    raise AudioError(
        f"{shortest_name}: {shortest:.2f} s long, but {longest_name} is {longest:.2f} s; {rule}"
    )


def check_min_duration(name: str | os.PathLike, duration_s: float) -> None:
    """AudioError naming ``name`` when the song is shorter than :data:`MIN_DURATION_S`."""
    if duration_s < MIN_DURATION_S:
        raise AudioError(
            f"{name}: {duration_s:.2f} s long; stemmaster needs at least {MIN_DURATION_S:g} s "
            "(one loudness-measurement block) to master a song"
        )


def _copy_source(original: Path, project_dir: Path, name: str | None = None) -> tuple[Path, str]:
    """Copy ``original`` into ``source/`` byte for byte; return (copy path, sha256). Checks the copy."""
    dest = project_dir / SOURCE_DIR / (name or original.name)
    if dest.exists():
        raise ProjectError(f"{dest}: already exists; import into a new project")
    try:
        digest = sha256_file(original)
    except OSError as exc:
        raise AudioError(f"{original}: cannot read ({describe_os_error(exc)})") from exc
    try:
        shutil.copy2(original, dest)
        copied = sha256_file(dest)
    except OSError as exc:
        raise ProjectError(f"cannot copy {original} to {dest}: {describe_os_error(exc)}") from exc
    if copied != digest:
        raise ProjectError(f"{dest}: the copy of {original} differs from the original (did it change while copying?)")
    return dest, digest


def _pad_wav(path: Path, frames: int, channels: int) -> None:
    """Append ``frames`` of silence to a WAV in place (the file is in the new project folder)."""
    try:
        with sf.SoundFile(str(path), "r+") as f:
            f.seek(0, sf.SEEK_END)
            zeros = np.zeros((min(frames, _PAD_CHUNK), channels), dtype=np.float32)
            left = frames
            while left > 0:
                n = min(left, _PAD_CHUNK)
                f.write(zeros[:n])
                left -= n
    except OSError as exc:
        raise AudioError(f"{path}: cannot write ({describe_os_error(exc)})") from exc
    except (sf.SoundFileError, RuntimeError) as exc:
        raise AudioError(f"{path}: cannot pad with silence ({' '.join(str(exc).split())})") from exc


@dataclass
class _Converted:
    file_rate_hz: int
    channels: int
    frames_decoded: int  # at the file's rate
    frames_written: int  # at the project's rate
    peak: float  # the largest absolute sample


def _convert_stem(original: Path, dest: Path, rate_hz: int, on_progress: Callable[[float], None]) -> _Converted:
    """Decode ``original`` a block at a time into a stereo 32-bit float WAV at ``rate_hz`` (``dest``).

    Mono becomes dual mono; another rate is resampled block by block
    (:meth:`~stemmaster.audio_source.ResampledSource.stream`, equal to
    :func:`~stemmaster.audio_io.resample` of the whole file). Memory follows the block, not
    the song. ``on_progress`` gets the fraction of the file decoded. AudioError as
    read_audio's, and nothing is left at ``dest`` then.
    """
    peak = 0.0
    with AudioReader(original) as reader:
        file_rate_hz = reader.sample_rate

        def decoded() -> Iterator[np.ndarray]:
            for block in reader.blocks():
                yield block
                on_progress(min(1.0, reader.frames_read / max(1, reader.header_frames)))

        hint = -(-reader.header_frames * rate_hz // file_rate_hz)
        with BlockWriter(dest, rate_hz, 2, "FLOAT", frames_hint=hint) as writer:
            for block in ResampledSource.stream(decoded(), file_rate_hz, rate_hz):
                peak = max(peak, float(np.max(np.abs(block))))
                writer.write(to_stereo(block))
        return _Converted(file_rate_hz, reader.channels, reader.frames_read, writer.frames, peak)


@dataclass
class _Planned:
    file: Path
    info: AudioInfo
    name: str
    role: str


def import_stems(
    stems_dir: str | os.PathLike,
    project_dir: str | os.PathLike,
    *,
    sample_rate: int | None = None,
    roles: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> tuple[int, list[SourceFile], list[Stem]]:
    """Import every audio file in ``stems_dir`` into ``project_dir``; return (project rate, sources, stems).

    The project rate is ``sample_rate`` if given, else the most common rate
    among the stems (ties: the highest). Headers are checked first (readable,
    mono or stereo, lengths within max(2 s, 10 %) of each other), so a bad
    folder fails before anything is decoded. Stems keep the order of the
    sorted file names. See the module docstring for skipped files and errors.
    """
    stems_dir, project_dir = Path(stems_dir), Path(project_dir)
    rate_given = _check_sample_rate(sample_rate)
    files, skipped = scan_stems_dir(stems_dir)
    for entry in skipped:
        log.info("skipped %s (not an audio file)", entry)
    if not files:
        seen = f" (found only: {', '.join(p.name for p in skipped[:5])}{', ...' if len(skipped) > 5 else ''})" if skipped else ""
        raise AudioError(
            f"{stems_dir}: no audio files ({', '.join(AUDIO_EXTENSIONS)}){seen}"
        )
    if skipped:
        _report(progress, 0.0, f"skipping {len(skipped)} non-audio entr{'y' if len(skipped) == 1 else 'ies'}: "
                + ", ".join(p.name for p in skipped))

    names = unique_names([stem_name_from_file(f.name) for f in files])
    stem_roles = _resolve_roles(files, names, roles)

    # Pass 1: headers only.
    planned: list[_Planned] = []
    for i, f in enumerate(files):
        _report(progress, 0.05 * i / len(files), f"checking {f.name}")
        planned.append(_Planned(f, audio_info(f), names[i], stem_roles[i]))
    rate = rate_given or choose_sample_rate([p.info.sample_rate for p in planned])
    check_lengths([(p.file.name, p.info.duration_s) for p in planned])

    for sub in (SOURCE_DIR, STEMS_DIR):
        try:
            (project_dir / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"cannot create {project_dir / sub}: {describe_os_error(exc)}") from exc

    # Pass 2: copy each stem, then decode, convert and write it a block at a time.
    sources: list[SourceFile] = []
    stems: list[Stem] = []
    lengths: list[int] = []
    peaks: list[float] = []
    span = 0.9 / len(planned)
    for i, p in enumerate(planned):
        base = 0.05 + i * span
        _report(progress, base, f"copying {p.file.name} ({i + 1}/{len(planned)})")
        copy, digest = _copy_source(p.file, project_dir)
        stem_rel = f"{STEMS_DIR}/{p.name}.wav"
        step = f"resampling {p.file.name} from {p.info.sample_rate} Hz to {rate} Hz" if p.info.sample_rate != rate \
            else f"reading {p.file.name}"
        _report(progress, base + 0.2 * span, f"{step} ({i + 1}/{len(planned)})")
        converted = _convert_stem(  # the original, so errors name the user's file
            p.file, project_dir / stem_rel, rate,
            lambda fraction: _report(progress, base + (0.2 + 0.8 * fraction) * span, f"writing {stem_rel}"),
        )
        sources.append(SourceFile(f"{SOURCE_DIR}/{copy.name}", p.file.name, digest, converted.file_rate_hz,
                                  converted.channels, converted.frames_decoded))
        stems.append(Stem(name=p.name, role=p.role, path=stem_rel, source=sources[-1].path, chain=default_chain(p.role)))
        peaks.append(converted.peak)
        lengths.append(converted.frames_written)

    # The decoded lengths are what counts (compressed formats can differ a little from the header).
    check_lengths([(p.file.name, n / rate) for p, n in zip(planned, lengths)])
    if all(pk == 0.0 for pk in peaks):
        raise AudioError(f"{stems_dir}: every stem is silent (all samples are zero)")
    for p, pk in zip(planned, peaks):
        if pk == 0.0:
            log.warning("%s is silent (all samples are zero)", p.file)
    longest = int(np.argmax(lengths))
    check_min_duration(planned[longest].file, lengths[longest] / rate)

    # Pass 3: pad the shorter stems with silence at the end.
    target = max(lengths)
    for stem, n in zip(stems, lengths):
        if n < target:
            _report(progress, 0.95, f"padding {stem.path} with {(target - n) / rate:.3f} s of silence")
            _pad_wav(project_dir / stem.path, target - n, 2)
    _report(progress, 1.0, f"imported {len(stems)} stem{'s' if len(stems) != 1 else ''} at {rate} Hz")
    return rate, sources, stems


def import_render(
    render_file: str | os.PathLike,
    project_dir: str | os.PathLike,
    *,
    progress: Progress | None = None,
) -> tuple[int, list[SourceFile]]:
    """Copy a finished mix (mono or stereo, any rate) into ``project_dir/source/``; return (its rate, [SourceFile]).

    The file is decoded once, a block at a time, to check it (corrupt, NaN/Inf,
    more than two channels, completely silent or shorter than 0.4 s are
    AudioErrors naming it); no stems are made here (separation comes later).
    """
    render_file, project_dir = Path(render_file), Path(project_dir)
    _report(progress, 0.0, f"checking {render_file.name}")
    audio_info(render_file)  # fast failure on a bad header before copying
    try:
        (project_dir / SOURCE_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProjectError(f"cannot create {project_dir / SOURCE_DIR}: {describe_os_error(exc)}") from exc
    _report(progress, 0.2, f"copying {render_file.name}")
    copy, digest = _copy_source(render_file, project_dir)
    _report(progress, 0.5, f"reading {render_file.name}")
    audible = False
    with AudioReader(render_file) as reader:  # checked a block at a time, never held whole
        for block in reader.blocks():
            audible = audible or bool(np.any(block))
        rate, channels, frames = reader.sample_rate, reader.channels, reader.frames_read
    if not audible:
        raise AudioError(f"{render_file}: silent (all samples are zero); nothing to master")
    check_min_duration(render_file, frames / rate)
    source = SourceFile(f"{SOURCE_DIR}/{copy.name}", render_file.name, digest, rate, channels, frames)
    _report(progress, 1.0, f"imported {render_file.name} ({rate} Hz, {'stereo' if channels == 2 else 'mono'})")
    return rate, [source]
