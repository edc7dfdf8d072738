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
A front door need not wait for the probe of new content either: with ``deferred``,
:func:`admit` lists the media inputs whose verdict it does not know yet, and the
controller probes them (:func:`probe_input`) before the first stage that reads them, which
then fails with the same reason and code as the refusal would have had.

A media input may also be a media URI (``yivideo-media:<sha256>/<name>``, what an upload
answers): its content is already held by the cluster, so it is checked by its hash alone
and probed like any new content.
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
from yivideo.media.handle import Blocking, is_uri, parse_uri
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


def limits_of(settings: Settings) -> tuple[float | None, int | None, int | None]:
    """The probe's limits: longest duration, widest and tallest picture."""
    return (settings.max_input_duration_s, settings.max_input_width,
            settings.max_input_height)


def _known(key: tuple | None) -> bool:
    with _probed_lock:
        if key is not None and key in _probed:
            _probed.move_to_end(key)
            return True
    return False


def _passed(path: Path, limits: tuple) -> bool:
    """Whether this version of ``path`` passed a probe under ``limits`` already."""
    try:
        return _known((*_version(path), *limits))
    except OSError:
        return False


def _probe(path: Path, settings: Settings | None = None, limits: tuple | None = None) -> None:
    """``safe_probe`` under the settings' limits (or ``limits``), once per version of the
    file.

    Only a file that passed is remembered: a refused one is probed (and refused) again.
    """
    limits = tuple(limits) if limits is not None else limits_of(settings)
    try:
        key = (*_version(path), *limits)
    except OSError:
        key = None  # safe_probe says what is wrong with it
    if _known(key):
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


def _at(loc: str, e: MediaError) -> MediaError:
    """The same refusal (its type and code kept), naming the field."""
    return type(e)(f"{loc}: {e.message}", [{"loc": loc, "msg": e.message}])


def admit(config: dict[str, Any], plan: Plan, settings: Settings, owner: str,
          deferred: dict[str, dict[str, Any]] | None = None, quick: bool = False
          ) -> dict[str, Any]:
    """Admit every input of ``config`` (compiled as ``plan``) as its type says.

    Returns the config with admitted paths. Raises ConfigError (naming the field) or
    MediaError. With ``deferred`` (a dict), a media input whose verdict is not known yet
    is not probed here: ``deferred[name]`` gets what :func:`probe_input` needs, and the
    caller hands it to the controller. With ``quick``, :class:`Blocking` instead of a URL
    fetch; else blocking: call from a thread.
    """
    for name, dtype in plan.input_types.items():
        container, key, loc = _place(config, name)
        value, kind = container[key], get_type(dtype).literal
        if kind == "text":
            _check_size(len(value.encode()), loc, settings)
        elif kind in ("media", "file") and is_uri(value):
            _admit_uri(value, name, kind, loc, settings, deferred, quick)
        elif kind in ("media", "file"):
            if quick and urlsplit(value).scheme.lower() in ("http", "https"):
                raise Blocking(loc)
            path = _local_file(value, loc, settings, owner)
            if kind == "file":
                _check_size(path.stat().st_size, loc, settings)
            elif deferred is not None and not _passed(path, limits_of(settings)):
                deferred[name] = {"loc": loc, "limits": limits_of(settings)}
            else:
                try:
                    _probe(path, settings)
                except MediaError as e:
                    raise _at(loc, e) from None
            container[key] = str(path)
    return config


def _admit_uri(value: str, name: str, kind: str, loc: str, settings: Settings,
               deferred: dict[str, dict[str, Any]] | None, quick: bool) -> None:
    """A media URI: well formed and held by the cluster; as a file, not too large; as
    media, probed by the controller before use."""
    try:
        sha, _ = parse_uri(value)
    except ValueError as e:
        raise ConfigError.at(loc, str(e)) from None
    if kind == "file":  # the size is the media store's to tell
        if quick:
            raise Blocking(loc)
        import ray

        from yivideo.media.handle import get_store

        held = ray.get(get_store(settings.namespace).find.remote(sha))
        if held is None:
            raise ConfigError.at(loc, "no media with this hash is held by the cluster")
        _check_size(held.size, loc, settings)
        return
    if deferred is None:
        raise ConfigError.at(loc, "a media URI is accepted only where the controller "
                                  "probes it")
    deferred[name] = {"loc": loc, "limits": limits_of(settings)}


def passed_here(value: str, limits: tuple, storage_dir: Path) -> bool:
    """Whether this process already saw the media input ``value`` (a path or media URI)
    pass a probe under ``limits``: a few stats, no call, no probe."""
    from yivideo.media.handle import local_copy

    try:
        path = local_copy(value, storage_dir) if is_uri(value) else Path(value)
    except ValueError:  # not a media URI after all: the probe says what is wrong
        return False
    return path is not None and _passed(path, tuple(limits))


def probe_input(value: str, loc: str, limits: tuple, storage_dir: Path, namespace: str
                ) -> None:
    """Probe a media input admitted with its probe deferred (a path or media URI), as
    admission would have: MediaError naming ``loc`` if refused. Blocking."""
    from yivideo.media.handle import resolve

    try:
        path = resolve(value, storage_dir, namespace) if is_uri(value) else Path(value)
        _probe(path, limits=limits)
    except MediaError as e:
        raise _at(loc, e) from None
