"""Tiny Demucs networks with random weights, for tests of the separation engine and of its callers.

They have the real architectures (HTDemucs with its cross-transformer, HDemucs
with LSTM and local attention in its deepest DConv branches) at a few hundred
thousand parameters, 22.05 kHz and a 2-second training segment, so a few
seconds of audio make several overlapping segments and separate in well under
a second. Their
output is meaningless but deterministic for a seed. ``tiny_model_repo`` saves
one into a folder in demucs' local layout, to be loaded with
``load_model(name, repo=folder)`` like real weights.
"""

from __future__ import annotations

from pathlib import Path

SOURCES: tuple[str, ...] = ("drums", "bass", "other", "vocals")


def _wake_up(model, seed: int):
    """Give LayerScales and norm affines O(1) random values: at init they are ~1e-3, hiding the DConv branches."""
    import torch

    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("scale" in name or "norm" in name):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3 + (1.0 if "weight" in name else 0.0))
    return model.eval()


def tiny_htdemucs(seed: int = 0, *, segment_s: float = 2.0, samplerate: int = 22050):
    """A 0.5 M-parameter HTDemucs (4 sources, 2 transformer layers, GroupNorm from layer 2, DConv in both halves)."""
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    model = HTDemucs(sources=list(SOURCES), channels=8, dconv_comp=4, depth=4, t_layers=2, t_heads=2,
                     dconv_mode=3, norm_starts=2, segment=segment_s, samplerate=samplerate)
    return _wake_up(model, seed)


def tiny_hdemucs(seed: int = 0, *, segment_s: float = 2.0, samplerate: int = 22050):
    """A 0.6 M-parameter HDemucs (demucs' own unit-test configuration, 6 layers; LSTM/attention in the last two)."""
    import torch
    from demucs.hdemucs import HDemucs

    torch.manual_seed(seed)
    model = HDemucs(sources=list(SOURCES), channels=4, segment=segment_s, samplerate=samplerate)
    return _wake_up(model, seed)


def tiny_demucs(seed: int = 0, *, segment_s: float = 2.0, samplerate: int = 22050):
    """A 27 k-parameter time-domain Demucs (v3 code, 4 layers, DConv branches in the encoder)."""
    import torch
    from demucs.demucs import Demucs

    torch.manual_seed(seed)
    model = Demucs(sources=list(SOURCES), channels=4, depth=4, segment=segment_s, samplerate=samplerate)
    return model.eval()


def tiny_model_repo(folder: str | Path, name: str = "tiny", *, kind: str = "htdemucs", seed: int = 0) -> Path:
    """Save a tiny model as ``<sig>-<sha8>.th`` + ``<name>.yaml`` in ``folder``; returns the checkpoint's path.

    ``kind``: "htdemucs", "hdemucs" or "demucs" (v2, time domain).
    """
    from separation.models import save_checkpoint

    build = {"htdemucs": tiny_htdemucs, "hdemucs": tiny_hdemucs, "demucs": tiny_demucs}[kind]
    return save_checkpoint(build(seed), folder, name)
