"""Learned inpainting models (LaMa, MI-GAN and the like, exported to ONNX), chosen by name.

The operator puts ``<name>.onnx`` into one of ``models.model_dirs``; a workflow names it
(``model: big-lama``) and never gives a path (a path only with ``models.allow_local_paths``,
the local CLI): onnxruntime parses only the operator's files. What a graph expects (its
input size, the range of its pixel values, what its mask marks) is said by params, as
exports differ. The model fills the subtitle band tile by tile: squares as tall as the
band, scaled to the model's size and back; only the masked pixels are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from yivideo.errors import ModelNotFound
from yivideo.modelkit import ModelChain, resolve_chain, resolve_device
from yivideo.models_catalogue import Catalogue
from yivideo.settings import ModelSettings

__all__ = ["INPAINT_MODELS", "OnnxInpainter", "Range", "available_inpainters",
           "resolve_inpainter"]

#: Pixel values a graph takes or gives: 0..1 and -1..1 as floats, 0..255 as floats or bytes.
Range = Literal["0..1", "-1..1", "0..255"]
_SCALE: dict[str, tuple[float, float]] = {"0..1": (1 / 255, 0.0), "-1..1": (2 / 255, -1.0),
                                          "0..255": (1.0, 0.0)}  # fmt: skip


def _onnx_in(path: Path) -> Path | None:
    """``path`` itself or ``path.onnx``, where that is a file."""
    for candidate in (path, path.with_name(path.name + ".onnx")):
        if candidate.suffix == ".onnx" and candidate.is_file():
            return candidate
    return None


_CHAIN: ModelChain[Path] = ModelChain(
    kind="inpainting model",
    read=_onnx_in,
    how_to_add="To add one, put '<name>.onnx' into one of models.model_dirs ({dirs}).",
    invalid="is not an .onnx file",
    name_of=lambda p: p.name.removesuffix(".onnx"),
)


def available_inpainters(models: ModelSettings) -> dict[str, str]:
    """Inpainting models usable offline: name -> file (``<model_dir>/<name>.onnx``)."""
    return _CHAIN.available(models)


def resolve_inpainter(name_or_path: str, models: ModelSettings) -> Path:
    """The ONNX file of ``name_or_path``, or :class:`ModelNotFound` listing the others."""
    return resolve_chain(_CHAIN, name_or_path, models)


#: The catalogue of ``inpaint.remove_subtitles``' ``model`` param.
INPAINT_MODELS = Catalogue("inpainting model", available_inpainters)


@dataclass
class OnnxInpainter:
    """An ONNX inpainting graph: BGR image and mask (255: hole) in, filled BGR image out.

    The graph takes an RGB image ``(1, 3, H, W)`` and a mask ``(1, 1, H, W)`` (the input
    whose name says ``mask``, else the second) and gives the RGB image first.
    """

    session: Any  # onnxruntime.InferenceSession
    size: int | None = None  # square side the graph takes; None: its own or any
    input_range: Range = "0..1"
    output_range: Range | None = None  # None: as the input
    mask_marks: Literal["hole", "known"] = "hole"

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", **options: Any) -> OnnxInpainter:
        """A session of the graph at ``path`` (an operator's file), on ``device``."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1  # frames run on several threads already
        providers = (["CUDAExecutionProvider", "CPUExecutionProvider"]
                     if resolve_device(device, "onnxruntime") == "cuda"
                     else ["CPUExecutionProvider"])
        return cls(ort.InferenceSession(str(path), so, providers=providers), **options)

    def __post_init__(self) -> None:
        inputs = self.session.get_inputs()
        if len(inputs) != 2:
            raise ModelNotFound(f"an inpainting graph takes an image and a mask; this one "
                                f"takes {len(inputs)} inputs")
        masks = [i for i in inputs if "mask" in i.name.lower()]
        self._mask = masks[0] if masks else inputs[1]
        self._image = next(i for i in inputs if i is not self._mask)
        if self.size is None:
            h, w = self._image.shape[2:]
            self.size = h if isinstance(h, int) and h == w else None

    def _feed(self, arg: Any, values: np.ndarray, scale: float, offset: float) -> np.ndarray:
        if arg.type == "tensor(uint8)":
            return np.clip(values, 0, 255).astype(np.uint8)
        return (values.astype(np.float32) * scale + offset).astype(np.float32)

    def _run(self, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """One tile (RGB, hole 0/1) through the graph; RGB bytes of the same size."""
        scale, offset = _SCALE[self.input_range]
        image = self._feed(self._image, rgb.transpose(2, 0, 1)[None], scale, offset)
        marks = hole if self.mask_marks == "hole" else 1 - hole
        mask = marks[None, None].astype(np.float32)
        mask = (mask * 255).astype(np.uint8) if self._mask.type == "tensor(uint8)" else mask
        out = np.asarray(self.session.run(None, {self._image.name: image,
                                                 self._mask.name: mask})[0])[0]
        oscale, ooffset = _SCALE[self.output_range or self.input_range]
        values = out if out.dtype == np.uint8 else (out - ooffset) / oscale
        return np.clip(np.rint(values), 0, 255).astype(np.uint8).transpose(1, 2, 0)

    def _tile(self, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """Fill one tile: scaled to the model's size, or padded to a multiple of 8."""
        h, w = hole.shape
        if self.size:
            s = (self.size, self.size)
            out = self._run(cv2.resize(rgb, s, interpolation=cv2.INTER_AREA),
                            (cv2.resize(hole, s, interpolation=cv2.INTER_AREA) > 0)
                            .astype(np.uint8))  # fmt: skip
            return cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
        ph, pw = -h % 8, -w % 8
        out = self._run(cv2.copyMakeBorder(rgb, 0, ph, 0, pw, cv2.BORDER_REFLECT),
                        cv2.copyMakeBorder(hole, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0))
        return out[:h, :w]

    def __call__(self, bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``bgr`` (a band) with its masked pixels (255) filled, tile by tile."""
        h, w = mask.shape
        side = min(h, w)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        hole = (mask > 0).astype(np.uint8)
        out = rgb.copy()
        for x0 in range(0, w, side):
            x0 = min(x0, w - side)  # the last tile ends at the band's edge
            cut = slice(x0, x0 + side)
            if hole[:, cut].any():
                filled = self._tile(rgb[:, cut], hole[:, cut])
                on = hole[:, cut] > 0
                out[:, cut][on] = filled[on]
        return cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
