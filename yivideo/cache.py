"""Result cache: a stage's outputs reused only when everything that determines them is equal.

The key of a stage is a hash of its node, its validated params, the identity of the model
it uses (path, size and mtime of the weights) and the keys of its inputs: for a file,
the SHA-256 of its content; for an upstream stage, that stage's own key. So a changed
video, parameter or model changes every key downstream of it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yivideo.media.handle import file_digest, is_uri, parse_uri
from yivideo.nodes import get_service
from yivideo.workflow import Plan, Ref


def literal_key(value: Any) -> str:
    """A workflow input's key: file content for a path to a file or a media URI (whose
    name does not change what a stage computes), else its JSON form."""
    if is_uri(value):
        return "file:" + parse_uri(value)[0]
    if isinstance(value, str) and value and Path(value).is_file():
        return "file:" + file_digest(Path(value))
    return "json:" + json.dumps(value, sort_keys=True, default=str)


def stage_key(node: str, params: dict[str, Any], identity: str, inputs: dict[str, str]
              ) -> str:
    blob = json.dumps([node, params, identity, inputs], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def plan_keys(plan: Plan, settings: Any) -> dict[str, str]:
    """The key of each stage that can be keyed: its upstream stages can, its model is known."""
    keys: dict[str, str] = {}
    for name in plan.order:
        st = plan.stages[name]
        if any(isinstance(b, Ref) and b.stage not in keys for b in st.bindings.values()):
            continue  # an upstream stage cannot be keyed, so neither can this one
        try:
            identity = get_service(st.node.service).identity(settings, st.params)
            inputs = {k: f"{keys[b.stage]}.{b.output}" if isinstance(b, Ref)
                      else literal_key(b) for k, b in st.bindings.items()}
        except Exception:
            continue  # an unknown model, an unreadable file: the stage reports it
        keys[name] = stage_key(st.node.name, st.params, identity, inputs)
    return keys


@dataclass
class Entry:
    outputs: Any  # ObjectRef of the stage's outputs
    artifacts: list[str]
    created: float = field(default_factory=time.time)


class ResultCache:
    """Bounded by entry count (least recently used goes first) and by age."""

    def __init__(self, folder: Path, max_entries: int, ttl_s: float) -> None:
        self.folder, self.max_entries, self.ttl_s = folder, max_entries, ttl_s
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: str) -> Entry | None:
        entry = self.entries.get(key)
        if entry is not None and time.time() - entry.created > self.ttl_s:
            self._drop(key)
            entry = None
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self.entries.move_to_end(key)
        return entry

    def put(self, key: str, outputs: Any, artifacts: dict[str, bytes]) -> None:
        if self.max_entries <= 0:
            return
        folder = self.folder / key
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in artifacts.items():
            (folder / name).write_bytes(data)
        self.entries[key] = Entry(outputs, sorted(artifacts))
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self._drop(next(iter(self.entries)))

    def artifacts(self, key: str) -> dict[str, bytes]:
        entry = self.entries[key]
        return {name: (self.folder / key / name).read_bytes() for name in entry.artifacts}

    def stats(self) -> dict[str, int]:
        return {"entries": len(self.entries), "hits": self.hits, "misses": self.misses}

    def _drop(self, key: str) -> None:
        self.entries.pop(key, None)
        shutil.rmtree(self.folder / key, ignore_errors=True)
