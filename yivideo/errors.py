"""The exception tree. Errors are translated at the boundary (ffmpeg, models, HTTP).

    YiVideoError                  base; ``code`` is stable, ``message`` is for people
    ├── ConfigError               a workflow config is invalid (CLI exit 2, HTTP 422)
    │   ├── NodeNotFound          a stage names a node that does not exist
    │   └── SettingsMismatch      a running actor was built from other settings
    ├── Unauthorized              no valid credential (HTTP 401, ``WWW-Authenticate``)
    ├── RateLimited               too many requests (HTTP 429, ``Retry-After``)
    ├── NotFound                  an unknown workflow, artifact or file (HTTP 404)
    ├── Conflict                  not possible in the current state (HTTP 409)
    ├── MediaError                ffmpeg could not read the input (missing, not media ...)
    │   └── NoAudioStream         the input has no audio stream
    ├── ModelNotFound             a model is not available offline
    ├── ResourceUnavailable       the cluster cannot ever satisfy a resource request
    ├── TransientError            worth trying again (a service says so); ``transient``
    └── Cancelled                 a running stage saw its workflow cancelled

The engine tries a stage again only when its actor died or the error is ``transient``:
anything else (a YiVideoError, a TypeError, a node returning the wrong outputs) would
fail the same way again. ``headers`` are HTTP response headers the error asks for.
"""

from __future__ import annotations

from typing import Any


class YiVideoError(Exception):
    code = "error"
    http_status = 500
    #: True where trying the same call again may succeed (the engine then retries it).
    transient = False

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers: dict[str, str] = dict(headers or {})

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}

    def __reduce__(self) -> tuple:
        # rebuilt from its attributes, whatever the subclass's constructor takes, so that
        # errors cross Ray's process boundaries intact
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[YiVideoError], message: str, state: dict[str, Any]) -> YiVideoError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ConfigError(YiVideoError):
    """Invalid workflow config. ``details`` lists ``{loc, msg}`` for each problem."""

    code = "invalid_config"
    http_status = 422

    @classmethod
    def at(cls, loc: str, msg: str) -> ConfigError:
        return cls(f"{loc}: {msg}", [{"loc": loc, "msg": msg}])


class NodeNotFound(ConfigError):
    def __init__(self, name: str, known: list[str]) -> None:
        msg = f"unknown node '{name}' (known: {', '.join(known)})"
        super().__init__(msg, [{"loc": "node", "msg": msg}])


class SettingsMismatch(ConfigError):
    """A running named actor was built from other settings; ``details`` name the keys."""

    code = "settings_mismatch"


class Unauthorized(YiVideoError):
    """No valid credential was presented; the response says which scheme to use."""

    code = "unauthorized"
    http_status = 401

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, details,
                         {"WWW-Authenticate": 'Bearer realm="yivideo"', **(headers or {})})


class RateLimited(YiVideoError):
    """Too many requests; ``retry_after`` is in whole seconds, at least 1."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, [{"loc": "rate_limit", "msg": message}],
                         {"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class NotFound(YiVideoError):
    code = "not_found"
    http_status = 404


class Conflict(YiVideoError):
    code = "conflict"
    http_status = 409


class MediaError(YiVideoError):
    code = "media_error"
    http_status = 422


class NoAudioStream(MediaError):
    code = "no_audio_stream"


class ModelNotFound(YiVideoError):
    code = "model_not_found"
    http_status = 422

    @classmethod
    def listing(cls, what: str, reason: str, available: dict[str, str], how_to_add: str
                ) -> ModelNotFound:
        """``what`` is missing: say why, what is available offline and how to add one."""
        found = ", ".join(f"{k} ({v})" for k, v in available.items()) or "none"
        msg = f"{what} {reason}. Available offline: {found}. {how_to_add}"
        return cls(msg, [{"loc": "model", "msg": msg, "available": sorted(available)}])


class ResourceUnavailable(YiVideoError):
    code = "resource_unavailable"
    http_status = 422


class TransientError(YiVideoError):
    """A passing condition (a busy device, a flaky store): the stage is tried again."""

    code = "transient"
    http_status = 503
    transient = True


class Cancelled(YiVideoError):
    code = "cancelled"
    http_status = 409
