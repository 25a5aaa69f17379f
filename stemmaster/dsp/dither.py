"""Word-length reduction with TPDF dither, for writing 16- or 24-bit PCM."""

from __future__ import annotations

import numba
import numpy as np

from stemmaster.errors import AudioError, SettingsError

DITHERS = ("tpdf", "none")


def lsb(bit_depth: int) -> float:
    """The size of one least-significant bit at ``bit_depth``, full scale 1.0."""
    return 2.0 ** -(bit_depth - 1)


def tpdf_noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Triangular dither in LSB units, float32 in ``(-1, 1)``: what ``quantize`` adds for ``seed``.

    ``u1 - u2`` of two uniform [0, 1) draws is the same triangle as
    ``(u1 - 0.5) + (u2 - 0.5)``; drawn in float32 (24-bit uniforms, far finer
    than the LSB they dither) at half the cost of float64.
    """
    return TpdfNoise(seed).draw(shape)


class TpdfNoise:
    """``tpdf_noise`` drawn a block at a time from one generator: consecutive draws continue one
    sequence (for a master written block by block), and the first draw is ``tpdf_noise(shape, seed)``."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)

    def draw(self, shape: tuple[int, ...]) -> np.ndarray:
        noise = self._rng.random(shape, dtype=np.float32)
        noise -= self._rng.random(shape, dtype=np.float32)
        return noise


def quantize_measured(audio: np.ndarray, bit_depth: int, *, dither: str = "tpdf", seed: int = 0,
                      noise: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """``quantize`` and the largest change it made to any sample, ``max |out - audio|``
    (linear), found in the same sweep: what a caller bounding the true peak's change needs."""
    return quantize(audio, bit_depth, dither=dither, seed=seed, noise=noise, measured=True)


def quantize(audio: np.ndarray, bit_depth: int, *, dither: str = "tpdf", seed: int = 0,
             noise: np.ndarray | None = None, measured: bool = False):
    """Round ``audio`` onto the ``bit_depth`` integer grid, returned as float32 of the same shape.

    Values are ``k * 2**-(bit_depth-1)`` for integers ``k`` in
    ``[-2**(bit_depth-1), 2**(bit_depth-1) - 1]``, which float32 holds exactly
    up to 24 bits, so ``soundfile`` writes exactly these values as PCM_16 or
    PCM_24. ``dither="tpdf"`` adds, before rounding, the sum of two
    independent uniform(-0.5, 0.5) LSB values (triangular, ±1 LSB peak): the
    error is then signal-independent noise of mean 0 and variance LSB²/4.
    ``dither="none"`` only rounds. The same ``seed`` gives the same output.
    ``noise``, if given, must be ``tpdf_noise(audio.shape, seed)``: a caller
    writing several bit depths draws it once. ``measured``: return
    ``(out, max |out - audio|)`` (use ``quantize_measured``).
    """
    if isinstance(bit_depth, bool) or not isinstance(bit_depth, (int, np.integer)) or not 2 <= bit_depth <= 24:
        raise SettingsError(f"quantize.bit_depth = {bit_depth!r} is not an integer from 2 to 24")
    if dither not in DITHERS:
        raise SettingsError(f"quantize.dither = {dither!r} is not one of {', '.join(DITHERS)}")
    scale = 2.0 ** (int(bit_depth) - 1)
    x = np.asarray(audio)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise AudioError("cannot quantize audio containing NaN or infinity")
    if dither == "tpdf":
        if noise is None:
            noise = tpdf_noise(x.shape, seed)
        elif noise.shape != x.shape:
            raise ValueError(f"noise must be shaped {x.shape}, got {noise.shape}")
        flat_noise = np.ascontiguousarray(noise, dtype=np.float32).reshape(-1)
    else:
        flat_noise = np.zeros(0, dtype=np.float32)
    out = np.empty(x.shape, dtype=np.float32)
    error = _quantize(np.ascontiguousarray(x).reshape(-1), flat_noise, scale, out.reshape(-1))
    return (out, error) if measured else out


@numba.njit(cache=True, nogil=True)
def _quantize(x: np.ndarray, noise: np.ndarray, scale: float, out: np.ndarray) -> float:
    """``out = clip(rint(x * scale + noise), -scale, scale - 1) / scale``, worked in float64
    and stored as float32 (exact: the grid has at most 24 bits); empty ``noise`` means none.
    Returns the largest ``|out - x|``."""
    dithered = noise.shape[0] > 0
    top = scale - 1.0
    inv = 1.0 / scale  # a power of two: exact
    error = 0.0
    for i in range(x.shape[0]):
        xi = float(x[i])
        v = xi * scale
        if dithered:
            v += float(noise[i])
        v = np.rint(v)
        if v < -scale:
            v = -scale
        elif v > top:
            v = top
        q = v * inv
        out[i] = q
        error = max(error, abs(q - xi))
    return error
