"""Connecting to Ray and the long-lived service actors that hold the models.

One generic actor class, :class:`ServiceHost`, hosts any service from ``actors/``; each
service gets one named, detached actor with the resources its settings ask for, created
on first use and reused by every workflow afterwards.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from typing import Any

import ray

from yivideo.errors import Cancelled, ResourceUnavailable
from yivideo.models_catalogue import validation_context
from yivideo.nodes import NodeContext, get_node, get_service
from yivideo.settings import Settings, get_settings

CONTROLLER = "controller"


def connect(address: str | None = None, settings: Settings | None = None, **init: Any) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local one.

    With no address Ray first looks for a cluster started on this machine; if there is
    none it starts one in this process: the embedded default.
    """
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    settings = settings or get_settings()
    if not (address or os.environ.get("RAY_ADDRESS")):
        init.setdefault("include_dashboard", False)
        # long-lived service actors mostly wait: give the local instance enough logical
        # CPUs for all of them, or one would wait forever for a CPU another one holds
        wanted = sum(a.num_cpus for a in settings.actors.values())
        init.setdefault("num_cpus", max(os.cpu_count() or 1, math.ceil(wanted)))
    ray.init(address=address, namespace=settings.namespace, log_to_driver=False, **init)


def actor_name(service: str) -> str:
    return f"service:{service}"


def largest_gpu_node() -> float:
    return max((n["Resources"].get("GPU", 0.0) for n in ray.nodes() if n["Alive"]), default=0.0)


def get_service_actor(service: str, settings: Settings | None = None) -> ray.actor.ActorHandle:
    """The service's actor, created on first use with resources from settings."""
    settings = settings or get_settings()
    opts = settings.actor_options(service)
    if opts.num_gpus > 0:
        have = largest_gpu_node()
        if opts.num_gpus > have:
            raise ResourceUnavailable(
                f"service '{service}' asks for num_gpus={opts.num_gpus} but the largest node "
                f"has {have} GPU; set actors.{service}.num_gpus=0 to run it on the CPU"
            )
    host = ray.remote(concurrency_groups={"control": 2})(ServiceHost).options(
        name=actor_name(service),
        namespace=settings.namespace,
        get_if_exists=True,
        lifetime="detached",
        num_cpus=opts.num_cpus,
        num_gpus=opts.num_gpus,
        max_concurrency=opts.max_concurrency,
        max_restarts=opts.max_restarts,
        resources=opts.resources or None,
    )
    return host.remote(service, settings.for_actors())


class ServiceHost:
    """A Ray actor holding one service instance (and so its loaded models).

    ``health`` and ``cancel`` run in their own concurrency group, so they answer even
    while every slot of the default group is busy with a long stage.
    """

    def __init__(self, service: str, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self.service = get_service(service)(self.settings)
        self._controller: Any = None
        self._cancelled: set[tuple[str, str]] = set()
        self._stopped: deque[tuple[str, str]] = deque(maxlen=100)  # stages a cancel stopped

    @ray.method(concurrency_group="control")
    def health(self) -> dict[str, Any]:
        return {"alive": True, "pid": os.getpid(), "gpu_ids": ray.get_gpu_ids(),
                "node_id": ray.get_runtime_context().get_node_id(),
                "stopped": list(self._stopped), **self.service.health()}

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
        self._tell("stage_started", workflow_id, stage, began)
        spec = get_node(node)
        values = iter(upstream)
        kwargs = {name: next(values)[k] if k else literal for name, k, literal in bindings}
        ctx = NodeContext(
            workflow_id, stage,
            report=lambda f, m: self._tell("report_progress", workflow_id, stage, f, m),
            cancelled=lambda: key in self._cancelled,
        )
        try:
            ctx.check_cancelled()
            local = validation_context(self.settings.models.allow_local_paths)
            outputs = getattr(self.service, spec.method)(
                ctx, spec.params.model_validate(params, context=local), **kwargs)
        except Cancelled:
            self._stopped.append(key)
            raise
        finally:
            self._cancelled.discard(key)
        missing = set(spec.outputs) - set(outputs)
        if missing:
            raise RuntimeError(f"node {node} did not return {sorted(missing)}")
        meta = {"began": began, "compute_s": time.time() - began, "artifacts": ctx.artifacts,
                "pid": os.getpid()}
        return meta, outputs
