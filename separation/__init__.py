"""Source separation (Demucs) for stemmaster: a stereo render into drums, bass, other and vocals.

Knows nothing of projects. ``import separation`` is light: torch and demucs
are imported only when a model is loaded or a song separated. The API::

    from separation import load_model, separate, stems_with_residual
    model = load_model("htdemucs", repo=None)        # or repo=Path(folder), or $STEMMASTER_MODEL_REPO
    result = separate(audio, sample_rate, model, progress=cb, cancel=event)
    result.stems["vocals"]                           # float32 (2, samples) at the input's rate
    stems = stems_with_residual(result, into="other")  # sums back to the input
    # a long song, block by block: on_block(start, stems, residual) gets the finished samples in order
    summary = separate_stream(FileSource(path), model, on_block)

Modules: ``models`` (loading, checksums, test checkpoints), ``engine`` (the
segment loop), ``blocks`` (the song read and resampled block by block),
``overlap_add`` (segments added in demucs' order, finished audio handed
out), ``plan`` (demucs' segmentation as numbers), ``fast`` (faster forwards
for demucs' layers), ``allocator`` (memory reuse while separating),
``scoring`` (SDR), ``reference`` (demucs' own apply_model path, for
comparisons), ``testing`` (tiny random-weight models for tests).
"""

from __future__ import annotations

from typing import Any

__all__ = ["LoadedModel", "SeparationResult", "StreamSummary", "load_model", "save_checkpoint", "save_bag",
           "separate", "separate_stream", "fold_residual", "stems_with_residual", "sdr_db"]

_WHERE = {
    "LoadedModel": "separation.models", "load_model": "separation.models", "save_checkpoint": "separation.models",
    "save_bag": "separation.models", "SeparationResult": "separation.engine", "separate": "separation.engine",
    "stems_with_residual": "separation.engine", "sdr_db": "separation.scoring",
    "StreamSummary": "separation.engine", "separate_stream": "separation.engine", "fold_residual": "separation.engine",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'separation' has no attribute {name!r}")
