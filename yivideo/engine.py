"""The engine: one named async actor that owns workflow state and runs plans.

It is the single owner of state (front doors keep none), so an HTTP replica, a CLI
or a notebook all see the same workflows. A plan becomes Ray calls on the service
actors: each stage is submitted when its upstream stages have finished, with their
outputs passed as ObjectRefs, so data moves through the object store and never
through this actor. State machine: ``pending -> running -> succeeded | failed |
cancelled``; stages are ``pending | running | succeeded | failed | skipped | cancelled``.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayTaskError, TaskCancelledError

from yivideo.errors import NotFound, YiVideoError
from yivideo.runtime import CONTROLLER, get_service_actor
from yivideo.settings import Settings, get_settings
from yivideo.workflow import Plan, Ref, compile_config

FINAL = {"succeeded", "failed", "cancelled"}
HEAVY_TYPES = {"audio", "frames"}


def _error(exc: BaseException) -> dict[str, str]:
    """A stage's exception as ``{type, code, message}``, unwrapped from Ray's envelope."""
    if isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    code = exc.code if isinstance(exc, YiVideoError) else "internal"
    message = exc.message if isinstance(exc, YiVideoError) else str(exc).strip()
    return {"type": type(exc).__name__, "code": code, "message": message[-2000:]}


class Controller:
    """Named actor ``controller``: workflow state, orchestration, artifacts."""

    def __init__(self, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self.states: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, ray.ObjectRef]] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.changed: dict[str, asyncio.Event] = {}
        self.actors: dict[str, Any] = {}

    # ---- front-door calls -------------------------------------------------------
    async def submit(self, config: dict[str, Any], owner: str = "") -> str:
        """Validate ``config`` and start it in the background; returns its id."""
        self._expire()
        plan = compile_config(config)  # raises ConfigError before anything runs
        wid = uuid.uuid4().hex
        now = time.time()
        self.states[wid] = {
            "id": wid, "status": "pending", "owner": owner, "created_at": now,
            "started_at": None, "ended_at": None, "duration_s": None, "error": None,
            "inputs": plan.inputs, "config": plan.config, "artifacts": [],
            "stages": {name: {
                "node": st.node.name, "status": "pending", "params": st.params,
                "after": sorted(st.upstream), "progress": 0.0, "message": "",
                "started_at": None, "ended_at": None, "duration_s": None, "compute_s": None,
                "error": None, "outputs": sorted(st.node.outputs),
            } for name, st in plan.stages.items()},
        }
        self.changed[wid] = asyncio.Event()
        self.outputs[wid] = {}
        self.tasks[wid] = asyncio.get_running_loop().create_task(self._run(wid, plan))
        return wid

    def get(self, wid: str) -> dict[str, Any]:
        return self._state(wid)

    async def wait(self, wid: str, timeout: float = 10.0) -> dict[str, Any]:
        """Return the state after its next change (or ``timeout``); at once if final."""
        state = self._state(wid)
        if state["status"] not in FINAL:
            event = self.changed[wid]
            try:
                await asyncio.wait_for(event.wait(), timeout)
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

    def artifact(self, wid: str, name: str) -> bytes:
        state = self._state(wid)
        if name not in {a["name"] for a in state["artifacts"]}:
            raise NotFound(f"workflow {wid} has no artifact '{name}'")
        return (self._dir(wid) / name).read_bytes()

    def output_refs(self, wid: str, stages: list[str]) -> dict[str, ray.ObjectRef]:
        """ObjectRefs of finished stages' outputs (kept until the workflow expires)."""
        self._state(wid)
        refs = self.outputs.get(wid, {})
        missing = [s for s in stages if s not in refs]
        if missing:
            raise NotFound(f"workflow {wid} has no finished stage {missing}")
        return {s: refs[s] for s in stages}

    async def cancel(self, wid: str) -> dict[str, Any]:
        state = self._state(wid)
        task = self.tasks.get(wid)
        if state["status"] not in FINAL and task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return self._state(wid)

    def report_progress(self, wid: str, stage: str, fraction: float, message: str) -> None:
        st = self.states.get(wid, {}).get("stages", {}).get(stage)
        if st is not None and st["status"] == "running":
            st["progress"], st["message"] = round(fraction, 4), message
            self._touch(wid)

    def ping(self) -> str:
        return "ok"

    # ---- running a plan ---------------------------------------------------------
    async def _run(self, wid: str, plan: Plan) -> None:
        state = self.states[wid]
        state["status"], state["started_at"] = "running", time.time()
        self._touch(wid)
        running: dict[str, asyncio.Task] = {}
        for name in plan.order:  # topological: upstream tasks exist before downstream
            running[name] = asyncio.get_running_loop().create_task(
                self._stage(wid, plan, name, running))
        try:
            results = await asyncio.gather(*running.values(), return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            state["status"] = "failed" if failed else "succeeded"
            if failed:
                bad = [n for n, s in state["stages"].items() if s["status"] == "failed"]
                first = state["stages"][bad[0]]["error"] if bad else _error(failed[0])
                state["error"] = {**first, "stage": bad[0] if bad else None}
        except asyncio.CancelledError:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)
            state["status"] = "cancelled"
        finally:
            state["ended_at"] = time.time()
            state["duration_s"] = round(state["ended_at"] - state["started_at"], 4)
            self._keep_final_outputs(wid, plan)
            self._touch(wid)

    async def _stage(self, wid: str, plan: Plan, name: str,
                     running: dict[str, asyncio.Task]) -> None:
        st, info = plan.stages[name], self.states[wid]["stages"][name]
        try:
            await asyncio.gather(*(running[u] for u in st.upstream))
        except asyncio.CancelledError:
            info["status"] = "cancelled"
            raise
        except Exception:
            info["status"] = "skipped"
            info["error"] = {"type": "Skipped", "code": "upstream_failed",
                             "message": "an upstream stage did not succeed"}
            raise
        refs, bindings = [], []
        for key, b in st.bindings.items():
            if isinstance(b, Ref):
                refs.append(self.outputs[wid][b.stage])
                bindings.append((key, b.output, None))
            else:
                bindings.append((key, None, b))
        info["status"], info["started_at"] = "running", time.time()
        self._touch(wid)
        call = None
        try:
            actor = self._actor(st.node.service)
            call = actor.run.options(num_returns=2).remote(
                st.node.name, st.params, bindings, wid, name, *refs)
            meta = await call[0]
        except asyncio.CancelledError:
            if call is not None:
                ray.cancel(call[0])
            info["status"] = "cancelled"
            raise
        except Exception as exc:
            info["status"], info["error"] = "failed", _error(exc)
            raise
        finally:
            info["ended_at"] = time.time()
            info["duration_s"] = round(info["ended_at"] - info["started_at"], 4)
            self._touch(wid)
        self.outputs[wid][name] = call[1]
        self._save_artifacts(wid, name, meta["artifacts"])
        info.update(status="succeeded", progress=1.0, compute_s=round(meta["compute_s"], 4),
                    queued_s=round(max(0.0, meta["began"] - info["started_at"]), 4))
        self._touch(wid)

    def _actor(self, service: str) -> Any:
        if service not in self.actors:
            self.actors[service] = get_service_actor(service, self.settings)
        return self.actors[service]

    def _save_artifacts(self, wid: str, stage: str, artifacts: dict[str, bytes]) -> None:
        if not artifacts:
            return
        folder = self._dir(wid)
        folder.mkdir(parents=True, exist_ok=True)
        listed = self.states[wid]["artifacts"]
        for name, data in artifacts.items():
            tmp = folder / f".{name}.tmp"
            tmp.write_bytes(data)
            tmp.replace(folder / name)  # a re-run replaces, never half-writes
            listed[:] = [a for a in listed if a["name"] != name]
            listed.append({"name": name, "stage": stage, "size": len(data)})

    def _keep_final_outputs(self, wid: str, plan: Plan) -> None:
        """Free bulky intermediate data (audio, frames) once its consumers are done.

        Small results (transcripts, events, media facts) stay for the Python API.
        """
        refs = self.outputs.get(wid, {})
        for name in list(refs):
            bulky = HEAVY_TYPES & set(plan.stages[name].node.outputs.values())
            if bulky and plan.consumers(name):
                del refs[name]

    # ---- state bookkeeping -----------------------------------------------------
    def _state(self, wid: str) -> dict[str, Any]:
        try:
            return self.states[wid]
        except KeyError:
            raise NotFound(f"no workflow with id '{wid}'") from None

    def _dir(self, wid: str) -> Path:
        return self.settings.storage_dir.expanduser() / "workflows" / wid

    def _touch(self, wid: str) -> None:
        event = self.changed.get(wid)
        if event is not None:
            event.set()
            self.changed[wid] = asyncio.Event()

    def _expire(self) -> None:
        cutoff = time.time() - self.settings.workflow_ttl_s
        for wid, s in list(self.states.items()):
            if s["status"] in FINAL and s["ended_at"] and s["ended_at"] < cutoff:
                for table in (self.states, self.outputs, self.tasks, self.changed):
                    table.pop(wid, None)
                shutil.rmtree(self._dir(wid), ignore_errors=True)


def get_controller(settings: Settings | None = None) -> Any:
    """The controller actor, created on first use (detached: it outlives any front door)."""
    settings = settings or get_settings()
    return ray.remote(Controller).options(
        name=CONTROLLER, namespace=settings.namespace, get_if_exists=True,
        lifetime="detached", num_cpus=0, max_concurrency=1000, max_restarts=-1,
    ).remote(settings.model_dump_json())


__all__ = ["Controller", "get_controller", "FINAL", "TaskCancelledError"]
