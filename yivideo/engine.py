"""The engine: one named async actor that owns workflow state and runs plans.

It is the single owner of state (front doors keep none), so an HTTP replica, a CLI
or a notebook all see the same workflows, and it saves every state change to disk so
that a restarted controller still knows them (see :mod:`yivideo.state`). A plan
becomes Ray calls on the service actors: each stage is submitted when its upstream
stages have finished, with their outputs passed as ObjectRefs, so data moves through
the object store and never through this actor.

Workflow: ``pending -> running -> succeeded | failed | cancelled``.
Stage: ``pending -> queued (waiting for its actor) -> running -> succeeded | failed |
skipped | cancelled``. How a stage is tried (and tried again) is
:mod:`yivideo.stage_runner`'s; states live in a :class:`~yivideo.state_store.StateStore`,
files in an :class:`~yivideo.artifact_store.ArtifactStore`; the controller composes them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import ray

from yivideo import metrics
from yivideo import state as records
from yivideo.admission import passed_here, probe_input
from yivideo.artifact_store import ArtifactStore
from yivideo.cache import ResultCache, plan_keys
from yivideo.datatypes import bulky_types
from yivideo.errors import Conflict, NotFound, RateLimited
from yivideo.runtime import CONTROLLER, controller_settings_json, controller_view, verify
from yivideo.settings import Settings, get_settings
from yivideo.stage_runner import RETRIED, StageRunner, cause_of, end_reason, error_dict
from yivideo.state import FINAL
from yivideo.state_store import StateStore
from yivideo.workflow import Plan, Ref, compile_config


class Controller:
    """Named actor ``controller``: workflow state, orchestration, artifacts, cache."""

    def __init__(self, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self.root = self.settings.storage_dir / "workflows"
        self.store = StateStore(self.root, self.settings.workflow_ttl_s)
        self.files = ArtifactStore(self.root)
        self.runner = StageRunner(self.settings)
        self.actors = self.runner.actors  # service -> handle (the runner fills it)
        self.outputs: dict[str, dict[str, ray.ObjectRef]] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.cache = ResultCache(self.settings.storage_dir / "cache",
                                 self.settings.cache_max_entries, self.settings.cache_ttl_s)

    # ---- front-door calls -------------------------------------------------------
    async def submit(self, config: dict[str, Any], owner: str = "",
                     max_active: int | None = None,
                     probes: dict[str, dict[str, Any]] | None = None) -> str:
        """Validate ``config`` and start it in the background; returns its id.

        ``max_active`` (default: the setting) caps the caller's unfinished workflows; a
        front door passes its own limit. ``probes``: media inputs the front door admitted
        without probing them yet (``{input: {loc, limits}}``, from
        :func:`yivideo.admission.admit`): each is probed before the first stage that reads
        it, which fails with the refusal if it is refused.
        """
        self._expire()
        plan = await self._compile(config)
        limit = self.settings.max_active_workflows if max_active is None else max_active
        active = self.store.active(owner)
        if limit and active >= limit:
            raise RateLimited(f"{active} workflows are still running for this caller "
                              f"(limit {limit}); wait for one to finish", retry_after=5)
        wid = uuid.uuid4().hex
        state = self.store.add(wid, plan, owner)
        if probes:  # kept with the state, so that a retry (even after a restart) probes too
            state["probes"] = probes
        self._start(wid, plan, reuse=set())
        return wid

    async def retry(self, wid: str, owner: str | None = None) -> dict[str, Any]:
        """Run a failed or cancelled workflow again, reusing every stage that succeeded."""
        state = self.store.get(wid, owner)
        plan = await self._compile(state["config"])
        # checked after the await: nothing else may start it in between
        if state["status"] not in ("failed", "cancelled"):
            raise Conflict(f"only a failed or cancelled workflow can be retried "
                           f"(this one is {state['status']})")
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
        return self.store.get(wid, owner)

    async def wait(self, wid: str, timeout: float = 10.0, owner: str | None = None
                   ) -> dict[str, Any]:
        """Return the state after its next change (or ``timeout``); at once if final."""
        return await self.store.wait(wid, timeout, owner)

    def list(self, offset: int = 0, limit: int = 20, status: str | None = None,
             owner: str | None = None) -> dict[str, Any]:
        self._expire()
        return self.store.page(offset, limit, status, owner)

    def artifact(self, wid: str, name: str, owner: str | None = None) -> bytes:
        return self.files.read(wid, name, self.store.get(wid, owner)["artifacts"])

    def output_refs(self, wid: str, stages: list[str]) -> dict[str, ray.ObjectRef]:
        """ObjectRefs of finished stages' outputs (kept until the workflow expires)."""
        self.store.get(wid)
        refs = self.outputs.get(wid, {})
        missing = [s for s in stages if s not in refs]
        if missing:
            raise NotFound(f"workflow {wid} has no finished stage {missing}")
        return {s: refs[s] for s in stages}

    async def cancel(self, wid: str, owner: str | None = None) -> dict[str, Any]:
        """Stop a workflow: queued calls are dropped, running stages told to stop."""
        state = self.store.get(wid, owner)
        task = self.tasks.get(wid)
        if state["status"] not in FINAL and task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return self.store.get(wid)

    def stage_started(self, wid: str, stage: str, began: float) -> None:
        st = self.store.stage(wid, self.runner.parts.stage_of(stage))
        if st is not None and st["status"] == "queued":
            st.update(status="running", started_at=began)
            self.store.touch(wid, save=True)

    def report_progress(self, wid: str, stage: str, fraction: float, message: str) -> None:
        stage, fraction, message = self.runner.parts.progress(wid, stage, fraction, message)
        st = self.store.stage(wid, stage)
        if st is not None and st["status"] == "running":
            st["progress"], st["message"] = round(fraction, 4), message
            self.store.touch(wid)

    async def gpu_status(self, owner: str | None = None) -> dict[str, Any]:
        """GPUs: total and free, which service replicas hold which fraction, who waits.

        Each replica of a GPU service is listed with its node (None while it waits to be
        placed). With ``owner``, only that caller's waiting stages are listed (None:
        everyone's).
        """
        total = ray.cluster_resources().get("GPU", 0.0)
        free = ray.available_resources().get("GPU", 0.0)

        async def holder(service: str, name: str, actor: Any) -> dict[str, Any]:
            try:
                health = await asyncio.wait_for(actor.health.remote(), 0.5)
                placed, node = "alive", health["node_id"]
            except (TimeoutError, ray.exceptions.RayError):
                placed, node = "waiting", None  # not placed yet: its fraction does not fit
            return {"service": service, "replica": name, "node_id": node,
                    "num_gpus": self.settings.actor_options(service).num_gpus,
                    "state": placed}

        holders = await asyncio.gather(*(
            holder(service, name, actor) for service in self.runner.pools
            if self.settings.actor_options(service).num_gpus > 0
            for name, actor in self.runner.handles(service)))
        return {"total": total, "available": free, "allocated": round(total - free, 4),
                "holders": list(holders), "waiting": self.store.queued(owner)}

    def stats(self) -> dict[str, Any]:
        return {"workflows": self.store.counts(), "cache": self.cache.stats()}

    def ping(self) -> str:
        return "ok"

    def settings_view(self) -> dict[str, Any]:
        """The settings this controller was built from that a caller's must match."""
        return controller_view(self.settings)

    # ---- running a plan ---------------------------------------------------------
    async def _compile(self, config: dict[str, Any]) -> Plan:
        # raises ConfigError before anything runs; front doors from the network have
        # already refused model paths, whatever the operator allows local callers
        plan = compile_config(config, local_paths=self.settings.models.allow_local_paths)
        if plan.options.callback_url:  # a DNS lookup: off the event loop
            from yivideo.callbacks import check_callback_url

            await asyncio.to_thread(check_callback_url, plan.options.callback_url,
                                    self.settings)
        return plan

    def _start(self, wid: str, plan: Plan, reuse: set[str]) -> None:
        self.outputs.setdefault(wid, {})
        self.store.save(wid)
        self.tasks[wid] = asyncio.get_running_loop().create_task(self._run(wid, plan, reuse))

    async def _run(self, wid: str, plan: Plan, reuse: set[str]) -> None:
        state = self.store.get(wid)
        state.update(status="running", started_at=time.time(), runs=state["runs"] + 1)
        self.store.touch(wid, save=True)
        stages: dict[str, asyncio.Task] = {}
        probes: dict[str, asyncio.Future] = {}
        try:
            probes = self._probes(state, plan)
            # hashing input files and resolving models is blocking work: off the event loop
            keys = (await asyncio.to_thread(plan_keys, plan, self.settings)
                    if plan.options.cache else {})
            for name in plan.order:  # topological: upstream tasks exist before downstream
                stages[name] = asyncio.get_running_loop().create_task(
                    self._stage(wid, plan, name, stages, keys.get(name), name in reuse,
                                probes))
            results = await asyncio.gather(*stages.values(), return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            state["status"] = "failed" if failed else "succeeded"
            if failed:
                bad = [n for n, s in state["stages"].items() if s["status"] == "failed"]
                first = state["stages"][bad[0]]["error"] if bad else error_dict(failed[0])
                state["error"] = {**first, "stage": bad[0] if bad else None}
        except asyncio.CancelledError:
            for task in stages.values():
                task.cancel()
            await asyncio.gather(*stages.values(), return_exceptions=True)
            state["status"] = "cancelled"
        except Exception as exc:  # a fault of the engine itself: never leave it running
            state.update(status="failed", error={**error_dict(exc), "stage": None})
        finally:
            for probe in probes.values():  # one no stage got to (cancelled, skipped)
                probe.cancel()
            await asyncio.gather(*probes.values(), return_exceptions=True)
            state["ended_at"] = time.time()
            state["duration_s"] = round(state["ended_at"] - state["started_at"], 4)
            if state["status"] == "succeeded":
                self._free_bulky(wid, plan)
            self.store.touch(wid, save=True)
            metrics.workflows().inc(tags={"status": state["status"]})
        if plan.options.callback_url:
            asyncio.get_running_loop().create_task(self._callback(wid, plan))

    def _probes(self, state: dict[str, Any], plan: Plan) -> dict[str, asyncio.Future]:
        """The probes of the media inputs left to this controller, started now (in
        threads), by input name; none for media it has seen pass before (a stat)."""
        return {name: asyncio.ensure_future(asyncio.to_thread(
            probe_input, plan.inputs[name], job["loc"], tuple(job["limits"]),
            self.settings.storage_dir, self.settings.namespace))
            for name, job in (state.get("probes") or {}).items() if name in plan.inputs
            and not passed_here(plan.inputs[name], job["limits"], self.settings.storage_dir)}

    async def _stage(self, wid: str, plan: Plan, name: str, stages: dict[str, asyncio.Task],
                     key: str | None, reuse: bool,
                     probes: dict[str, asyncio.Future] | None = None) -> None:
        st, state = plan.stages[name], self.store.get(wid)
        info = state["stages"][name]
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
        literals = [b for b in st.bindings.values() if not isinstance(b, Ref)]
        mine = [p for n, p in (probes or {}).items() if plan.inputs[n] in literals]
        try:  # media the front door did not probe: refused here, as it would have been
            await asyncio.gather(*mine)
        except asyncio.CancelledError:
            info["status"] = "cancelled"
            raise
        except Exception as exc:
            now = time.time()
            info.update(status="failed", error=error_dict(exc), submitted_at=now,
                        started_at=now, ended_at=now, duration_s=0.0)
            self.store.touch(wid, save=True)
            raise
        hit = self.cache.get(key) if key else None
        if key:
            metrics.cache_lookups().inc(tags={"result": "hit" if hit else "miss"})
        if hit is not None:
            self.outputs[wid][name] = hit.outputs
            self.files.write(wid, name, self.cache.artifacts(key), state["artifacts"])
            now = time.time()
            info.update(status="succeeded", cached=True, progress=1.0, submitted_at=now,
                        started_at=now, ended_at=now, duration_s=0.0, compute_s=0.0)
            self.store.touch(wid, save=True)
            return
        meta, out = await self.runner.run(wid, name, st, info, self.outputs[wid],
                                          lambda: self.store.touch(wid, save=True))
        # a short stage's service never said it started: its result says when
        info["started_at"] = meta["began"]
        info["duration_s"] = round((info["ended_at"] or time.time()) - meta["began"], 4)
        self.outputs[wid][name] = out
        self.files.write(wid, name, meta["artifacts"], state["artifacts"])
        if key:
            self.cache.put(key, out, meta["artifacts"])
        info.update(status="succeeded", progress=1.0, compute_s=round(meta["compute_s"], 4),
                    queued_s=round(max(0.0, meta["began"] - info["submitted_at"]), 4))
        self.store.touch(wid, save=True)
        metrics.queue_seconds().observe(info["queued_s"], tags={"node": st.node.name})
        metrics.stage_seconds().observe(info["duration_s"], tags={"node": st.node.name,
                                                                  "status": "succeeded"})

    async def _callback(self, wid: str, plan: Plan) -> None:
        from yivideo.callbacks import deliver

        state = self.store.states.get(wid)
        if state is not None:
            state["callback"] = await deliver(plan.options.callback_url, state, self.settings)
            self.store.save(wid)

    def _free_bulky(self, wid: str, plan: Plan) -> None:
        """Free bulky intermediate data (audio, frames) once its consumers are done.

        Small results (transcripts, events, media facts) stay for the Python API.
        """
        refs = self.outputs.get(wid, {})
        for name in list(refs):
            bulky = bulky_types() & set(plan.stages[name].node.outputs.values())
            if bulky and plan.consumers(name):
                del refs[name]

    def _expire(self) -> None:
        for wid in self.store.expire():
            self.outputs.pop(wid, None)
            self.tasks.pop(wid, None)
            self.files.remove(wid)


def get_controller(settings: Settings | None = None) -> Any:
    """The controller actor, created on first use (detached: it outlives any front door).

    With ``settings``, a running controller must have been built from the same
    :func:`~yivideo.runtime.controller_view`, else SettingsMismatch. Without (reading a
    workflow needs no settings), it is the running one, however built.
    """
    wanted = settings or get_settings()
    try:
        controller = ray.get_actor(CONTROLLER, namespace=wanted.namespace)
    except ValueError:
        return ray.remote(Controller).options(
            name=CONTROLLER, namespace=wanted.namespace, get_if_exists=True,
            lifetime="detached", num_cpus=0, max_concurrency=1000, max_restarts=-1,
            # on the head node, where storage_dir (state, artifacts) lives
            resources={"node:__internal_head__": 0.001},
        ).remote(controller_settings_json(wanted))
    if settings is not None:
        verify(controller, "controller", controller_view(settings), "yivideo stop")
    return controller


__all__ = ["RETRIED", "Controller", "FINAL", "cause_of", "end_reason", "get_controller"]
