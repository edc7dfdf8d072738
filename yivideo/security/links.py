"""Short-lived signed links to one artifact, for a browser's ``<video>`` and ``<track>``.

Elements cannot send an API key, and a page that fetches an artifact into a blob loses
``Range`` (a video cannot be sought in). A link carries its own proof instead: an HS256
JWT naming the owner, the workflow, the artifact and an expiry, signed with a key derived
from the auth settings (the JWT secret and the stored key digests, never sent anywhere),
so every ingress replica verifies it alike. A link made with an API key dies with that
key's entry.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import jwt

from yivideo.errors import Unauthorized
from yivideo.security.auth import JWT_ALGORITHM, AuthSettings, Principal

__all__ = ["LINK_TTL_S", "Link", "sign_link", "verify_link"]

#: How long a link works: long enough to watch a video, short enough not to be a key.
LINK_TTL_S = 1800
_AUDIENCE = "yivideo-artifact-link"


@dataclass(frozen=True)
class Link:
    """What a verified link grants: one artifact of one owner's workflow."""

    owner: str
    wid: str
    name: str


def _key(settings: AuthSettings) -> bytes:
    """The signing key: a hash of every secret the auth settings hold, domain-separated."""
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    parts = [_AUDIENCE, secret, *sorted(k.sha256 for k in settings.api_keys)]
    return hashlib.sha256("\0".join(parts).encode()).digest()


def sign_link(who: Principal, wid: str, name: str, settings: AuthSettings,
              ttl_s: float = LINK_TTL_S) -> tuple[str, float]:
    """A token for ``who``'s artifact ``name`` of ``wid``, and when it expires."""
    expires = time.time() + ttl_s
    claims = {"sub": who.owner, "kid": who.key_id, "wid": wid, "name": name,
              "aud": _AUDIENCE, "exp": int(expires)}
    return jwt.encode(claims, _key(settings), algorithm=JWT_ALGORITHM), expires


def verify_link(token: str, settings: AuthSettings) -> Link:
    """The artifact a token grants, or :class:`Unauthorized` (forged, expired, revoked)."""
    try:
        claims = jwt.decode(token, _key(settings), algorithms=[JWT_ALGORITHM],
                            audience=_AUDIENCE,
                            options={"require": ["exp", "sub", "wid", "name"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the link has expired; open the workflow again") from None
    except jwt.PyJWTError:
        raise Unauthorized("invalid link") from None
    kid = claims.get("kid")
    if settings.enabled and kid is not None and not any(
            k.id == kid and k.owner == claims["sub"] for k in settings.api_keys):
        raise Unauthorized("the key this link was made with is no longer valid")
    return Link(owner=claims["sub"], wid=claims["wid"], name=claims["name"])
