"""Faster inference forwards for demucs' HTDemucs/HDemucs: same weights, same maths, less time.

``accelerate(model)`` returns a copy of a demucs model that shares its
parameters and runs these forwards instead of demucs' own; its output equals
the original's to float32 rounding (tests check -100 dB or better). One
7.8-second segment of the full-size htdemucs on one CPU thread of this
machine: 8.3 s with demucs' forward, 5.6 s with these. Where it comes from:

* ``dconv``: the DConv residual branches as channels-first GEMMs with their
  normalisation folded in, instead of oneDNN convolutions on 2-48 channels
  batched per frequency bin (1.9 s -> 0.5 s).
* ``transformer``: flash attention (``F.scaled_dot_product_attention``) for
  self-attention, whose fast path materialises a (8, 2688, 2688) matrix;
  GroupNorm(1) over tokens as a layer norm; LayerScale residuals as one
  ``addcmul`` (4.1 s -> 2.8 s; the rest is GEMMs and attention at the
  hardware's rate).
* ``convs``: 1x1 convolutions (+GLU) and the decoders' transposed
  convolutions as blocked GEMMs (oneDNN runs the latter at 9-18 GFLOP/s).
* ``model``: HTDemucs' output stage writes the un-normalised spectrogram once,
  straight into the padded buffer the iSTFT reads.

Layers in a configuration this module does not cover (LSTM or local attention
inside DConv, sparse attention, MultiWrap bands) keep demucs' forward, so any
demucs model can be accelerated. Imports torch; only the separation backend
imports this module.
"""

from separation.fast.model import accelerate

__all__ = ["accelerate"]
