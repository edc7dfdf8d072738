"""Offline resolution of PaddleOCR model sets (a text detection and a recognition model).

A *model set* is a directory holding two PaddleOCR inference model directories, one for
text detection and one for recognition. Each has an ``inference.yml`` whose
``Global.model_name`` names the architecture (``PP-OCRv6_small_det`` ...) and either
``inference.onnx`` (run with onnxruntime, no paddlepaddle needed) or the Paddle format
(``inference.json``/``inference.pdmodel`` + ``inference.pdiparams``, needs paddlepaddle).

Nothing is downloaded. A set is named in a workflow and resolves, in order, to a
sub-directory of one of ``models.model_dirs`` or the built-in ``ppocr-v6-small``: the
PP-OCRv6 small det/rec ONNX models shipped in the ``rapidocr`` package, laid out once as a
model set in ``models.cache_dir / "ppocr-v6-small"``. A directory path is accepted only
with ``models.allow_local_paths`` (the local CLI): a caller's file never reaches onnxruntime.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from yivideo.errors import ModelNotFound
from yivideo.modelkit import Bundled, ModelChain, resolve_chain
from yivideo.models_catalogue import Catalogue
from yivideo.settings import ModelSettings

__all__ = [
    "DEFAULT_MODEL",
    "OCR_MODELS",
    "OCRModel",
    "OCRModelSet",
    "available_ocr_models",
    "prepare_ppocr_v6_small",
    "resolve_ocr_models",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "ppocr-v6-small"
_V6_DIR = "ppocr-v6-small"
_V6_DET = "PP-OCRv6_small_det"
_V6_REC = "PP-OCRv6_small_rec"
# Files of the rapidocr package (inside rapidocr/models/) that hold the PP-OCRv6 models.
_V6_FILES = {_V6_DET: "PP-OCRv6_det_small.onnx", _V6_REC: "PP-OCRv6_rec_small.onnx"}
_PADDLE_FILES = ("inference.json", "inference.pdmodel")

# The pre- and post-processing PaddleOCR's own PP-OCR exports declare. Detection: images
# normalised with ImageNet statistics, DB post-processing; recognition: 48 px high
# lines, CTC decoding over the model's character list.
_DET_CONFIG: dict[str, Any] = {
    "PreProcess": {
        "transform_ops": [
            {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
            {"DetLabelEncode": None},
            {"DetResizeForTest": {"resize_long": 960}},
            {
                "NormalizeImage": {
                    "mean": [0.485, 0.456, 0.406],
                    "std": [0.229, 0.224, 0.225],
                    "scale": "1./255.",
                    "order": "hwc",
                }
            },
            {"ToCHWImage": None},
            {"KeepKeys": {"keep_keys": ["image", "shape", "polys", "ignore_tags"]}},
        ]
    },
    "PostProcess": {
        "name": "DBPostProcess",
        "thresh": 0.3,
        "box_thresh": 0.6,
        "max_candidates": 1000,
        "unclip_ratio": 1.5,
    },
}
_REC_PREPROCESS: dict[str, Any] = {
    "transform_ops": [
        {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
        {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
        {"RecResizeImg": {"image_shape": [3, 48, 320]}},
        {"KeepKeys": {"keep_keys": ["image", "label_ctc", "label_gtc", "length", "valid_ratio"]}},
    ]
}


@dataclass(frozen=True)
class OCRModel:
    """One PaddleOCR inference model directory."""

    name: str  # the architecture name from inference.yml, as PaddleOCR wants it
    path: Path
    engine: str  # "onnxruntime" or "paddle"


@dataclass(frozen=True)
class OCRModelSet:
    """A detection and a recognition model used together."""

    name: str
    det: OCRModel
    rec: OCRModel


def _model_name(path: Path) -> str | None:
    try:
        data = yaml.safe_load((path / "inference.yml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    name = (data or {}).get("Global", {}).get("model_name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def _read_model(path: Path) -> OCRModel | None:
    """The model in ``path``, or None when it is not a usable inference model directory."""
    name = _model_name(path)
    if name is None:
        return None
    if (path / "inference.onnx").is_file():
        return OCRModel(name, path, "onnxruntime")
    if (path / "inference.pdiparams").is_file() and any(
        (path / f).is_file() for f in _PADDLE_FILES
    ):
        return OCRModel(name, path, "paddle")
    return None


def _read_set(path: Path) -> OCRModelSet | None:
    """The det + rec models under ``path`` (its sub-directories), or None."""
    if not path.is_dir():
        return None
    det = rec = None
    for child in sorted(path.iterdir()):
        model = _read_model(child) if child.is_dir() else None
        if model is None:
            continue
        if model.name.endswith("_det") and det is None:
            det = model
        elif model.name.endswith("_rec") and rec is None:
            rec = model
    if det is None or rec is None:
        return None
    return OCRModelSet(path.name, det, rec)


def _rapidocr_models() -> Path | None:
    spec = importlib.util.find_spec("rapidocr")  # locate without importing it (slow)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    return folder if all((folder / f).is_file() for f in _V6_FILES.values()) else None


def _characters(onnx_path: Path) -> list[str]:
    """The recognition model's character list, stored in its ONNX metadata."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    chars = session.get_modelmeta().custom_metadata_map.get("character", "")
    if not chars:
        raise ModelNotFound(f"{onnx_path} has no 'character' metadata; cannot decode its output")
    return chars.split("\n")


def prepare_ppocr_v6_small(cache_dir: Path) -> Path:
    """Lay out rapidocr's PP-OCRv6 small det/rec ONNX models as a PaddleOCR model set.

    Done once into ``cache_dir/ppocr-v6-small``: later calls find it and return. The set
    is written to a temporary directory next to the target and renamed into place, so a
    concurrent caller sees either no set or a complete one; the loser of a race drops its
    copy.
    """
    target = Path(cache_dir).expanduser() / _V6_DIR
    if _read_set(target) is not None:
        return target
    source = _rapidocr_models()
    if source is None:
        raise ModelNotFound(
            f"OCR model '{DEFAULT_MODEL}' needs the package rapidocr: pip install rapidocr"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{_V6_DIR}-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
    t0 = time.monotonic()
    try:
        for name, filename in _V6_FILES.items():
            folder = tmp / name
            folder.mkdir()
            shutil.copyfile(source / filename, folder / "inference.onnx")
            config: dict[str, Any] = {"Global": {"model_name": name}}
            if name == _V6_DET:
                config.update(_DET_CONFIG)
            else:
                config["PreProcess"] = _REC_PREPROCESS
                config["PostProcess"] = {
                    "name": "CTCLabelDecode",
                    "character_dict": _characters(folder / "inference.onnx"),
                }
            with open(folder / "inference.yml", "w", encoding="utf-8") as out:
                yaml.safe_dump(config, out, allow_unicode=True, sort_keys=False)
                out.flush()
                os.fsync(out.fileno())  # the rename must never publish a half-written file
        try:
            os.rename(tmp, target)
        except OSError:
            if _read_set(target) is None:  # not a lost race: a real error
                raise
        else:
            log.info("prepared %s in %s in %.1f s", DEFAULT_MODEL, target, time.monotonic() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _default_set(models: ModelSettings) -> OCRModelSet | None:
    found = _read_set(prepare_ppocr_v6_small(models.cache_dir))
    return None if found is None else OCRModelSet(DEFAULT_MODEL, found.det, found.rec)


_CHAIN: ModelChain[OCRModelSet] = ModelChain(
    kind="OCR model",
    read=_read_set,
    how_to_add="To add one, put a directory holding a text detection and a text recognition "
               "model directory (each with inference.yml and inference.onnx, or Paddle's "
               "inference files) into one of models.model_dirs ({dirs}).",
    invalid="holds no text detection + recognition pair",
    bundled={DEFAULT_MODEL: Bundled(
        where="package rapidocr", installed=lambda: _rapidocr_models() is not None,
        get=_default_set, missing="needs the package: pip install rapidocr")},
)


def available_ocr_models(models: ModelSettings) -> dict[str, str]:
    """Model sets usable offline: name -> where it comes from. ``model_dirs`` win."""
    return _CHAIN.available(models)


def resolve_ocr_models(name_or_path: str, models: ModelSettings) -> OCRModelSet:
    """The model set for ``name_or_path``; :class:`ModelNotFound` lists what is available."""
    return resolve_chain(_CHAIN, name_or_path, models)


#: The catalogue of the ``model`` param of the ``ocr.*`` nodes.
OCR_MODELS = Catalogue("OCR model set", available_ocr_models)
