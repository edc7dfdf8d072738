"""The engine: one named async actor that owns workflow state and runs plans.

It is the single owner of state (front doors keep none), so an HTTP replica, a CLI
or a notebook all see the same workflows, and it saves every state change to disk so
that a restarted controller still knows them (see :mod:`yivideo.state`). A plan
becomes Ray calls on the service actors: each stage is submitted when its upstream
stages have finished, with their outputs passed as ObjectRefs, so data moves through
the object store and never through this actor.

Workflow: ``pending -> running -> succeeded | failed | cancelled``.
Stage: ``pending -> queued (waiting for its actor) -> running -> succeeded | failed |
skipped | cancelled``. A stage is tried again (``stage_attempts``) only when its actor
died or its error is marked ``transient``; any other error (bad input, a TypeError, a node
returning the wrong outputs) would recur, so it is final at once. Each attempt records why
it ended (``stages.<name>.attempts[].reason``).
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from typing import Any

import ray

from yivideo import metrics
from yivideo import state as records
from yivideo.cache import ResultCache, literal_key, stage_key
from yivideo.errors import Cancelled, Conflict, NotFound, YiVideoError
from yivideo.nodes import get_service
from yivideo.runtime import CONTROLLER, get_service_actor
from yivideo.security.ratelimit import RateLimited
from yivideo.settings import Settings, get_settings
from yivideo.state import FINAL
from yivideo.workflow import Plan, Ref, compile_config

#: Output types too bulky to keep once their consumers are done.
HEAVY_TYPES = {"audio", "frames"}


def cause_of(exc: BaseException) -> BaseException:
    """The exception a stage raised, unwrapped from Ray's RayTaskError."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(exc, ray.exceptions.RayTaskError) and cause else exc


def _error(exc: BaseException) -> dict[str, str]:
    """A stage's exception as ``{type, code, message}``, unwrapped from Ray's envelope."""
    exc = cause_of(exc)
    if isinstance(exc, YiVideoError):
        return {"type": type(exc).__name__, "code": exc.code, "message": exc.message}
    if isinstance(exc, _DEATHS):
        return {"type": type(exc).__name__, "code": "actor_died",
                "message": "the service actor died while running this stage"}
    return {"type": type(exc).__name__, "code": "internal", "message": str(exc)[-2000:]}


#: Ray errors that mean the process running the stage died, not that the stage is wrong.
_DEATHS = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError)
#: Why an attempt ended -> whether the stage is tried again.
RETRIED = {"actor_died": True, "transient": True, "cancelled": False, "error": False}


def end_reason(exc: BaseException) -> str:
    """Why an attempt ended: ``actor_died``, ``transient``, ``cancelled`` or ``error``."""
    cause = cause_of(exc)
    if isinstance(cause, _DEATHS):
        return "actor_died"
    if isinstance(cause, Cancelled):
        return "cancelled"
    return "transient" if getattr(cause, "transient", False) is True else "error"


class Controller:
    """Named actor ``controller``: workflow state, orchestration, artifacts, cache."""

    def __init__(self, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self.root = self.settings.storage_dir / "workflows"
        self.states = records.recover(self.root)
        self.outputs: dict[str, dict[str, ray.ObjectRef]] = {}
        self.running: dict[str, dict[str, Any]] = {}  # wid -> stage -> in-flight call
        self.tasks: dict[str, asyncio.Task] = {}
        self.changed: dict[str, asyncio.Event] = {}
        self.actors: dict[str, Any] = {}
        self.cache = ResultCache(self.settings.storage_dir / "cache",
                                 self.settings.cache_max_entries, self.settings.cache_ttl_s)

    # ---- front-door calls -------------------------------------------------------
    async def submit(self, config: dict[str, Any], owner: str = "",
                     max_active: int | None = None) -> str:
        """Validate ``config`` and start it in the background; returns its id.

        ``max_active`` (default: the setting) caps the caller's unfinished workflows; a
        front door passes its own limit.
        """
        self._expire()
        plan = self._compile(config)
        limit = self.settings.max_active_workflows if max_active is None else max_active
        active = sum(1 for s in self.states.values()
                     if s["owner"] == owner and s["status"] not in FINAL)
        if limit and active >= limit:
            raise RateLimited(f"{active} workflows are still running for this caller "
                              f"(limit {limit}); wait for one to finish", retry_after=5)
        wid = uuid.uuid4().hex
        self.states[wid] = records.new_state(wid, plan, owner)
        self._start(wid, plan, reuse=set())
        return wid

    async def retry(self, wid: str, owner: str | None = None) -> dict[str, Any]:
        """Run a failed or cancelled workflow again, reusing every stage that succeeded."""
        state = self._state(wid, owner)
        if state["status"] not in ("failed", "cancelled"):
            raise Conflict(f"only a failed or cancelled workflow can be retried "
                           f"(this one is {state['status']})")
        plan = self._compile(state["config"])
        held = self.outputs.get(wid, {})
        reuse = {n for n, st in state["stages"].items()
                 if st["status"] == "succeeded" and n in held}
        for name, st in state["stages"].items():
            if name not in reuse:
                records.reset_stage(st)
        state.update(status="pending", error=None, ended_at=None, duration_s=None)
        self._start(wid, plan, reuse)
        return state

    def get(self, wid: str, owner: str | None = None) -> dict[str, Any]:
        return self._state(wid, owner)

    async def wait(self, wid: str, timeout: float = 10.0, owner: str | None = None
                   ) -> dict[str, Any]:
        """Return the state after its next change (or ``timeout``); at once if final."""
        state = self._state(wid, owner)
        if state["status"] not in FINAL:
            try:
                await asyncio.wait_for(self._event(wid).wait(), timeout)
            except TimeoutError:
                pass
        return self._state(wid)

    def list(self, offset: int = 0, limit: int = 20, status: str | None = None,
             owner: str | None = None) -> dict[str, Any]:
        self._expire()
        items = [s for s in self.states.values()
                 if (status is None or s["status"] == status)
                 and (owner is None or s["owner"] == owner)]
        items.sort(key=lambda s: s["created_at"], reverse=True)
        page = [{k: s[k] for k in ("id", "status", "created_at", "ended_at", "duration_s")}
                for s in items[offset: offset + limit]]
        return {"items": page, "total": len(items), "offset": offset, "limit": limit}

    def artifact(self, wid: str, name: str, owner: str | None = None) -> bytes:
        state = self._state(wid, owner)
        if name not in {a["name"] for a in state["artifacts"]}:
            raise NotFound(f"workflow {wid} has no artifact '{name}'")
        return (self.root / wid / name).read_bytes()

    def output_refs(self, wid: str, stages: list[str]) -> dict[str, ray.ObjectRef]:
        """ObjectRefs of finished stages' outputs (kept until the workflow expires)."""
        self._state(wid)
        refs = self.outputs.get(wid, {})
        missing = [s for s in stages if s not in refs]
        if missing:
            raise NotFound(f"workflow {wid} has no finished stage {missing}")
        return {s: refs[s] for s in stages}

    async def cancel(self, wid: str, owner: str | None = None) -> dict[str, Any]:
        """Stop a workflow: queued calls are dropped, running stages told to stop."""
        state = self._state(wid, owner)
        task = self.tasks.get(wid)
        if state["status"] not in FINAL and task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return self._state(wid)

    def stage_started(self, wid: str, stage: str, began: float) -> None:
        st = self.states.get(wid, {}).get("stages", {}).get(stage)
        if st is not None and st["status"] == "queued":
            st.update(status="running", started_at=began)
            self._touch(wid, save=True)

    def report_progress(self, wid: str, stage: str, fraction: float, message: str) -> None:
        st = self.states.get(wid, {}).get("stages", {}).get(stage)
        if st is not None and st["status"] == "running":
            st["progress"], st["message"] = round(fraction, 4), message
            self._touch(wid)

    async def gpu_status(self, owner: str | None = None) -> dict[str, Any]:
        """GPUs: total and free, which service actors hold which fraction, who waits.

        With ``owner``, only that caller's waiting stages are listed (None: everyone's).
        """
        total = ray.cluster_resources().get("GPU", 0.0)
        free = ray.available_resources().get("GPU", 0.0)
        holders = []
        for service, actor in self.actors.items():
            opts = self.settings.actor_options(service)
            if opts.num_gpus <= 0:
                continue
            try:
                await asyncio.wait_for(actor.health.remote(), 0.5)
                placed = "alive"
            except (TimeoutError, ray.exceptions.RayError):
                placed = "waiting"  # not placed yet: its fraction does not fit now
            holders.append({"service": service, "num_gpus": opts.num_gpus, "state": placed})
        waiting = [{"workflow": wid, "stage": name, "node": st["node"],
                    "since": st["submitted_at"]}
                   for wid, s in self.states.items() if s["status"] == "running"
                   and (owner is None or s["owner"] == owner)
                   for name, st in s["stages"].items() if st["status"] == "queued"]
        return {"total": total, "available": free, "allocated": round(total - free, 4),
                "holders": holders, "waiting": waiting}

    def stats(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}
        for s in self.states.values():
            by_status[s["status"]] = by_status.get(s["status"], 0) + 1
        return {"workflows": by_status, "cache": self.cache.stats()}

    def ping(self) -> str:
        return "ok"

    # ---- running a plan ---------------------------------------------------------
    def _compile(self, config: dict[str, Any]) -> Plan:
        # raises ConfigError before anything runs; front doors from the network have
        # already refused model paths, whatever the operator allows local callers
        plan = compile_config(config, local_paths=self.settings.models.allow_local_paths)
        if plan.options.callback_url:
            from yivideo.callbacks import check_callback_url

            check_callback_url(plan.options.callback_url, self.settings)
        return plan

    def _start(self, wid: str, plan: Plan, reuse: set[str]) -> None:
        self.outputs.setdefault(wid, {})
        self.running[wid] = {}
        self._save(wid)
        self.tasks[wid] = asyncio.get_running_loop().create_task(self._run(wid, plan, reuse))

    async def _run(self, wid: str, plan: Plan, reuse: set[str]) -> None:
        state = self.states[wid]
        state.update(status="running", started_at=time.time(), runs=state["runs"] + 1)
        self._touch(wid, save=True)
        stages: dict[str, asyncio.Task] = {}
        try:
            keys = self._cache_keys(plan) if plan.options.cache else {}
            for name in plan.order:  # topological: upstream tasks exist before downstream
                stages[name] = asyncio.get_running_loop().create_task(
                    self._stage(wid, plan, name, stages, keys.get(name), name in reuse))
            results = await asyncio.gather(*stages.values(), return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            state["status"] = "failed" if failed else "succeeded"
            if failed:
                bad = [n for n, s in state["stages"].items() if s["status"] == "failed"]
                first = state["stages"][bad[0]]["error"] if bad else _error(failed[0])
                state["error"] = {**first, "stage": bad[0] if bad else None}
        except asyncio.CancelledError:
            for task in stages.values():
                task.cancel()
            await asyncio.gather(*stages.values(), return_exceptions=True)
            state["status"] = "cancelled"
        except Exception as exc:  # a fault of the engine itself: never leave it running
            state.update(status="failed", error={**_error(exc), "stage": None})
        finally:
            state["ended_at"] = time.time()
            state["duration_s"] = round(state["ended_at"] - state["started_at"], 4)
            if state["status"] == "succeeded":
                self._free_bulky(wid, plan)
            self.running.pop(wid, None)
            self._touch(wid, save=True)
            metrics.workflows().inc(tags={"status": state["status"]})
        if plan.options.callback_url:
            asyncio.get_running_loop().create_task(self._callback(wid, plan))

    async def _stage(self, wid: str, plan: Plan, name: str, stages: dict[str, asyncio.Task],
                     key: str | None, reuse: bool) -> None:
        st, info = plan.stages[name], self.states[wid]["stages"][name]
        if reuse:
            return
        try:
            await asyncio.gather(*(stages[u] for u in st.upstream))
        except asyncio.CancelledError:
            info["status"] = "cancelled"
            raise
        except Exception:
            info["status"] = "skipped"
            info["error"] = {"type": "Skipped", "code": "upstream_failed",
                             "message": "an upstream stage did not succeed"}
            raise
        hit = self.cache.get(key) if key else None
        if key:
            metrics.cache_lookups().inc(tags={"result": "hit" if hit else "miss"})
        if hit is not None:
            self.outputs[wid][name] = hit.outputs
            self._save_artifacts(wid, name, self.cache.artifacts(key))
            now = time.time()
            info.update(status="succeeded", cached=True, progress=1.0, submitted_at=now,
                        started_at=now, ended_at=now, duration_s=0.0, compute_s=0.0)
            self._touch(wid, save=True)
            return
        meta, out = await self._attempts(wid, plan, name)
        self.outputs[wid][name] = out
        self._save_artifacts(wid, name, meta["artifacts"])
        if key:
            self.cache.put(key, out, meta["artifacts"])
        info.update(status="succeeded", progress=1.0, compute_s=round(meta["compute_s"], 4),
                    queued_s=round(max(0.0, meta["began"] - info["submitted_at"]), 4))
        self._touch(wid, save=True)
        metrics.queue_seconds().observe(info["queued_s"], tags={"node": st.node.name})
        metrics.stage_seconds().observe(info["duration_s"], tags={"node": st.node.name,
                                                                  "status": "succeeded"})

    async def _attempts(self, wid: str, plan: Plan, name: str) -> tuple[dict, ray.ObjectRef]:
        """Call the stage's actor; again only after its death or a transient error."""
        st, info = plan.stages[name], self.states[wid]["stages"][name]
        refs, bindings = [], []
        for input_name, b in st.bindings.items():
            if isinstance(b, Ref):
                refs.append(self.outputs[wid][b.stage])
                bindings.append((input_name, b.output, None))
            else:
                bindings.append((input_name, None, b))
        delay = self.settings.retry_backoff_s
        for attempt in range(1, self.settings.stage_attempts + 1):
            now = time.time()
            info.update(status="queued", submitted_at=now, started_at=now, error=None)
            self._touch(wid, save=True)
            call = None
            try:
                actor = self._actor(st.node.service)
                call = actor.run.options(num_returns=2).remote(
                    st.node.name, st.params, bindings, wid, name, *refs)
                self.running[wid][name] = (actor, call)
                meta = await call[0]
                return meta, call[1]
            except asyncio.CancelledError:
                if call is not None:
                    actor.cancel.remote(wid, name)  # a running stage stops at its next check
                    ray.cancel(call[0])  # a queued one never starts
                info["status"] = "cancelled"
                raise
            except Exception as exc:
                err, reason = _error(exc), end_reason(exc)
                last = attempt == self.settings.stage_attempts
                info["attempts"].append({
                    "attempt": attempt, "error": err, "reason": reason,
                    "retried": RETRIED[reason] and not last,
                    "started_at": info["started_at"], "ended_at": time.time()})
                if reason == "actor_died":
                    self.actors.pop(st.node.service, None)  # fetch it anew (restarted or not)
                if not info["attempts"][-1]["retried"]:
                    info.update(status="failed", error=err)
                    metrics.stage_seconds().observe(time.time() - info["submitted_at"], tags={
                        "node": st.node.name, "status": "failed"})
                    raise
                await asyncio.sleep(delay)
                delay *= 2
            finally:
                self.running.get(wid, {}).pop(name, None)
                info["ended_at"] = time.time()
                info["duration_s"] = round(info["ended_at"] - info["started_at"], 4)
                self._touch(wid, save=True)
        raise AssertionError("unreachable")

    def _cache_keys(self, plan: Plan) -> dict[str, str]:
        keys: dict[str, str] = {}
        for name in plan.order:
            st = plan.stages[name]
            if any(isinstance(b, Ref) and b.stage not in keys for b in st.bindings.values()):
                continue  # an upstream stage cannot be keyed, so neither can this one
            try:
                identity = get_service(st.node.service).identity(self.settings, st.params)
                inputs = {k: f"{keys[b.stage]}.{b.output}" if isinstance(b, Ref)
                          else literal_key(b) for k, b in st.bindings.items()}
            except Exception:
                continue  # an unknown model, an unreadable file: the stage reports it
            keys[name] = stage_key(st.node.name, st.params, identity, inputs)
        return keys

    async def _callback(self, wid: str, plan: Plan) -> None:
        from yivideo.callbacks import deliver

        state = self.states.get(wid)
        if state is not None:
            state["callback"] = await deliver(plan.options.callback_url, state, self.settings)
            self._save(wid)

    def _actor(self, service: str) -> Any:
        if service not in self.actors:
            self.actors[service] = get_service_actor(service, self.settings)
            fraction = self.settings.actor_options(service).num_gpus
            metrics.gpu_fraction().set(fraction, tags={"service": service})
        return self.actors[service]

    def _save_artifacts(self, wid: str, stage: str, artifacts: dict[str, bytes]) -> None:
        if not artifacts:
            return
        folder = self.root / wid
        folder.mkdir(parents=True, exist_ok=True)
        listed = self.states[wid]["artifacts"]
        for name, data in artifacts.items():
            tmp = folder / f".{name}.tmp"
            tmp.write_bytes(data)
            tmp.replace(folder / name)  # a re-run replaces, never half-writes
            listed[:] = [a for a in listed if a["name"] != name]
            listed.append({"name": name, "stage": stage, "size": len(data)})

    def _free_bulky(self, wid: str, plan: Plan) -> None:
        """Free bulky intermediate data (audio, frames) once its consumers are done.

        Small results (transcripts, events, media facts) stay for the Python API.
        """
        refs = self.outputs.get(wid, {})
        for name in list(refs):
            bulky = HEAVY_TYPES & set(plan.stages[name].node.outputs.values())
            if bulky and plan.consumers(name):
                del refs[name]

    # ---- state bookkeeping -----------------------------------------------------
    def _state(self, wid: str, owner: str | None = None) -> dict[str, Any]:
        """The state of ``wid``; another owner's workflow is as unknown as a missing one."""
        state = self.states.get(wid)
        if state is None or (owner is not None and state["owner"] != owner):
            raise NotFound(f"no workflow with id '{wid}'")
        return state

    def _event(self, wid: str) -> asyncio.Event:
        return self.changed.setdefault(wid, asyncio.Event())

    def _touch(self, wid: str, save: bool = False) -> None:
        event = self.changed.pop(wid, None)
        if event is not None:
            event.set()  # wake every waiter; the next wait gets a fresh event
        if save:
            self._save(wid)

    def _save(self, wid: str) -> None:
        if wid in self.states:
            records.save(self.root / wid, self.states[wid])

    def _expire(self) -> None:
        cutoff = time.time() - self.settings.workflow_ttl_s
        for wid, s in list(self.states.items()):
            if s["status"] in FINAL and s["ended_at"] and s["ended_at"] < cutoff:
                for table in (self.states, self.outputs, self.tasks, self.changed):
                    table.pop(wid, None)
                shutil.rmtree(self.root / wid, ignore_errors=True)


def get_controller(settings: Settings | None = None) -> Any:
    """The controller actor, created on first use (detached: it outlives any front door)."""
    settings = settings or get_settings()
    return ray.remote(Controller).options(
        name=CONTROLLER, namespace=settings.namespace, get_if_exists=True,
        lifetime="detached", num_cpus=0, max_concurrency=1000, max_restarts=-1,
        # on the head node, where storage_dir (state, artifacts) lives
        resources={"node:__internal_head__": 0.001},
    ).remote(settings.for_actors())


__all__ = ["Controller", "FINAL", "get_controller"]
