"""What every model service shares: a cache of loaded models, the device, model sources.

A service keeps each model it loads in its :class:`ModelCache`, keyed by what makes two
loads differ (weights, device, compute options), so a model loads once per actor however
many calls arrive together; load times go to the metrics and to ``/health``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from yivideo import metrics
from yivideo.errors import ModelNotFound, ResourceUnavailable
from yivideo.settings import ModelSettings

log = logging.getLogger(__name__)

Backend = Literal["torch", "ctranslate2", "onnxruntime"]
T = TypeVar("T")


def cuda_available(backend: Backend) -> bool:
    """Whether ``backend`` (imported here, not before) can run on a CUDA device."""
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    if backend == "ctranslate2":
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def resolve_device(requested: str, backend: Backend) -> Literal["cuda", "cpu"]:
    """``auto`` is CUDA when ``backend`` sees a GPU, else the CPU; ``cuda`` (or ``gpu``)
    without one is an error, never a silent fall-back."""
    if requested == "cpu":
        return "cpu"
    has_cuda = cuda_available(backend)
    if requested in ("cuda", "gpu") and not has_cuda:
        raise ResourceUnavailable(f"device '{requested}' requested but {backend} sees no "
                                  "CUDA device")
    return "cuda" if has_cuda else "cpu"


@dataclass
class _Entry:
    model: Any
    facts: dict[str, Any]
    load_s: float


@dataclass
class ModelCache:
    """Loaded models of one service actor, each loaded once."""

    service: str
    _entries: dict[Hashable, _Entry] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: Hashable, load: Callable[[], T], **facts: Any) -> T:
        """The model under ``key``, calling ``load`` the first time.

        ``facts`` (``model=``, ``device=`` ...) describe it in ``/health``; ``model``
        also tags the load-time metric.
        """
        with self._lock:  # one load even when calls arrive together
            entry = self._entries.get(key)
            if entry is None:
                t0 = time.monotonic()
                loaded = load()
                entry = _Entry(loaded, facts, time.monotonic() - t0)
                self._entries[key] = entry
                metrics.model_load_seconds().observe(entry.load_s, tags={
                    "service": self.service, "model": str(facts.get("model", ""))})
                log.info("%s loaded %s in %.2f s", self.service, facts, entry.load_s)
        return entry.model

    def health(self) -> list[dict[str, Any]]:
        return [{**e.facts, "load_s": round(e.load_s, 3)} for e in self._entries.values()]

    def loaded(self) -> list[Any]:
        return [e.model for e in self._entries.values()]


# ---- where models come from: the operator's model_dirs, then packages, then a hub


def models_in_dirs(models: ModelSettings, read: Callable[[Path], Any],
                   name_of: Callable[[Path], str] = lambda p: p.name) -> dict[str, str]:
    """Every model folder under ``models.model_dirs`` that ``read`` accepts: name -> path.

    The first directory listed wins a name, as in :func:`find_in_dirs`.
    """
    found: dict[str, str] = {}
    for root in models.model_dirs:
        if root.is_dir():
            for child in sorted(root.iterdir()):
                if read(child) is not None:
                    found.setdefault(name_of(child), str(child))
    return found


def find_in_dirs(names: list[str], models: ModelSettings, read: Callable[[Path], T | None]
                 ) -> T | None:
    """The first folder ``<model_dir>/<name>`` that ``read`` accepts, or None."""
    for root in models.model_dirs:
        for name in names:
            found = read(root / name)
            if found is not None:
                return found
    return None


def model_at_path(path_text: str, models: ModelSettings, read: Callable[[Path], T | None],
                  not_found: Callable[[str, str], ModelNotFound], invalid: str) -> T:
    """A model a trusted local caller gave by path: only where the operator allows it.

    ``not_found(name, reason)`` builds the error; ``invalid`` says why an existing folder
    is not a model.
    """
    if not models.allow_local_paths:
        raise not_found(path_text, "is a path; models are named (a path is accepted only "
                                   "with models.allow_local_paths)")
    path = Path(path_text).expanduser()
    found = read(path)
    if found is not None:
        return found
    raise not_found(path_text, invalid if path.exists() else "is not an existing directory")
