"""Signed workflow callbacks: POST the final state to the caller's URL.

Signed in the manner of Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``: HMAC-SHA256 over ``id.timestamp.body``), retried with exponential
backoff, run as a task of the controller so no actor ever waits for it. URLs that
resolve to private, loopback or link-local addresses are refused unless allow-listed, and
each delivery connects to the very address that was checked (no second DNS lookup that a
rebinding name could answer with a private address).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from yivideo.security import webhooks
from yivideo.security.urls import check_and_pin, check_public_url, pinned_request
from yivideo.settings import Settings

_TIMEOUT_S = 10.0  # one delivery


def check_callback_url(url: str, settings: Settings) -> str:
    """Raise ConfigError (at ``options.callback_url``) unless the URL may be called."""
    return check_public_url(url, settings.callback_allowlist, loc="options.callback_url")


async def deliver(url: str, state: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """POST ``state`` to ``url``; returns a delivery record (status, attempts, error)."""
    body = json.dumps({"type": f"workflow.{state['status']}", "data": state}, default=str)
    msg_id = webhooks.new_message_id()
    record: dict[str, Any] = {"url": url, "id": msg_id, "attempts": 0, "status": "pending",
                              "error": None}
    delay = max(settings.retry_backoff_s, 0.1)
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
        for attempt in range(1, settings.callback_attempts + 1):
            record["attempts"] = attempt
            try:
                # checked again (DNS may have changed), then sent to the checked address
                target = await asyncio.to_thread(check_and_pin, url, settings.callback_allowlist,
                                                 "options.callback_url")
                headers = {"content-type": "application/json"}
                if settings.webhook_secret is not None:
                    headers |= webhooks.sign(settings.webhook_secret.get_secret_value(),
                                             msg_id, int(time.time()), body)
                request = pinned_request(client, target, _TIMEOUT_S, "POST", body, headers)
                resp = await client.send(request)
                if 200 <= resp.status_code < 300:
                    record.update(status="delivered", error=None, code=resp.status_code)
                    return record
                record["error"] = f"HTTP {resp.status_code}"
                if 400 <= resp.status_code < 500 and resp.status_code not in (408, 429):
                    break  # the receiver refused it; trying again will not help
            except Exception as exc:  # network errors, refused URL: recorded, never raised
                record["error"] = str(getattr(exc, "message", exc))[:300]
            if attempt < settings.callback_attempts:
                await asyncio.sleep(delay)
                delay *= 2
    record["status"] = "failed"
    return record
