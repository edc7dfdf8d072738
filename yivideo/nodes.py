"""Node registry: the typed operations a workflow stage can name.

A node is a method of a *service* class (one per model service, in ``actors/``),
marked with :func:`node`. Its parameters are a pydantic model, its inputs and
outputs are named and typed by a short data-type name (``video``, ``audio``,
``transcript`` ...) so the compiler can check every edge before anything runs.
Service modules must stay light to import: heavy libraries load inside methods.

Services are discovered, not listed: every module of the ``actors`` package is imported,
and so is every module a distribution names under the ``yivideo.services`` entry-point
group. A module registers its service with :func:`register_service`; a service's default
actor resources live on its class (``actor_defaults``), and settings only override them.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from yivideo.datatypes import get_type
from yivideo.errors import Cancelled, NodeNotFound
from yivideo.modelkit import ModelCache
from yivideo.models_catalogue import Catalogue, ModelName, model_params

__all__ = [
    "Catalogue", "ModelName", "NodeContext", "NodeSpec", "Params", "Service", "all_nodes",
    "all_services", "get_node", "get_service", "load_services", "model_params", "node",
    "register_service",
]

#: The package whose every module is a service module.
SERVICE_PACKAGE = "actors"
#: Entry-point group through which other distributions add service modules.
ENTRY_POINT_GROUP = "yivideo.services"


class Params(BaseModel):
    """Base for node parameter models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class NoParams(Params):
    pass


@dataclass(frozen=True)
class NodeSpec:
    name: str
    service: str
    method: str
    params: type[Params]
    inputs: dict[str, str]
    outputs: dict[str, str]
    description: str
    optional_inputs: frozenset[str] = frozenset()

    @property
    def model_params(self) -> dict[str, Catalogue]:
        """Params that select a model (typed :func:`ModelName`): name -> catalogue."""
        return model_params(self.params)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "service": self.service,
            "description": self.description,
            "inputs": self.inputs,
            "optional_inputs": sorted(self.optional_inputs),
            "outputs": self.outputs,
            "params": self.params.model_json_schema(),
        }


@dataclass
class NodeContext:
    """What a running node may use besides its inputs: progress and artifacts."""

    workflow_id: str = ""
    stage: str = ""
    report: Callable[[float, str], None] | None = None
    cancelled: Callable[[], bool] | None = None
    artifacts: dict[str, bytes] = field(default_factory=dict)
    min_interval_s: float = 0.5
    _last: float = 0.0

    def check_cancelled(self) -> None:
        """Raise :class:`Cancelled` if the workflow was cancelled; call it in long loops."""
        if self.cancelled and self.cancelled():
            raise Cancelled(f"stage {self.stage} was cancelled")

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress (0..1), throttled; also where a cancel takes effect."""
        self.check_cancelled()
        now = time.monotonic()
        if self.report and (fraction >= 1.0 or now - self._last >= self.min_interval_s):
            self._last = now
            self.report(max(0.0, min(1.0, fraction)), message)

    def add_artifact(self, name: str, data: bytes | str) -> None:
        """Keep a final file of the workflow under ``name`` (e.g. ``subtitles.srt``)."""
        self.artifacts[name] = data.encode() if isinstance(data, str) else data


def node(
    name: str,
    *,
    params: type[Params] = NoParams,
    inputs: dict[str, str] | None = None,
    outputs: dict[str, str] | None = None,
    optional_inputs: tuple[str, ...] = (),
) -> Callable[[Callable], Callable]:
    """Mark a service method as the node ``name`` (``<service>.<operation>``)."""

    def mark(fn: Callable) -> Callable:
        fn.__yivideo_node__ = dict(
            name=name,
            params=params,
            inputs=dict(inputs or {}),
            outputs=dict(outputs or {}),
            optional_inputs=frozenset(optional_inputs),
            description=(fn.__doc__ or "").strip().split("\n")[0],
        )
        return fn

    return mark


class Service:
    """Base of every service. Subclasses set ``name`` and mark methods with ``@node``.

    The instance lives inside a long-lived Ray actor: load models lazily and keep them.
    """

    name: ClassVar[str] = ""
    #: Whether the service can use a GPU (then its ``num_gpus`` setting applies).
    uses_gpu: ClassVar[bool] = False
    #: Default Ray resources of its actor (fields of ``settings.ActorOptions``);
    #: ``actors.<name>`` in the settings overrides them key by key.
    actor_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.models = ModelCache(self.name)  # every model it loads, each loaded once

    def health(self) -> dict[str, Any]:
        """Liveness and what the service holds (loaded models and their load times)."""
        return {"service": self.name, "models": self.models.health()}

    @classmethod
    def identity(cls, settings: Any, params: dict[str, Any]) -> str:
        """What, besides params and inputs, decides a node's result (e.g. model weights).

        Part of the result-cache key; computed without loading anything.
        """
        return ""


_REGISTRY: dict[str, NodeSpec] = {}
_SERVICES: dict[str, type[Service]] = {}


def register_service(cls: type[Service]) -> type[Service]:
    """Class decorator: add a service and its nodes to the registry."""
    _SERVICES[cls.name] = cls
    for attr, fn in vars(cls).items():
        meta = getattr(fn, "__yivideo_node__", None)
        if meta is None:
            continue
        if not meta["name"].startswith(cls.name + "."):
            raise ValueError(f"node {meta['name']} must start with '{cls.name}.'")
        for dtype in [*meta["inputs"].values(), *meta["outputs"].values()]:
            get_type(dtype)  # a typo in a type name fails at import, not at run time
        _REGISTRY[meta["name"]] = NodeSpec(service=cls.name, method=attr, **meta)
    return cls


@cache
def service_modules() -> tuple[str, ...]:
    """Every service module: the ``actors`` package's modules, then entry points."""
    package = importlib.import_module(SERVICE_PACKAGE)
    found = [f"{SERVICE_PACKAGE}.{m.name}" for m in pkgutil.iter_modules(package.__path__)
             if not m.name.startswith("_")]
    found += [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)]
    return tuple(found)


def load_services() -> None:
    """Import every service module (which registers its services, types and recipes)."""
    # importing is idempotent, so a service imported directly elsewhere is no problem
    for module in service_modules():
        importlib.import_module(module)


def get_node(name: str) -> NodeSpec:
    load_services()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise NodeNotFound(name, sorted(_REGISTRY)) from None


def all_nodes() -> list[NodeSpec]:
    load_services()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_service(name: str) -> type[Service]:
    load_services()
    try:
        return _SERVICES[name]
    except KeyError:
        raise KeyError(f"unknown service '{name}' (known: {', '.join(sorted(_SERVICES))})"
                       ) from None


def all_services() -> list[type[Service]]:
    load_services()
    return [_SERVICES[k] for k in sorted(_SERVICES)]
