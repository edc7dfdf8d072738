"""The files a workflow's stages write, in ``<root>/<id>/`` beside its saved state.

A workflow's state lists its artifacts (``{name, stage, size}``); only listed names are
read back, so a request can never name another file of the folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from yivideo.errors import NotFound


class ArtifactStore:
    """One folder per workflow under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, wid: str, stage: str, artifacts: dict[str, bytes],
              listing: list[dict[str, Any]]) -> None:
        """Write ``stage``'s artifacts and list them in ``listing`` (the state's)."""
        if not artifacts:
            return
        folder = self.root / wid
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in artifacts.items():
            tmp = folder / f".{name}.tmp"
            tmp.write_bytes(data)
            tmp.replace(folder / name)  # a re-run replaces, never half-writes
            listing[:] = [a for a in listing if a["name"] != name]
            listing.append({"name": name, "stage": stage, "size": len(data)})

    def read(self, wid: str, name: str, listing: list[dict[str, Any]]) -> bytes:
        """The content of a listed artifact, or NotFound."""
        if name not in {a["name"] for a in listing}:
            raise NotFound(f"workflow {wid} has no artifact '{name}'")
        return (self.root / wid / name).read_bytes()

    def remove(self, wid: str) -> None:
        """Remove the workflow's folder (its saved state too)."""
        shutil.rmtree(self.root / wid, ignore_errors=True)
