"""Model loading: local folders in demucs' layout, checksum verification before unpickling, one-line errors."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from separation.models import ENV_MODEL_REPO, LoadedModel, load_model, save_bag, save_checkpoint  # noqa: E402
from separation.testing import SOURCES, tiny_htdemucs, tiny_model_repo  # noqa: E402
from stemmaster.errors import SeparationError  # noqa: E402


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    tiny_model_repo(folder, "tiny", seed=0)
    return folder


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg == msg.strip() and len(msg) < 600
    return msg


def test_saved_checkpoint_is_named_by_its_sha256(repo):
    (path,) = repo.glob("*.th")
    sig, checksum = path.stem.split("-")
    assert len(sig) == 8 and len(checksum) == 8
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith(checksum)
    assert (repo / "tiny.yaml").read_text().strip() == f"models: ['{sig}']"


def test_round_trip_through_the_loader(repo):
    loaded = load_model("tiny", repo=repo)
    assert isinstance(loaded, LoadedModel)
    (path,) = repo.glob("*.th")
    assert loaded.name == "tiny" and loaded.checksum == path.stem and loaded.signature == path.stem.split("-")[0]
    assert loaded.samplerate == 22050 and loaded.sources == SOURCES and loaded.audio_channels == 2
    assert loaded.origin == str(repo)
    net = loaded.model.models[0]
    original = tiny_htdemucs(seed=0)
    state = original.state_dict()
    assert set(net.state_dict()) == set(state)
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert not net.training


def test_a_signature_can_be_loaded_by_name(repo):
    (path,) = repo.glob("*.th")
    sig = path.stem.split("-")[0]
    assert load_model(sig, repo=repo).signature == sig


def test_environment_variable_names_the_folder(repo, monkeypatch):
    monkeypatch.setenv(ENV_MODEL_REPO, str(repo))
    assert load_model("tiny").checksum.endswith(next(repo.glob("*.th")).stem.split("-")[1])


def test_tampered_checkpoint_is_refused_before_unpickling(repo, tmp_path, monkeypatch):
    folder = tmp_path / "tampered"
    shutil.copytree(repo, folder)
    (path,) = folder.glob("*.th")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(data))
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a) or real_load(*a, **k))
    with pytest.raises(SeparationError) as exc:
        load_model("tiny", repo=folder)
    msg = _one_line(exc)
    assert str(path) in msg and "damaged or was modified" in msg and path.stem.split("-")[1] in msg
    assert calls == []  # never unpickled


def test_empty_folder_names_the_model_the_folder_and_the_files(tmp_path):
    with pytest.raises(SeparationError) as exc:
        load_model("htdemucs", repo=tmp_path)
    msg = _one_line(exc)
    assert "'htdemucs'" in msg and str(tmp_path) in msg
    assert "htdemucs.yaml" in msg and "955717e8-8726e21a.th" in msg and "--model-repo" in msg


def test_unknown_name_in_a_folder(repo):
    with pytest.raises(SeparationError) as exc:
        load_model("htdemucs_ft", repo=repo)
    msg = _one_line(exc)
    assert "'htdemucs_ft'" in msg and str(repo) in msg and "f7e0c4bc-ba3fe64a.th" in msg


def test_bag_listing_a_missing_checkpoint(repo, tmp_path):
    shutil.copytree(repo, tmp_path / "m")
    (tmp_path / "m" / "pair.yaml").write_text("models: ['0badf00d']\n")
    with pytest.raises(SeparationError) as exc:
        load_model("pair", repo=tmp_path / "m")
    assert "0badf00d" in _one_line(exc)


def test_missing_folder(tmp_path):
    with pytest.raises(SeparationError) as exc:
        load_model("htdemucs", repo=tmp_path / "nowhere")
    assert "does not exist" in _one_line(exc)


def test_two_checkpoints_with_one_signature(repo, tmp_path):
    shutil.copytree(repo, tmp_path / "m")
    (path,) = (tmp_path / "m").glob("*.th")
    shutil.copy(path, path.with_name(path.stem.split("-")[0] + "-00000000.th"))
    with pytest.raises(SeparationError) as exc:
        load_model("tiny", repo=tmp_path / "m")
    assert "two checkpoints" in _one_line(exc)


class NotAModel:  # a pickled global outside the allowlist
    pass


def test_checkpoint_with_foreign_objects_is_not_unpickled(tmp_path):
    import io

    buf = io.BytesIO()
    torch.save({"klass": NotAModel, "args": (), "kwargs": {}, "state": {}}, buf)
    data = buf.getvalue()
    name = f"deadbeef-{hashlib.sha256(data).hexdigest()[:8]}.th"
    (tmp_path / name).write_bytes(data)
    with pytest.raises(SeparationError) as exc:
        load_model("deadbeef", repo=tmp_path)
    assert "not a demucs checkpoint" in _one_line(exc)


def test_bag_with_per_source_weights(tmp_path):
    models = [tiny_htdemucs(seed=1), tiny_htdemucs(seed=2)]
    save_bag(models, tmp_path, "pair", weights=[[1, 0, 1, 0.5], [0, 1, 1, 0.5]])
    loaded = load_model("pair", repo=tmp_path)
    assert len(loaded.model.models) == 2 and loaded.model.weights == [[1, 0, 1, 0.5], [0, 1, 1, 0.5]]
    assert loaded.signature.count("+") == 1 and loaded.checksum.count("+") == 1


def test_bag_weights_must_cover_every_source(tmp_path):
    save_bag([tiny_htdemucs(seed=1)], tmp_path, "bad", weights=[[1, 0, 1, 1]])
    with pytest.raises(SeparationError) as exc:
        load_model("bad", repo=tmp_path)
    assert "positive total weight" in _one_line(exc)


def test_failed_download_is_one_line_with_the_way_out(monkeypatch):
    import demucs.pretrained

    import separation.models as models

    monkeypatch.delenv(ENV_MODEL_REPO, raising=False)
    monkeypatch.setattr(models, "_hub_reachable", lambda timeout_s=3.0: False)

    def no_network(name, repo=None):
        raise RuntimeError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(demucs.pretrained, "get_model", no_network)
    with pytest.raises(SeparationError) as exc:
        load_model("htdemucs")
    msg = _one_line(exc)
    for part in ("'htdemucs'", "--model-repo", ENV_MODEL_REPO, "955717e8-8726e21a.th", "htdemucs.yaml",
                 "no network", "searched"):
        assert part in msg


def test_unknown_name_without_a_folder_does_not_download(monkeypatch):
    import demucs.pretrained

    monkeypatch.delenv(ENV_MODEL_REPO, raising=False)
    monkeypatch.setattr(demucs.pretrained, "get_model", lambda *a, **k: pytest.fail("tried to download"))
    with pytest.raises(SeparationError) as exc:
        load_model("my_model")
    msg = _one_line(exc)
    assert "'my_model'" in msg and "htdemucs_ft" in msg and "--model-repo" in msg


@pytest.mark.parametrize("name", ["", " htdemucs", "../htdemucs", None])
def test_invalid_names(name):
    with pytest.raises(SeparationError):
        load_model(name)


def test_save_checkpoint_replaces_an_older_file_of_the_same_signature(tmp_path):
    first = save_checkpoint(tiny_htdemucs(seed=3), tmp_path, "m")
    second = save_checkpoint(tiny_htdemucs(seed=4), tmp_path, "m")
    assert first != second and not first.exists() and second.exists()
    assert load_model("m", repo=tmp_path).checksum == second.stem
