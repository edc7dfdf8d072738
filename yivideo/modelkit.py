"""What every model service shares: a cache of loaded models, the device, model sources.

A service keeps each model it loads in its :class:`ModelCache`, keyed by what makes two
loads differ (weights, device, compute options), so a model loads once per actor however
many calls arrive together; load times go to the metrics and to ``/health``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from yivideo import metrics
from yivideo.errors import ModelNotFound, ResourceUnavailable
from yivideo.models_catalogue import looks_like_path
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
#
# Every model service resolves a catalogue name the same way (resolve_chain): the first
# folder of models.model_dirs that holds it, else a model its installed packages ship,
# else (where the service can fetch and the operator allows it) a download; a path only
# with models.allow_local_paths. The pieces below are what a service says of its models.


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
    # absolute, so that the path means the same in an actor with another working directory
    path = Path(path_text).expanduser().resolve()
    found = read(path)
    if found is not None:
        return found
    raise not_found(path_text, invalid if path.exists() else "is not an existing directory")


@dataclass(frozen=True)
class Bundled(Generic[T]):
    """A model that installed packages ship; ``get`` lays it out (once) and returns it."""

    where: str  # for listings: "package rapidocr"
    installed: Callable[[], bool]
    get: Callable[[ModelSettings], T | None]  # None: it could not be laid out
    missing: str  # the reason when the packages are absent: "needs the package: ..."


def _folder_name(path: Path) -> str:
    return path.name


def _itself(name: str) -> list[str]:
    return [name]


@dataclass(frozen=True)
class ModelChain(Generic[T]):
    """Where one kind of model comes from; :func:`resolve_chain` walks it.

    ``read(path)`` is the model at ``path`` (a folder or file under a model dir, or a
    local caller's path), None when ``path`` holds none; ``how_to_add`` ends the not-found
    message, with ``{dirs}`` standing for the configured model folders.
    """

    kind: str  # what a message names: "whisper model", "LLM" ...
    read: Callable[[Path], T | None]
    how_to_add: str
    invalid: str  # why an existing path given by a local caller is no model
    name_of: Callable[[Path], str] = _folder_name  # a model dir entry -> its name
    aliases: Callable[[str], list[str]] = _itself  # a name -> entries tried, in order
    bundled: Mapping[str, Bundled[T]] = field(default_factory=dict)
    download: Callable[[str], T] | None = None  # with models.allow_download: a hub name
    local_paths: bool = True  # False: a path is refused even with models.allow_local_paths

    def available(self, models: ModelSettings) -> dict[str, str]:
        """Models usable offline: name -> where it comes from. ``model_dirs`` win."""
        found = models_in_dirs(models, self.read, self.name_of)
        for name, bundled in self.bundled.items():
            if bundled.installed():
                found.setdefault(name, bundled.where)
        return found

    def not_found(self, name: str, models: ModelSettings, reason: str) -> ModelNotFound:
        """The error for ``name``: ``reason``, what is available and how to add one."""
        dirs = ", ".join(str(d) for d in models.model_dirs) or "none configured"
        return ModelNotFound.listing(f"{self.kind} '{name}'", reason, self.available(models),
                                     self.how_to_add.replace("{dirs}", dirs))


def resolve_chain(chain: ModelChain[T], name_or_path: str, models: ModelSettings) -> T:
    """The model ``name_or_path`` names, from the first place of ``chain`` that has it.

    In order: a path (only with ``models.allow_local_paths`` and ``chain.local_paths``),
    an entry of ``models.model_dirs`` (the first folder listed wins), a bundled model, a
    download (only with ``models.allow_download`` and a ``chain.download``). Anything else
    raises :class:`ModelNotFound` saying why, what is available and how to add one.
    """
    if looks_like_path(name_or_path):
        if not chain.local_paths:  # its loader takes a name only
            raise chain.not_found(name_or_path, models, "is a path; models of this kind are "
                                                        "named, never given by path")
        return model_at_path(name_or_path, models, chain.read,
                             lambda name, why: chain.not_found(name, models, why),
                             chain.invalid)
    found = find_in_dirs(chain.aliases(name_or_path), models, chain.read)
    if found is not None:
        return found
    bundled = chain.bundled.get(name_or_path)
    if bundled is not None and bundled.installed():
        found = bundled.get(models)
        if found is None:  # only if the cache was tampered with while it was laid out
            raise chain.not_found(name_or_path, models, "could not be prepared")
        return found
    if chain.download is not None and models.allow_download:
        return chain.download(name_or_path)
    reason = bundled.missing if bundled is not None else "is unknown"
    raise chain.not_found(name_or_path, models, reason)
