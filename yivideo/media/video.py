"""Video frames: sampled RGB frames through ffmpeg, and frame-exact grey bands through PyAV.

PyAV is imported inside the functions that use it, so importing the media layer stays fast.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yivideo.errors import MediaError
from yivideo.media.probe import check_file, probe
from yivideo.types import Frames

if TYPE_CHECKING:
    import av.container

_YUV_PREFIXES = ("yuv", "yuvj", "nv12", "nv21", "gray")


# ---------------------------------------------------------------- ffmpeg


def _video_size(info: dict[str, Any], width: int | None) -> tuple[int, int]:
    if info["video"] is None:
        raise MediaError(f"no video stream in {info['path']}")
    w, h = info["video"]["width"], info["video"]["height"]
    if width and width < w:
        h = max(2, round(h * width / w / 2) * 2)
        w = width
    return w, h


def _read_frames(args: list[str], w: int, h: int, path: str) -> np.ndarray:
    proc = subprocess.run(args, capture_output=True)
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(f"cannot decode frames of {path}: {reason[-1] if reason else '?'}")
    return np.frombuffer(proc.stdout, np.uint8).reshape(-1, h, w, 3)


def extract_frames(path: str | Path, fps: float = 1.0, width: int | None = None) -> Frames:
    """Frames sampled at ``fps`` (RGB), optionally scaled down to ``width``."""
    info = probe(path)
    w, h = _video_size(info, width)
    vf = f"fps={fps},scale={w}:{h}"
    args = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vf", vf,
            "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
    images = _read_frames(args, w, h, str(path))
    # the fps filter puts frame k at k/fps (first frame at 0)
    return Frames(images=images, timestamps=np.arange(len(images)) / fps)


def keyframes(path: str | Path, width: int | None = None) -> Frames:
    """The key (I) frames of the video with their presentation times."""
    info = probe(path)
    w, h = _video_size(info, width)
    try:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey",
             "-show_entries", "frame=pts_time", "-of", "json", str(path)],
            capture_output=True, check=True,
        ).stdout
    except subprocess.CalledProcessError as e:
        raise MediaError(f"cannot read key frames of {path}: {e.stderr.decode()[-200:]}") from None
    times = [float(f["pts_time"]) for f in json.loads(out).get("frames", []) if "pts_time" in f]
    args = ["ffmpeg", "-nostdin", "-v", "error", "-skip_frame", "nokey", "-i", str(path),
            "-vf", f"scale={w}:{h}", "-fps_mode", "passthrough",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
    images = _read_frames(args, w, h, str(path))
    n = min(len(images), len(times))
    return Frames(images=images[:n], timestamps=np.asarray(times[:n]))


# ---------------------------------------------------------------- PyAV


@dataclass(frozen=True)
class Band:
    """A rectangle of the frame, in pixels: rows y0..y1 and columns x0..x1 (ends excluded)."""

    y0: int
    y1: int
    x0: int
    x1: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def clip(self, width: int, height: int) -> Band:
        """The band inside a ``width`` x ``height`` frame; even rows for YUV 4:2:0 safety."""
        y0, y1 = max(0, min(self.y0, height - 1)), max(1, min(self.y1, height))
        x0, x1 = max(0, min(self.x0, width - 1)), max(1, min(self.x1, width))
        if y1 <= y0 or x1 <= x0:
            raise ValueError(f"empty band {self} in a {width}x{height} frame")
        return Band(y0, y1, x0, x1)


def open_video(path: str | Path) -> av.container.InputContainer:
    """A PyAV container with at least one video stream; else :class:`MediaError`."""
    import av

    p = check_file(path)
    try:
        container = av.open(str(p))
    except (av.FFmpegError, UnicodeDecodeError) as e:
        raise MediaError(f"not a readable media file: {p} ({e})") from None
    if not container.streams.video:
        container.close()
        raise MediaError(f"no video stream in {p}")
    return container


def video_info(path: str | Path) -> dict[str, Any]:
    """Width, height, duration (s) and average frame rate of the first video stream."""
    with open_video(path) as container:
        stream = container.streams.video[0]
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        rate = stream.average_rate or stream.guessed_rate
        return {
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "duration": duration,
            "fps": float(rate) if rate else 0.0,
        }


def _frame_time(frame: Any, index: int, fps: float) -> float:
    if frame.time is not None:
        return float(frame.time)
    return index / fps if fps else float(index)


def _grey_rows(frame: Any, band: Band) -> np.ndarray:
    """The band of ``frame`` in grey: a copy of the Y plane's rows where the format is YUV."""
    if frame.format.name.startswith(_YUV_PREFIXES):
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        return rows[band.y0 : band.y1, band.x0 : band.x1].copy()
    grey = frame.to_ndarray(format="gray")
    return grey[band.y0 : band.y1, band.x0 : band.x1].copy()


def iter_band_frames(
    path: str | Path, band: Band | None = None, start: float = 0.0
) -> Iterator[tuple[float, np.ndarray]]:
    """(time in seconds, grey band) for every decoded frame from ``start`` s on (reached by
    seeking to the key frame before it); ``None`` is the whole frame."""
    import av

    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: decoding is most of the cost
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        ctx = stream.codec_context
        area = (band or Band(0, ctx.height, 0, ctx.width)).clip(ctx.width, ctx.height)
        try:
            if start > 0 and stream.time_base is not None:
                container.seek(int(start / stream.time_base), stream=stream)
            for index, frame in enumerate(container.decode(stream)):
                t = _frame_time(frame, index, fps)
                if t + 1e-6 >= start:
                    yield t, _grey_rows(frame, area)
        except av.FFmpegError as e:
            raise MediaError(f"cannot decode frames of {path}: {e}") from None


def key_frame_times(path: str | Path) -> list[float]:
    """The times (s) of the video's key frames, where decoding can start (nearly free: only
    the key frames are decoded)."""
    import av

    try:
        with open_video(path) as container:
            return list(_key_frames(container, None, video_info(path)["fps"]))
    except av.FFmpegError as e:
        raise MediaError(f"cannot decode frames of {path}: {e}") from None


def _key_frames(container: Any, times: list[float] | None, fps: float) -> Any:
    """Decode only the key frames: their times, or (time, BGR) for those in ``times``."""
    stream = container.streams.video[0]
    stream.codec_context.skip_frame = "NONKEY"
    wanted = set(times or ())
    for index, frame in enumerate(container.decode(stream)):
        t = _frame_time(frame, index, fps)
        if times is None:
            yield t
        elif t in wanted:
            yield t, frame.to_ndarray(format="bgr24")


def sample_frames(path: str | Path, count: int) -> list[tuple[float, np.ndarray]]:
    """About ``count`` BGR frames spread evenly over the video, with their times.

    Key frames are used when there are enough of them: decoding only those is nearly free.
    Otherwise short videos are decoded straight through, and long ones reach each sample
    by seeking to the key frame before it, so the cost does not grow with the length.
    """
    import av

    info = video_info(path)
    duration, fps = info["duration"], info["fps"]
    if count <= 0:
        return []
    targets = [(i + 0.5) * duration / count for i in range(count)] if duration > 0 else [0.0]
    out: list[tuple[float, np.ndarray]] = []
    try:
        with open_video(path) as container:
            keys = list(_key_frames(container, None, fps))
        if len(keys) >= count:
            # The key frame nearest each target, each used once.
            chosen = sorted({min(keys, key=lambda k, t=t: abs(k - t)) for t in targets})
            with open_video(path) as container:
                return list(_key_frames(container, chosen, fps))
        with open_video(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if duration / count < 20 or stream.time_base is None:
                pending = iter(targets)
                target = next(pending, None)
                for index, frame in enumerate(container.decode(stream)):
                    if target is None:
                        break
                    t = _frame_time(frame, index, fps)
                    if t + 1e-6 >= target:
                        out.append((t, frame.to_ndarray(format="bgr24")))
                        while target is not None and target <= t + 1e-6:
                            target = next(pending, None)
            else:
                for target in targets:
                    container.seek(int(target / stream.time_base), stream=stream)
                    for index, frame in enumerate(container.decode(stream)):
                        t = _frame_time(frame, index, fps)
                        if t + 1e-6 >= target:
                            out.append((t, frame.to_ndarray(format="bgr24")))
                            break
    except av.FFmpegError as e:
        raise MediaError(f"cannot decode frames of {path}: {e}") from None
    return out
