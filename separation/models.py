"""Loading Demucs models: from a local folder (checksums verified first) or through demucs' own download.

A local folder uses demucs' layout: one checkpoint per network named
``<signature>-<checksum>.th`` (the checksum is the first hex digits of the
file's sha256) and one ``<name>.yaml`` per model name listing the signatures
of its bag (``models: ['955717e8']``, optionally ``weights:`` per source and
``segment:``). The folder is the ``repo`` argument or ``$STEMMASTER_MODEL_REPO``.

Every checkpoint's sha256 is checked against the checksum in its name before
the file is unpickled, and unpickling only admits demucs' model classes and
``fractions.Fraction`` (``torch.load(weights_only=True)`` with an allowlist), so
a damaged or swapped file is refused instead of loaded.

Without a folder, :func:`load_model` calls ``demucs.pretrained.get_model``
(HuggingFace hub, then demucs' legacy URLs, both cached on disk). Every failure
the user can fix is one :class:`~stemmaster.errors.SeparationError` line.
torch and demucs are imported when a model is loaded, not when this module is.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import pickle
import sys
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from stemmaster.atomic import atomic_write_bytes, atomic_write_text, sha256_file
from stemmaster.errors import SeparationError

ENV_MODEL_REPO = "STEMMASTER_MODEL_REPO"
DEFAULT_MODEL = "htdemucs"
KNOWN_MODELS: tuple[str, ...] = ("htdemucs", "htdemucs_ft", "htdemucs_6s", "mdx_extra")


@dataclass(frozen=True)
class LoadedModel:
    """A Demucs model ready for :func:`separation.engine.separate`.

    ``model`` is demucs' network (``HTDemucs``/``HDemucs``/``Demucs``) or a
    ``BagOfModels``, in eval mode on the CPU. ``signature`` joins the bag's
    signatures with ``+``; ``checksum`` joins ``<signature>-<checksum>`` of
    every checkpoint (for downloads without one in the file name: the first 8
    hex digits of the sha256 of the model's state). ``samplerate`` is in Hz.
    """

    model: Any
    name: str
    signature: str
    checksum: str
    samplerate: int
    sources: tuple[str, ...]
    audio_channels: int
    origin: str  # the folder the checkpoints came from, or "download"


# ---------------------------------------------------------------- public API


def load_model(name: str = DEFAULT_MODEL, repo: str | os.PathLike | None = None) -> LoadedModel:
    """Load the model ``name`` from ``repo`` (or ``$STEMMASTER_MODEL_REPO``), else through demucs' download.

    Names: ``htdemucs``, ``htdemucs_ft``, ``htdemucs_6s``, ``mdx_extra``, or any
    bag (``<name>.yaml``) or signature present in the local folder. Raises
    SeparationError (one line) for an unknown name, a missing folder or file, a
    checksum mismatch, an unreadable checkpoint, or a failed download.
    """
    if not isinstance(name, str) or not name or name != name.strip() or any(c in name for c in "/\\"):
        raise SeparationError(f"invalid model name {name!r}; known models: {', '.join(KNOWN_MODELS)}")
    folder = _repo_folder(repo)
    if folder is not None:
        return _load_local(name, folder)
    return _load_download(name)


def save_checkpoint(model: Any, folder: str | os.PathLike, name: str, *, signature: str | None = None,
                    half: bool = False) -> Path:
    """Write ``model`` (a demucs network built in code) as ``<sig>-<sha8>.th`` plus a one-model ``<name>.yaml``.

    The checkpoint is demucs' package ``{'klass', 'args', 'kwargs', 'state'}``
    (what ``demucs.states.load_model`` reads), so :func:`load_model` with
    ``repo=folder`` loads it back through the same checks as real weights.
    ``signature`` defaults to 8 hex digits derived from ``name``; ``half``
    stores the state as float16 like demucs' released files. Returns the
    checkpoint's path. Earlier checkpoints of the same signature are removed.
    """
    folder = Path(folder)
    sig = signature or hashlib.sha256(name.encode()).hexdigest()[:8]
    path = _save_package(model, folder, sig, half)
    atomic_write_text(folder / f"{name}.yaml", f"models: ['{sig}']\n")
    return path


def save_bag(models: list[Any], folder: str | os.PathLike, name: str, *,
             weights: list[list[float]] | None = None, segment_s: float | None = None) -> Path:
    """Write a bag of demucs networks (each as ``<sig>-<sha8>.th``) and its ``<name>.yaml``; returns the yaml's path.

    ``weights`` is one list per model with one weight per source (demucs'
    BagOfModels convention: each source is the weighted mean over models).
    """
    folder = Path(folder)
    base = hashlib.sha256(name.encode()).hexdigest()
    sigs = [hashlib.sha256(f"{base}{i}".encode()).hexdigest()[:8] for i in range(len(models))]
    for sig, model in zip(sigs, models):
        _save_package(model, folder, sig, False)
    lines = [f"models: [{', '.join(repr(s) for s in sigs)}]"]
    if weights is not None:
        lines.append("weights: [" + ", ".join("[" + ", ".join(repr(float(w)) for w in row) + "]"
                                               for row in weights) + "]")
    if segment_s is not None:
        lines.append(f"segment: {float(segment_s)!r}")
    path = folder / f"{name}.yaml"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def expected_files(name: str) -> list[str]:
    """File names a local folder needs for one of demucs' released models (empty for unknown names)."""
    try:
        import yaml
        from demucs.pretrained import REMOTE_ROOT
    except ImportError:
        return []
    bag_file = REMOTE_ROOT / f"{name}.yaml"
    if not bag_file.is_file():
        return []
    sigs = yaml.safe_load(bag_file.read_text()).get("models", [])
    released = {}
    for line in (REMOTE_ROOT / "files.txt").read_text().splitlines():
        line = line.strip()
        if line.endswith(".th"):
            released[line.split("-", 1)[0]] = line
    return [f"{name}.yaml"] + [released.get(sig, f"{sig}-<checksum>.th") for sig in sigs]


# ---------------------------------------------------------------- local folders


def _repo_folder(repo: str | os.PathLike | None) -> Path | None:
    if repo is not None:
        where = "the model folder"
        folder = Path(repo)
    elif os.environ.get(ENV_MODEL_REPO):
        where = f"${ENV_MODEL_REPO}"
        folder = Path(os.environ[ENV_MODEL_REPO])
    else:
        return None
    if not folder.exists():
        raise SeparationError(f"{where} {folder} does not exist")
    if not folder.is_dir():
        raise SeparationError(f"{where} {folder} is not a folder")
    return folder


def _scan(folder: Path) -> tuple[dict[str, Path], dict[str, str], dict[str, Path]]:
    """Checkpoints by signature, their claimed checksums, and bag files by name."""
    checkpoints: dict[str, Path] = {}
    checksums: dict[str, str] = {}
    bags: dict[str, Path] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise SeparationError(f"cannot list the model folder {folder}: {exc.strerror or exc}") from exc
    for path in entries:
        if path.suffix == ".th" and path.is_file():
            sig, _, checksum = path.stem.partition("-")
            if sig in checkpoints:
                raise SeparationError(f"model folder {folder} holds two checkpoints for signature {sig} "
                                      f"({checkpoints[sig].name}, {path.name}); delete all but one")
            checkpoints[sig] = path
            if checksum:
                checksums[sig] = checksum
        elif path.suffix == ".yaml" and path.is_file():
            bags[path.stem] = path
    return checkpoints, checksums, bags


def _not_found(name: str, folder: Path) -> SeparationError:
    files = expected_files(name)
    if files:
        need = f"expected {' and '.join(files)}"
    else:
        need = f"expected {name}.yaml listing the signatures of <signature>-<checksum>.th files, or a checkpoint {name}-<checksum>.th"
    return SeparationError(f"model '{name}' not found in {folder}: {need} "
                           f"(pass the folder holding them with --model-repo DIR or ${ENV_MODEL_REPO})")


def _load_local(name: str, folder: Path) -> LoadedModel:
    checkpoints, checksums, bags = _scan(folder)
    if name in bags:
        sigs, weights, segment = _read_bag(bags[name])
    elif name in checkpoints:
        sigs, weights, segment = [name], None, None
    else:
        raise _not_found(name, folder)
    for sig in sigs:
        if sig not in checkpoints:
            raise SeparationError(f"model '{name}' in {folder}: {name}.yaml lists signature {sig} but there is no "
                                  f"{sig}-<checksum>.th file; copy it into the folder")
    labels = []
    for sig in sigs:  # every file is verified before any is unpickled
        labels.append(f"{sig}-{_verify(checkpoints[sig], checksums.get(sig))}")
    networks = [_read_checkpoint(checkpoints[sig]) for sig in sigs]
    model = _bag(networks, weights, segment, name, folder)
    return _loaded(model, name, "+".join(sigs), "+".join(labels), str(folder))


def _read_bag(path: Path) -> tuple[list[str], Any, Any]:
    import yaml

    try:
        bag = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SeparationError(f"cannot read the bag file {path}: {' '.join(str(exc).split())}") from exc
    sigs = bag.get("models") if isinstance(bag, dict) else None
    if not isinstance(sigs, list) or not sigs or not all(isinstance(s, str) and s for s in sigs):
        raise SeparationError(f"bag file {path} must contain a list of signatures, e.g. models: ['955717e8']")
    return sigs, bag.get("weights"), bag.get("segment")


def _verify(path: Path, claimed: str | None) -> str:
    """Check the file's sha256 against the checksum in its name; return the (claimed or computed) checksum."""
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise SeparationError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    if claimed is None:
        return digest[:8]
    if digest[:len(claimed)] != claimed.lower():
        raise SeparationError(f"checkpoint {path} is damaged or was modified: its sha256 begins "
                              f"{digest[:len(claimed)]} but its name says {claimed}; replace it with a fresh copy")
    return claimed


def _allowed_globals() -> list:
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    return [Demucs, HDemucs, HTDemucs, Fraction]


def _read_checkpoint(path: Path) -> Any:
    """Unpickle a verified demucs package with only demucs' model classes allowed, and build the network."""
    import torch
    from demucs.states import load_model as demucs_load_model

    allowed = _allowed_globals()
    try:
        with torch.serialization.safe_globals(allowed):
            package = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise SeparationError(f"cannot read checkpoint {path}: not a demucs checkpoint of a known model class "
                              f"({reason})") from exc
    if not isinstance(package, dict) or not {"klass", "args", "kwargs", "state"} <= set(package):
        raise SeparationError(f"checkpoint {path} is not a demucs model package (klass, args, kwargs, state)")
    if package["klass"] not in allowed[:-1]:
        raise SeparationError(f"checkpoint {path} holds a {package['klass']!r}, not a demucs model")
    if isinstance(package["state"], dict) and package["state"].get("__quantized"):
        raise SeparationError(f"checkpoint {path} is a quantized (diffq) model; use the unquantized model instead")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = demucs_load_model(package)
    except (RuntimeError, TypeError, KeyError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise SeparationError(f"checkpoint {path} does not match its model definition ({reason})") from exc
    return model.eval()


def _bag(networks: list, weights: Any, segment: Any, name: str, folder: Path) -> Any:
    from demucs.apply import BagOfModels

    first = networks[0]
    for net in networks[1:]:
        if (list(net.sources) != list(first.sources) or net.samplerate != first.samplerate
                or net.audio_channels != first.audio_channels):
            raise SeparationError(f"model '{name}' in {folder}: its networks disagree on sources, sample rate or channels")
    if weights is not None:
        ok = (isinstance(weights, list) and len(weights) == len(networks)
              and all(isinstance(row, list) and len(row) == len(first.sources) for row in weights))
        if not ok:
            raise SeparationError(f"model '{name}' in {folder}: weights must be one list of {len(first.sources)} "
                                  f"numbers per model ({len(networks)} models)")
        totals = [sum(float(row[k]) for row in weights) for k in range(len(first.sources))]
        if any(t <= 0 for t in totals):
            raise SeparationError(f"model '{name}' in {folder}: every source needs a positive total weight")
    if segment is not None and not (isinstance(segment, (int, float)) and segment > 0):
        raise SeparationError(f"model '{name}' in {folder}: segment must be a positive number of seconds")
    return BagOfModels(networks, weights, segment).eval()


# ---------------------------------------------------------------- download


def _download_folders() -> list[str]:
    folders = []
    try:
        from huggingface_hub import constants

        folders.append(str(constants.HF_HUB_CACHE))
    except ImportError:
        pass
    try:
        import torch

        folders.append(str(Path(torch.hub.get_dir()) / "checkpoints"))
    except ImportError:
        pass
    return folders


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """True when huggingface.co answers a TCP connect (HF's client otherwise retries for ~25 s offline)."""
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _quiet_offline(offline: bool):
    """Offline: huggingface_hub in offline mode (cache only) and download chatter muted. Always: stdout kept clean."""
    constants = None
    if offline:
        try:
            from huggingface_hub import constants
        except ImportError:
            constants = None
    saved = getattr(constants, "HF_HUB_OFFLINE", None)
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    demucs_logger = logging.getLogger("demucs")
    level = demucs_logger.level
    demucs_logger.setLevel(logging.ERROR)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.ExitStack() as stack:
            warnings.simplefilter("ignore")
            # torch.hub announces downloads on stdout, which belongs to the CLI's own output
            stack.enter_context(contextlib.redirect_stdout(sink if offline else sys.stderr))
            if offline:
                stack.enter_context(contextlib.redirect_stderr(sink))
            yield
    finally:
        demucs_logger.setLevel(level)
        if constants is not None:
            constants.HF_HUB_OFFLINE = saved


def _load_download(name: str) -> LoadedModel:
    if name not in KNOWN_MODELS:
        raise SeparationError(f"unknown model '{name}' (known: {', '.join(KNOWN_MODELS)}); a model of your own "
                              f"needs its folder: --model-repo DIR or ${ENV_MODEL_REPO}")
    offline = not _hub_reachable()
    try:
        from demucs.pretrained import get_model

        with _quiet_offline(offline):
            model = get_model(name)
    except (Exception, SystemExit) as exc:  # network, cache, hub and demucs errors all mean "no weights here"
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        if offline:
            reason = f"no network, and not in the download caches: {reason}"
        files = " and ".join(expected_files(name)) or f"{name}.yaml and its .th files"
        searched = ", ".join(_download_folders()) or "demucs' download caches"
        raise SeparationError(
            f"model '{name}' is not available: the download failed ({reason}); searched {searched}; "
            f"run once where there is internet, or put {files} in a folder and pass --model-repo DIR "
            f"(or set ${ENV_MODEL_REPO})") from None
    model.eval()
    sigs = _released_signatures(name) or [name]
    return _loaded(model, name, "+".join(sigs), f"state-{_state_digest(model)}", "download")


def _state_digest(model: Any) -> str:
    """First 8 hex digits of the sha256 over the model's state (names, dtypes, shapes, values)."""
    import torch

    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:8]


def _released_signatures(name: str) -> list[str]:
    files = expected_files(name)[1:]
    return [f.split("-", 1)[0] for f in files]


# ---------------------------------------------------------------- helpers


def _loaded(model: Any, name: str, signature: str, checksum: str, origin: str) -> LoadedModel:
    return LoadedModel(model=model, name=name, signature=signature, checksum=checksum,
                       samplerate=int(model.samplerate), sources=tuple(model.sources),
                       audio_channels=int(model.audio_channels), origin=origin)


def _save_package(model: Any, folder: Path, sig: str, half: bool) -> Path:
    import torch

    if not sig or "-" in sig or any(c in sig for c in "/\\"):
        raise SeparationError(f"invalid signature {sig!r}: use letters and digits, no '-'")
    if not hasattr(model, "_init_args_kwargs"):
        raise SeparationError(f"{type(model).__name__} was not built by a demucs model class (no captured init arguments)")
    args, kwargs = model._init_args_kwargs
    dtype = torch.half if half else None
    state = {k: v.detach().to(device="cpu", dtype=dtype if v.is_floating_point() else None).clone()
             for k, v in model.state_dict().items()}
    package = {"klass": model.__class__, "args": tuple(args), "kwargs": dict(kwargs), "state": state}
    buf = io.BytesIO()
    torch.save(package, buf)
    data = buf.getvalue()
    checksum = hashlib.sha256(data).hexdigest()[:8]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sig}-{checksum}.th"
    for old in folder.glob(f"{sig}-*.th"):
        if old != path:
            old.unlink()
    atomic_write_bytes(path, data)
    return path
