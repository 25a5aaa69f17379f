"""The accelerated copy of a demucs model: HTDemucs' forward with a fused output stage, and the layer swap."""

from __future__ import annotations

import copy
import math
import types

import torch
from torch import nn
from torch.nn import functional as F

from demucs.apply import BagOfModels
from demucs.hdemucs import HDecLayer, HEncLayer
from demucs.htdemucs import HTDemucs
from demucs.spec import ispectro
from demucs.transformer import CrossTransformerEncoderLayer, MyTransformerEncoderLayer

from separation.fast.convs import hdec_forward, henc_forward
from separation.fast.dconv import dconv_supported
from separation.fast.transformer import cross_layer_forward, mha_supported, self_layer_forward


def _htdemucs_supported(model: nn.Module) -> bool:
    return isinstance(model, HTDemucs) and model.cac


def _htdemucs_forward(self: HTDemucs, mix: torch.Tensor) -> torch.Tensor:
    """HTDemucs.forward (eval, complex-as-channels) with its output stage fused.

    The same steps as demucs' forward; only the end differs in form: demucs
    un-normalises the spectrogram output, permutes it to complex layout
    (a copy), pads it twice for the iSTFT (two more copies), then adds the
    un-normalised time branch. Here the un-normalised values are written once,
    straight into the padded complex buffer the iSTFT reads, and the time branch
    is added with one fused multiply-add.
    """
    if self.training or mix.device.type in ("mps", "xpu"):
        return type(self).forward(self, mix)
    length = mix.shape[-1]
    length_pre_pad = None
    out_length = length
    if self.use_train_segment:
        out_length = int(self.segment * self.samplerate)
        if length < out_length:
            length_pre_pad = length
            mix = F.pad(mix, (0, out_length - length))
    z = self._spec(mix)
    x = self._magnitude(z)
    B, C, Fq, T = x.shape
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) / (1e-5 + std)
    xt = mix
    meant = xt.mean(dim=(1, 2), keepdim=True)
    stdt = xt.std(dim=(1, 2), keepdim=True)
    xt = (xt - meant) / (1e-5 + stdt)

    saved, saved_t, lengths, lengths_t = [], [], [], []
    for idx, encode in enumerate(self.encoder):
        lengths.append(x.shape[-1])
        inject = None
        if idx < len(self.tencoder):
            lengths_t.append(xt.shape[-1])
            tenc = self.tencoder[idx]
            xt = tenc(xt)
            if not tenc.empty:
                saved_t.append(xt)
            else:
                inject = xt
        x = encode(x, inject)
        if idx == 0 and self.freq_emb is not None:  # broadcast over time instead of demucs' expand_as
            frs = torch.arange(x.shape[-2], device=x.device)
            emb = self.freq_emb(frs).t()[None, :, :, None]
            x = x + self.freq_emb_scale * emb
        saved.append(x)
    if self.crosstransformer:
        if self.bottom_channels:
            b, c, f, t = x.shape
            x = self.channel_upsampler(x.reshape(b, c, f * t)).view(b, -1, f, t)
            xt = self.channel_upsampler_t(xt)
        x, xt = self.crosstransformer(x, xt)
        if self.bottom_channels:
            b, c, f, t = x.shape
            x = self.channel_downsampler(x.reshape(b, c, f * t)).view(b, -1, f, t)
            xt = self.channel_downsampler_t(xt)
    for idx, decode in enumerate(self.decoder):
        skip = saved.pop(-1)
        x, pre = decode(x, skip, lengths.pop(-1))
        offset = self.depth - len(self.tdecoder)
        if idx >= offset:
            tdec = self.tdecoder[idx - offset]
            length_t = lengths_t.pop(-1)
            if tdec.empty:
                pre = pre[:, :, 0]
                xt, _ = tdec(pre, None, length_t)
            else:
                xt, _ = tdec(xt, saved_t.pop(-1), length_t)
    assert not saved and not saved_t and not lengths_t

    S = len(self.sources)
    chans = x.shape[1] // (2 * S)
    # un-normalise into the zero-padded complex buffer _ispec builds (one extra frequency, two frames each
    # side), stored frames-major: torch.istft transposes to that layout and would copy otherwise
    buf = torch.zeros(B, S, chans, T + 4, Fq + 1, 2, dtype=x.dtype, device=x.device)
    spec = x.reshape(B, S, chans, 2, Fq, T).permute(0, 1, 2, 5, 4, 3)
    torch.addcmul(mean.view(B, 1, 1, 1, 1, 1), spec, std.view(B, 1, 1, 1, 1, 1),
                  out=buf[:, :, :, 2:T + 2, :Fq, :])
    hl = self.hop_length
    pad = hl // 2 * 3
    le = hl * int(math.ceil(out_length / hl)) + 2 * pad
    wave = ispectro(torch.view_as_complex(buf).transpose(-1, -2), hl, length=le)[..., pad:pad + out_length]
    xt = xt.view(B, S, -1, out_length)
    out = torch.addcmul(wave + meant[:, None], xt, stdt[:, None])
    if length_pre_pad:
        out = out[..., :length_pre_pad]
    return out


def accelerate(model: nn.Module) -> nn.Module:
    """A copy of a demucs model (or BagOfModels) sharing its parameters, with the faster forwards installed.

    The original model is not modified. Layers whose configuration is not
    covered keep demucs' forward. Inference only: each network's forward runs
    under ``torch.inference_mode`` (no gradients).
    """
    memo = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    fast = copy.deepcopy(model, memo)
    fast.eval()
    for mod in fast.modules():
        dconv = getattr(mod, "dconv", None)  # empty layers (just the first conv) have none
        if isinstance(mod, HEncLayer) and (dconv is None or dconv_supported(dconv)):
            mod.forward = types.MethodType(henc_forward, mod)
        elif isinstance(mod, HDecLayer) and (dconv is None or dconv_supported(dconv)):
            mod.forward = types.MethodType(hdec_forward, mod)
        elif (isinstance(mod, MyTransformerEncoderLayer) and not mod.sparse and mod.norm_first
              and mha_supported(mod.self_attn) and callable(mod.activation)):
            mod.forward = types.MethodType(self_layer_forward, mod)
        elif (isinstance(mod, CrossTransformerEncoderLayer) and not mod.sparse and mod.norm_first
              and mha_supported(mod.cross_attn)):
            mod.forward = types.MethodType(cross_layer_forward, mod)
    for net in (fast.models if isinstance(fast, BagOfModels) else [fast]):
        forward = _htdemucs_forward if _htdemucs_supported(net) else type(net).forward
        net.forward = types.MethodType(_inference_only(forward), net)
    return fast


def _inference_only(forward):
    """The network's forward under ``torch.inference_mode`` (the fast layers write into buffers in place)."""
    def wrapped(self, *args, **kwargs):
        with torch.inference_mode():
            return forward(self, *args, **kwargs)
    return wrapped
