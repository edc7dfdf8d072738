"""Per-principal rate limits with the ``limits`` library (moving window).

The bucket is the authenticated principal (:attr:`Principal.rate_key`), never a header
the client controls such as ``X-Forwarded-For``. Without auth, callers fall back to one
shared anonymous bucket unless the ingress passes another key it trusts (the socket peer).

Storage is in memory by default, so each Serve replica counts on its own and the
effective limit is ``replicas x rate``. Several replicas need a shared storage: set
``storage_uri`` to e.g. ``redis://host:6379/0`` (``limits`` then needs the ``redis``
package; ``limits.aio`` has async equivalents for an async ingress).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from yivideo.errors import RateLimited
from yivideo.security.auth import Principal

__all__ = ["RateDecision", "RateLimitSettings", "RateLimited", "RateLimiter"]


class RateLimitSettings(BaseModel):
    """The ``rate_limit`` section of the settings."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="apply the limit to every API call")
    rate: str = Field("120/minute", description="limits syntax, e.g. '10/second;1000/hour'")
    storage_uri: str = Field("memory://", description="memory://, or redis://... when shared")

    @field_validator("rate")
    @classmethod
    def _parse(cls, v: str) -> str:
        try:
            if not parse_many(v):
                raise ValueError
        except ValueError:
            raise ValueError(f"not a rate limit: {v!r} (e.g. '60/minute')") from None
        return v


@dataclass(frozen=True)
class RateDecision:
    """Outcome of one hit. ``retry_after`` is 0 when allowed, else seconds to wait (> 0)."""

    allowed: bool
    retry_after: float
    remaining: int
    limit: str

    @property
    def retry_after_header(self) -> str:
        """Value for a ``Retry-After`` header: whole seconds, rounded up, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))

    def raise_for_limit(self) -> None:
        """Raise :class:`RateLimited` when the hit was refused."""
        if not self.allowed:
            seconds = int(self.retry_after_header)
            raise RateLimited(f"rate limit {self.limit} exceeded; retry in {seconds}s", seconds)


class RateLimiter:
    """Moving-window limiter; one instance per process (it owns the storage)."""

    def __init__(self, rate: str = "120/minute", storage_uri: str = "memory://") -> None:
        self.items: list[RateLimitItem] = parse_many(rate)
        self.storage = storage_from_string(storage_uri)
        self.strategy = MovingWindowRateLimiter(self.storage)

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> RateLimiter:
        return cls(settings.rate, settings.storage_uri)

    @staticmethod
    def key_for(who: Principal | str) -> str:
        return who.rate_key if isinstance(who, Principal) else f"key:{who}"

    def hit(self, who: Principal | str, cost: int = 1) -> RateDecision:
        """Count one request of ``who`` against every configured limit."""
        key = self.key_for(who)
        blocked = next((i for i in self.items if not self.strategy.test(i, key, cost=cost)), None)
        if blocked is None:
            for item in self.items:
                if not self.strategy.hit(item, key, cost=cost):  # lost a race
                    blocked = item
                    break
        if blocked is not None:
            stats = self.strategy.get_window_stats(blocked, key)
            wait = max(stats.reset_time - time.time(), 0.001)
            return RateDecision(False, wait, 0, str(blocked))
        remaining = min(self.strategy.get_window_stats(i, key).remaining for i in self.items)
        return RateDecision(True, 0.0, remaining, "; ".join(str(i) for i in self.items))

    def reset(self, who: Principal | str) -> None:
        """Forget the counts of ``who``."""
        key = self.key_for(who)
        for item in self.items:
            self.strategy.clear(item, key)
