"""Who is calling: API keys and HS256 JWT bearer tokens.

API keys are opaque random tokens (``yv_`` + 43 URL-safe characters, 256 bits). The
server keeps only their SHA-256 hex digest, with a key id and an owner name, in
``auth.api_keys`` of ``config.yml``; a presented key is hashed and compared with every
entry in constant time. A plain hash is enough here: the keys are random, not passwords.

JWTs are verified with one fixed algorithm (HS256) and a configured secret; ``exp``,
``iat``, ``iss``, ``aud`` and ``sub`` are required, and ``sub`` becomes the owner.

Create a key with ``python -m yivideo.security.auth new-key OWNER``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Any

import jwt
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from yivideo.errors import Unauthorized

__all__ = [
    "API_KEY_PREFIX",
    "JWT_ALGORITHM",
    "ApiKeyEntry",
    "AuthSettings",
    "Principal",
    "Unauthorized",
    "authenticate",
    "hash_api_key",
    "issue_jwt",
    "new_api_key",
    "verify_api_key",
    "verify_jwt",
]

API_KEY_PREFIX = "yv_"
JWT_ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")
MAX_CREDENTIAL_CHARS = 8192
MIN_JWT_SECRET_BYTES = 32
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class ApiKeyEntry(BaseModel):
    """One stored API key: its id, its owner and the SHA-256 hex digest of the key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="key id, shown in logs; not secret")
    owner: str = Field(description="who the key belongs to; the rate-limit and audit name")
    sha256: str = Field(description="hex SHA-256 of the plaintext key")
    admin: bool = Field(False, description="an operator's key: sees every caller's queue")

    @field_validator("id", "owner")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("1-64 characters of letters, digits, '_', '.', '@' or '-'")
        return v

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str) -> str:
        v = v.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", v):
            raise ValueError("expected 64 hex characters (a SHA-256 digest)")
        return v


class AuthSettings(BaseModel):
    """The ``auth`` section of the settings."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="require a credential on every API call")
    api_keys: list[ApiKeyEntry] = Field(default_factory=list)
    jwt_secret: SecretStr | None = Field(None, description="HS256 secret; unset: no JWTs")
    jwt_audience: str = Field("yivideo", description="required 'aud' claim")
    jwt_issuer: str = Field("yivideo", description="required 'iss' claim")
    jwt_leeway_s: float = Field(10.0, ge=0, le=60, description="clock skew allowed on exp/iat")

    @field_validator("jwt_secret")
    @classmethod
    def _secret_len(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value().encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(f"jwt_secret must be at least {MIN_JWT_SECRET_BYTES} bytes")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> AuthSettings:
        ids = [k.id for k in self.api_keys]
        if len(ids) != len(set(ids)):
            raise ValueError("api_keys: key ids must be unique")
        if self.enabled and not self.api_keys and self.jwt_secret is None:
            raise ValueError("auth is enabled but neither api_keys nor jwt_secret is set")
        return self


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``via`` is ``api_key``, ``jwt`` or ``anonymous``."""

    owner: str
    via: str
    key_id: str | None = None
    admin: bool = False  # an operator: sees what every caller waits for

    @property
    def rate_key(self) -> str:
        """The rate-limit bucket: one per owner, whatever credential they use."""
        return f"owner:{self.owner}"


ANONYMOUS = Principal(owner="anonymous", via="anonymous")


def hash_api_key(plaintext: str) -> str:
    """Hex SHA-256 of a plaintext key, as stored in ``ApiKeyEntry.sha256``."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def new_api_key(owner: str, key_id: str | None = None) -> tuple[str, ApiKeyEntry]:
    """A fresh random key and the entry to store; the plaintext is not kept anywhere."""
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
    entry = ApiKeyEntry(
        id=key_id or f"k_{secrets.token_hex(4)}", owner=owner, sha256=hash_api_key(plaintext)
    )
    return plaintext, entry


def verify_api_key(plaintext: str, settings: AuthSettings) -> ApiKeyEntry | None:
    """The entry whose hash matches, or None; every entry is compared in constant time."""
    digest = hash_api_key(plaintext)
    found: ApiKeyEntry | None = None
    for entry in settings.api_keys:  # no early exit: the time does not tell which matched
        if hmac.compare_digest(digest, entry.sha256) and found is None:
            found = entry
    return found


def issue_jwt(
    subject: str,
    settings: AuthSettings,
    ttl_s: float = 3600.0,
    now: float | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """An HS256 token for ``subject`` with the configured audience and issuer."""
    if settings.jwt_secret is None:
        raise ValueError("auth.jwt_secret is not set")
    iat = int(time.time() if now is None else now)
    claims = {
        **(extra or {}),
        "sub": subject,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": iat,
        "exp": iat + int(ttl_s),
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=JWT_ALGORITHM)


def verify_jwt(token: str, settings: AuthSettings) -> Principal:
    """Verify signature, algorithm, exp/iat, audience, issuer and subject of a JWT."""
    if settings.jwt_secret is None:
        raise Unauthorized("bearer tokens are not accepted here (no jwt_secret configured)")
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[JWT_ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_s,
            options={"require": list(REQUIRED_CLAIMS), "verify_signature": True},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.InvalidAudienceError:
        raise Unauthorized("token audience is not accepted") from None
    except jwt.InvalidIssuerError:
        raise Unauthorized("token issuer is not accepted") from None
    except jwt.MissingRequiredClaimError as e:
        raise Unauthorized(f"token lacks the '{e.claim}' claim") from None
    except jwt.ImmatureSignatureError:
        raise Unauthorized("token is not valid yet") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("invalid token") from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise Unauthorized("token 'sub' claim must be a non-empty string")
    return Principal(owner=sub, via="jwt")


def _bearer(authorization_header: str | None) -> str | None:
    if authorization_header is None or not authorization_header.strip():
        return None
    scheme, _, value = authorization_header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("unsupported Authorization header: expected 'Bearer <token>'")
    return value.strip()


def _by_api_key(plaintext: str, settings: AuthSettings) -> Principal:
    entry = verify_api_key(plaintext, settings)
    if entry is None:
        raise Unauthorized("invalid API key")
    return Principal(owner=entry.owner, via="api_key", key_id=entry.id, admin=entry.admin)


def authenticate(
    authorization_header: str | None, x_api_key: str | None, settings: AuthSettings
) -> Principal:
    """The caller behind the ``Authorization`` / ``X-API-Key`` headers, or :class:`Unauthorized`.

    With auth disabled every call is :data:`ANONYMOUS`. ``Authorization: Bearer yv_...``
    is taken as an API key, any other bearer value as a JWT. Sending both headers is
    refused rather than guessing which one counts.
    """
    if not settings.enabled:
        return ANONYMOUS
    for value in (authorization_header, x_api_key):
        if value is not None and len(value) > MAX_CREDENTIAL_CHARS:
            raise Unauthorized("credential too long")
    api_key = x_api_key.strip() if x_api_key and x_api_key.strip() else None
    bearer = _bearer(authorization_header)
    if api_key and bearer:
        raise Unauthorized("send one credential: X-API-Key or Authorization, not both")
    if api_key:
        return _by_api_key(api_key, settings)
    if bearer is None:
        raise Unauthorized("missing credentials: send 'Authorization: Bearer <token>' or X-API-Key")
    if bearer.startswith(API_KEY_PREFIX):
        return _by_api_key(bearer, settings)
    return verify_jwt(bearer, settings)


def main(argv: list[str] | None = None) -> int:
    """``new-key OWNER``: print a new key once and its config entry; ``new-jwt-secret``."""
    parser = argparse.ArgumentParser(prog="python -m yivideo.security.auth")
    sub = parser.add_subparsers(dest="cmd", required=True)
    nk = sub.add_parser("new-key", help="create an API key for OWNER")
    nk.add_argument("owner")
    nk.add_argument("--id", dest="key_id", default=None, help="key id (default: random)")
    sub.add_parser("new-jwt-secret", help="print a random HS256 secret")
    args = parser.parse_args(argv)
    if args.cmd == "new-jwt-secret":
        print(secrets.token_urlsafe(48))
        return 0
    try:
        plaintext, entry = new_api_key(args.owner, args.key_id)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    snippet = yaml.safe_dump({"auth": {"api_keys": [entry.model_dump()]}}, sort_keys=False)
    print(f"API key for {entry.owner} (shown only now; it cannot be recovered):\n")
    print(f"    {plaintext}\n")
    print("Add this entry to auth.api_keys in config.yml:\n")
    print(snippet, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
