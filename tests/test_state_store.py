"""Workflow state on disk: new and final states at once, the changes between in batches,
all appended to one journal."""

from __future__ import annotations

import asyncio
import json

from yivideo import state as records
from yivideo.state_store import StateStore, read_journal
from yivideo.workflow import compile_config

PLAN = compile_config({"stages": {"n": {"node": "diagnostics.noop"}}})


def _on_disk(store: StateStore, wid: str) -> dict:
    return read_journal(store.journal)[wid]


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


def test_running_counts_and_expiry_follow_each_save(tmp_path, monkeypatch):
    store = StateStore(tmp_path, ttl_s=60)
    first, second = store.add("a1", PLAN, "alice"), store.add("a2", PLAN, "alice")
    store.add("b1", PLAN, "bob")
    for wid in ("a1", "a2", "b1"):
        store.save(wid)
    assert (store.active("alice"), store.active("bob")) == (2, 1)
    first.update(status="succeeded", ended_at=1000.0)
    store.save("a1")
    assert store.active("alice") == 1
    second.update(status="failed", ended_at=2000.0)
    store.save("a2")
    monkeypatch.setattr("yivideo.state_store.time.time", lambda: 1050.0)
    assert store.expire() == []  # nothing ended more than 60 s ago
    monkeypatch.setattr("yivideo.state_store.time.time", lambda: 1061.0)
    assert store.expire() == ["a1"]
    assert store.expire() == []
    second.update(status="pending", ended_at=None)  # retried: it runs again
    store.save("a2")
    assert store.active("alice") == 1
    monkeypatch.setattr("yivideo.state_store.time.time", lambda: 5000.0)
    assert store.expire() == [] and store.active("bob") == 1
    assert StateStore(tmp_path, ttl_s=60).active("alice") == 0  # recovered: all final


def test_the_journal_appends_and_is_rewritten_with_only_current_states(tmp_path, monkeypatch):
    monkeypatch.setattr("yivideo.state_store._COMPACT_MIN", 0)
    store = StateStore(tmp_path, ttl_s=60)
    state = store.add("c1", PLAN, "carol")
    store.save("c1")
    lines = store.journal.read_bytes().count(b"\n")
    assert lines == 1
    for stage_progress in (0.25, 0.5, 0.75):
        state["stages"]["n"]["progress"] = stage_progress
        store.flush()  # a batch of its own each time
        store.save("c1")
    # each append grew the journal; past 4x its compacted size it holds one line per state
    assert store.journal.read_bytes().count(b"\n") < 4
    assert _on_disk(store, "c1")["stages"]["n"]["progress"] == 0.75
    state.update(status="succeeded", ended_at=1.0)
    store.save("c1")
    with store.journal.open("ab") as fh:
        fh.write(b'{"id": "c1", "status": "runn')  # a crash in the middle of a line
    store.close()
    again = StateStore(tmp_path, ttl_s=60)
    assert again.get("c1")["status"] == "succeeded"
    assert json.loads(again.journal.read_text().splitlines()[-1])["id"] == "c1"


def test_states_saved_by_earlier_versions_are_recovered(tmp_path):
    old = records.new_state("legacy", PLAN, "dave")
    old.update(status="succeeded", ended_at=1.0)
    records.save(tmp_path / "legacy", old)
    assert StateStore(tmp_path, ttl_s=60).get("legacy", owner="dave")["status"] == "succeeded"
