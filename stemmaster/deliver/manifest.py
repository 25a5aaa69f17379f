"""The deliverables' manifest: every file as written, re-read and measured.

``manifest_row`` decodes the file that landed (WAV/FLAC with libsndfile, MP3
with libsndfile or, where it cannot, ffmpeg: see
:func:`stemmaster.deliver.formats.decode_file`) and measures what a receiver
would: integrated loudness (BS.1770-4 gated, :func:`gated_loudness_lufs`),
true peak (4x, :func:`true_peak_dbtp`), length, rate, channels, and the
file's sha256. ``write_manifest`` writes the rows as ``manifest.json`` and
``manifest.csv``, atomically; the units are in the keys. Loudness and peak are
rounded to 0.001 (far inside any delivery tolerance); a value BS.1770 does not
define (silence, under 400 ms) is ``null`` in JSON and empty in CSV.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from stemmaster.atomic import atomic_write_text, sha256_file
from stemmaster.meters.loudness import gated_loudness_lufs
from stemmaster.meters.truepeak import true_peak_dbtp

MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
COLUMNS = ("file", "version", "format", "integrated_lufs", "true_peak_dbtp", "sample_rate_hz", "channels",
           "length_samples", "duration_s", "size_bytes", "sha256")


def _rounded(value: float, digits: int) -> float | None:
    return round(float(value), digits) if math.isfinite(value) else None


def manifest_row(path: str | os.PathLike, *, version: str, fmt: str) -> dict[str, Any]:
    """Re-read ``path`` and measure it: a dict with the keys of :data:`COLUMNS` (``file`` is the path as given)."""
    from stemmaster.deliver.formats import decode_file

    path = Path(path)
    audio, rate = decode_file(path)
    n = int(audio.shape[1])
    return {
        "file": str(path),
        "version": version,
        "format": fmt,
        "integrated_lufs": _rounded(gated_loudness_lufs(audio, rate), 3),
        "true_peak_dbtp": _rounded(true_peak_dbtp(audio, rate), 3),
        "sample_rate_hz": int(rate),
        "channels": int(audio.shape[0]),
        "length_samples": n,
        "duration_s": round(n / rate, 6),
        "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
    }


def write_manifest(folder: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> tuple[Path, Path]:
    """Write ``manifest.json`` (``{"generated_utc", "files": rows}``) and ``manifest.csv`` (one row per file,
    :data:`COLUMNS` first, then any other keys the rows have) into ``folder``, each atomically; return both paths."""
    folder = Path(folder)
    rows = [dict(r) for r in rows]
    extra = [k for r in rows for k in r if k not in COLUMNS]
    columns = list(COLUMNS) + list(dict.fromkeys(extra))
    doc = {"generated_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "files": rows}
    json_path = folder / MANIFEST_JSON
    csv_path = folder / MANIFEST_CSV
    atomic_write_text(json_path, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    atomic_write_text(csv_path, buf.getvalue())
    return json_path, csv_path
