"""demucs' encoder/decoder layers with their 1x1 and transposed convolutions as GEMMs.

For a batch of one (the engine's case) a ``(1, C, F, T)`` activation is a
``(C, F*T)`` matrix, so a 1x1 convolution is one GEMM; followed by a GLU it is
done by column blocks that stay in cache. The decoders' transposed
convolutions (kernel 8, stride 4 along one axis) are one GEMM plus two shifted
adds, where oneDNN runs them at 9-18 GFLOP/s. The layer forwards are demucs'
own (HEncLayer/HDecLayer.forward) with these pieces and the channels-first
DConv swapped in.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from demucs.demucs import DConv
from demucs.hdemucs import HDecLayer, HEncLayer

from separation.fast.dconv import BLOCK_BYTES, dconv_channels_first

BLOCKED_CONV_TR_BYTES = 48 << 20  # transposed convolutions with larger GEMM outputs go by blocks


def conv1x1(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 Conv1d/Conv2d (stride 1, no padding) on a batch-of-one ``(1, C, ...)`` tensor as one GEMM."""
    if x.shape[0] != 1 or not x.is_contiguous():
        return conv(x)
    cin = x.shape[1]
    w = conv.weight.reshape(conv.weight.shape[0], cin)
    flat = x.view(cin, -1)
    if conv.bias is not None:
        out = torch.addmm(conv.bias[:, None], w, flat)
    else:
        out = torch.mm(w, flat)
    return out.view(1, -1, *x.shape[2:])


def conv1x1_glu(conv: nn.Module, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``F.glu(norm(conv(x)), dim=1)`` for a 1x1 conv; without a norm, by column blocks that stay in cache.

    The conv's 2C-channel output is never stored whole: each block of columns
    is one GEMM with the bias, then sigmoid and product (86 ms -> 34 ms for
    the first htdemucs encoder layer).
    """
    if not isinstance(norm, nn.Identity) or x.shape[0] != 1 or not is_1x1(conv) or conv.bias is None:
        return F.glu(norm(apply_conv(conv, x.contiguous())), dim=1)
    x = x.contiguous()
    cin = x.shape[1]
    cout2 = conv.weight.shape[0]
    half = cout2 // 2
    flat = x.view(cin, -1)
    n = flat.shape[1]
    w = conv.weight.reshape(cout2, cin)
    bias = conv.bias[:, None]
    out = torch.empty(half, n, dtype=x.dtype, device=x.device)
    block = max(256, BLOCK_BYTES // (4 * cout2))
    buf = torch.empty(cout2, min(block, n), dtype=x.dtype, device=x.device)
    for start in range(0, n, block):
        stop = min(n, start + block)
        pre = buf[:, :stop - start]
        torch.addmm(bias, w, flat[:, start:stop], out=pre)
        torch.mul(pre[:half], pre[half:].sigmoid_(), out=out[:, start:stop])
    return out.view(1, half, *x.shape[2:])


def is_1x1(conv: nn.Module) -> bool:
    if not isinstance(conv, (nn.Conv1d, nn.Conv2d)) or conv.groups != 1:
        return False
    return all(k == 1 for k in conv.kernel_size) and all(s == 1 for s in conv.stride) \
        and all(p == 0 for p in conv.padding) and all(d == 1 for d in conv.dilation)


def apply_conv(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)``, as a GEMM when it is a 1x1 convolution."""
    return conv1x1(conv, x) if is_1x1(conv) else conv(x)


def conv_tr_supported(conv: nn.Module) -> bool:
    """ConvTranspose1d, or ConvTranspose2d with a (K, 1) kernel, stride a divisor of K, no padding/dilation/groups."""
    if isinstance(conv, nn.ConvTranspose1d):
        k, s = conv.kernel_size[0], conv.stride[0]
    elif isinstance(conv, nn.ConvTranspose2d) and conv.kernel_size[1] == 1 and conv.stride[1] == 1:
        k, s = conv.kernel_size[0], conv.stride[0]
    else:
        return False
    return (k % s == 0 and conv.groups == 1 and all(p == 0 for p in conv.padding)
            and all(p == 0 for p in conv.output_padding) and all(d == 1 for d in conv.dilation)
            and conv.bias is not None)


def conv_transposed(conv: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """A transposed convolution along one axis as one GEMM plus K/stride shifted adds (batch of one).

    ``y`` is (1, Cin, L, T) for ConvTranspose2d with a (K, 1) kernel, (1, Cin, L)
    for ConvTranspose1d; out[co, l*S + k] = bias[co] + sum_ci W[ci, co, k] y[ci, l].
    oneDNN runs the decoder's (K=8, S=4) cases at 9-18 GFLOP/s on CPU.
    """
    if y.shape[0] != 1 or not conv_tr_supported(conv):
        return conv(y)
    two_d = y.dim() == 4
    cin, L = y.shape[1], y.shape[2]
    T = y.shape[3] if two_d else 1
    _, cout, K = conv.weight.shape[:3]
    S = conv.stride[0]
    m = K // S
    w = conv.weight.reshape(cin, cout * K).t()                             # rows (co, j, s)
    flat = y.reshape(cin, L * T)
    bias = conv.bias[:, None, None, None]
    out = torch.empty(cout, L + m - 1, S, T, dtype=y.dtype, device=y.device)
    if m != 2 or cout * K * L * T * 4 < BLOCKED_CONV_TR_BYTES:
        big = torch.mm(w, flat).view(cout, m, S, L, T)
        torch.add(big[:, 0].permute(0, 2, 1, 3), bias, out=out[:, :L])
        out[:, L:] = bias
        for j in range(1, m):
            out[:, j:j + L] += big[:, j].permute(0, 2, 1, 3)
    else:
        # K = 2 * stride (demucs' layers), large outputs (the last two frequency decoders: 66-88 MB): by blocks
        # of input rows that stay in cache; each row's second half lands on the next output row, carried over
        rows = max(1, 2 * BLOCK_BYTES // (4 * cout * K * T))
        carry = None
        for l0 in range(0, L, rows):
            l1 = min(L, l0 + rows)
            nb = l1 - l0
            big = torch.mm(w, flat[:, l0 * T:l1 * T]).view(cout, 2, S, nb, T)
            torch.add(big[:, 0].permute(0, 2, 1, 3), bias, out=out[:, l0:l1])
            if carry is not None:
                out[:, l0] += carry
            if nb > 1:
                out[:, l0 + 1:l1] += big[:, 1, :, :nb - 1].permute(0, 2, 1, 3)
            carry = big[:, 1, :, nb - 1].clone()
        torch.add(carry, bias[:, 0], out=out[:, L])
    lout = (L + m - 1) * S
    return out.view(1, cout, lout, T) if two_d else out.view(1, cout, lout)


def dconv_on(dconv: DConv, y: torch.Tensor, freq: bool) -> torch.Tensor:
    """Apply a DConv to an encoder/decoder activation, (B, C, F, T) when ``freq`` else (B, C, T); returns same layout."""
    if freq:
        B, C, Fr, T = y.shape
        cf = y[0] if B == 1 else y.permute(1, 0, 2, 3).reshape(C, B * Fr, T)
        out = dconv_channels_first(dconv, cf.contiguous())
        return out.view(C, Fr, T)[None] if B == 1 else out.view(C, B, Fr, T).permute(1, 0, 2, 3)
    B, C, T = y.shape
    cf = y.permute(1, 0, 2)
    out = dconv_channels_first(dconv, cf.contiguous())
    return out.permute(1, 0, 2)


def henc_forward(self: HEncLayer, x, inject=None):
    """HEncLayer.forward with the DConv and the 1x1 rewrite as GEMMs (same maths as demucs)."""
    if not self.freq and x.dim() == 4:
        B, C, Fr, T = x.shape
        x = x.view(B, -1, T)
    if not self.freq:
        le = x.shape[-1]
        if not le % self.stride == 0:
            x = F.pad(x, (0, self.stride - (le % self.stride)))
    y = self.conv(x)
    if self.empty:
        return y
    if inject is not None:
        assert inject.shape[-1] == y.shape[-1], (inject.shape, y.shape)
        if inject.dim() == 3 and y.dim() == 4:
            inject = inject[:, :, None]
        y = y + inject
    y = F.gelu(self.norm1(y))
    if self.dconv:
        y = dconv_on(self.dconv, y, self.freq)
    if self.rewrite:
        z = conv1x1_glu(self.rewrite, self.norm2, y)
    else:
        z = y
    return z


def hdec_forward(self: HDecLayer, x, skip, length):
    """HDecLayer.forward with the DConv as GEMMs (same maths as demucs)."""
    if self.freq and x.dim() == 3:
        B, C, T = x.shape
        x = x.view(B, self.chin, -1, T)
    if not self.empty:
        x = x + skip
        if self.rewrite:
            y = F.glu(self.norm1(apply_conv(self.rewrite, x)), dim=1)
        else:
            y = x
        if self.dconv:
            y = dconv_on(self.dconv, y.contiguous(), self.freq)
    else:
        y = x
        assert skip is None
    z = self.norm2(conv_transposed(self.conv_tr, y))
    if self.freq:
        if self.pad:
            z = z[..., self.pad:-self.pad, :]
    else:
        z = z[..., self.pad:self.pad + length]
        assert z.shape[-1] == length, (z.shape[-1], length)
    if not self.last:
        z = F.gelu(z)
    return z, y
