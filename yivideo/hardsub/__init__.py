"""Burnt-in (hard) subtitles to text: find the subtitle band, then read each subtitle once.

Plain functions, no Ray. OCR is any :data:`Recognizer` (an image in, text lines out);
:class:`PaddleRecognizer` wraps PaddleOCR.

Band detection OCRs a few frames spread over the video and clusters the text blocks by
position: the subtitle band is where blocks recur at the same height while their text
changes; a block whose text never changes (a channel logo, a watermark) is ignored.

Extraction decodes every frame with PyAV but looks only at the band, in grey (the Y plane
of YUV video, no colour conversion). Frames are sampled at ``sample_fps``; each sample is
reduced to a *signature*, a downscaled mask of light pixels next to dark ones (subtitle
text with its outline or shadow), so a moving background does not register as a change.
Runs of samples with the same signature are one stable segment, OCR'd once. Where two
samples differ, the frames between them (kept in a small buffer) are compared one by one,
so each start and end falls on the exact frame, by its own timestamp (VFR-safe).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from yivideo.errors import MediaError
from yivideo.subtitles.segment import is_cjk

if TYPE_CHECKING:
    import av.container

    from yivideo.ocr_models import OCRModelSet

__all__ = [
    "Band",
    "OCREvent",
    "OCRLine",
    "Extraction",
    "PaddleRecognizer",
    "Recognizer",
    "detect_band",
    "edit_ratio",
    "extract_subtitles",
    "iter_band_frames",
    "join_text_lines",
    "sample_frames",
    "signature",
    "signature_distance",
    "video_info",
]

log = logging.getLogger(__name__)

#: A progress callback: fraction in [0, 1] and a message.
Progress = Callable[[float, str], None]

# Text mask: a pixel is subtitle text when it is light and a much darker pixel (the
# outline, shadow or box) lies within _EDGE_RADIUS pixels.
_LIGHT = 160
_CONTRAST = 90
_EDGE_RADIUS = 3
_SIG_SCALE = 4  # signatures are 1/_SIG_SCALE of the band in each direction
_EMPTY_FRACTION = 0.0008  # fewer signature pixels than this fraction of the band: no text
_MIN_EMPTY_PIXELS = 6
_YUV_PREFIXES = ("yuv", "yuvj", "nv12", "nv21", "gray")


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


@dataclass(frozen=True)
class OCRLine:
    """One recognised text box: its text, score and box (x0, y0, x1, y1) in the image."""

    text: str
    confidence: float
    box: tuple[int, int, int, int]


#: OCR: a BGR or grey image in, the recognised boxes out (any order).
Recognizer = Callable[[np.ndarray], list[OCRLine]]


@dataclass
class OCREvent:
    """One subtitle read from the picture; ``box`` (x0, y0, x1, y1) in frame pixels."""

    start: float
    end: float
    text: str
    confidence: float
    box: tuple[int, int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 4),
            "end": round(self.end, 4),
            "text": self.text,
            "confidence": round(self.confidence, 4),
            "box": list(self.box),
        }


@dataclass
class Extraction:
    """What :func:`extract_subtitles` found, and what it cost."""

    events: list[OCREvent]
    band: Band | None
    duration: float
    frames: int = 0
    samples: int = 0
    ocr_calls: int = 0


# ---------------------------------------------------------------- text helpers


def edit_ratio(a: str, b: str) -> float:
    """Similarity in [0, 1]: 1 - Levenshtein distance / length of the longer text."""
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return 1.0 - prev[-1] / len(a)


def _compact(text: str) -> str:
    # Spaces are what OCR gets wrong most often; compare without them.
    return "".join(text.split())


def _join_words(parts: list[str]) -> str:
    out = ""
    for part in parts:
        if out and not (is_cjk(out[-1]) and is_cjk(part[0])):
            out += " "
        out += part
    return out


def join_text_lines(boxes: list[OCRLine]) -> tuple[list[str], float]:
    """Text lines in reading order and the character-weighted mean confidence.

    Boxes whose vertical centres are within half a line height of each other form one
    line, read left to right; lines are read top to bottom.
    """
    boxes = [b for b in boxes if b.text.strip()]
    if not boxes:
        return [], 0.0
    boxes.sort(key=lambda b: (b.box[1] + b.box[3]) / 2)
    rows: list[list[OCRLine]] = []
    for b in boxes:
        centre = (b.box[1] + b.box[3]) / 2
        height = max(b.box[3] - b.box[1], 1)
        if rows:
            last = rows[-1]
            last_centre = sum((r.box[1] + r.box[3]) / 2 for r in last) / len(last)
            if abs(centre - last_centre) < 0.5 * height:
                last.append(b)
                continue
        rows.append([b])
    lines = [_join_words([b.text.strip() for b in sorted(row, key=lambda b: b.box[0])])
             for row in rows]
    weights = [max(len(b.text.strip()), 1) for b in boxes]
    conf = sum(w * b.confidence for w, b in zip(weights, boxes, strict=True)) / sum(weights)
    return lines, conf


# ---------------------------------------------------------------- PaddleOCR


class PaddleRecognizer:
    """PaddleOCR (det + rec) on an image; onnxruntime for ONNX models, no paddlepaddle.

    ``det_side`` caps the longer side the detector sees (PaddleOCR's
    ``text_det_limit_side_len``); recognition always reads the full-resolution crops.
    """

    def __init__(
        self,
        models: OCRModelSet,
        *,
        device: str = "cpu",
        threads: int = 0,
        min_confidence: float = 0.5,
        det_side: int = 960,
    ) -> None:
        import os

        # Never probe model hosters: the models are local and the network may be absent.
        os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
        from paddleocr import PaddleOCR

        engine = models.det.engine
        if models.rec.engine != engine:
            raise ValueError("detection and recognition models must have the same format")
        kwargs: dict[str, Any] = {}
        if engine == "onnxruntime":
            kwargs["engine"] = "onnxruntime"
            if threads:
                kwargs["engine_config"] = {"intra_op_num_threads": threads}
        elif threads:
            kwargs["cpu_threads"] = threads
        self.models = models
        self.device = device
        self.min_confidence = min_confidence
        self.det_side = det_side
        self.calls = 0
        self._ocr = PaddleOCR(
            text_detection_model_name=models.det.name,
            text_detection_model_dir=str(models.det.path),
            text_recognition_model_name=models.rec.name,
            text_recognition_model_dir=str(models.rec.path),
            use_doc_orientation_classify=False,
            use_doc_unwarping=False,
            use_textline_orientation=False,
            device=device,
            **kwargs,
        )

    def __call__(
        self,
        image: np.ndarray,
        det_side: int | None = None,
        min_confidence: float | None = None,
    ) -> list[OCRLine]:
        """The text boxes of ``image`` (BGR or grey) scored at least ``min_confidence``."""
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        self.calls += 1
        side = det_side or self.det_side
        result = self._ocr.predict(
            np.ascontiguousarray(image), text_det_limit_side_len=side, text_det_limit_type="max"
        )[0]
        floor = self.min_confidence if min_confidence is None else min_confidence
        lines = []
        for text, score, box in zip(
            result["rec_texts"], result["rec_scores"], result["rec_boxes"], strict=True
        ):
            if text.strip() and score >= floor:
                x0, y0, x1, y1 = (int(v) for v in box)
                lines.append(OCRLine(text, float(score), (x0, y0, x1, y1)))
        return lines


# ---------------------------------------------------------------- video access


def _open(path: str | Path) -> av.container.InputContainer:
    import av

    p = Path(path)
    if not p.is_file():
        raise MediaError(f"file not found: {p}" if not p.exists() else f"not a file: {p}")
    if p.stat().st_size == 0:
        raise MediaError(f"empty file: {p}")
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
    with _open(path) as container:
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
    path: str | Path, band: Band | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """(time in seconds, grey band) for every decoded frame; ``None`` is the whole frame."""
    import av

    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: decoding is most of the cost
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        ctx = stream.codec_context
        area = (band or Band(0, ctx.height, 0, ctx.width)).clip(ctx.width, ctx.height)
        try:
            for index, frame in enumerate(container.decode(stream)):
                yield _frame_time(frame, index, fps), _grey_rows(frame, area)
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
        with _open(path) as container:
            keys = list(_key_frames(container, None, fps))
        if len(keys) >= count:
            # The key frame nearest each target, each used once.
            chosen = sorted({min(keys, key=lambda k, t=t: abs(k - t)) for t in targets})
            with _open(path) as container:
                return list(_key_frames(container, chosen, fps))
        with _open(path) as container:
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


# ---------------------------------------------------------------- band detection


@dataclass
class _Block:
    sample: int
    y0: int
    y1: int
    x0: int
    x1: int
    text: str
    line_height: int


def _blocks(sample: int, lines: list[OCRLine]) -> list[_Block]:
    """Merge one frame's boxes into blocks: boxes stacked with less than a line between."""
    blocks: list[_Block] = []
    for line in sorted(lines, key=lambda b: b.box[1]):
        x0, y0, x1, y1 = line.box
        h = max(y1 - y0, 1)
        for blk in blocks:
            near = y0 - blk.y1 < 0.6 * h and blk.y0 - y1 < 0.6 * h
            if near and min(x1, blk.x1) > max(x0, blk.x0):
                blk.y0, blk.y1 = min(blk.y0, y0), max(blk.y1, y1)
                blk.x0, blk.x1 = min(blk.x0, x0), max(blk.x1, x1)
                blk.text += "\n" + line.text
                blk.line_height = max(blk.line_height, h)
                break
        else:
            blocks.append(_Block(sample, y0, y1, x0, x1, line.text, h))
    return blocks


def _distinct(texts: list[str], similarity: float) -> int:
    kinds: list[str] = []
    for t in map(_compact, texts):
        if not any(edit_ratio(t, k) >= similarity for k in kinds):
            kinds.append(t)
    return len(kinds)


def band_from_lines(
    per_sample: list[list[OCRLine]],
    width: int,
    height: int,
    *,
    similarity: float = 0.8,
) -> Band | None:
    """The subtitle band from the OCR of sampled frames, or None when there is none.

    Blocks from all samples are grouped when they overlap vertically (by at least half the
    shorter one) and horizontally. A group is a subtitle band candidate when its text
    changes between samples; one text seen in half the samples or more is a static
    overlay (a logo, a watermark), and one seen once may be scene text. Candidates are
    ranked by the number of distinct texts, then samples with text, then how centred and
    how low they sit. The band spans the frame's width except where a static overlay
    shares its rows.
    """
    blocks = [b for i, lines in enumerate(per_sample) for b in _blocks(i, lines)]
    n = len(blocks)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            a, b = blocks[i], blocks[j]
            overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
            overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
            if overlap_y >= 0.5 * min(a.y1 - a.y0, b.y1 - b.y0) and overlap_x > 0:
                parent[find(i)] = find(j)
    groups: dict[int, list[_Block]] = {}
    for i, blk in enumerate(blocks):
        groups.setdefault(find(i), []).append(blk)

    samples = max(len(per_sample), 1)
    best: tuple[tuple[float, ...], list[_Block]] | None = None
    static: list[list[_Block]] = []
    for members in groups.values():
        by_sample: dict[int, list[_Block]] = {}
        for blk in members:
            by_sample.setdefault(blk.sample, []).append(blk)
        texts = ["\n".join(b.text for b in sorted(v, key=lambda b: b.y0))
                 for v in by_sample.values()]
        present = len(by_sample)
        kinds = _distinct(texts, similarity)
        if kinds < 2 and present >= 0.5 * samples:
            static.append(members)  # a logo or watermark
            continue
        if kinds < 2 and present < 2:
            continue  # seen once: may as well be text in the scene
        cx = (min(b.x0 for b in members) + max(b.x1 for b in members)) / 2
        centred = 1.0 - abs(cx - width / 2) / (width / 2)
        low = max(b.y1 for b in members) / height
        key = (float(kinds), float(present), round(centred, 1), low)
        if best is None or key > best[0]:
            best = (key, members)
    if best is None:
        return None
    members = best[1]
    line_h = int(np.median([b.line_height for b in members]))
    # A line of margin above and half a line below: subtitles usually grow upwards from a
    # fixed bottom line, so a two-line subtitle must fit even if only one line was seen.
    y0 = min(b.y0 for b in members) - line_h
    y1 = max(b.y1 for b in members) + line_h // 2
    # Full width, as a later line may be longer than any seen, except where a static
    # overlay shares the band's rows.
    cx = (min(b.x0 for b in members) + max(b.x1 for b in members)) / 2
    x0, x1 = 0, width
    for blk in (b for group in static for b in group):
        if min(blk.y1, y1) - max(blk.y0, y0) <= 0:
            continue
        if blk.x1 <= cx:
            x0 = max(x0, blk.x1 + line_h // 4)
        elif blk.x0 >= cx:
            x1 = min(x1, blk.x0 - line_h // 4)
    return Band(y0, y1, x0, x1).clip(width, height)


def detect_band(
    path: str | Path,
    recognize: Recognizer,
    *,
    samples: int = 12,
    similarity: float = 0.8,
    progress: Progress | None = None,
) -> Band | None:
    """Find the subtitle band of a video from ``samples`` frames; None if it has none."""
    info = video_info(path)
    frames = sample_frames(path, samples)
    per_sample = []
    for i, (_, image) in enumerate(frames):
        per_sample.append(recognize(image))
        if progress:
            progress((i + 1) / max(len(frames), 1), f"sample {i + 1}/{len(frames)}")
    return band_from_lines(per_sample, info["width"], info["height"], similarity=similarity)


# ---------------------------------------------------------------- extraction


def text_mask(grey: np.ndarray) -> np.ndarray:
    """Light pixels with a much darker pixel nearby: subtitle text with outline or shadow."""
    size = 2 * _EDGE_RADIUS + 1
    darkest = cv2.erode(grey, np.ones((size, size), np.uint8))
    return (grey >= _LIGHT) & (grey.astype(np.int16) - darkest >= _CONTRAST)


def signature(grey: np.ndarray) -> np.ndarray:
    """The band's text mask, downscaled: cheap to compare, blind to background motion."""
    mask = text_mask(grey).astype(np.uint8) * 255
    h, w = grey.shape
    small = cv2.resize(mask, (max(w // _SIG_SCALE, 1), max(h // _SIG_SCALE, 1)),
                       interpolation=cv2.INTER_AREA)
    return small > 64


def _is_empty(sig: np.ndarray) -> bool:
    return int(sig.sum()) < max(_MIN_EMPTY_PIXELS, _EMPTY_FRACTION * sig.size)


def signature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """0 for the same text, 1 for disjoint: changed pixels over the pixels of either.

    Two empty signatures are the same (0); an empty and a non-empty one are 1.
    """
    ea, eb = _is_empty(a), _is_empty(b)
    if ea or eb:
        return 0.0 if ea and eb else 1.0
    union = int(np.count_nonzero(a | b))
    return np.count_nonzero(a ^ b) / union


_KEEP_SAMPLES = 16  # bands a segment keeps to pick the one to read from


@dataclass
class _Segment:
    """A run of frames whose band shows the same thing."""

    start: float
    sig: np.ndarray  # of the latest sample, what the next one is compared with
    empty: bool
    end: float = math.inf
    samples: int = 0
    # Every ``stride``-th sample's band and signature: bounded memory however long the
    # segment, and the middle one (away from fades at either end) is always at hand.
    images: list[np.ndarray] = field(default_factory=list)
    sigs: list[np.ndarray] = field(default_factory=list)
    stride: int = 1

    def add(self, grey: np.ndarray, sig: np.ndarray) -> None:
        self.sig = sig
        if not self.empty and self.samples % self.stride == 0:
            self.images.append(grey)
            self.sigs.append(sig)
            if len(self.images) > _KEEP_SAMPLES:
                self.images, self.sigs = self.images[::2], self.sigs[::2]
                self.stride *= 2
        self.samples += 1


@dataclass
class _Read:
    start: float
    end: float
    text: str
    confidence: float
    box: tuple[int, int, int, int]
    samples: int


def _merge_similar(reads: list[_Read], similarity: float, max_gap: float) -> list[_Read]:
    """Join consecutive reads of (nearly) the same text less than ``max_gap`` apart."""
    out: list[_Read] = []
    for r in reads:
        if out:
            last = out[-1]
            close = r.start - last.end <= max_gap + 1e-6
            if close and edit_ratio(_compact(last.text), _compact(r.text)) >= similarity:
                keep = last if last.samples >= r.samples else r  # the longer-seen reading
                box = (min(last.box[0], r.box[0]), min(last.box[1], r.box[1]),
                       max(last.box[2], r.box[2]), max(last.box[3], r.box[3]))
                out[-1] = _Read(last.start, r.end, keep.text, keep.confidence, box,
                                last.samples + r.samples)
                continue
        out.append(r)
    return out


def extract_subtitles(
    path: str | Path,
    recognize: Recognizer,
    band: Band,
    *,
    sample_fps: float = 5.0,
    min_duration: float = 0.2,
    similarity: float = 0.8,
    change_threshold: float = 0.3,
    progress: Progress | None = None,
) -> Extraction:
    """Read the subtitles shown in ``band``: each event with exact start and end frames.

    ``change_threshold`` is the :func:`signature_distance` above which two frames show
    different text. Consecutive readings at least ``similarity`` alike (edit-distance
    ratio, spaces ignored) and at most ``min_duration`` apart are one event; events shorter
    than ``min_duration`` are dropped.
    """
    info = video_info(path)
    duration = info["duration"]
    area = band.clip(info["width"], info["height"])
    period = 1.0 / sample_fps
    reads: list[_Read] = []
    stats = {"frames": 0, "samples": 0, "ocr_calls": 0}
    last_ocr: tuple[np.ndarray, list[OCRLine]] | None = None

    def read(seg: _Segment) -> None:
        nonlocal last_ocr
        if seg.empty or seg.end - seg.start < min_duration - 1e-6:
            return  # nothing to read, or a flicker that would be dropped anyway
        mid = len(seg.images) // 2
        image, sig = seg.images[mid], seg.sigs[mid]
        if last_ocr is not None and signature_distance(last_ocr[0], sig) < change_threshold:
            lines = last_ocr[1]  # the same picture as the last reading (after a blip)
        else:
            lines = recognize(image)
            stats["ocr_calls"] += 1
            last_ocr = (sig, lines)
        texts, conf = join_text_lines(lines)
        if not texts:
            return
        box = (min(b.box[0] for b in lines) + area.x0, min(b.box[1] for b in lines) + area.y0,
               max(b.box[2] for b in lines) + area.x0, max(b.box[3] for b in lines) + area.y0)
        reads.append(_Read(seg.start, seg.end, "\n".join(texts), conf, box, seg.samples))

    current: _Segment | None = None
    between: list[tuple[float, np.ndarray]] = []  # frames since the last sample
    next_sample = -math.inf
    last_t = 0.0
    for t, grey in iter_band_frames(path, area):
        stats["frames"] += 1
        last_t = t
        if t + 1e-6 < next_sample:
            between.append((t, grey))
            continue
        # On a fixed grid, unless a gap in the frames (VFR) left it behind.
        next_sample = next_sample + period if next_sample + period > t else t + period
        stats["samples"] += 1
        sig = signature(grey)
        if current is None:
            current = _Segment(t, sig, _is_empty(sig))
            current.add(grey, sig)
        elif signature_distance(current.sig, sig) < change_threshold:
            current.add(grey, sig)
        else:
            # The change happened in (previous sample, this one]: find its exact frames.
            frames = [*between, (t, grey)]
            sigs = [signature(g) for _, g in frames[:-1]] + [sig]
            end = next(ft for (ft, _), s in zip(frames, sigs, strict=True)
                       if signature_distance(current.sig, s) >= change_threshold)
            start = next(ft for (ft, _), s in zip(frames, sigs, strict=True)
                         if ft >= end and signature_distance(sig, s) < change_threshold)
            current.end = end
            read(current)
            current = _Segment(start, sig, _is_empty(sig))
            current.add(grey, sig)
        between.clear()
        if progress and duration:
            progress(min(t / duration, 0.999), f"{t:.0f}/{duration:.0f} s")
    if current is not None:
        # The last frame is shown for one frame interval.
        fps = info["fps"] or sample_fps
        current.end = max(duration, last_t + 1.0 / fps)
        read(current)
    events = _merge_similar(reads, similarity, min_duration)
    events = [r for r in events if r.end - r.start >= min_duration - 1e-6]
    events = _merge_similar(events, similarity, min_duration)
    if progress:
        progress(1.0, f"{len(events)} subtitles")
    return Extraction(
        events=[OCREvent(r.start, r.end, r.text, r.confidence, r.box) for r in events],
        band=area,
        duration=duration,
        frames=stats["frames"],
        samples=stats["samples"],
        ocr_calls=stats["ocr_calls"],
    )
