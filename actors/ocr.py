"""Hard-subtitle OCR with PaddleOCR: the ``ocr.detect_band`` and ``ocr.extract_subtitles`` nodes.

PaddleOCR, onnxruntime and PyAV are imported inside methods so that importing this
module, as the workflow compiler does, stays fast. Models are resolved offline
(:mod:`yivideo.ocr_models`); the default PP-OCRv6 small models read Chinese and English
(and more) with one recognition model, so ``language`` only shapes how text is joined and
which language the transcript reports.
"""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from yivideo.chunking import (
    Chunking,
    Clip,
    check_clip,
    chunk_count,
    chunked,
    plan_video_chunks,
)
from yivideo.datatypes import DataType, register_type
from yivideo.errors import ConfigError
from yivideo.modelkit import resolve_device
from yivideo.nodes import ModelName, NodeContext, Params, Service, node, register_service
from yivideo.ocr_models import DEFAULT_MODEL, OCR_MODELS, resolve_ocr_models
from yivideo.recipes import OUTPUT, Step, capability, recipe
from yivideo.types import Segment, Span, Transcript

if TYPE_CHECKING:
    from yivideo.hardsub import Band, OCREvent, PaddleRecognizer

log = logging.getLogger(__name__)

#: PaddleOCR language names -> the language code a transcript carries.
LANGUAGES = {"ch": "zh", "en": "en"}


register_type(DataType("band", "where burnt-in subtitles are in the picture",
                       "yivideo.hardsub:Band", literal="json"))


class BandParams(Params):
    """A subtitle band given by hand, in pixels of the video frame (ends excluded)."""

    y0: int = Field(ge=0, description="first row")
    y1: int = Field(gt=0, description="row after the last")
    x0: int = Field(0, ge=0, description="first column")
    x1: int | None = Field(None, gt=0, description="column after the last; None: frame width")

    @model_validator(mode="after")
    def _ordered(self) -> BandParams:
        if self.y1 <= self.y0:
            raise ValueError("y1 must be greater than y0")
        if self.x1 is not None and self.x1 <= self.x0:
            raise ValueError("x1 must be greater than x0")
        return self


class _OCRParams(Params):
    model: ModelName(OCR_MODELS) = Field(
        DEFAULT_MODEL, description="OCR model set name (see models settings)"
    )
    device: Literal["auto", "cpu", "gpu"] = Field(
        "auto", description="'auto': the GPU when onnxruntime can use CUDA"
    )
    threads: int = Field(
        0, ge=0, description="CPU threads of the OCR engine; 0: the actor's num_cpus"
    )
    min_confidence: float = Field(0.5, ge=0, le=1, description="drop text boxes scored lower")
    similarity: float = Field(
        0.8, gt=0, le=1, description="edit-distance ratio at which two readings are one text"
    )


class DetectBandParams(_OCRParams):
    samples: int = Field(12, ge=2, le=500, description="frames OCR'd to find the band")
    band: BandParams | None = Field(None, description="skip detection: use this band")


class ChunkParams(Params):
    """Where a long video is cut into chunks read in parallel (``yivideo.chunking``)."""

    chunk_s: float = Field(
        600.0, ge=0,
        description=("read videos longer than 1.5 chunks in chunks of about this many seconds, "
                     "cut at key frames, in parallel on the OCR replicas; 0: one call"))


class ExtractParams(_OCRParams, ChunkParams):
    language: Literal["ch", "en"] = Field("ch", description="PaddleOCR language name")
    sample_fps: float = Field(5.0, gt=0, le=120, description="frames per second compared")
    min_duration: float = Field(0.2, ge=0, description="shorter subtitles are flicker (s)")
    change_threshold: float = Field(
        0.3, gt=0, lt=1, description="text-mask difference at which the band has changed"
    )
    band: BandParams | None = Field(None, description="use this band, not a detected one")
    band_samples: int = Field(12, ge=2, le=500, description="frames OCR'd to find the band")
    clip: Clip = Field(
        None, description=("read only [start, end) s of the video (one chunk); times stay "
                           "the video's; None: the whole video"))


def _transcript(params: ExtractParams, duration: float, events: list[OCREvent]) -> Transcript:
    return Transcript(
        language=LANGUAGES[params.language],
        language_probability=1.0,
        duration=duration,
        model=f"paddleocr:{params.model}",
        segments=[Segment(e.start, e.end, e.text) for e in events],
    )


def _events_json(events: list[OCREvent]) -> str:
    return json.dumps([e.to_dict() for e in events], ensure_ascii=False, indent=2)


def _band(params: BandParams, width: int, height: int) -> Band:
    from yivideo.hardsub import Band

    x1 = params.x1 if params.x1 is not None else width
    if params.y1 > height or x1 > width:
        raise ConfigError.at("band", f"band {params.model_dump()} lies outside the "
                             f"{width}x{height} frame")  # fmt: skip
    return Band(params.y0, params.y1, params.x0, x1)


@register_service
class OCRService(Service):
    """PaddleOCR (det + rec), loaded once per actor and kept."""

    name = "ocr"
    uses_gpu = True
    actor_defaults = {"num_cpus": 1.0}

    @classmethod
    def identity(cls, settings: Any, params: dict[str, Any]) -> str:
        """The resolved det/rec model folders of the requested model set."""
        models = resolve_ocr_models(params.get("model", DEFAULT_MODEL), settings.models)
        return f"{models.det.path}|{models.rec.path}"

    def health(self) -> dict[str, Any]:
        health = super().health()
        for facts, engine in zip(health["models"], self.models.loaded(), strict=True):
            facts["calls"] = engine.calls
        return health

    def recognizer(self, params: _OCRParams) -> PaddleRecognizer:
        """The PaddleOCR engine for these params, loaded on first use and kept.

        Keyed by model files, device and threads: the language does not pick another
        model (PP-OCRv6's recogniser is multilingual; a set for one language is its own
        ``model``).
        """
        models = resolve_ocr_models(params.model, self.settings.models)
        device = "gpu:0" if resolve_device(params.device, "onnxruntime") == "cuda" else "cpu"
        # As many threads as Ray reserved for the actor: more only fight the video decoder
        # and other actors for the same cores (on 2 cores, 1 thread reads twice as fast).
        reserved = self.settings.actor_options(self.name).num_cpus
        threads = params.threads or max(1, math.ceil(reserved))

        def load() -> PaddleRecognizer:
            from yivideo.hardsub import PaddleRecognizer

            return PaddleRecognizer(models, device=device, threads=threads)

        return self.models.get(
            (str(models.det.path), str(models.rec.path), device, threads), load,
            model=params.model, det=str(models.det.path), rec=str(models.rec.path),
            device=device, threads=threads)

    def _detect(self, ctx: NodeContext, params: _OCRParams, video: str, samples: int,
                band: BandParams | None, share: float) -> Band | None:  # fmt: skip
        from yivideo import hardsub

        info = hardsub.video_info(video)  # a MediaError before any model loads
        if band is not None:
            return _band(band, info["width"], info["height"])
        rec = self.recognizer(params)

        def find(image: Any) -> list[hardsub.OCRLine]:
            # Finding lines in a whole frame needs less resolution than reading them.
            return rec(image, det_side=640, min_confidence=params.min_confidence)

        def report(f: float, m: str) -> None:
            ctx.progress(f * share, f"finding the subtitle band: {m}")

        return hardsub.detect_band(video, find, samples=samples, similarity=params.similarity,
                                   progress=report)  # fmt: skip

    @node(
        "ocr.detect_band",
        params=DetectBandParams,
        inputs={"video": "video"},
        outputs={"band": "band"},
    )
    def detect_band(self, ctx: NodeContext, params: DetectBandParams, video: str) -> dict:
        """Find where burnt-in subtitles are drawn (None when the video has none)."""
        band = self._detect(ctx, params, video, params.samples, params.band, 1.0)
        ctx.progress(1.0, f"band {band.to_dict() if band else None}")
        return {"band": band}

    @node(
        "ocr.extract_subtitles",
        params=ExtractParams,
        inputs={"video": "video", "band": "band"},
        outputs={"transcript": "transcript"},
        optional_inputs=("band",),
    )
    def extract_subtitles(
        self, ctx: NodeContext, params: ExtractParams, video: str, **optional: Any
    ) -> dict:
        """Read burnt-in subtitles into timed text (PaddleOCR), one segment per subtitle."""
        from yivideo import hardsub

        info = hardsub.video_info(video)
        check_clip(params.clip, info["duration"], "video")
        if params.band is not None:
            band: Band | None = _band(params.band, info["width"], info["height"])
            share = 0.0
        elif "band" in optional:  # from ocr.detect_band; None: it found no subtitles
            band, share = optional["band"], 0.0
        else:
            band = self._detect(ctx, params, video, params.band_samples, None, 0.2)
            share = 0.2
        events: list[hardsub.OCREvent] = []
        if band is not None:
            engine = self.recognizer(params)

            def read(image: Any) -> list[hardsub.OCRLine]:
                return engine(image, min_confidence=params.min_confidence)

            def report(f: float, m: str) -> None:
                ctx.progress(share + f * (1 - share), m)

            result = hardsub.extract_subtitles(
                video, read, band,
                sample_fps=params.sample_fps, min_duration=params.min_duration,
                similarity=params.similarity, change_threshold=params.change_threshold,
                progress=report, clip=params.clip,
            )  # fmt: skip
            events = result.events
            log.info("%s: %d subtitles from %d frames, %d OCR calls",
                     video, len(events), result.frames, result.ocr_calls)  # fmt: skip
        ctx.progress(1.0, f"{len(events)} subtitles")
        transcript = _transcript(params, info["duration"], events)
        if params.clip is not None:  # a chunk: its events are joined with the others'
            return {"transcript": transcript, "events": events}
        ctx.add_artifact("ocr_events.json", _events_json(events))
        return {"transcript": transcript}

    @node(
        "ocr.plan_chunks",
        params=ChunkParams,
        inputs={"video": "video", "band": "band"},
        outputs={"chunks": "spans"},
        optional_inputs=("band",),
    )
    def plan_chunks(self, ctx: NodeContext, params: ChunkParams, video: str,
                    **optional: Any) -> dict:
        """Spans of about chunk_s seconds cut at the nearest key frames (one if short)."""
        from yivideo.media import key_frame_times, video_info

        duration = video_info(video)["duration"]
        # one span needs no key frames (decoding them all costs a pass over the file)
        keys = key_frame_times(video) if chunk_count(duration, params.chunk_s) > 1 else []
        return {"chunks": plan_video_chunks(duration, keys, params.chunk_s)}


def merge_chunks(outputs: list[dict[str, Any]], spans: list[Span], params: dict[str, Any]
                 ) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The chunks' subtitles as one transcript, a subtitle shown across a cut one event."""
    from yivideo.hardsub import join_chunks

    extract = ExtractParams.model_validate(params)
    events = join_chunks([o["events"] for o in outputs], [s.start for s in spans[1:]],
                         similarity=extract.similarity, min_duration=extract.min_duration)
    transcript = _transcript(extract, outputs[0]["transcript"].duration, events)
    return {"transcript": transcript}, {"ocr_events.json": _events_json(events).encode()}


chunked("ocr.extract_subtitles", Chunking(
    "ocr.plan_chunks", "clip", merge_chunks, verb="read", plan_params=("chunk_s",)))

capability(
    "subtitle_generation", "ocr", "paddleocr", "burnt-in subtitles read by OCR",
    Step("band", "ocr.detect_band", renames={"band_samples": "samples"}),
    Step("ocr", "ocr.extract_subtitles"),
    # OCR events already have frame-exact timings: keep them as they are
    Step("subtitles", "subtitle.write", {"keep_segments": True, "formats": ["srt", "json"]},
         tier=OUTPUT))
recipe("hardsub", {"subtitle_generation": {"strategy": "ocr", "provider": "paddleocr"}})
