"""demucs' DConv residual branch on channels-first activations: GEMMs and folded normalisation.

demucs runs each DConv as ``Conv1d`` layers over a batch of one row per
frequency bin (``(B*F, C, T)``, after a permute copy) with 6 to 48 hidden
channels (htdemucs), which oneDNN executes at a few GFLOP/s. Here the activations stay
channels first (``(C, N*T)``, a free view of a ``(1, C, F, T)`` layer output):
the dilated 3-tap convolution is one GEMM plus two shifted adds, and the 1x1
convolution, both GroupNorms, the GLU, the LayerScale and the residual add are
folded into one GEMM per block of columns plus two elementwise passes
(DConv of the first htdemucs layer: 400 ms -> 80 ms on one thread).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from demucs.demucs import DConv, LayerScale

BLOCK_BYTES = 1 << 20  # blocked stages work on column blocks of about this size (stays in L2)


def _dconv_layer_supported(layer: nn.Sequential) -> bool:
    """A DConv layer is [Conv1d(k odd), GroupNorm(1)|Identity, GELU|ReLU, Conv1d(1x1), GroupNorm(1)|Identity, GLU, LayerScale]."""
    mods = list(layer)
    if len(mods) != 7:
        return False  # LSTM or LocalState inserted
    conv1, norm1, act, conv2, norm2, glu, scale = mods
    ok_norm = all(isinstance(n, nn.Identity) or (isinstance(n, nn.GroupNorm) and n.num_groups == 1 and n.affine)
                  for n in (norm1, norm2))
    return (isinstance(conv1, nn.Conv1d) and conv1.groups == 1 and conv1.stride == (1,)
            and conv1.kernel_size[0] % 2 == 1
            and conv1.padding == (conv1.dilation[0] * (conv1.kernel_size[0] // 2),)
            and conv1.bias is not None and ok_norm and isinstance(act, (nn.GELU, nn.ReLU))
            and (not isinstance(act, nn.GELU) or act.approximate == "none")
            and isinstance(conv2, nn.Conv1d) and conv2.kernel_size == (1,) and conv2.bias is not None
            and isinstance(glu, nn.GLU) and glu.dim == 1 and isinstance(scale, LayerScale)
            and not scale.channel_last)


def dconv_supported(dconv: DConv) -> bool:
    return all(_dconv_layer_supported(layer) for layer in dconv.layers)


def _row_stats(sum1: torch.Tensor, sum2: torch.Tensor, count: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and 1/sqrt(var + eps) per row from float64 sums of x and x**2 over ``count`` values."""
    mean = sum1 / count
    var = (sum2 / count - mean * mean).clamp_min(0.0)
    return mean, torch.rsqrt(var + eps)


def _dconv_layer(layer: nn.Sequential, x: torch.Tensor, N: int, T: int) -> None:
    """One DConv layer on channels-first ``x`` (C, N*T), added to ``x`` in place.

    demucs computes ``x + LayerScale(GLU(GN2(conv2(act(GN1(conv1(x)))))))`` per row n
    (GroupNorm with one group normalises over channels and time of each row).
    Here conv1 is one GEMM for all taps plus shifted adds; GN1's statistics come
    from float64 sums; GN2's statistics are derived from the Gram matrix of
    conv2's input (conv2 is linear), so conv2's 2C-channel output is never
    stored whole: GN2, the LayerScale and conv2 fold into one GEMM per block of
    columns, followed by sigmoid and the residual add while the block is in cache.
    """
    conv1, norm1, act, conv2, norm2, _glu, scale = list(layer)
    C = x.shape[0]
    hidden, _, k = conv1.weight.shape
    dil = conv1.dilation[0]
    dt = torch.float64
    # conv1: all taps in one GEMM, then the shifted taps are added (zero padding at each row's ends)
    w_taps = conv1.weight.permute(2, 0, 1).reshape(k * hidden, C)
    z = torch.mm(w_taps, x).view(k, hidden, N, T)
    centre = k // 2
    h = z[centre] + conv1.bias[:, None, None]
    for tap in range(k):
        shift = (tap - centre) * dil
        if tap == centre or abs(shift) >= T:
            continue
        if shift < 0:
            h[..., -shift:] += z[tap, ..., :T + shift]
        else:
            h[..., :T - shift] += z[tap, ..., shift:]
    del z
    if isinstance(norm1, nn.GroupNorm):
        hd = h.to(dt)
        mean, rstd = _row_stats(hd.sum(dim=(0, 2)), (hd * hd).sum(dim=(0, 2)), hidden * T, norm1.eps)
        del hd
        a = norm1.weight[:, None] * rstd.to(h.dtype)[None, :]               # (H, N)
        b = norm1.bias[:, None] - a * mean.to(h.dtype)[None, :]
        h = torch.addcmul(b[:, :, None], h, a[:, :, None])
    h = F.gelu(h) if isinstance(act, nn.GELU) else F.relu(h)              # (H, N, T)

    w2 = conv2.weight[:, :, 0]                                             # (2C, H)
    b2 = conv2.bias
    fold = torch.cat([scale.scale, torch.ones_like(scale.scale)])          # LayerScale on the GLU's value half
    if isinstance(norm2, nn.GroupNorm):
        # statistics of u = w2 @ h + b2 over (2C channels, T) for each row n, from h's Gram matrix
        hd = h.to(dt).permute(1, 0, 2)                                     # (N, H, T)
        gram = torch.bmm(hd, hd.transpose(1, 2))                           # (N, H, H)
        sums = hd.sum(dim=2)                                               # (N, H)
        del hd
        w2d, b2d = w2.to(dt), b2.to(dt)
        sum1 = sums @ w2d.sum(0) + T * b2d.sum()
        sum2 = (gram * (w2d.t() @ w2d)).sum(dim=(1, 2)) + 2.0 * (sums @ (w2d.t() @ b2d)) + T * (b2d * b2d).sum()
        mean, rstd = _row_stats(sum1, sum2, 2 * C * T, norm2.eps)
        g = norm2.weight * fold
        # pre[c] = g_c * (w2 @ (r_n h))_c + g_c b2_c r_n - g_c r_n mean_n + beta_c: a GEMM over h and three
        # extra rows (r_n, r_n mean_n, 1), so the bias needs no separate pass
        w_aug = torch.cat([g[:, None] * w2, (g * b2)[:, None], -g[:, None], (norm2.bias * fold)[:, None]], dim=1)
        r = rstd.to(h.dtype)
        rows = torch.empty(hidden + 3, N, T, dtype=h.dtype, device=h.device)
        torch.mul(h, r[None, :, None], out=rows[:hidden])
        rows[hidden] = r[:, None]
        rows[hidden + 1] = (r * mean.to(h.dtype))[:, None]
        rows[hidden + 2] = 1.0
        del h
    else:
        w_aug = torch.cat([fold[:, None] * w2, (fold * b2)[:, None]], dim=1)
        rows = torch.cat([h, torch.ones(1, N, T, dtype=h.dtype, device=h.device)])
    rows = rows.view(rows.shape[0], N * T)
    block = max(256, BLOCK_BYTES // (8 * C))
    pre = torch.empty(2 * C, block, dtype=x.dtype, device=x.device)
    for start in range(0, N * T, block):
        stop = min(N * T, start + block)
        out = pre[:, :stop - start]
        torch.mm(w_aug, rows[:, start:stop], out=out)
        gate = out[C:].sigmoid_()
        x[:, start:stop].addcmul_(out[:C], gate)


def dconv_channels_first(dconv: DConv, x: torch.Tensor) -> torch.Tensor:
    """DConv on a channels-first ``(C, N, T)`` tensor (N = rows: batch x frequencies); updates and returns ``x``.

    Equivalent to ``dconv(x.permute(1, 0, 2))`` permuted back, where each row
    n is one item of demucs' ``(N, C, T)`` batch. ``x`` must be contiguous and
    owned by the caller (it is updated in place).
    """
    C, N, T = x.shape
    flat = x.view(C, N * T)
    for layer in dconv.layers:
        _dconv_layer(layer, flat, N, T)
    return x
