"""What a request from the network must pass before any stage runs.

Every workflow input is either an http(s) URL, fetched under the SSRF rules and size/time
limits into the caller's upload folder, or a local path confined to the configured input
roots (plus the caller's uploads). Then the file is probed with ffmpeg restricted to the
file protocol (no playlists, no concat lists) and checked against the size limits.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from yivideo.errors import MediaError
from yivideo.security.media_guard import safe_probe
from yivideo.security.paths import confine
from yivideo.security.urls import fetch
from yivideo.settings import Settings


def uploads_dir(settings: Settings, owner: str) -> Path:
    """The caller's own upload folder (named by a hash, so owner names never make paths)."""
    return settings.storage_dir / "uploads" / hashlib.sha256(owner.encode()).hexdigest()[:16]


def _inputs(config: dict[str, Any]) -> list[tuple[dict[str, Any], str, str]]:
    """(container, key, loc) of every workflow input in either form."""
    if "workflow_config" in config:
        return [(config, "video_path", "video_path")] if "video_path" in config else []
    inputs = config.get("inputs") or {}
    return [(inputs, k, f"inputs.{k}") for k, v in inputs.items() if isinstance(v, str)]


def admit(config: dict[str, Any], settings: Settings, owner: str) -> dict[str, Any]:
    """Fetch URL inputs, confine paths, probe every input safely; the config, rewritten.

    Raises ConfigError (naming the field) or MediaError; blocking: call from a thread.
    """
    own = uploads_dir(settings, owner)
    for container, key, loc in _inputs(config):
        value = container[key]
        if urlsplit(value).scheme.lower() in ("http", "https"):
            name = Path(urlsplit(value).path).name or "download"
            dest = own / uuid.uuid4().hex / name
            dest.parent.mkdir(parents=True)
            path = fetch(value, dest, int(settings.fetch_max_mb * 1024 * 1024),
                         settings.fetch_timeout_s, settings.url_allowlist, loc=loc)
        elif settings.input_roots or settings.auth.enabled:
            path = confine(value, [*settings.input_roots, own], loc=loc)
        else:  # single-user default: any local path, still probed safely
            path = confine(value, ["/"], loc=loc)
        try:
            safe_probe(path, max_duration_s=settings.max_input_duration_s,
                       max_width=settings.max_input_width, max_height=settings.max_input_height)
        except MediaError as e:
            raise MediaError(f"{loc}: {e.message}", [{"loc": loc, "msg": e.message}]) from None
        container[key] = str(path)
    return config
