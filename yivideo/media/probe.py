"""File checks and ffprobe: what a media file holds, or a :class:`MediaError` saying why not."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import ffmpeg

from yivideo.errors import MediaError


def check_file(path: str | Path) -> Path:
    """The path, if it names a non-empty regular file; else :class:`MediaError`."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"file not found: {p}")
    if not p.is_file():
        raise MediaError(f"not a regular file: {p}")
    if p.stat().st_size == 0:
        raise MediaError(f"empty file: {p}")
    return p


def _reason(err: ffmpeg.Error) -> str:
    lines = [ln for ln in (err.stderr or b"").decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "ffmpeg failed"


def probe(path: str | Path) -> dict[str, Any]:
    """Container and stream facts: duration, video size and rate, audio rate and channels.

    Remembered per file version (device, inode, size, modification time) for the process's
    last 256 files: workflows on one video probe it once, not once per stage.
    """
    p = check_file(path)
    st = p.stat()
    return copy.deepcopy(_probe(str(p), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))


@lru_cache(maxsize=256)
def _probe(path: str, dev: int, ino: int, size: int, mtime_ns: int) -> dict[str, Any]:
    """:func:`probe` of one file version (the stat fields are the cache key only)."""
    p = Path(path)
    try:
        info = ffmpeg.probe(str(p))
    except ffmpeg.Error as e:
        raise MediaError(f"not a readable media file: {p} ({_reason(e)})") from None
    fmt = info.get("format", {})
    video = next((s for s in info["streams"] if s.get("codec_type") == "video"), None)
    audio = next((s for s in info["streams"] if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise MediaError(f"no audio or video stream in {p}")
    result: dict[str, Any] = {
        "path": str(p),
        "format": fmt.get("format_name"),
        "duration": float(fmt.get("duration") or 0.0),
        "size_bytes": int(fmt.get("size") or p.stat().st_size),
        "video": None,
        "audio": None,
    }
    if video is not None:
        num, _, den = str(video.get("avg_frame_rate", "0/1")).partition("/")
        fps = float(num) / float(den) if den and float(den) else 0.0
        result["video"] = {
            "codec": video.get("codec_name"),
            "width": int(video.get("width", 0)),
            "height": int(video.get("height", 0)),
            "fps": round(fps, 3),
        }
    if audio is not None:
        result["audio"] = {
            "codec": audio.get("codec_name"),
            "sample_rate": int(audio.get("sample_rate", 0)),
            "channels": int(audio.get("channels", 0)),
        }
    return result
