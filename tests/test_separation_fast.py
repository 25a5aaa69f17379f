"""The faster layer forwards compute what demucs' layers compute (float32 rounding apart)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from demucs.demucs import DConv  # noqa: E402

from separation.fast import accelerate  # noqa: E402
from separation.fast.convs import conv_transposed  # noqa: E402
from separation.fast.dconv import dconv_channels_first  # noqa: E402
from separation.testing import tiny_hdemucs, tiny_htdemucs  # noqa: E402


def rel_db(a, b) -> float:
    a, b = a.double(), b.double()
    return float(20 * torch.log10((a - b).abs().max() / b.abs().max()))


@pytest.mark.parametrize("build", [tiny_htdemucs, tiny_hdemucs], ids=["htdemucs", "hdemucs"])
def test_accelerated_model_equals_the_original(build):
    model = build(seed=1)
    fast = accelerate(model)
    x = torch.randn(2, 2, int(model.segment * model.samplerate), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = model(x)
        out = fast(x)
        single = fast(x[1:])
    assert out.shape == ref.shape
    assert rel_db(out, ref) < -100
    assert rel_db(single[0], ref[1]) < -100  # batch of one (the engine's case) and of two agree
    patched = [m for m in fast.modules() if "forward" in vars(m)]
    assert len(patched) >= 9  # encoder/decoder layers (and transformer layers for HTDemucs)
    assert not any("forward" in vars(m) for m in model.modules())  # the original is untouched
    assert all(a is b for a, b in zip(model.parameters(), fast.parameters()))  # weights shared, not copied


@pytest.mark.parametrize("channels, rows, length", [(8, 64, 50), (16, 1, 3001), (12, 5, 7)])
def test_dconv_channels_first_equals_dconv(channels, rows, length):
    torch.manual_seed(channels)
    dconv = DConv(channels, compress=4, depth=2, init=1e-3).eval()
    with torch.no_grad():  # O(1) norm affines and layer scales so every term matters
        for p in dconv.parameters():
            if p.dim() == 1:
                p.normal_(0.5, 0.5)
    x = torch.randn(rows, channels, length) * 3 + 1
    with torch.inference_mode():
        ref = dconv(x)
        out = dconv_channels_first(dconv, x.permute(1, 0, 2).contiguous()).permute(1, 0, 2)
    assert rel_db(out, ref) < -110


@pytest.mark.parametrize("kind, cin, cout, length", [("2d", 12, 6, 20), ("2d", 4, 16, 9), ("1d", 8, 4, 333)])
def test_transposed_convolution_as_gemm(kind, cin, cout, length):
    torch.manual_seed(cin)
    if kind == "2d":
        conv = torch.nn.ConvTranspose2d(cin, cout, (8, 1), (4, 1))
        y = torch.randn(1, cin, length, 5)
    else:
        conv = torch.nn.ConvTranspose1d(cin, cout, 8, 4)
        y = torch.randn(1, cin, length)
    with torch.inference_mode():
        ref = conv(y)
        out = conv_transposed(conv, y)
    assert out.shape == ref.shape
    assert rel_db(out, ref) < -110


def test_engine_builds_one_accelerated_copy_per_network_usable_outside_inference_mode():
    from separation.engine import _fast

    model = tiny_hdemucs(seed=2)
    fast = _fast(model)
    assert _fast(model) is fast
    x = torch.randn(2, 2, 44100, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = model(x)
    out = fast(x)  # the fast network switches inference mode on itself
    assert out.is_inference() and rel_db(out, ref) < -100
