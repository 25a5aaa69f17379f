"""The demo song's planted flaws are found on the right stems, and `--auto`'s repairs reduce each
(measured before and after a real render); real material gets no false verdict."""

from __future__ import annotations

import numpy as np
import pytest

from stemmaster.audio_io import read_audio
from stemmaster.demo import DEMO_FLAWS, make_demo_stems
from stemmaster.diagnosis import VERDICT_FIX_MIX, VERDICT_REPAIRS, diagnose
from stemmaster.diagnosis.auto import auto_chains, compare
from stemmaster.master import MasterSettings
from stemmaster.meters.loudness import gated_loudness_lufs
from stemmaster.pipeline import StemAudio, render_stems
from stemmaster.repair import default_chain
from tests.helpers import corpus_path

SR = 44100
PLANTED = [("sibilance", "vocals"), ("harsh_resonance", "vocals"), ("wide_low_end", "bass")]


@pytest.fixture(scope="module")
def demo():
    return make_demo_stems(SR, duration_s=20.0)


@pytest.fixture(scope="module")
def before(demo):
    return diagnose([(k, k, v) for k, v in demo.items()], SR)


def test_every_planted_flaw_is_found_on_its_stem(before):
    found = {(f.id, f.stem): f for f in before.findings}
    for key in PLANTED:
        assert key in found, f"{key} not found: {sorted(found)}"
    ring = found[("harsh_resonance", "vocals")]
    assert abs(ring.details["frequency_hz"] - DEMO_FLAWS["vocals"]["resonance_hz"]) < 300.0
    assert found[("wide_low_end", "bass")].measured == pytest.approx(
        DEMO_FLAWS["bass"]["side_over_mid_below_100hz_db"], abs=1.5)
    assert before.verdict == VERDICT_REPAIRS
    # nothing planted on the drums or the pad: nothing found there
    assert not [f for f in before.findings if f.stem in ("drums", "other")]


def test_auto_repairs_reduce_every_planted_flaw(demo, before, tmp_path):
    chains = {k: default_chain(k) for k in demo}
    auto = auto_chains(before, chains, MasterSettings().to_dict())
    assert any("vocals deharsher" in a for a in auto.applied)
    assert any("vocals deesser" in a for a in auto.applied)
    assert any("bass low_end_mono crossover_hz=150.0" in a for a in auto.applied)
    # recorded like a `stemmaster repair` edit, and never weaker than the default
    assert auto.chains["vocals"]["deharsher"]["depth_db"] >= chains["vocals"]["deharsher"]["depth_db"]
    assert auto.chains["bass"]["low_end_mono"]["crossover_hz"] == 150.0
    settings = MasterSettings.from_dict(auto.master)
    folder = tmp_path / "render"
    folder.mkdir()
    stems = [StemAudio(k, k, v.astype(np.float32), chain=auto.chains[k]) for k, v in demo.items()]
    render_stems(stems, SR, settings, folder, title="demo", render_id="001")
    repaired = [(k, k, read_audio(folder / "stems" / f"{k}.wav")[0]) for k in demo]
    after = diagnose(repaired, SR, mix=read_audio(folder / "master_24bit.wav")[0])
    rows = {(r["id"], r["stem"]): r for r in compare(before, after)}
    for key in PLANTED:
        row = rows[key]
        assert row["after"] < row["before"], row
        assert row["improved"]
    assert rows[("wide_low_end", "bass")]["after"] < -20.0
    assert rows[("sibilance", "vocals")]["before"] - rows[("sibilance", "vocals")]["after"] > 3.0
    assert rows[("harsh_resonance", "vocals")]["resolved"]


def test_auto_leaves_mix_decisions_and_keeps_stronger_settings(demo):
    rest = sum(v.astype(np.float64) for k, v in demo.items() if k != "vocals")
    over = gated_loudness_lufs(demo["vocals"], SR) - gated_loudness_lufs(rest, SR)
    loud = dict(demo)
    loud["vocals"] = demo["vocals"] * 10.0 ** ((10.0 - over) / 20.0)  # the vocal 10 LU over the rest
    d = diagnose([(k, k, v) for k, v in loud.items()], SR)
    assert d.verdict == VERDICT_FIX_MIX
    assert d.measurements["mix"]["vocal_over_rest_lu"] == pytest.approx(10.0, abs=0.05)
    chains = {k: default_chain(k) for k in demo}
    chains["vocals"]["deharsher"]["depth_db"] = 12.0
    auto = auto_chains(d, chains)
    assert auto.chains["vocals"]["deharsher"]["depth_db"] == 12.0  # not weakened to the recommendation
    assert any("vocal_balance: a mix decision" in s for s in auto.skipped)
    assert "gain" not in auto.chains["vocals"]


@pytest.mark.corpus
@pytest.mark.parametrize("song", ["musdb18_80s_rock", "musdb18_mu_too_bright"])
def test_real_stems_are_not_sent_back(song):
    folder = corpus_path("multitrack", song)
    stems = []
    for name in ("vocals", "drums", "bass", "other"):
        audio, rate = read_audio(folder / f"{name}.wav")
        stems.append((name, name, audio))
    d = diagnose(stems, rate)
    assert d.verdict != VERDICT_FIX_MIX
    # clean real bass and drums: nothing wrong with their low end or dynamics
    assert not [f for f in d.findings if f.stem in ("bass", "drums")]


@pytest.mark.corpus
def test_the_hot_ai_render_shows_its_inter_sample_overs():
    audio, rate = read_audio(corpus_path("songs", "ai_generated", "output.mp3"))
    d = diagnose([], rate, mix=audio)
    overs = [f for f in d.findings if f.id == "clipping"]
    assert overs and overs[0].unit == "dBTP" and overs[0].measured == pytest.approx(1.1, abs=0.3)
    band = [f for f in d.findings if f.id == "band_limited"]
    assert band and 15000.0 < band[0].measured < 17000.0
