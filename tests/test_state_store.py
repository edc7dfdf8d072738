"""Workflow state on disk: new and final states at once, the changes between in batches."""

from __future__ import annotations

import asyncio
import json

from yivideo.state_store import StateStore
from yivideo.workflow import compile_config

PLAN = compile_config({"stages": {"n": {"node": "diagnostics.noop"}}})


def _on_disk(store: StateStore, wid: str) -> dict:
    return json.loads((store.root / wid / "state.json").read_text())


def test_new_and_final_states_are_written_at_once_the_rest_in_batches(tmp_path):
    async def scenario() -> None:
        store = StateStore(tmp_path, ttl_s=60, flush_s=0.05)
        state = store.add("w1", PLAN, "alice")
        store.save("w1")
        assert _on_disk(store, "w1")["status"] == "pending"  # the id is durable at once
        state["status"] = "running"
        store.save("w1")
        state["stages"]["n"]["progress"] = 0.5
        store.save("w1")
        assert _on_disk(store, "w1")["status"] == "pending"  # batched, not yet written
        await asyncio.sleep(0.2)
        assert _on_disk(store, "w1")["stages"]["n"]["progress"] == 0.5  # one batch wrote both
        state["status"] = "succeeded"
        store.save("w1")
        assert _on_disk(store, "w1")["status"] == "succeeded"  # final: at once

    asyncio.run(scenario())


def test_a_restarted_store_recovers_what_was_written(tmp_path):
    async def scenario() -> None:
        store = StateStore(tmp_path, ttl_s=60, flush_s=10)
        state = store.add("w2", PLAN, "bob")
        store.save("w2")
        state["status"] = "running"
        store.save("w2")  # still waiting for its batch when the controller dies

    asyncio.run(scenario())
    recovered = StateStore(tmp_path, ttl_s=60).get("w2", owner="bob")
    assert recovered["status"] == "failed" and recovered["error"]["code"] == "lost"
