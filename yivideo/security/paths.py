"""Confine a requested input path to the configured input roots.

A request names a file by path; only files that really lie (after resolving every
symlink) inside one of the roots are accepted. Suspicious spellings are refused before
touching the file system rather than normalised: ``..`` segments, NUL and control
characters, percent-encoding (``%2e%2e``), backslashes and ``~``.

The returned path is the resolved real path; open that one, not the request string.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from yivideo.errors import ConfigError

__all__ = ["confine"]

MAX_PATH_CHARS = 4096
MAX_NAME_BYTES = 255
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _refuse_spelling(path: str, loc: str) -> None:
    if not isinstance(path, str) or not path.strip():
        raise ConfigError.at(loc, "empty path")
    if "\x00" in path:
        raise ConfigError.at(loc, "NUL byte in path")
    if _CONTROL.search(path):
        raise ConfigError.at(loc, "control character in path")
    if len(path) > MAX_PATH_CHARS:
        raise ConfigError.at(loc, f"path longer than {MAX_PATH_CHARS} characters")
    if _PERCENT.search(path):
        raise ConfigError.at(loc, "percent-encoded characters are not accepted in paths")
    if "\\" in path:
        raise ConfigError.at(loc, "backslash in path")
    if path.startswith("~"):
        raise ConfigError.at(loc, "'~' is not expanded; give a path inside an input root")
    parts = path.split("/")
    if ".." in parts:
        raise ConfigError.at(loc, "'..' is not allowed in paths")
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for p in parts):
        raise ConfigError.at(loc, f"a path component is longer than {MAX_NAME_BYTES} bytes")


def _inside(p: Path, root: Path) -> bool:
    return p == root or p.is_relative_to(root)


def confine(
    path: str, roots: Sequence[Path | str], loc: str = "path", must_exist: bool = True
) -> Path:
    """The real path of ``path`` if it lies inside one of ``roots``, else ConfigError at ``loc``.

    A relative path is looked up under each root in order (the first that has it wins);
    an absolute path must lie inside a root. With ``must_exist`` it must be a regular file.
    """
    _refuse_spelling(path, loc)
    real_roots = [Path(os.path.realpath(r)) for r in roots if str(r).strip()]
    if not real_roots:
        raise ConfigError.at(loc, "no input roots are configured; local paths are not accepted")
    candidates = [Path(path)] if os.path.isabs(path) else [r / path for r in real_roots]
    escaped = False
    for cand in candidates:
        try:
            real = Path(os.path.realpath(cand))
        except (OSError, ValueError):
            raise ConfigError.at(loc, "path cannot be resolved") from None
        root = next((r for r in real_roots if _inside(real, r)), None)
        if root is None:
            escaped = True
            continue
        if not must_exist:
            return real
        try:
            st = os.stat(real)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ConfigError.at(loc, f"cannot read path ({e.strerror})") from None
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError.at(loc, "not a regular file")
        return real
    if escaped:
        raise ConfigError.at(loc, "path is outside the input roots")
    raise ConfigError.at(loc, "no such file in the input roots")
