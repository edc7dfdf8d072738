"""Burnt-in subtitle removal: the ``inpaint.remove_subtitles`` node (OpenCV, PatchMatch, ONNX).

The OCR service says where the subtitle band is (``ocr.detect_band``) and when each
subtitle shows (``ocr.extract_subtitles``); this service erases the text there frame by
frame (:mod:`yivideo.inpainting`) and writes ``clean.mp4``. The cleaned video is also
this stage's ``video`` output, so a later stage (``subtitle.burn``) draws new subtitles
on it: it is kept under ``storage_dir/derived``, named after what it was made from, and
deleted once nothing can still name it (:func:`prune_derived`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

import actors.ocr  # noqa: F401  (registers the 'band' type this service takes)
from yivideo.inpaint_models import INPAINT_MODELS, Range, resolve_inpainter
from yivideo.media import Band
from yivideo.nodes import ModelName, NodeContext, Params, Service, node, register_service
from yivideo.recipes import OUTPUT, Step, capability, recipe
from yivideo.types import Transcript

log = logging.getLogger(__name__)


class RemoveParams(Params):
    method: Literal["telea", "ns", "patchmatch", "onnx"] = Field(
        "ns", description="spatial inpainting: OpenCV Navier-Stokes or Telea (fast), "
                          "PatchMatch (copies texture; ~50x slower), or an ONNX model")
    radius: int = Field(2, ge=1, le=16, description="pixels around a hole pixel that the "
                                                   "OpenCV methods fill it from (chroma: half)")
    model: ModelName(INPAINT_MODELS) | None = Field(
        None, description="the onnx method's model: '<name>.onnx' in the operator's "
                          "model folders (LaMa, MI-GAN and the like)")
    model_size: int | None = Field(
        None, ge=8, le=4096, description="square input side of the model; None: the "
                                         "graph's own, or any size")
    model_range: Range = Field("0..1", description="pixel values the model takes")
    model_output_range: Range | None = Field(
        None, description="pixel values the model gives; None: as it takes them")
    model_mask: Literal["hole", "known"] = Field(
        "hole", description="what the model's mask marks with 1 (or 255)")
    temporal: int = Field(
        0, ge=0, le=250, description="take a masked pixel from up to this many frames back "
                                     "where the background showed there (0: off)")
    grow: int | None = Field(
        None, ge=0, le=32, description="pixels the text mask grows by to cover outline and "
                                       "shadow; None: from the frame height")
    pad: float = Field(0.1, ge=0, le=2, description="seconds looked at before and after "
                                                    "each subtitle event")
    threads: int | None = Field(
        None, ge=1, le=64, description="frames inpainted at once (OpenCV works outside the "
                                       "GIL), and the decoder's and x264's threads; None: "
                                       "the CPUs the actor holds (num_cpus, rounded up)")
    crf: int = Field(18, ge=0, le=51, description="x264 quality of the re-encoded video")
    preset: str = Field("veryfast", pattern=r"^[a-z]+$", description="x264 preset")
    name: str = Field("clean.mp4", pattern=r"^[A-Za-z0-9_.-]+\.(mp4|mkv|mov)$")
    save_mask: bool = Field(False, description="also keep the band's masks as subtitle_mask.mp4")

    @model_validator(mode="after")
    def _model_for_onnx(self) -> RemoveParams:
        if self.method == "onnx" and not self.model:
            raise ValueError("method 'onnx' needs a model: the name of an inpainting model "
                             "in the operator's model folders")
        return self


def _fingerprint(video: str, band: Band | None, spans: list[tuple[float, float]],
                 params: RemoveParams, model: str) -> str:  # fmt: skip
    """What the cleaned video is made from: the source file, band, events, params, model."""
    st = os.stat(video)
    facts = [os.path.realpath(video), st.st_size, st.st_mtime_ns,
             band.to_dict() if band else None, spans, params.model_dump(mode="json"), model]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:24]


def derived_lifetime(settings: Any) -> float:
    """Seconds a derived video is kept after its last use.

    Its path is held by the result cache entries of the stage that made it (reused for
    ``cache_ttl_s`` after they are made, never refreshed) and by the workflows that got
    it, from the stage or from such an entry (kept ``workflow_ttl_s`` after they end).
    Every use refreshes the folder's time, so once this long has passed since the last
    one, nothing names the file any more (a workflow running longer than a day aside).
    """
    return settings.cache_ttl_s + settings.workflow_ttl_s + 86400.0


def prune_derived(root: Path, keep_s: float, now: float | None = None) -> list[str]:
    """Delete the folders under ``root`` last used more than ``keep_s`` ago; their names."""
    cutoff = (time.time() if now is None else now) - keep_s
    gone = []
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return gone
    for entry in entries:
        try:
            stale = entry.is_dir(follow_symlinks=False) and entry.stat().st_mtime < cutoff
        except FileNotFoundError:
            continue  # another replica pruned it first
        if stale:
            shutil.rmtree(entry.path, ignore_errors=True)  # another replica may race us
            if not os.path.exists(entry.path):
                gone.append(entry.name)
    return gone


@register_service
class InpaintService(Service):
    """Erases burnt-in subtitles by inpainting; no model to load."""

    name = "inpaint"
    actor_defaults = {"num_cpus": 1.0}

    @classmethod
    def identity(cls, settings: Any, params: dict[str, Any]) -> str:
        """The onnx method's model file (path, size, mtime); nothing for the others."""
        if params.get("method") != "onnx" or not params.get("model"):
            return ""
        path = resolve_inpainter(params["model"], settings.models)
        st = path.stat()
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"

    def _inpainter(self, params: RemoveParams) -> Any:
        """The onnx method's model, loaded once per actor."""
        from yivideo.inpaint_models import OnnxInpainter

        assert params.model is not None  # the params' validator says so
        path = resolve_inpainter(params.model, self.settings.models)
        options = {"size": params.model_size, "input_range": params.model_range,
                   "output_range": params.model_output_range, "mask_marks": params.model_mask}
        key = (str(path), path.stat().st_mtime_ns, tuple(options.items()))
        return self.models.get(key, lambda: OnnxInpainter.load(path, **options),
                               model=params.model, backend="onnxruntime")

    @node(
        "inpaint.remove_subtitles",
        params=RemoveParams,
        inputs={"video": "video", "band": "band", "transcript": "transcript"},
        outputs={"video": "video"},
    )
    def remove_subtitles(self, ctx: NodeContext, params: RemoveParams, video: str,
                         band: Band | None, transcript: Transcript) -> dict[str, Any]:
        """Erase burnt-in subtitles (OCR band and events) by inpainting; clean.mp4."""
        from yivideo.inpainting import event_windows, remove_subtitles

        spans = [(s.start, s.end) for s in transcript.segments if s.text.strip()]
        model = self._inpainter(params) if params.method == "onnx" else None
        derived = Path(self.settings.storage_dir) / "derived"
        gone = prune_derived(derived, derived_lifetime(self.settings))
        if gone:
            log.info("deleted %d derived videos unused for too long", len(gone))
        folder = derived / _fingerprint(
            video, band, spans, params, self.identity(self.settings, params.model_dump()))
        out = folder / params.name
        # The threads this call uses follow what Ray reserved for the actor: more would
        # take cores another actor holds.
        reserved = self.settings.actor_options(self.name).num_cpus
        threads = params.threads or max(1, math.ceil(reserved))
        report: dict[str, Any] = {"band": band.to_dict() if band else None,
                                  "events": len(spans), "method": params.method}
        if not out.exists():
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                part = Path(tmp) / params.name
                if band is None or not spans:
                    shutil.copyfile(video, part)  # nothing to erase: the video as it is
                else:
                    mask = Path(tmp) / "subtitle_mask.mp4" if params.save_mask else None
                    stats = remove_subtitles(
                        video, part, band, event_windows(spans, params.pad),
                        method=params.method, grow=params.grow, temporal=params.temporal,
                        radius=params.radius,
                        crf=params.crf, preset=params.preset, threads=threads, model=model,
                        mask_video=mask,
                        progress=ctx.progress)  # fmt: skip
                    report.update(stats.to_dict())
                    if mask is not None:
                        ctx.add_artifact("subtitle_mask.mp4", mask.read_bytes())
                part.replace(out)  # whole or not at all: the next call may reuse it
        else:
            os.utime(folder)  # used again: its lifetime starts over
        ctx.add_artifact(params.name, out.read_bytes())
        ctx.add_artifact("inpaint.json", json.dumps(report, indent=2))
        ctx.progress(1.0, f"{len(spans)} subtitles erased")
        return {"video": str(out)}


_OCR = (Step("band", "ocr.detect_band", renames={"band_samples": "samples"}),
        Step("ocr", "ocr.extract_subtitles"))
capability("subtitle_removal", "inpaint", "opencv",
           "erase burnt-in subtitles found by OCR (OpenCV Navier-Stokes/Telea inpainting); "
           "clean.mp4",
           *_OCR, Step("inpaint", "inpaint.remove_subtitles"))
capability("subtitle_removal", "inpaint", "onnx",
           "erase burnt-in subtitles found by OCR with an ONNX inpainting model (LaMa, MI-GAN) "
           "named from the operator's model folders; clean.mp4",
           *_OCR, Step("inpaint", "inpaint.remove_subtitles", {"method": "onnx"}))
capability("subtitle_removal", "inpaint", "patchmatch",
           "erase burnt-in subtitles found by OCR (PatchMatch inpainting); clean.mp4",
           *_OCR, Step("inpaint", "inpaint.remove_subtitles", {"method": "patchmatch"}))
# Drawn on the latest video: after subtitle_removal, the cleaned one.
capability("subtitle_burning", "burn", "libass", "draw subtitles into the picture",
           Step("burn", "subtitle.burn", tier=OUTPUT))
recipe("remove-subs", {"subtitle_removal": {"strategy": "inpaint", "provider": "opencv"}})
recipe("replace-subs", {
    "subtitle_removal": {"strategy": "inpaint", "provider": "opencv"},
    "subtitle_translation": {"strategy": "llm", "provider": "local", "target_language": "en",
                             "formats": ["srt", "ass", "json"]},
    "subtitle_burning": {"name": "replaced.mp4"}})
