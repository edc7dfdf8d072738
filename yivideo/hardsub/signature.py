"""Signatures: a band reduced to a small mask of its text, compared cheaply between frames.

The mask is light pixels next to dark ones (subtitle text with its outline or shadow), so
a moving background does not register as a change.
"""

from __future__ import annotations

import cv2
import numpy as np

# Text mask: a pixel is subtitle text when it is light and a much darker pixel (the
# outline, shadow or box) lies within _EDGE_RADIUS pixels.
_LIGHT = 160
_CONTRAST = 90
_EDGE_RADIUS = 3
_SIG_SCALE = 4  # signatures are 1/_SIG_SCALE of the band in each direction
_EMPTY_FRACTION = 0.0008  # fewer signature pixels than this fraction of the band: no text
_MIN_EMPTY_PIXELS = 6


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


def is_blank(sig: np.ndarray) -> bool:
    """Too few text pixels in the signature to be a subtitle."""
    return int(sig.sum()) < max(_MIN_EMPTY_PIXELS, _EMPTY_FRACTION * sig.size)


def signature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """0 for the same text, 1 for disjoint: changed pixels over the pixels of either.

    Two empty signatures are the same (0); an empty and a non-empty one are 1.
    """
    ea, eb = is_blank(a), is_blank(b)
    if ea or eb:
        return 0.0 if ea and eb else 1.0
    union = int(np.count_nonzero(a | b))
    return np.count_nonzero(a ^ b) / union
