"""Running one stage on its service actor: attempts, retries with backoff, why each ended.

Each service is a pool of replicas (:class:`Pool`); a call holds one through
:meth:`StageRunner.replica`, which starts replicas while all are busy (up to
``actors.<service>.replicas.max``) and stops those idle past ``idle_s`` (down to ``min``).

A stage is tried again (``stage_attempts``) only when its actor died or its error is marked
``transient``; any other error (bad input, a TypeError, a node returning the wrong outputs)
would recur, so it is final at once. Each attempt records why it ended
(``stages.<name>.attempts[].reason``). Cancelling the task that runs a stage drops a
queued call and tells a running one to stop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import ray

from yivideo import metrics
from yivideo.chunking import ChunkedStage, Parts, chunking_of
from yivideo.errors import Cancelled, YiVideoError
from yivideo.runtime import (
    check_settings,
    open_service_actor,
    replica_name,
    running_replicas,
    service_view,
    view_call,
)
from yivideo.settings import ActorOptions, Settings
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


@dataclass(eq=False)
class Replica:
    """One replica of a service as the runner sees it: its handle and calls in flight."""

    index: int
    name: str
    handle: Any
    busy: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    #: the check that a replica running before we asked has our settings (shared)
    check: asyncio.Future | None = None


class Pool:
    """A service's replicas: ``min`` to ``max`` named actors (``actors.<service>.replicas``)."""

    def __init__(self, service: str, options: ActorOptions) -> None:
        self.service, self.options = service, options
        self.replicas: dict[int, Replica] = {}
        self.freed = asyncio.Event()  # set whenever a slot may have come free
        self.shrinker: asyncio.Task | None = None

    def pick(self) -> Replica | None:
        """An idle replica, else None: a busy pool grows before a replica takes two calls."""
        return next((r for r in self.replicas.values() if r.busy == 0), None)

    def least_busy(self) -> Replica | None:
        """The replica with the fewest calls in flight that takes one more, or None."""
        room = [r for r in self.replicas.values() if r.busy < self.options.max_concurrency]
        return min(room, key=lambda r: (r.busy, r.index), default=None)

    def free_index(self) -> int | None:
        """The lowest replica index not in use below ``max``, or None when the pool is full."""
        return next((i for i in range(self.options.replicas.max) if i not in self.replicas),
                    None)


class StageRunner:
    """Calls stages on the service actors, a pool of replicas per service (``pools``).

    ``actors`` maps each service to its lowest-numbered replica's handle, for callers that
    want one actor of the service rather than a slot on it.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pools: dict[str, Pool] = {}
        self.actors: dict[str, Any] = {}
        self.parts = Parts()  # progress of the stages that run in chunks

    @asynccontextmanager
    async def replica(self, service: str) -> AsyncIterator[Any]:
        """A free replica's actor handle, held (one call in flight) until the block ends.

        Free: idle, else (when the pool is at ``max``) the one with the fewest calls in
        flight below ``max_concurrency``; with none, another replica is started while the
        pool is below ``max``, else this waits for a release. A block that ends because
        the actor died drops that replica from the pool, so the next call goes to a live
        one (or a new one under the same name).
        """
        pool = self._pool(service)
        rep = await self._acquire(pool)
        try:
            yield rep.handle
        except BaseException as exc:
            if end_reason(exc) == "actor_died":
                self._drop(pool, rep)
            raise
        finally:
            self._release(pool, rep)

    def name_of(self, service: str, handle: Any) -> str | None:
        """The replica name of a handle the pool gave out (None once it was dropped)."""
        pool = self.pools.get(service)
        return next((r.name for r in pool.replicas.values() if r.handle is handle), None
                    ) if pool else None

    def handles(self, service: str) -> list[tuple[str, Any]]:
        """``(name, handle)`` of every replica of the service the pool knows, by index."""
        pool = self.pools.get(service)
        return [(r.name, r.handle) for _, r in sorted(pool.replicas.items())] if pool else []

    def _pool(self, service: str) -> Pool:
        """The service's pool; the first time, with the replicas already running."""
        if service not in self.pools:
            opts = self.settings.actor_options(service)
            pool = self.pools[service] = Pool(service, opts)
            for index, handle in running_replicas(service, self.settings).items():
                if index < opts.replicas.max:
                    self._add(pool, index, handle, running=True)
            if opts.replicas.max > opts.replicas.min:
                pool.shrinker = asyncio.get_running_loop().create_task(self._shrink(pool))
            metrics.gpu_fraction().set(opts.num_gpus, tags={"service": service})
        return self.pools[service]

    def _add(self, pool: Pool, index: int, handle: Any, running: bool) -> Replica:
        rep = Replica(index, replica_name(pool.service, index), handle)
        if running:
            rep.check = asyncio.ensure_future(self._check(pool.service, handle))
        pool.replicas[index] = rep
        self._sync(pool)
        return rep

    def _start(self, pool: Pool, index: int) -> Replica:
        """Replica ``index``: the running one of that name, or a new one (which, on a
        cluster with an autoscaler, may wait for a node to be added for it)."""
        handle, running = open_service_actor(pool.service, self.settings, index)
        return self._add(pool, index, handle, running)

    async def _acquire(self, pool: Pool) -> Replica:
        while len(pool.replicas) < pool.options.replicas.min:
            self._start(pool, pool.free_index())
        while True:
            rep = pool.pick()
            if rep is None and (index := pool.free_index()) is not None:
                rep = self._start(pool, index)
            rep = rep or pool.least_busy()
            if rep is not None:
                break
            pool.freed.clear()
            await pool.freed.wait()
        rep.busy += 1
        if rep.check is not None:
            try:
                await asyncio.shield(rep.check)  # shared by every call to the replica
            except BaseException as exc:
                self._release(pool, rep)
                if isinstance(exc, Exception):  # a failed check fails for good: look anew
                    self._drop(pool, rep)  # next time (it may have been stopped)
                raise
        return rep

    def _release(self, pool: Pool, rep: Replica) -> None:
        rep.busy -= 1
        if rep.busy == 0:
            rep.idle_since = time.monotonic()
        pool.freed.set()

    def _drop(self, pool: Pool, rep: Replica) -> None:
        """Forget a replica (dead, or built otherwise); its name may be taken anew."""
        if pool.replicas.get(rep.index) is rep:
            del pool.replicas[rep.index]
            self._sync(pool)
            pool.freed.set()

    def _sync(self, pool: Pool) -> None:
        if pool.replicas:
            self.actors[pool.service] = pool.replicas[min(pool.replicas)].handle
        else:
            self.actors.pop(pool.service, None)

    async def _shrink(self, pool: Pool) -> None:
        """Stop replicas above ``min`` idle for ``idle_s``, the highest-numbered first;
        replica 0 is kept, so that its name keeps finding the service."""
        idle = pool.options.replicas.idle_s
        while True:
            await asyncio.sleep(max(0.05, min(idle / 4, 5.0)))
            extra = len(pool.replicas) - pool.options.replicas.min
            now = time.monotonic()
            for index in sorted(pool.replicas, reverse=True):
                rep = pool.replicas[index]
                if extra <= 0 or index == 0:
                    break
                if rep.busy == 0 and now - rep.idle_since >= idle:
                    self._drop(pool, rep)
                    ray.kill(rep.handle, no_restart=True)
                    extra -= 1

    async def _check(self, service: str, handle: Any) -> None:
        what, remedy = f"service '{service}'", f"yivideo stop --service {service}"
        check_settings(what, await view_call(handle, what, remedy),
                       service_view(self.settings, service), remedy)

    def forget(self, service: str) -> None:
        """Drop the service's pool (its actors keep running), so the next call looks for
        its replicas anew."""
        pool = self.pools.pop(service, None)
        if pool is not None and pool.shrinker is not None:
            pool.shrinker.cancel()
        self.actors.pop(service, None)

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
        if (chunking := chunking_of(stage)) is not None:  # long media: chunks in parallel
            done = await ChunkedStage(self, wid, name, stage, chunking, info, refs, bindings,
                                      changed).run()
            if done is not None:
                return done
        delay = self.settings.retry_backoff_s
        for attempt in range(1, self.settings.stage_attempts + 1):
            now = time.time()
            info.update(status="queued", submitted_at=now, started_at=now, error=None)
            changed()
            call = None
            try:
                async with self.replica(stage.node.service) as actor:
                    info["replica"] = self.name_of(stage.node.service, actor)
                    call = actor.run.options(num_returns=2).remote(
                        stage.node.name, stage.params, bindings, wid, name, *refs)
                    meta = await call[0]
                info["pid"] = meta["pid"]
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
