"""Burnt-in subtitle removal: mask the text in the subtitle band per frame and inpaint it.

Plain functions, no Ray. Every frame is decoded once (PyAV) and worked on in its own
YUV 4:2:0 planes, so pixels outside the mask, and all of them outside subtitle events,
go to the encoder exactly as decoded. Inside an event the mask is the band's text mask
(:func:`yivideo.hardsub.text_mask`, light glyphs next to their dark outline), grown to
cover outline, shadow and anti-aliasing, recomputed on every frame so it follows the
text. Masked pixels take, where ``temporal`` allows, the background seen there in a
recent frame, and are otherwise inpainted spatially (OpenCV Telea/NS or PatchMatch).
The video is re-encoded with libx264 at the same timestamps; audio packets are copied.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from yivideo.errors import MediaError
from yivideo.hardsub.signature import text_mask
from yivideo.media import Band, open_video

Method = Literal["telea", "ns", "patchmatch", "onnx"]
METHODS: tuple[str, ...] = ("telea", "ns", "patchmatch", "onnx")
#: The default fill: Navier-Stokes at radius 2 costs about 60 % of Telea at radius 3 per
#: 720p frame and scores higher on the bench (bench/results/inpaint.md).
DEFAULT_METHOD: Method = "ns"
DEFAULT_RADIUS = 2
#: A learned inpainter (:mod:`yivideo.inpaint_models`): BGR band and mask (255: hole) in,
#: the filled BGR band out.
BgrInpainter = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: A progress callback: fraction in [0, 1] and a message.
Progress = Callable[[float, str], None]


def auto_grow(height: int) -> int:
    """Pixels the text mask grows by for a frame ``height`` rows tall.

    Subtitles are drawn with an outline of about 2.5 px at 720p (libass defaults scale
    with the frame), plus a pixel or two of anti-aliasing on either side.
    """
    return max(2, round(2 + 4 * height / 720))


def subtitle_mask(grey: np.ndarray, grow: int) -> np.ndarray:
    """255 where subtitle text, its outline or shadow is in ``grey`` (a band), else 0."""
    mask = text_mask(grey).astype(np.uint8) * 255
    if grow > 0 and mask.any():
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        mask = cv2.dilate(mask, kernel)
    return mask


def inpaint(bgr: np.ndarray, mask: np.ndarray, method: Method, radius: int = 3) -> np.ndarray:
    """``bgr`` with its masked (255) pixels filled from their surroundings."""
    if method == "patchmatch":
        from patchmatch import patch_match

        # PatchMatch takes RGB; it copies whole patches, so flat areas stay flat.
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        out = patch_match.inpaint(rgb, mask=mask, patch_size=5)
        return cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_RGB2BGR)
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    return cv2.inpaint(bgr, mask, radius, flag)


def inpaint_i420(i420: np.ndarray, mask: np.ndarray, method: Method, radius: int = 3,
                 model: BgrInpainter | None = None) -> np.ndarray:  # fmt: skip
    """An I420 band (``(h * 3 / 2, w)``) with its masked pixels filled; a new array.

    OpenCV's methods fill the planes as they are: luma at full size, the two chroma planes
    together at half size (where any of their 2x2 pixels is masked) with half the radius,
    the same reach in the picture. That is about half the work of filling a BGR image and
    needs no colour conversion. PatchMatch and models fill a BGR image.
    """
    h, w = mask.shape
    if method in ("telea", "ns"):
        flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
        out = np.empty_like(i420)
        out[:h] = cv2.inpaint(np.ascontiguousarray(i420[:h]), mask, radius, flag)
        chroma, half = i420[h:].reshape(2, h // 2, w // 2), _half(mask)
        # cv2.inpaint takes one or three channels: U, V and U again.
        uvu = cv2.inpaint(cv2.merge([chroma[0], chroma[1], chroma[0]]), half,
                          max(1, (radius + 1) // 2), flag)
        filled = out[h:].reshape(2, h // 2, w // 2)
        filled[0], filled[1] = uvu[..., 0], uvu[..., 1]
        return out
    bgr = cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
    done = model(bgr, mask) if method == "onnx" and model is not None else inpaint(
        bgr, mask, method, radius)
    return cv2.cvtColor(done, cv2.COLOR_BGR2YUV_I420)


def even_band(band: Band, width: int, height: int) -> Band:
    """``band`` inside the frame, widened to even edges so it maps onto 4:2:0 chroma."""
    b = band.clip(width, height)
    return Band(b.y0 // 2 * 2, min(height, (b.y1 + 1) // 2 * 2),
                b.x0 // 2 * 2, min(width, (b.x1 + 1) // 2 * 2))


def in_windows(t: float, windows: list[tuple[float, float]]) -> bool:
    """Whether time ``t`` falls in one of the (start, end) ``windows``."""
    return any(start <= t < end for start, end in windows)


def event_windows(spans: list[tuple[float, float]], pad: float) -> list[tuple[float, float]]:
    """Subtitle event spans widened by ``pad`` seconds on each side, overlaps merged."""
    out: list[tuple[float, float]] = []
    for start, end in sorted((max(0.0, s - pad), e + pad) for s, e in spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


@dataclass
class Planes:
    """A 4:2:0 frame as one I420 array and views of its Y, U and V planes."""

    data: np.ndarray  # (h * 3 / 2, w), as PyAV's to_ndarray/from_ndarray use it
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @classmethod
    def of(cls, frame: Any) -> Planes:
        """The frame's pixels as yuv420p (a copy; other formats are converted)."""
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        data = frame.to_ndarray()
        h, w = frame.height, frame.width
        flat, n = data.reshape(-1), h * w
        return cls(data, flat[:n].reshape(h, w), flat[n : n + n // 4].reshape(h // 2, w // 2),
                   flat[n + n // 4 :].reshape(h // 2, w // 2))


class BandCleaner:
    """Removes subtitle text from the band of successive frames (keeps temporal state).

    :meth:`prepare` works through the frames in order (masks, temporal fill); the spatial
    fill it returns is independent of every other frame, so several may run at once.
    """

    def __init__(self, band: Band, method: Method = "telea", grow: int = 4,
                 temporal: int = 0, radius: int = 3,
                 model: BgrInpainter | None = None) -> None:  # fmt: skip
        """``temporal``: how many frames back a background pixel may be taken from (0: off);
        ``model``: the learned inpainter that the ``onnx`` method runs."""
        if method not in METHODS:
            raise ValueError(f"unknown inpainting method {method!r} (known: {METHODS})")
        if method == "onnx" and model is None:
            raise ValueError("the onnx inpainting method needs a model")
        self.band, self.method, self.grow = band, method, grow
        self.temporal, self.radius, self.model = temporal, radius, model
        h, w = band.y1 - band.y0, band.x1 - band.x0
        self._last: np.ndarray | None = None  # band as I420 crop, last clean value per pixel
        self._age = np.full((h, w), np.iinfo(np.int32).max // 2, np.int32)

    def _crop(self, p: Planes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        b = self.band
        return (p.y[b.y0 : b.y1, b.x0 : b.x1], p.u[b.y0 // 2 : b.y1 // 2, b.x0 // 2 : b.x1 // 2],
                p.v[b.y0 // 2 : b.y1 // 2, b.x0 // 2 : b.x1 // 2])

    def _remember(self, crops: tuple[np.ndarray, ...], mask: np.ndarray | None) -> None:
        """Keep the band's unmasked pixels as the latest background seen there."""
        if not self.temporal:
            return
        i420 = _i420(*crops)
        if self._last is None:
            self._last = i420
        if mask is None:
            self._last[:] = i420
            self._age[:] = 0
            return
        # chroma only where none of its 2x2 pixels is masked: the text colours the rest
        clear = ~_i420_mask(mask > 0)
        self._last[clear] = i420[clear]
        self._age[mask == 0] = 0
        self._age[mask > 0] += 1

    def prepare(self, p: Planes, active: bool) -> Fill | None:
        """The mask of ``p``'s band and what fills it (None: nothing to erase).

        Call it for every frame in order; temporal fill is applied here.
        """
        crops = self._crop(p)
        # With temporal fill the text is masked in every frame, so that text shown outside
        # the event windows is never remembered as background.
        mask = subtitle_mask(crops[0], self.grow) if active or self.temporal else None
        if mask is not None and not mask.any():
            mask = None
        self._remember(crops, mask)
        if mask is None or not active:
            return None
        i420 = _i420(*crops)
        hole = mask
        if self.temporal and self._last is not None:
            # Background seen in a recent frame where the text is now: use it as is.
            recent = (mask > 0) & (self._age <= self.temporal)
            rows = _i420_mask(recent)
            i420[rows] = self._last[rows]
            hole = np.where(recent, 0, mask).astype(np.uint8)
        return Fill(self, crops, i420, mask, hole)

    def clean(self, p: Planes, active: bool) -> np.ndarray | None:
        """Erase the text in ``p``'s band in place when ``active``; the mask (or None)."""
        fill = self.prepare(p, active)
        return fill.run() if fill is not None else None


@dataclass
class Fill:
    """The spatial fill of one frame's band, written into its planes by :meth:`run`."""

    cleaner: BandCleaner
    crops: tuple[np.ndarray, np.ndarray, np.ndarray]  # views into the frame's planes
    i420: np.ndarray  # the band, temporal fill applied
    mask: np.ndarray  # every pixel that changes
    hole: np.ndarray  # the pixels still to fill spatially

    def run(self) -> np.ndarray:
        """Fill the hole and write the masked pixels into the frame; the mask."""
        c, i420, mask = self.cleaner, self.i420, self.mask
        if self.hole.any():
            filled = inpaint_i420(i420, self.hole, c.method, c.radius, c.model)
            rows = _i420_mask(self.hole > 0)
            i420[rows] = filled[rows]
        # Only masked pixels change: the rest of the band stays exactly as decoded.
        h, w = mask.shape
        y, u, v = self.crops
        on = mask > 0
        y[on] = i420[:h][on]
        half = _half(mask) > 0
        chroma = i420[h:].reshape(2, h // 2, w // 2)
        u[half] = chroma[0][half]
        v[half] = chroma[1][half]
        return mask


def _half(mask: np.ndarray) -> np.ndarray:
    """A band mask at chroma size: 255 where any of the 2x2 pixels is set."""
    top, bottom = np.maximum(mask[0::2, 0::2], mask[0::2, 1::2]), np.maximum(
        mask[1::2, 0::2], mask[1::2, 1::2])
    return np.maximum(top, bottom)


def _i420(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Y, U, V planes (even size) as one I420 array, as OpenCV's colour conversion wants."""
    h, w = y.shape
    return np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)


def _i420_mask(mask: np.ndarray) -> np.ndarray:
    """A band mask as a mask of the I420 array: chroma where any of its 2x2 pixels is set."""
    h, w = mask.shape
    half = _half(mask.view(np.uint8)).ravel()
    return np.concatenate([mask.ravel(), half, half]).reshape(h * 3 // 2, w) > 0


#: (decoded frame, its cleaned planes or None where not looked at, the band's mask or None)
Cleaned = tuple[Any, Planes | None, np.ndarray | None]


@dataclass
class Removal:
    """What :func:`remove_subtitles` did, and what it cost."""

    frames: int = 0
    masked_frames: int = 0
    masked_pixels: int = 0
    seconds: float = 0.0  # masking and inpainting only (summed over the filling threads)
    total_seconds: float = 0.0  # with decoding and encoding
    encode_seconds: float = 0.0  # wall time in the encoder and muxer calls
    cpu_seconds: float = 0.0  # CPU time of this process (all threads) over the whole run
    threads: int = 0  # frames filled at once, and the encoder's threads

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / max(self.frames, 1)

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "masked_frames": self.masked_frames,
                "masked_pixels": self.masked_pixels, "seconds": round(self.seconds, 3),
                "total_seconds": round(self.total_seconds, 3),
                "encode_seconds": round(self.encode_seconds, 3),
                "cpu_seconds": round(self.cpu_seconds, 3), "threads": self.threads,
                "seconds_per_frame": round(self.seconds_per_frame, 5)}


def default_threads() -> int:
    """Frames filled at once: one per CPU of this machine, at most 8 (each holds frames).

    A caller that holds fewer CPUs (a Ray actor's ``num_cpus``) passes its own count.
    """
    return max(1, min(8, os.cpu_count() or 1))


def _run(fill: Fill) -> tuple[np.ndarray, float]:
    began = time.perf_counter()
    return fill.run(), time.perf_counter() - began


def clean_frames(path: str | Path, band: Band, windows: list[tuple[float, float]], *,
                 method: Method = DEFAULT_METHOD, grow: int | None = None, temporal: int = 0,
                 radius: int = DEFAULT_RADIUS, model: BgrInpainter | None = None,
                 threads: int = 1, stats: Removal | None = None) -> Iterator[Cleaned]:  # fmt: skip
    """(decoded frame, its planes or None, band mask or None) for every frame of ``path``.

    Only frames whose time lies in ``windows`` (with temporal fill: every frame) are
    converted to planes and looked at; the planes are None for the others, whose pixels are
    the decoded ones. Up to ``threads`` frames are filled at once (OpenCV and onnxruntime
    let go of the GIL while they work); frames come out in order.
    """
    import av

    stats = stats if stats is not None else Removal()
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    pending: deque[tuple[Any, Planes | None, Future | None]] = deque()

    def finish() -> Cleaned:
        frame, planes, job = pending.popleft()
        mask = None
        if job is not None:
            mask, seconds = job.result()
            stats.seconds += seconds
            stats.masked_frames += 1
            stats.masked_pixels += int(np.count_nonzero(mask))
        return frame, planes, mask

    try:
        with open_video(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            # Decoding is cheap next to filling; as many threads as the filling gets.
            stream.codec_context.thread_count = threads
            ctx = stream.codec_context
            area = even_band(band, ctx.width, ctx.height)
            cleaner = BandCleaner(area, method, auto_grow(ctx.height) if grow is None else grow,
                                  temporal, radius, model=model)
            try:
                for frame in container.decode(stream):
                    stats.frames += 1
                    active = in_windows(float(frame.time or 0.0), windows)
                    planes = Planes.of(frame) if active or temporal else None
                    began = time.perf_counter()
                    fill = cleaner.prepare(planes, active) if planes is not None else None
                    stats.seconds += time.perf_counter() - began
                    job: Future | None = None
                    if fill is not None:
                        if pool is None:
                            job = Future()
                            job.set_result(_run(fill))
                        else:
                            job = pool.submit(_run, fill)
                    pending.append((frame, planes, job))
                    # Keep every worker busy, and no more frames in memory than that needs.
                    while len(pending) > 2 * threads or (pending and (
                            pending[0][2] is None or pending[0][2].done())):
                        yield finish()
                while pending:
                    yield finish()
            except av.FFmpegError as e:
                raise MediaError(f"cannot decode frames of {path}: {e}") from None
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def remove_subtitles(src: str | Path, dst: str | Path, band: Band,
                     windows: list[tuple[float, float]], *, method: Method = DEFAULT_METHOD,
                     grow: int | None = None, temporal: int = 0, radius: int = DEFAULT_RADIUS,
                     crf: int = 18,
                     preset: str = "veryfast", model: BgrInpainter | None = None,
                     threads: int | None = None, mask_video: str | Path | None = None,
                     progress: Progress | None = None) -> Removal:  # fmt: skip
    """Write ``dst``: ``src`` with the subtitle text in ``band`` erased during ``windows``.

    Video is re-encoded (libx264 at ``crf``/``preset``) frame for frame with the source's
    timestamps; audio packets are copied. ``threads``: frames inpainted at once, and the
    threads of the decoder and of x264 (None: one per CPU, up to 8). ``mask_video``: also
    write the band's masks.
    """
    import av

    threads = threads or default_threads()
    stats = Removal(threads=threads)
    began, cpu_began = time.perf_counter(), time.process_time()
    with open_video(src) as inp:
        vin = inp.streams.video[0]
        duration = float(vin.duration * vin.time_base) if vin.duration and vin.time_base else 0.0
        rate = vin.average_rate or vin.guessed_rate
        w, h = vin.codec_context.width, vin.codec_context.height
        area = even_band(band, w, h)
        ain = inp.streams.audio[0] if inp.streams.audio else None
        with av.open(str(dst), "w") as out:
            # x264's threads follow ``threads`` too: by default it starts 1.5 per core of
            # the machine, more than a caller that holds fewer CPUs may use.
            vout = out.add_stream("libx264", rate=rate, options={
                "crf": str(crf), "preset": preset, "threads": str(threads)})
            vout.width, vout.height, vout.pix_fmt = w, h, "yuv420p"
            vout.codec_context.time_base = vin.time_base
            aout = out.add_stream_from_template(ain) if ain is not None else None
            masks = _MaskWriter(mask_video, area, rate, vin.time_base) if mask_video else None
            try:
                frames = clean_frames(src, area, windows, method=method, grow=grow,
                                      temporal=temporal, radius=radius, model=model,
                                      threads=threads,
                                      stats=stats)
                # Audio is copied packet by packet from its own demuxer, kept just ahead of
                # the video so the muxer can interleave them.
                packets = inp.demux(ain) if ain is not None else iter(())
                pending = next(packets, None)
                for frame, planes, mask in frames:
                    encoding = time.perf_counter()
                    for packet in vout.encode(_to_encode(frame, planes, mask)):
                        out.mux(packet)
                    stats.encode_seconds += time.perf_counter() - encoding
                    t = float(frame.time or 0.0)
                    while pending is not None and (pending.pts is None
                                                   or pending.pts * pending.time_base <= t + 1):
                        if pending.dts is not None:
                            pending.stream = aout
                            out.mux(pending)
                        pending = next(packets, None)
                    if masks is not None:
                        masks.write(frame, mask)
                    if progress and duration:
                        progress(min(t / duration, 0.999), f"{t:.1f}/{duration:.1f} s")
                encoding = time.perf_counter()
                for packet in vout.encode():
                    out.mux(packet)
                stats.encode_seconds += time.perf_counter() - encoding
                while pending is not None:
                    if pending.dts is not None:
                        pending.stream = aout
                        out.mux(pending)
                    pending = next(packets, None)
            finally:
                if masks is not None:
                    masks.close()
    stats.total_seconds = time.perf_counter() - began
    stats.cpu_seconds = time.process_time() - cpu_began
    if progress:
        progress(1.0, f"{stats.masked_frames}/{stats.frames} frames cleaned")
    return stats


def _to_encode(frame: Any, planes: Planes | None, mask: np.ndarray | None) -> Any:
    """The frame to encode: the decoded one where nothing changed (no copy), else a new one."""
    import av

    if mask is None or planes is None:
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        frame.pict_type = 0  # let x264 choose the frame type, not repeat the source's
        return frame
    new = av.VideoFrame.from_ndarray(planes.data, format="yuv420p")
    new.pts, new.time_base = frame.pts, frame.time_base
    return new


class _MaskWriter:
    """The band's masks as a grey video (white: erased), one frame per source frame."""

    def __init__(self, path: str | Path, band: Band, rate: Any, time_base: Any) -> None:
        import av

        self.h, self.w = band.y1 - band.y0, band.x1 - band.x0
        self.out = av.open(str(path), "w")
        self.stream = self.out.add_stream("libx264", rate=rate, options={"crf": "23"})
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.w, self.h, "yuv420p"
        self.stream.codec_context.time_base = time_base
        self.empty = np.zeros((self.h, self.w), np.uint8)

    def write(self, frame: Any, mask: np.ndarray | None) -> None:
        import av

        grey = av.VideoFrame.from_ndarray(self.empty if mask is None else mask, format="gray")
        grey = grey.reformat(format="yuv420p")
        grey.pts, grey.time_base = frame.pts, frame.time_base
        for packet in self.stream.encode(grey):
            self.out.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.out.mux(packet)
        self.out.close()
