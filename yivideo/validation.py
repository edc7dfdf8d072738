"""Validation errors reported where the user wrote the bad value (``stages.asr.params.x``)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from yivideo.errors import ConfigError

_TYPE_WORDS = {
    "int": "expected int", "float": "expected number", "bool": "expected bool",
    "string": "expected string", "dict": "expected mapping", "list": "expected list",
}


def pydantic_details(err: ValidationError, prefix: str) -> list[dict[str, Any]]:
    """pydantic's errors as ``{loc, msg}`` in the words of a config's author."""
    details: list[dict[str, Any]] = []
    for e in err.errors():
        loc = ".".join(p for p in [prefix, *map(str, e["loc"])] if p) or "request"
        kind = e["type"].split("_")[0]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif e["type"] == "missing":
            msg = "required"
        elif e["type"].endswith(("_type", "_parsing")) and kind in _TYPE_WORDS:
            msg = f"{_TYPE_WORDS[kind]}, got {type(e.get('input')).__name__} {e.get('input')!r}"
        else:
            msg = e["msg"]
        detail: dict[str, Any] = {"loc": loc, "msg": msg}
        if "available" in e.get("ctx", {}):  # an unknown model name: what there is
            detail["available"] = e["ctx"]["available"]
        details.append(detail)
    return details


def raise_details(details: list[dict[str, Any]]) -> None:
    """Raise one ConfigError listing every problem, if there is any."""
    if details:
        head = "; ".join(f"{d['loc']}: {d['msg']}" for d in details[:5])
        more = f" (+{len(details) - 5} more)" if len(details) > 5 else ""
        raise ConfigError(head + more, details)
