"""Probe untrusted media without letting it pull in other files or URLs.

Some inputs that ffmpeg happily opens are really pointers: an HLS playlist (``.m3u8``),
a concat list or a DASH manifest names other files or URLs, which ffmpeg then reads on
the caller's behalf. :func:`safe_probe` refuses them in three layers:

* the first bytes are sniffed for playlist / concat / manifest markers;
* ffprobe runs with ``-protocol_whitelist file`` (no network, no nested protocols) and
  ``-format_whitelist`` of plain single-file containers; the format is never forced, so
  a renamed playlist is still detected as one and refused;
* the detected format name is checked again after probing.

Limits on duration and picture size are optional and refused with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from yivideo.errors import MediaError
from yivideo.media import check_file

__all__ = ["ALLOWED_FORMATS", "REFUSED_FORMATS", "safe_probe"]

#: demuxers that read one self-contained file
ALLOWED_FORMATS: tuple[str, ...] = (
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "flv",
    "mpegts", "mpeg", "asf", "ogg", "wav", "w64", "mp3", "flac", "aac",
)  # fmt: skip
#: demuxers that reference other inputs, or are not media at all
REFUSED_FORMATS = frozenset(
    {"hls", "applehttp", "concat", "dash", "webm_dash_manifest", "ffmetadata", "sdp", "rtsp",
     "rtp", "tty", "lavfi", "image2", "image2pipe", "data", "bin", "mpjpeg", "subviewer"}
)  # fmt: skip
_LEADING: tuple[tuple[bytes, str], ...] = (
    (b"#EXTM3U", "an M3U/HLS playlist"),
    (b"ffconcat", "an ffmpeg concat list"),
)
_ANYWHERE: tuple[tuple[bytes, str], ...] = (
    (b"#EXT-X-", "an HLS playlist"),
    (b"<MPD", "a DASH manifest"),
)
SNIFF_BYTES = 4096


def _check_file(path: str | Path) -> Path:
    return check_file(path).resolve()


def _sniff(p: Path) -> None:
    with open(p, "rb") as f:
        head = f.read(SNIFF_BYTES)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    found = [w for m, w in _LEADING if text.startswith(m)] + [w for m, w in _ANYWHERE if m in head]
    if found:
        raise MediaError(f"refused {p.name}: it is {found[0]}, which references other inputs")


def _reason(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if any("not on whitelist" in ln for ln in lines):
        return "format not allowed (a playlist, a reference list or an unsupported container)"
    return lines[-1] if lines else "ffprobe failed"


def _run_ffprobe(p: Path, formats: Sequence[str], timeout_s: float) -> dict[str, Any]:
    exe = shutil.which("ffprobe")
    if exe is None:
        raise MediaError("ffprobe is not installed")
    cmd = [
        exe, "-v", "error", "-hide_banner",
        "-protocol_whitelist", "file",
        "-format_whitelist", ",".join(formats),
        "-of", "json", "-show_format", "-show_streams",
        "-i", f"file:{p}",
    ]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(f"probing {p.name} took longer than {timeout_s:g}s") from None
    if done.returncode != 0:
        reason = _reason(done.stderr.decode(errors="replace"))
        raise MediaError(f"not a readable media file: {p.name} ({reason})")
    try:
        return json.loads(done.stdout or b"{}")
    except json.JSONDecodeError:
        raise MediaError(f"ffprobe gave unreadable output for {p.name}") from None


def _fps(rate: Any) -> float:
    num, _, den = str(rate or "0/1").partition("/")
    try:
        return round(float(num) / float(den), 3) if den and float(den) else 0.0
    except ValueError:
        return 0.0


def safe_probe(
    path: str | Path,
    *,
    max_duration_s: float | None = None,
    max_width: int | None = None,
    max_height: int | None = None,
    allowed_formats: Sequence[str] = ALLOWED_FORMATS,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Facts like :func:`yivideo.media.probe` for a plain local media file, or MediaError."""
    p = _check_file(path)
    _sniff(p)
    info = _run_ffprobe(p, allowed_formats, timeout_s)
    fmt = info.get("format") or {}
    names = set(str(fmt.get("format_name", "")).split(",")) - {""}
    if not names or names & REFUSED_FORMATS or not names & set(allowed_formats):
        raise MediaError(f"refused {p.name}: format '{fmt.get('format_name')}' is not allowed")
    streams = info.get("streams") or []
    videos = [
        s for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]  # fmt: skip
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    if not videos and not audios:
        raise MediaError(f"no audio or video stream in {p.name}")
    try:
        duration = float(fmt["duration"]) if fmt.get("duration") not in (None, "N/A") else None
    except (TypeError, ValueError):
        duration = None
    if max_duration_s is not None:
        if duration is None:
            raise MediaError(f"refused {p.name}: its duration is unknown")
        if duration > max_duration_s:
            raise MediaError(
                f"refused {p.name}: duration {duration:.1f}s is over the limit of "
                f"{max_duration_s:g}s"
            )
    for s in videos:
        w, h = int(s.get("width") or 0), int(s.get("height") or 0)
        if max_width is not None and w > max_width:
            raise MediaError(f"refused {p.name}: width {w} is over the limit of {max_width}")
        if max_height is not None and h > max_height:
            raise MediaError(f"refused {p.name}: height {h} is over the limit of {max_height}")
    video, audio = (videos or [None])[0], (audios or [None])[0]
    return {
        "path": str(p),
        "format": fmt.get("format_name"),
        "duration": duration or 0.0,
        "size_bytes": int(fmt.get("size") or p.stat().st_size),
        "video": None if video is None else {
            "codec": video.get("codec_name"),
            "width": int(video.get("width") or 0),
            "height": int(video.get("height") or 0),
            "fps": _fps(video.get("avg_frame_rate")),
        },
        "audio": None if audio is None else {
            "codec": audio.get("codec_name"),
            "sample_rate": int(audio.get("sample_rate") or 0),
            "channels": int(audio.get("channels") or 0),
        },
    }  # fmt: skip
