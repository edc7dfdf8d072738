"""Workflow state records: their shape, their persistence, and recovery after a restart.

The controller keeps states in memory and writes each one to
``<storage>/workflows/<id>/state.json`` on every status change, so a restarted
controller still knows every workflow. A workflow that was running when its
controller died cannot be resumed (its in-flight Ray objects are gone): on recovery it
is marked ``failed`` with that reason, never left ``running``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from yivideo.workflow import Plan

FINAL = {"succeeded", "failed", "cancelled"}
STAGE_FINAL = {"succeeded", "failed", "skipped", "cancelled"}
LOST = {"type": "Lost", "code": "lost",
        "message": "the engine restarted while this ran; its work was lost (retry it)"}


def new_state(wid: str, plan: Plan, owner: str) -> dict[str, Any]:
    return {
        "id": wid, "status": "pending", "owner": owner, "created_at": time.time(),
        "started_at": None, "ended_at": None, "duration_s": None, "error": None, "runs": 0,
        "inputs": plan.inputs, "config": plan.config, "artifacts": [], "callback": None,
        "stages": {name: new_stage(st.node.name, st.params, sorted(st.upstream),
                                   sorted(st.node.outputs))
                   for name, st in plan.stages.items()},
    }


def new_stage(node: str, params: dict[str, Any], after: list[str], outputs: list[str]
              ) -> dict[str, Any]:
    return {
        "node": node, "status": "pending", "params": params, "after": after,
        "outputs": outputs, "progress": 0.0, "message": "", "cached": False,
        "submitted_at": None, "started_at": None, "ended_at": None, "duration_s": None,
        "queued_s": None, "compute_s": None, "error": None, "attempts": [],
    }


def reset_stage(stage: dict[str, Any]) -> None:
    """Back to pending for a retry, keeping the history of earlier attempts."""
    fresh = new_stage(stage["node"], stage["params"], stage["after"], stage["outputs"])
    fresh["attempts"] = stage["attempts"]
    stage.clear()
    stage.update(fresh)


def save(folder: Path, state: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".state.json.tmp"
    tmp.write_text(json.dumps(state, default=str))
    tmp.replace(folder / "state.json")


def mark_lost(state: dict[str, Any]) -> None:
    """Mark a state recovered while in flight as failed: its work is gone."""
    now = time.time()
    state.update(status="failed", error={**LOST, "stage": None}, ended_at=now,
                 duration_s=round(now - (state.get("started_at") or now), 4))
    for stage in state["stages"].values():
        if stage["status"] not in STAGE_FINAL:
            stage.update(status="failed", error=LOST, ended_at=now)


def recover(root: Path) -> dict[str, dict[str, Any]]:
    """Load every saved state; mark those that were still in flight as failed."""
    states: dict[str, dict[str, Any]] = {}
    for path in root.glob("*/state.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if state.get("status") not in FINAL:
            mark_lost(state)
            save(path.parent, state)
        states[state["id"]] = state
    return states
