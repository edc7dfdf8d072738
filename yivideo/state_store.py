"""Every workflow's state in memory, saved on change, with change events and expiry.

States are the records of :mod:`yivideo.state`, appended as JSON lines to one journal,
``<root>/journal.jsonl`` (the last line of an id is its state), and recovered from there
(and from the ``<root>/<id>/state.json`` files of earlier versions) when the store is
made. A new workflow and a final state are appended at once; the many changes in between
(a stage queued, running, its progress) together at most every ``flush_s``: a controller
that dies mid-run marks its in-flight workflows lost on recovery anyway, so only the
first and last records must never wait. An append is one write to an open file, where a
file per state was a folder, a file and a rename on every change; the journal is
rewritten with only the current states once it has grown well past them.
A caller sees only its own workflows: another owner's is as unknown as a missing one.
Every submission asks how many workflows its caller has running and what has expired, so
both are answered without a scan of every state: the unfinished ones are kept apart and
the earliest time anything can expire is known.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from yivideo import state as records
from yivideo.errors import NotFound
from yivideo.state import FINAL
from yivideo.workflow import Plan

#: The fields of a workflow in a listing.
_LISTED = ("id", "status", "created_at", "ended_at", "duration_s")
#: The journal is rewritten when it is this many times the size of the current states
#: (and at least ``_COMPACT_MIN`` bytes): rare, and a recovery reads little more.
_COMPACT_RATIO, _COMPACT_MIN = 4, 64 << 20


def read_journal(path: Path) -> dict[str, dict[str, Any]]:
    """The last state of each id in a journal (a line cut short by a crash is skipped)."""
    states: dict[str, dict[str, Any]] = {}
    try:
        with path.open("rb") as fh:
            for line in fh:
                try:
                    state = json.loads(line)
                except ValueError:
                    continue
                if isinstance(state, dict) and "id" in state:
                    states[state["id"]] = state
    except FileNotFoundError:
        pass
    return states


class StateStore:
    """Workflow states by id; a finished one is forgotten ``ttl_s`` after it ended."""

    def __init__(self, root: Path, ttl_s: float, flush_s: float = 0.2) -> None:
        self.root, self.ttl_s, self.flush_s = root, ttl_s, flush_s
        self.journal = root / "journal.jsonl"
        self.states = records.recover(root)  # state.json files of earlier versions
        for wid, state in read_journal(self.journal).items():
            if state.get("status") not in FINAL:
                records.mark_lost(state)
            self.states[wid] = state
        self._changed: dict[str, asyncio.Event] = {}
        self._on_disk: set[str] = set(self.states)
        self._dirty: set[str] = set()
        self._out: Any = None  # the journal, open for appending
        self._compact()  # the recovered states (lost ones marked) and nothing more
        self._flush_later: asyncio.TimerHandle | None = None
        #: ids of the workflows not final at their last save (recovered ones all are)
        self._live: set[str] = set()
        #: no finished workflow expires before this time
        self._next_expiry = self._earliest_expiry()

    def add(self, wid: str, plan: Plan, owner: str) -> dict[str, Any]:
        self.states[wid] = records.new_state(wid, plan, owner)
        self._live.add(wid)
        return self.states[wid]

    def get(self, wid: str, owner: str | None = None) -> dict[str, Any]:
        """The state of ``wid`` (of ``owner``'s workflows, when given), or NotFound."""
        state = self.states.get(wid)
        if state is None or (owner is not None and state["owner"] != owner):
            raise NotFound(f"no workflow with id '{wid}'")
        return state

    def stage(self, wid: str, stage: str) -> dict[str, Any] | None:
        """A stage's record, or None once its workflow is gone."""
        return self.states.get(wid, {}).get("stages", {}).get(stage)

    async def wait(self, wid: str, timeout: float, owner: str | None = None
                   ) -> dict[str, Any]:
        """The state after its next change (or ``timeout``); at once if final."""
        state = self.get(wid, owner)
        if state["status"] not in FINAL:
            try:
                await asyncio.wait_for(self._changed.setdefault(wid, asyncio.Event()).wait(),
                                       timeout)
            except TimeoutError:
                pass
        return self.get(wid)

    def touch(self, wid: str, save: bool = False) -> None:
        """Wake every waiter of ``wid``; save its state too with ``save``."""
        event = self._changed.pop(wid, None)
        if event is not None:
            event.set()  # the next wait gets a fresh event
        if save:
            self.save(wid)

    def save(self, wid: str) -> None:
        """Write ``wid``'s state: at once when it is new or final, else with the next batch."""
        state = self.states.get(wid)
        if state is None:
            return
        if state["status"] in FINAL:
            self._live.discard(wid)
            if state["ended_at"]:
                self._next_expiry = min(self._next_expiry, state["ended_at"] + self.ttl_s)
        else:
            self._live.add(wid)  # a retried one runs again
        if wid not in self._on_disk or state["status"] in FINAL:
            self._write(wid)
            return
        self._dirty.add(wid)
        if self._flush_later is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a plain call): write now
                self.flush()
                return
            self._flush_later = loop.call_later(self.flush_s, self.flush)

    def flush(self) -> None:
        """Write every state changed since the last batch."""
        self._flush_later = None
        self._append([wid for wid in self._dirty if wid in self.states])

    def _write(self, wid: str) -> None:
        """Write ``wid`` now, with the batch waiting (one write for all)."""
        self._dirty.add(wid)
        self.flush()

    def _append(self, wids: list[str]) -> None:
        self._dirty.clear()
        if not wids:
            return
        data = "".join(json.dumps(self.states[w], default=str) + "\n" for w in wids)
        self._out.write(data.encode())  # unbuffered: one write call, whole lines
        self._on_disk.update(wids)
        self._size += len(data)
        if self._size > max(_COMPACT_MIN, _COMPACT_RATIO * self._compacted):
            self._compact()

    def _compact(self) -> None:
        """Rewrite the journal with the current states only (a new file, then a rename)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / ".journal.jsonl.tmp"
        data = "".join(json.dumps(s, default=str) + "\n" for s in self.states.values())
        tmp.write_text(data)
        tmp.replace(self.journal)
        if self._out is not None:
            self._out.close()
        self._out = self.journal.open("ab", buffering=0)
        self._size = self._compacted = len(data)
        self._on_disk = set(self.states)
        self._dirty.clear()

    def close(self) -> None:
        """Write what waits for its batch and close the journal."""
        if self._flush_later is not None:
            self._flush_later.cancel()
        self.flush()
        if self._out is not None:
            self._out.close()
            self._out = None

    def expire(self) -> list[str]:
        """Forget the workflows that ended more than ``ttl_s`` ago; their ids."""
        now = time.time()
        if now <= self._next_expiry:
            return []
        cutoff = now - self.ttl_s
        gone = [wid for wid, s in self.states.items()
                if s["status"] in FINAL and s["ended_at"] and s["ended_at"] < cutoff]
        for wid in gone:
            self.states.pop(wid, None)
            self._changed.pop(wid, None)
            self._on_disk.discard(wid)
            self._dirty.discard(wid)
            self._live.discard(wid)
        self._next_expiry = self._earliest_expiry()
        return gone

    def _earliest_expiry(self) -> float:
        ends = [s["ended_at"] for s in self.states.values()
                if s["status"] in FINAL and s["ended_at"]]
        return min(ends, default=float("inf")) + self.ttl_s

    def page(self, offset: int, limit: int, status: str | None = None,
             owner: str | None = None) -> dict[str, Any]:
        """A page of workflows, newest first, with how many there are in all."""
        items = [s for s in self.states.values()
                 if (status is None or s["status"] == status)
                 and (owner is None or s["owner"] == owner)]
        items.sort(key=lambda s: s["created_at"], reverse=True)
        page = [{k: s[k] for k in _LISTED} for s in items[offset: offset + limit]]
        return {"items": page, "total": len(items), "offset": offset, "limit": limit}

    def active(self, owner: str) -> int:
        """How many of ``owner``'s workflows are not final yet."""
        return sum(1 for wid in self._live if (s := self.states.get(wid)) is not None
                   and s["owner"] == owner and s["status"] not in FINAL)

    def queued(self, owner: str | None = None) -> list[dict[str, Any]]:
        """Stages of running workflows that wait for their actor (``owner``'s only)."""
        return [{"workflow": wid, "stage": name, "node": st["node"],
                 "since": st["submitted_at"]}
                for wid, s in self.states.items() if s["status"] == "running"
                and (owner is None or s["owner"] == owner)
                for name, st in s["stages"].items() if st["status"] == "queued"]

    def counts(self) -> dict[str, int]:
        """Workflows by status."""
        by_status: dict[str, int] = {}
        for s in self.states.values():
            by_status[s["status"]] = by_status.get(s["status"], 0) + 1
        return by_status
