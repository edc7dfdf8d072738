"""The OCR engine: a :data:`Recognizer` turns an image into text boxes; helpers on their text.

:class:`PaddleRecognizer` wraps PaddleOCR; tests and benches may pass any callable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from yivideo.subtitles.segment import is_cjk

if TYPE_CHECKING:
    from yivideo.ocr_models import OCRModelSet


@dataclass(frozen=True)
class OCRLine:
    """One recognised text box: its text, score and box (x0, y0, x1, y1) in the image."""

    text: str
    confidence: float
    box: tuple[int, int, int, int]


#: OCR: a BGR or grey image in, the recognised boxes out (any order).
Recognizer = Callable[[np.ndarray], list[OCRLine]]


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


def compact_text(text: str) -> str:
    """``text`` without whitespace, for comparing readings: OCR gets spaces wrong most."""
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
