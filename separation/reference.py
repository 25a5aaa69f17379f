"""demucs' own separation path (``demucs.apply.apply_model``), as the reference the engine is measured against.

``apply_model_reference`` is what ``demucs.api.Separator.separate_tensor`` does
(normalise by the channel mean's mean and std, ``apply_model``, undo), with
the global ``random`` seeded first. For one model and ``shifts=1`` its shift
offset is then the one :func:`separation.engine.separate` draws for the same
seed; with more shifts or a bag, demucs' own model calls consume ``random``
between the draws (HTDemucs' positional embedding calls ``random.randrange``),
so a comparison must hand demucs the engine's offsets (``result.settings
["shift_offsets"]``). Used by tests and the benchmark; imports torch when called.
"""

from __future__ import annotations

import random

import numpy as np

from separation.models import LoadedModel


def apply_model_reference(model: LoadedModel, audio: np.ndarray, *, seed: int = 0, shifts: int = 1,
                          overlap: float = 0.25, segment_s: float | None = None) -> dict[str, np.ndarray]:
    """Stems of ``audio`` (float32 ``(channels, samples)`` at the model's rate) by demucs' apply_model."""
    import torch
    from demucs.apply import apply_model

    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    ref = x.mean(0)
    mean, std = ref.mean(), ref.std() + 1e-8
    random.seed(seed)
    with torch.no_grad():
        out = apply_model(model.model, ((x - mean) / std)[None], shifts=shifts, split=True, overlap=overlap,
                          segment=segment_s)[0]
    out = (out * std + mean).numpy()
    return dict(zip(model.sources, out))
