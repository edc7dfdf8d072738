"""Burnt-in (hard) subtitles to text: find the subtitle band, then read each subtitle once.

Plain functions, no Ray. OCR is any :data:`Recognizer` (an image in, text lines out);
:class:`PaddleRecognizer` wraps PaddleOCR. :func:`detect_band` finds where the subtitles
are (:mod:`.band`); :func:`extract_subtitles` reads them with frame-exact timings
(:mod:`.events`, :mod:`.signature`). Video frames come from :mod:`yivideo.media`.
"""

from yivideo.hardsub.band import Progress, band_from_lines, detect_band
from yivideo.hardsub.events import Extraction, OCREvent, extract_subtitles, join_chunks
from yivideo.hardsub.recognizer import (
    OCRLine,
    PaddleRecognizer,
    Recognizer,
    edit_ratio,
    join_text_lines,
)
from yivideo.hardsub.signature import signature, signature_distance, text_mask
from yivideo.media import Band, iter_band_frames, sample_frames, video_info

__all__ = [
    "Band",
    "OCREvent",
    "OCRLine",
    "Extraction",
    "PaddleRecognizer",
    "Progress",
    "Recognizer",
    "band_from_lines",
    "detect_band",
    "edit_ratio",
    "extract_subtitles",
    "join_chunks",
    "iter_band_frames",
    "join_text_lines",
    "sample_frames",
    "signature",
    "signature_distance",
    "text_mask",
    "video_info",
]
