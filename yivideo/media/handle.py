"""Media that any node of the cluster can read: bytes in Ray's object store, not a folder.

Nodes of a cluster need not share a filesystem, so a file given to a front door (a path
on the caller's machine, an upload, a fetched URL) is put into the object store in chunks
and named by a URI, ``yivideo-media:<sha256>/<name>``, that travels in the config like a
path. The chunks are owned by :class:`MediaStore`, a detached named actor on the head
node, so they outlive the process that read the file; it keeps admitted inputs for
``workflow_ttl_s`` after their last use.

Where a library needs a real file, a node materialises the media once into its own
cache folder keyed by content hash (``<storage_dir>/media/<sha256>/<name>``). On the node
the file came from, the original path is used as it is while its size and mtime are
unchanged, so one machine copies nothing. With ``media_cache_max_bytes``, the cache is
kept under that size: a cached file's mtime is its last use, and the least recently used
go first, never one a running stage holds (:func:`hold`, a shared ``flock``) nor one used
in the last :data:`EVICT_MIN_IDLE_S` (a stage may be about to open it).

A stage that makes a file another stage opens returns :meth:`MediaHandle.from_file`
(the service runtime does it for outputs of a media type given as a local path).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import ray

from yivideo.errors import MediaError

SCHEME = "yivideo-media:"
STORE = "media"
#: Bytes per object: a file is never read whole into memory to be put or written.
CHUNK = 64 * 1024 * 1024

_digests: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content, remembered while its size and mtime stay the same."""
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns)
    if memo not in _digests:
        with path.open("rb") as fh:
            _digests[memo] = hashlib.file_digest(fh, "sha256").hexdigest()
    return _digests[memo]


def _node_id() -> str:
    return ray.get_runtime_context().get_node_id()


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@dataclass(frozen=True)
class MediaHandle:
    """A file's content in the object store: its hash, name, size and chunk refs.

    ``origin`` is ``(node id, path, size, mtime_ns)`` of the file it was made from: on
    that node the file itself is used while it is unchanged.
    """

    sha256: str
    name: str
    size: int
    chunks: tuple[ray.ObjectRef, ...]
    origin: tuple[str, str, int, int] | None = None

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.sha256}/{self.name}"

    def __str__(self) -> str:  # what a JSON dump with default=str shows: content, no refs
        return self.uri

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None,
                  namespace: str | None = None, keep: bool = False) -> MediaHandle:
        """Put a local file into the object store, its chunks owned by the media store.

        ``keep``: the store holds the chunks (for ``workflow_ttl_s`` after their last
        use), and content it holds already is not put again: what a front door does with
        an admitted input. Without, the chunks live as long as the handle is referenced
        (a stage's outputs). Call from a driver or an actor (Ray connected).
        """
        path = Path(path).resolve()
        sha, (size, mtime) = file_digest(path), _stat(str(path)) or (0, 0)
        origin = (_node_id(), str(path), size, mtime)
        store = get_store(namespace) if keep else _running_store(namespace)
        if keep:
            known = ray.get(store.find.remote(sha))
            if known is not None:
                _held[sha] = time.monotonic()
                return replace(known, name=name or path.name, origin=origin)
        # the long-lived store puts each chunk itself, so that it owns them and they
        # outlive whoever read the file (Ray 2.56 removed ray.put's _owner)
        chunks = []
        with path.open("rb") as fh:
            while block := fh.read(CHUNK):
                data = np.frombuffer(block, np.uint8)
                chunks.append(store.adopt.remote(data) if store else ray.put(data))
        if store is not None:
            chunks = [inner for [inner] in ray.get(chunks)]
        handle = cls(sha, name or path.name, size, tuple(chunks), origin)
        if keep:
            ray.get(store.keep.remote(handle))  # the owner holds a ref before we may exit
            _held[sha] = time.monotonic()
        return handle

    def local_path(self, cache_dir: Path, max_bytes: int = 0) -> Path:
        """A local file with this content: the origin file on its node, else a copy
        written once per node under ``cache_dir/<sha256>/<name>`` (then, with
        ``max_bytes``, the cache's least recently used files are evicted down to that)."""
        if self.origin is not None:
            node, path, size, mtime = self.origin
            if node == _node_id() and _stat(path) == (size, mtime):
                return Path(path)
        target = cache_dir / self.sha256 / self.name
        if (_stat(str(target)) or (-1,))[0] == self.size:
            used(target)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{uuid.uuid4().hex}.part")
        try:
            with tmp.open("wb") as fh:
                for ref in self.chunks:  # one chunk in memory at a time (zero-copy view)
                    fh.write(ray.get(ref).data)
            tmp.replace(target)  # whole or not at all, whoever else writes it
        finally:
            tmp.unlink(missing_ok=True)
        evict(cache_dir, max_bytes)
        return target

    def __fspath__(self) -> str:
        """The media as a local file (materialised here if needed), for ``open(handle)``."""
        from yivideo.settings import get_settings

        settings = get_settings()
        return str(self.local_path(cache_dir(settings.storage_dir),
                                   settings.media_cache_max_bytes))


def cache_dir(storage_dir: Path) -> Path:
    """This node's media cache folder."""
    return Path(storage_dir) / "media"


def parse_uri(value: str) -> tuple[str, str]:
    """``(sha256, name)`` of a media URI, or ValueError."""
    sha, sep, name = value[len(SCHEME):].partition("/")
    if not value.startswith(SCHEME) or not sep or len(sha) != 64 or not name:
        raise ValueError(f"not a media URI: {value!r}")
    return sha, name


def is_uri(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SCHEME)


#: A cached file used this recently is never evicted: a stage may have asked for it and
#: not yet opened (and so held) it.
EVICT_MIN_IDLE_S = 60.0


def used(path: Path) -> None:
    """Mark a cached file as used now: its mtime is its last use."""
    with contextlib.suppress(OSError):
        os.utime(path)


@contextlib.contextmanager
def hold(paths: list[str]) -> Iterator[None]:
    """Hold files while a stage runs: a shared ``flock`` on each, which :func:`evict`
    (in any process of the node) respects. Paths that are gone are skipped."""
    fds = []
    try:
        for path in paths:
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_RDONLY)
                fds.append(fd)
                fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        for fd in fds:
            os.close(fd)


def evict(cache: Path, max_bytes: int) -> list[Path]:
    """Delete the least recently used files of a node's media cache until it holds at
    most ``max_bytes`` (0: no cap); never a file held (:func:`hold`) or used in the last
    :data:`EVICT_MIN_IDLE_S`. Returns the files deleted."""
    if max_bytes <= 0:
        return []
    files, total = [], 0
    with contextlib.suppress(FileNotFoundError), os.scandir(cache) as folders:
        for folder in folders:
            if not folder.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(folder.path):  # ".<id>.part": being written, not counted
                if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    files.append((st.st_mtime, st.st_size, entry.path))
                    total += st.st_size
    removed: list[Path] = []
    cutoff = time.time() - EVICT_MIN_IDLE_S
    for mtime, size, path in sorted(files):
        if total <= max_bytes:
            break
        if mtime <= cutoff and _remove_unheld(path):
            total -= size
            removed.append(Path(path))
    return removed


def _remove_unheld(path: str) -> bool:
    """Delete ``path`` unless a stage holds it (checked under an exclusive lock)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held
        os.close(fd)
        return False
    try:
        os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))  # the content's folder, once empty
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def resolve(value: str | MediaHandle, storage_dir: Path, namespace: str,
            max_bytes: int = 0) -> Path:
    """A media URI or handle as a local file on this node (``max_bytes``: the cap of its
    media cache, see :func:`evict`)."""
    if isinstance(value, MediaHandle):
        return value.local_path(cache_dir(storage_dir), max_bytes)
    sha, name = parse_uri(value)
    cached = cache_dir(storage_dir) / sha / name
    if cached.is_file():
        used(cached)
        return cached  # materialised here before: no call at all
    origin = _origins.get(sha)
    if origin is not None and _stat(origin[1]) == origin[2:]:
        return Path(origin[1])  # this node's own file, seen before: no call either
    store = _running_store(namespace)
    handle = ray.get(store.find.remote(sha)) if store is not None else None
    if handle is None:
        raise MediaError(f"the input media {name} is no longer held by the cluster "
                         "(it expired or the cluster restarted); submit it again")
    path = replace(handle, name=name).local_path(cache_dir(storage_dir), max_bytes)
    if handle.origin is not None and str(path) == handle.origin[1]:
        _origins[sha] = handle.origin  # facts only: holding the refs would pin the bytes
    return path


def local_copy(value: str, storage_dir: Path) -> Path | None:
    """The file of a media URI this node has without asking anyone (its cache, or its
    own file seen before), else None."""
    sha, name = parse_uri(value)
    cached = cache_dir(storage_dir) / sha / name
    if cached.is_file():
        return cached
    origin = _origins.get(sha)
    return Path(origin[1]) if origin is not None and _stat(origin[1]) == origin[2:] else None


#: sha256 -> origin of media found to be a file of this node (no object refs kept)
_origins: dict[str, tuple[str, str, int, int]] = {}


class MediaStore:
    """Named actor ``media``: owns the chunks of admitted inputs, by content hash."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.items: dict[str, tuple[MediaHandle, float]] = {}

    def adopt(self, chunk: np.ndarray) -> list[ray.ObjectRef]:
        """The chunk put again by this actor, which then owns it (in a list, so that Ray
        hands back the ref rather than the value)."""
        return [ray.put(chunk)]

    def keep(self, handle: MediaHandle) -> None:
        self._expire()
        if handle.sha256 not in self.items:
            self.items[handle.sha256] = (handle, time.time())

    def find(self, sha: str) -> MediaHandle | None:
        """The handle of that content (its last use renewed), or None."""
        self._expire()
        item = self.items.get(sha)
        if item is None:
            return None
        self.items[sha] = (item[0], time.time())
        return item[0]

    def stats(self) -> dict[str, int]:
        return {"items": len(self.items), "bytes": sum(h.size for h, _ in self.items.values())}

    def _expire(self) -> None:
        old = time.time() - self.ttl_s
        for sha in [s for s, (_, used) in self.items.items() if used < old]:
            del self.items[sha]


def get_store(namespace: str, ttl_s: float | None = None) -> ray.actor.ActorHandle:
    """The media store, created on first use on the head node (detached, no CPU)."""
    found = _running_store(namespace)
    if found is not None:
        return found
    if ttl_s is None:
        from yivideo.settings import get_settings

        ttl_s = get_settings().workflow_ttl_s
    return ray.remote(MediaStore).options(
        name=STORE, namespace=namespace, get_if_exists=True, lifetime="detached",
        num_cpus=0, max_restarts=-1, resources={"node:__internal_head__": 0.001},
    ).remote(ttl_s)


def _running_store(namespace: str | None = None) -> ray.actor.ActorHandle | None:
    try:
        return ray.get_actor(STORE, namespace=namespace)
    except ValueError:
        return None


def _place(config: dict[str, Any], name: str) -> tuple[dict[str, Any], str]:
    """(container, key) where the workflow input ``name`` was written."""
    if "workflow_config" in config and name == "video" and "video_path" in config:
        return config, "video_path"
    return config["inputs"], name


class Blocking(Exception):  # noqa: N818 - a signal, not an error a caller sees
    """The work asked for would block (a file to hash, a call to wait for)."""


#: sha256 -> when (monotonic) the media store last said it holds that content
_held: dict[str, float] = {}
#: How long such an answer is trusted: the store keeps content ``workflow_ttl_s`` after
#: its last use, so a front door that asks again this often keeps it held, and the same
#: file submitted again within this time costs no call at all.
HELD_TRUST_S = 60.0


def _known_digest(path: str) -> str | None:
    """The SHA-256 :func:`file_digest` remembers for this version of ``path``, or None."""
    st = _stat(path)
    return None if st is None else _digests.get((path, *st))


def inputs_to_handles(config: dict[str, Any], input_types: dict[str, str],
                      namespace: str, quick: bool = False,
                      trust_s: float = HELD_TRUST_S) -> dict[str, Any]:
    """``config`` with each local file it names as a media or file input replaced by a
    media URI (its content put into the object store, held by the media store).

    ``input_types`` is the compiled plan's. URLs and paths that name no file here stay
    as they are (a stage reads or reports them). A file whose content the store said it
    holds less than ``trust_s`` ago becomes its URI with no call. Blocking, unless
    ``quick``: then :class:`Blocking` where it would block (call again from a thread).
    """
    from yivideo.datatypes import file_types

    for name, dtype in input_types.items():
        container, key = _place(config, name)
        value = container.get(key)
        if dtype in file_types() and isinstance(value, str) and not is_uri(value) \
                and "://" not in value and os.path.isfile(value):
            path = str(Path(value).resolve())
            sha = _known_digest(path)
            if sha is not None and time.monotonic() - _held.get(sha, -math.inf) < trust_s:
                container[key] = f"{SCHEME}{sha}/{Path(path).name}"
                continue
            if quick:
                raise Blocking(name)
            container[key] = MediaHandle.from_file(path, namespace=namespace, keep=True).uri
    return config
