"""Connecting to Ray and the long-lived service actors that hold the models.

One generic actor class, :class:`ServiceHost`, hosts any service from ``actors/``; each
service gets named, detached actors (its replicas, ``actors.<service>.replicas``) with the
resources its settings ask for, created on first use and reused by every workflow
afterwards. Replica 0 is named :func:`actor_name`, replica ``i`` ``actor_name:i``
(:func:`replica_name`); which replica takes a call is the stage runner's choice.

A named actor is built once, from the settings of whoever asked first. So that settings
mean what they say, an actor remembers the settings it was built from, and asking for a
running one with other settings is a :class:`SettingsMismatch` naming the keys that
differ. What must match: for a service, its actor options and ``models``; for the
controller, everything but the front doors' own settings (:data:`FRONT_DOOR`), the
webhook secret compared by a digest. Service actors get no secret at all.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections import deque
from typing import Any

import ray

from yivideo.datatypes import file_types
from yivideo.errors import Cancelled, ResourceUnavailable, SettingsMismatch
from yivideo.media.handle import MediaHandle, hold, is_uri, resolve
from yivideo.models_catalogue import validation_context
from yivideo.nodes import NodeContext, all_services, get_node, get_service
from yivideo.security.auth import AuthSettings
from yivideo.security.ratelimit import RateLimitSettings
from yivideo.settings import Settings, get_settings

CONTROLLER = "controller"
#: Settings each front door (HTTP ingress, CLI, Python API) applies itself: front doors
#: sharing one controller may differ in them.
FRONT_DOOR = frozenset({
    "auth", "rate_limit", "input_roots", "url_allowlist", "fetch_max_mb", "fetch_timeout_s",
    "max_upload_mb", "max_input_duration_s", "max_input_width", "max_input_height",
    "list_page_max", "max_active_workflows"})
#: Compared by a digest, never shown.
_SECRETS = frozenset({"webhook_secret"})
_UNSET = object()


def connect(address: str | None = None, settings: Settings | None = None, **init: Any) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local one.

    With no address, a cluster already started on this machine (``ray start --head``) is
    joined as it is; only if there is none does Ray start in this process, sized for the
    service actors: the embedded default.
    """
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    settings = settings or get_settings()
    if not (address or os.environ.get("RAY_ADDRESS")):
        try:  # resources are the running cluster's own: never pass them when joining
            ray.init(address="auto", namespace=settings.namespace, log_to_driver=False)
            return
        except ConnectionError:
            pass  # nothing runs here: start the embedded default
        init.setdefault("include_dashboard", False)
        # long-lived service actors mostly wait: give the local instance enough logical
        # CPUs for all of them, or one would wait forever for a CPU another one holds
        wanted = sum(a.num_cpus * a.replicas.max for a in settings.actors.values())
        init.setdefault("num_cpus", max(os.cpu_count() or 1, math.ceil(wanted)))
    ray.init(address=address, namespace=settings.namespace, log_to_driver=False, **init)


def actor_name(service: str) -> str:
    """The name of the service's first replica (and so of a service with one actor)."""
    return f"service:{service}"


def replica_name(service: str, index: int = 0) -> str:
    """Replica 0 keeps :func:`actor_name`, so that lookups by that name still find it."""
    return actor_name(service) if index == 0 else f"{actor_name(service)}:{index}"


def replica_index(service: str, name: str) -> int | None:
    """The index of a replica of ``service`` named ``name``; None if it is not one."""
    base = actor_name(service)
    if name == base:
        return 0
    head, _, tail = name.rpartition(":")
    return int(tail) if head == base and tail.isdigit() and int(tail) > 0 else None


def running_replicas(service: str, settings: Settings) -> dict[int, ray.actor.ActorHandle]:
    """The service's replicas alive (or restarting) now, by index: Ray's named actors."""
    found: dict[int, ray.actor.ActorHandle] = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        index = replica_index(service, entry["name"])
        if index is None or entry["namespace"] != settings.namespace:
            continue
        try:
            found[index] = ray.get_actor(entry["name"], namespace=settings.namespace)
        except ValueError:
            continue  # stopped meanwhile
    return dict(sorted(found.items()))


def largest_gpu_node() -> float:
    return max((n["Resources"].get("GPU", 0.0) for n in ray.nodes() if n["Alive"]), default=0.0)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{"a.b.c": leaf}``."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def service_view(settings: Settings, service: str) -> dict[str, Any]:
    """The settings a service actor must have been built from: its options and ``models``."""
    return _flat({"actors": {service: settings.actor_options(service).model_dump(mode="json")},
                  "models": settings.models.model_dump(mode="json")})


def controller_view(settings: Settings) -> dict[str, Any]:
    """The settings the controller must have been built from: all but :data:`FRONT_DOOR`."""
    view = _flat(settings.model_dump(mode="json", exclude=set(FRONT_DOOR | _SECRETS)))
    for key in _SECRETS:
        secret = getattr(settings, key)
        view[key] = None if secret is None else hashlib.sha256(
            secret.get_secret_value().encode()).hexdigest()
    return view


def service_settings_json(settings: Settings) -> str:
    """Settings for a service actor: no credentials, rate-limit store or webhook secret.

    Those are sent at their empty defaults rather than left out, so that nothing in the
    actor's environment (``YIVIDEO_*``, a config file) fills them in again.
    """
    return settings.model_copy(update={
        "auth": AuthSettings(), "rate_limit": RateLimitSettings(), "webhook_secret": None,
    }).for_actors()


def controller_settings_json(settings: Settings) -> str:
    """Settings for the controller: without the front doors' credentials (``auth``)."""
    return settings.model_copy(update={
        "auth": AuthSettings(), "rate_limit": RateLimitSettings()}).for_actors()


def _show(key: str, view: dict[str, Any]) -> str:
    if key not in view:
        return "unset"
    return "(a secret)" if key in _SECRETS else json.dumps(view[key], default=str)


def check_settings(what: str, running: dict[str, Any], wanted: dict[str, Any],
                   remedy: str) -> None:
    """Raise :class:`SettingsMismatch` naming every key where the two views differ."""
    keys = sorted(k for k in running.keys() | wanted.keys()
                  if running.get(k, _UNSET) != wanted.get(k, _UNSET))
    if not keys:
        return
    before = " and ".join(f"{k}={_show(k, running)}" for k in keys)
    now = " and ".join(_show(k, wanted) for k in keys)
    raise SettingsMismatch(
        f"the running {what} was started with {before}, these settings say {now}; "
        f"{_stop(remedy)}",
        [{"loc": k, "msg": f"running: {_show(k, running)}, wanted: {_show(k, wanted)}"}
         for k in keys])


def _stop(remedy: str) -> str:
    return (f"stop it ({remedy}) so that it starts again with these settings, or use the "
            f"settings it runs with")


def view_call(actor: ray.actor.ActorHandle, what: str, remedy: str) -> ray.ObjectRef:
    """The call that fetches the settings view a running actor was built from."""
    try:
        return actor.settings_view.remote()
    except AttributeError:  # built by a version without the method
        raise SettingsMismatch(f"the running {what} was started by an older version; "
                               f"{_stop(remedy)}") from None


_verified: set[tuple[str, str]] = set()


def verify(actor: ray.actor.ActorHandle, what: str, wanted: dict[str, Any], remedy: str
           ) -> None:
    """Check a running actor's settings against ``wanted``, once per actor and view."""
    memo = (actor._actor_id.hex(), json.dumps(wanted, sort_keys=True, default=str))
    if memo not in _verified:
        check_settings(what, ray.get(view_call(actor, what, remedy)), wanted, remedy)
        _verified.add(memo)


def open_service_actor(service: str, settings: Settings, index: int = 0
                       ) -> tuple[ray.actor.ActorHandle, bool]:
    """A replica of the service (the first by default) and whether it was running already
    (else it is created now, with the service's actor options)."""
    opts = settings.actor_options(service)
    if opts.num_gpus > 0:
        have = largest_gpu_node()
        if opts.num_gpus > have:
            raise ResourceUnavailable(
                f"service '{service}' asks for num_gpus={opts.num_gpus} but the largest node "
                f"has {have} GPU; set actors.{service}.num_gpus=0 to run it on the CPU"
            )
    try:
        return ray.get_actor(replica_name(service, index), namespace=settings.namespace), True
    except ValueError:
        pass
    host = ray.remote(concurrency_groups={"control": 2})(ServiceHost).options(
        name=replica_name(service, index),
        namespace=settings.namespace,
        get_if_exists=True,
        lifetime="detached",
        num_cpus=opts.num_cpus,
        num_gpus=opts.num_gpus,
        max_concurrency=opts.max_concurrency,
        max_restarts=opts.max_restarts,
        resources=opts.resources or None,
    )
    return host.remote(service, service_settings_json(settings)), False


def get_service_actor(service: str, settings: Settings | None = None, index: int = 0
                      ) -> ray.actor.ActorHandle:
    """A replica of the service (the first by default), created on first use with
    resources from settings. Stages get theirs from the stage runner's pool instead.

    With ``settings``, a running actor must have been built from the same
    :func:`service_view`, else :class:`SettingsMismatch` (an actor still waiting for its
    resources answers once placed). Without, it is the running actor, however built.
    """
    wanted = settings or get_settings()
    actor, running = open_service_actor(service, wanted, index)
    if running and settings is not None:
        verify(actor, f"service '{service}'", service_view(settings, service),
               f"yivideo stop --service {service}")
    return actor


def stop_actors(settings: Settings, services: list[str] | None = None) -> list[str]:
    """Kill the named service actors, every replica (all services and the controller
    without ``services``).

    They are created again, from the settings of whoever asks next. The controller's
    running workflows are then failed (``lost``); finished ones are kept.
    """
    names = [replica_name(s, i) for s in services or [svc.name for svc in all_services()]
             for i in running_replicas(s, settings)]
    stopped = []
    for name in names if services else [*names, CONTROLLER]:
        try:
            ray.kill(ray.get_actor(name, namespace=settings.namespace), no_restart=True)
        except ValueError:
            continue  # not running
        stopped.append(name)
    return stopped


#: A stage that ends sooner than this is not told to the controller as started: its result
#: says when it began (one message fewer per short stage); a longer one is told then.
START_TELL_S = 0.05


class ServiceHost:
    """A Ray actor holding one service instance (and so its loaded models).

    ``health`` and ``cancel`` run in their own concurrency group, so they answer even
    while every slot of the default group is busy with a long stage.
    """

    def __init__(self, service: str, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self.name = service
        self.service = get_service(service)(self.settings)
        self._controller: Any = None
        self._cancelled: set[tuple[str, str]] = set()
        self._stopped: deque[tuple[str, str]] = deque(maxlen=100)  # stages a cancel stopped
        self._running: set[tuple[str, str]] = set()  # stages in a call now
        self._starting: dict[tuple[str, str], float] = {}  # began, not yet told
        self._start_cv = threading.Condition()
        self._teller: threading.Thread | None = None

    @ray.method(concurrency_group="control")
    def health(self) -> dict[str, Any]:
        return {"alive": True, "pid": os.getpid(), "gpu_ids": ray.get_gpu_ids(),
                "node_id": ray.get_runtime_context().get_node_id(),
                "running": sorted(self._running.copy()), "stopped": list(self._stopped),
                **self.service.health()}

    @ray.method(concurrency_group="control")
    def settings_view(self) -> dict[str, Any]:
        """The settings this actor was built from that a caller's must match."""
        return service_view(self.settings, self.name)

    @ray.method(concurrency_group="control")
    def cancel(self, workflow_id: str, stage: str) -> None:
        """Ask a running stage to stop at its next progress report."""
        self._cancelled.add((workflow_id, stage))

    def _tell(self, method: str, *args: Any) -> None:
        """Fire-and-forget message to the controller; best effort, never fails a stage."""
        if self._controller is None:
            try:
                self._controller = ray.get_actor(CONTROLLER, namespace=self.settings.namespace)
            except ValueError:
                return
        getattr(self._controller, method).remote(*args)

    def _started(self, key: tuple[str, str], began: float) -> None:
        """Tell the controller that a stage began, once it has run ``START_TELL_S``."""
        with self._start_cv:
            self._starting[key] = began
            if self._teller is None:
                self._teller = threading.Thread(target=self._tell_started_later,
                                                name="stage-started", daemon=True)
                self._teller.start()
            self._start_cv.notify()

    def _tell_started(self, key: tuple[str, str]) -> None:
        """Tell it now, unless it was told already or the stage ended."""
        with self._start_cv:
            began = self._starting.pop(key, None)
        if began is not None:
            self._tell("stage_started", *key, began)

    def _tell_started_later(self) -> None:
        while True:
            with self._start_cv:
                while not self._starting:
                    self._start_cv.wait()
                wait = min(self._starting.values()) + START_TELL_S - time.time()
                if wait > 0:
                    self._start_cv.wait(wait)
                    continue
                now = time.time()
                due = [k for k, b in self._starting.items() if b + START_TELL_S <= now]
            for key in due:
                self._tell_started(key)

    def run(
        self,
        node: str,
        params: dict[str, Any],
        bindings: list[tuple[str, str | None, Any]],
        workflow_id: str,
        stage: str,
        *upstream: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run ``node``; returns (small metadata, outputs) as two objects.

        ``bindings`` are ``(input, output_key, literal)``: with an output key the value is
        taken from the next upstream object (Ray has already resolved it), else it is
        the literal.
        """
        began = time.time()
        key = (workflow_id, stage)
        # a cancel that reached an earlier run of this stage must not stop a retry;
        # a call cancelled while still queued never starts (ray.cancel)
        self._cancelled.discard(key)
        self._started(key, began)
        spec = get_node(node)
        values = iter(upstream)
        kwargs = {name: next(values)[k] if k else literal for name, k, literal in bindings}
        sent = self._localise(spec.inputs, kwargs)
        ctx = NodeContext(
            workflow_id, stage,
            report=lambda f, m: (self._tell_started(key),
                                 self._tell("report_progress", workflow_id, stage, f, m)),
            cancelled=lambda: key in self._cancelled,
        )
        try:
            self._running.add(key)
            ctx.check_cancelled()
            local = validation_context(self.settings.models.allow_local_paths)
            with hold(list(sent)):  # its media stay in the node's cache while it runs
                outputs = getattr(self.service, spec.method)(
                    ctx, spec.params.model_validate(params, context=local), **kwargs)
        except Cancelled:
            self._stopped.append(key)
            raise
        finally:
            self._running.discard(key)
            self._cancelled.discard(key)
            with self._start_cv:
                self._starting.pop(key, None)  # not told yet: the result says it
        missing = set(spec.outputs) - set(outputs)
        if missing:
            raise RuntimeError(f"node {node} did not return {sorted(missing)}")
        self._globalise(spec.outputs, outputs, sent)
        meta = {"began": began, "compute_s": time.time() - began,
                "artifacts": {k: _shareable(v) for k, v in ctx.artifacts.items()},
                "pid": os.getpid()}
        return meta, outputs

    def _localise(self, types: dict[str, str], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Media inputs (URIs, handles) as local files, in place; ``{path: what it was}``.

        Nodes of a cluster share no folder: the media travels through the object store
        and is written once per node into its cache, so a service always gets a path.
        """
        sent: dict[str, Any] = {}
        for name, value in kwargs.items():
            if isinstance(value, MediaHandle) or (is_uri(value) and types[name] in file_types()):
                path = str(resolve(value, self.settings.storage_dir, self.settings.namespace,
                                   self.settings.media_cache_max_bytes))
                sent[path], kwargs[name] = value, path
        return sent

    def _globalise(self, types: dict[str, str], outputs: dict[str, Any], sent: dict[str, Any]
                   ) -> None:
        """Media outputs given as local paths, in place, as something any node can read:
        an input passed through is what it came as; a file this node made, a handle."""
        for name, dtype in types.items():
            value = outputs.get(name)
            if dtype not in file_types() or not isinstance(value, str):
                continue
            if value in sent:
                outputs[name] = sent[value]
            elif os.path.isfile(value):
                outputs[name] = MediaHandle.from_file(value, namespace=self.settings.namespace)


#: Artifacts from this size on travel as arrays: the controller reads them zero-copy from
#: the object store into the artifact file, never as a copy in its own heap.
_LARGE = 1 << 20


def _shareable(data: bytes) -> Any:
    import numpy as np

    return np.frombuffer(data, np.uint8) if len(data) >= _LARGE else data
