"""Running one stage on its service actor: attempts, retries with backoff, why each ended.

A stage is tried again (``stage_attempts``) only when its actor died or its error is marked
``transient``; any other error (bad input, a TypeError, a node returning the wrong outputs)
would recur, so it is final at once. Each attempt records why it ended
(``stages.<name>.attempts[].reason``). Cancelling the task that runs a stage drops a
queued call and tells a running one to stop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import ray

from yivideo import metrics
from yivideo.errors import Cancelled, SettingsMismatch, YiVideoError
from yivideo.runtime import check_settings, open_service_actor, service_view, view_call
from yivideo.settings import Settings
from yivideo.workflow import PlannedStage, Ref

#: Ray errors that mean the process running the stage died, not that the stage is wrong.
_DEATHS = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError)
#: Why an attempt ended -> whether the stage is tried again.
RETRIED = {"actor_died": True, "transient": True, "cancelled": False, "error": False}


def cause_of(exc: BaseException) -> BaseException:
    """The exception a stage raised, unwrapped from Ray's RayTaskError."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(exc, ray.exceptions.RayTaskError) and cause else exc


def error_dict(exc: BaseException) -> dict[str, str]:
    """A stage's exception as ``{type, code, message}``, unwrapped from Ray's envelope."""
    exc = cause_of(exc)
    if isinstance(exc, YiVideoError):
        return {"type": type(exc).__name__, "code": exc.code, "message": exc.message}
    if isinstance(exc, _DEATHS):
        return {"type": type(exc).__name__, "code": "actor_died",
                "message": "the service actor died while running this stage"}
    return {"type": type(exc).__name__, "code": "internal", "message": str(exc)[-2000:]}


def end_reason(exc: BaseException) -> str:
    """Why an attempt ended: ``actor_died``, ``transient``, ``cancelled`` or ``error``."""
    cause = cause_of(exc)
    if isinstance(cause, _DEATHS):
        return "actor_died"
    if isinstance(cause, Cancelled):
        return "cancelled"
    return "transient" if getattr(cause, "transient", False) is True else "error"


class StageRunner:
    """Calls stages on the service actors, whose handles it keeps (``actors``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.actors: dict[str, Any] = {}
        #: service -> the check that an actor running before we asked has our settings
        self._checks: dict[str, asyncio.Future] = {}

    async def actor(self, service: str) -> Any:
        """The service's actor; one that was running already must match our settings."""
        if service not in self.actors:
            handle, running = open_service_actor(service, self.settings)
            self.actors[service] = handle
            if running:
                self._checks[service] = asyncio.ensure_future(self._check(service, handle))
            fraction = self.settings.actor_options(service).num_gpus
            metrics.gpu_fraction().set(fraction, tags={"service": service})
        handle, check = self.actors[service], self._checks.get(service)
        if check is not None:
            try:
                await asyncio.shield(check)  # shared by every stage of the service
            except SettingsMismatch:
                if self.actors.get(service) is handle:
                    self.forget(service)  # look again next time: it may have been stopped
                raise
        return handle

    async def _check(self, service: str, handle: Any) -> None:
        what, remedy = f"service '{service}'", f"yivideo stop --service {service}"
        check_settings(what, await view_call(handle, what, remedy),
                       service_view(self.settings, service), remedy)

    def forget(self, service: str) -> None:
        """Drop a handle, so the next call fetches the actor anew (restarted or not)."""
        self.actors.pop(service, None)
        self._checks.pop(service, None)

    async def run(self, wid: str, name: str, stage: PlannedStage, info: dict[str, Any],
                  outputs: dict[str, ray.ObjectRef], changed: Callable[[], None]
                  ) -> tuple[dict[str, Any], ray.ObjectRef]:
        """Run ``stage`` until it succeeds or fails for good; ``(metadata, outputs ref)``.

        ``info`` is the stage's state record, updated as the attempts go; ``outputs`` holds
        the upstream stages' results; ``changed`` is called after every update of ``info``.
        """
        refs, bindings = [], []
        for input_name, b in stage.bindings.items():
            if isinstance(b, Ref):
                refs.append(outputs[b.stage])
                bindings.append((input_name, b.output, None))
            else:
                bindings.append((input_name, None, b))
        delay = self.settings.retry_backoff_s
        for attempt in range(1, self.settings.stage_attempts + 1):
            now = time.time()
            info.update(status="queued", submitted_at=now, started_at=now, error=None)
            changed()
            call = None
            try:
                actor = await self.actor(stage.node.service)
                call = actor.run.options(num_returns=2).remote(
                    stage.node.name, stage.params, bindings, wid, name, *refs)
                meta = await call[0]
                return meta, call[1]
            except asyncio.CancelledError:
                if call is not None:
                    actor.cancel.remote(wid, name)  # a running stage stops at its next check
                    ray.cancel(call[0])  # a queued one never starts
                info["status"] = "cancelled"
                raise
            except Exception as exc:
                err, reason = error_dict(exc), end_reason(exc)
                last = attempt == self.settings.stage_attempts
                info["attempts"].append({
                    "attempt": attempt, "error": err, "reason": reason,
                    "retried": RETRIED[reason] and not last,
                    "started_at": info["started_at"], "ended_at": time.time()})
                if reason == "actor_died":
                    self.forget(stage.node.service)
                if not info["attempts"][-1]["retried"]:
                    info.update(status="failed", error=err)
                    metrics.stage_seconds().observe(time.time() - info["submitted_at"], tags={
                        "node": stage.node.name, "status": "failed"})
                    raise
                await asyncio.sleep(delay)
                delay *= 2
            finally:
                info["ended_at"] = time.time()
                info["duration_s"] = round(info["ended_at"] - info["started_at"], 4)
                changed()
        raise AssertionError("unreachable")
