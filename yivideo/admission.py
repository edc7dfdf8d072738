"""What a request from the network must pass before any stage runs.

The config's compiled plan knows every workflow input with the data type it feeds, and
each is admitted the way its type says (:mod:`yivideo.datatypes`):

* media (a video, an audio file): an http(s) URL is fetched under the SSRF rules and
  size/time limits into the caller's upload folder, a local path is confined to the input
  roots (plus the caller's uploads); then the file is probed with ffmpeg restricted to the
  file protocol (no playlists, no concat lists) and checked against the size limits;
* a small file (a subtitle file): fetched or confined the same way, and size-limited;
* text: size-limited.

A probe costs an ffprobe process (a sizeable part of a submission's time), so a file's
verdict is remembered by what identifies one version of it (device, inode, size, mtime,
ctime): the same unchanged file submitted again is not probed again, a changed one is.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from yivideo.datatypes import get_type
from yivideo.errors import ConfigError, MediaError
from yivideo.security.media_guard import safe_probe
from yivideo.security.paths import confine
from yivideo.security.urls import fetch
from yivideo.settings import Settings
from yivideo.workflow import Plan


def uploads_dir(settings: Settings, owner: str) -> Path:
    """The caller's own upload folder (named by a hash, so owner names never make paths)."""
    return settings.storage_dir / "uploads" / hashlib.sha256(owner.encode()).hexdigest()[:16]


def _place(config: dict[str, Any], name: str) -> tuple[dict[str, Any], str, str]:
    """(container, key, loc) where the workflow input ``name`` was written."""
    if "workflow_config" in config and name == "video" and "video_path" in config:
        return config, "video_path", "video_path"
    return config["inputs"], name, f"inputs.{name}"


def _local_file(value: str, loc: str, settings: Settings, owner: str) -> Path:
    """A URL fetched into the caller's uploads, or a path confined to the input roots."""
    own = uploads_dir(settings, owner)
    if urlsplit(value).scheme.lower() in ("http", "https"):
        name = Path(urlsplit(value).path).name or "download"
        dest = own / uuid.uuid4().hex / name
        dest.parent.mkdir(parents=True)
        return fetch(value, dest, int(settings.fetch_max_mb * 1024 * 1024),
                     settings.fetch_timeout_s, settings.url_allowlist, loc=loc)
    if settings.input_roots or settings.auth.enabled:
        return confine(value, [*settings.input_roots, own], loc=loc)
    return confine(value, ["/"], loc=loc)  # single-user default: any local path


#: How many probed files' verdicts are remembered (least recently used go first).
PROBED_MAX = 1024
_probed: OrderedDict[tuple, None] = OrderedDict()
_probed_lock = threading.Lock()  # admit runs in a thread pool


def _version(path: Path) -> tuple:
    """What identifies this version of the file (a rewrite changes ctime at least)."""
    st = os.stat(path)
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _probe(path: Path, settings: Settings) -> None:
    """``safe_probe`` under the settings' limits, once per version of the file.

    Only a file that passed is remembered: a refused one is probed (and refused) again.
    """
    limits = (settings.max_input_duration_s, settings.max_input_width,
              settings.max_input_height)
    try:
        key = (*_version(path), *limits)
    except OSError:
        key = None  # safe_probe says what is wrong with it
    with _probed_lock:
        if key is not None and key in _probed:
            _probed.move_to_end(key)
            return
    safe_probe(path, max_duration_s=limits[0], max_width=limits[1], max_height=limits[2])
    try:
        unchanged = key is not None and (*_version(path), *limits) == key
    except OSError:
        unchanged = False
    if unchanged:  # not rewritten while it was probed
        with _probed_lock:
            _probed[key] = None
            while len(_probed) > PROBED_MAX:
                _probed.popitem(last=False)


def _check_size(size: int, loc: str, settings: Settings) -> None:
    if size > settings.max_text_kb * 1024:
        raise ConfigError.at(loc, f"{size} bytes; the limit is {settings.max_text_kb:g} KB "
                                  "(max_text_kb)")


def admit(config: dict[str, Any], plan: Plan, settings: Settings, owner: str
          ) -> dict[str, Any]:
    """Admit every input of ``config`` (compiled as ``plan``) as its type says.

    Returns the config with admitted paths. Raises ConfigError (naming the field) or
    MediaError; blocking: call from a thread.
    """
    for name, dtype in plan.input_types.items():
        container, key, loc = _place(config, name)
        value, kind = container[key], get_type(dtype).literal
        if kind == "text":
            _check_size(len(value.encode()), loc, settings)
        elif kind in ("media", "file"):
            path = _local_file(value, loc, settings, owner)
            if kind == "file":
                _check_size(path.stat().st_size, loc, settings)
            else:
                try:
                    _probe(path, settings)
                except MediaError as e:
                    raise MediaError(f"{loc}: {e.message}",
                                     [{"loc": loc, "msg": e.message}]) from None
            container[key] = str(path)
    return config
