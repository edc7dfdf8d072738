"""Diagnostics service: nodes for drills and overhead measurements.

``diagnostics.noop`` measures what the engine itself costs per stage;
``diagnostics.sleep`` is a long, cancellable stage with progress (fault drills);
``diagnostics.crash`` fails on purpose, by exception or by killing its actor process,
to check that retries, restarts and final failures behave as documented.
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal

from pydantic import Field

from yivideo.nodes import NodeContext, Params, Service, node, register_service


class SleepParams(Params):
    seconds: float = Field(1.0, ge=0, le=3600)


class CrashParams(Params):
    mode: Literal["raise", "exit"] = Field("raise", description="exception or process exit")


@register_service
class DiagnosticsService(Service):
    name = "diagnostics"
    # drills: never counts against CPUs, always restarts
    actor_defaults = {"num_cpus": 0, "max_concurrency": 8, "max_restarts": -1}

    @node("diagnostics.noop", outputs={"value": "any"})
    def noop(self, ctx: NodeContext, params: Params) -> dict[str, Any]:
        """Do nothing: the engine's own cost per stage."""
        return {"value": None}

    @node("diagnostics.sleep", params=SleepParams, outputs={"value": "any"})
    def sleep(self, ctx: NodeContext, params: SleepParams) -> dict[str, Any]:
        """Wait, reporting progress every 50 ms (and stopping there when cancelled)."""
        end = time.monotonic() + params.seconds
        while (left := end - time.monotonic()) > 0:
            ctx.progress(1 - left / max(params.seconds, 1e-9), f"{left:.1f} s left")
            time.sleep(min(0.05, left))
        return {"value": params.seconds}

    @node("diagnostics.crash", params=CrashParams, outputs={"value": "any"})
    def crash(self, ctx: NodeContext, params: CrashParams) -> dict[str, Any]:
        """Fail every time: raise an error, or end the actor's process."""
        if params.mode == "exit":
            os._exit(1)
        raise RuntimeError("diagnostics.crash: failing on purpose")
