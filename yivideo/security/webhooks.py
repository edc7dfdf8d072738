"""Signed webhook deliveries in the Standard Webhooks format.

Each delivery carries three headers::

    webhook-id:        msg_...            unique per message (receivers dedupe on it)
    webhook-timestamp: 1718000000         Unix seconds when it was signed
    webhook-signature: v1,<base64>        HMAC-SHA256 over "{id}.{timestamp}.{body}"

The secret is ``whsec_`` + base64 of random bytes (the bytes are the HMAC key); any
other string is used as its UTF-8 bytes. Several space-separated signatures may be
sent while a secret is rotated; one matching ``v1`` signature is enough.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping

__all__ = ["new_message_id", "new_secret", "sign", "signature", "verify"]

SECRET_PREFIX = "whsec_"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def new_secret() -> str:
    """A fresh ``whsec_`` secret (24 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(16)


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error:
            raise ValueError("malformed whsec_ secret (not base64)") from None
    return secret.encode()


def _body(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def signature(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``{msg_id}.{timestamp}.{body}``."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + _body(body)
    mac = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def sign(
    secret: str | bytes, msg_id: str, timestamp: int | None, body: bytes | str
) -> dict[str, str]:
    """The three ``webhook-*`` headers for one delivery (``timestamp`` None: now)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature(secret, msg_id, ts, body),
    }


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """True if a ``v1`` signature matches and the timestamp is within ``tolerance_s`` of now."""
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, ts_raw = h.get("webhook-id"), h.get("webhook-timestamp")
    sigs = h.get("webhook-signature")
    if not msg_id or not sigs or not ts_raw or not _TIMESTAMP.fullmatch(ts_raw.strip()):
        return False
    ts = int(ts_raw.strip())
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    expected = signature(secret, msg_id, ts, body).encode()
    ok = False
    for candidate in sigs.split():
        if candidate.startswith("v1,") and hmac.compare_digest(expected, candidate.encode()):
            ok = True
    return ok
