"""Speaker diarization service: the ``diarize.speakers`` and ``diarize.attribute`` nodes.

torch and pyannote.audio load inside methods (see :mod:`yivideo.diarization`), so that
importing this module, as the workflow compiler does, stays fast and needs neither.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field, model_validator

from yivideo import diarization
from yivideo.chunking import Chunking, Clip, check_clip, chunked, plan_audio
from yivideo.datatypes import DataType, register_type
from yivideo.errors import ConfigError
from yivideo.modelkit import resolve_device
from yivideo.nodes import ModelName, NodeContext, Params, Service, node, register_service
from yivideo.recipes import REFINE, Step, capability, recipe
from yivideo.types import Audio, Transcript

register_type(DataType("speaker_turns", "who spoke when: speaker turns",
                       "yivideo.diarization:Turn", many=True, literal="json"))
register_type(DataType("speaker_window", "the local speakers of one window of a long input, "
                       "before they are linked", "yivideo.diarization:Window"))


class SpeakersParams(Params):
    num_speakers: int | None = Field(None, ge=1, description="exact number, when known")
    min_speakers: int | None = Field(None, ge=1, description="lower bound when not known")
    max_speakers: int | None = Field(None, ge=1, description="upper bound when not known")
    clustering_threshold: float | None = Field(
        None, gt=0, le=2,
        description="merge distance of speaker clusters; lower finds more speakers "
                    "(default: the number of speakers is estimated; "
                    f"{diarization.DEFAULT_THRESHOLD} was the old fixed value)",
    )  # fmt: skip
    chunk_s: float = Field(
        diarization.DEFAULT_CHUNK_S, ge=0,
        description="diarize audio longer than 1.5 windows in windows of at most about this many "
                    "seconds, cut at silences, in parallel on the diarization replicas, "
                    "then link speakers across windows; 0 processes the whole input at once",
    )  # fmt: skip
    chunk_search_s: float = Field(
        diarization.DEFAULT_SEARCH_S, gt=0,
        description="a window's cut is the quietest point within this many s of its target")
    pipeline: ModelName(diarization.PIPELINES) | None = Field(
        None, description="name of a pyannote pipeline folder under models.model_dirs; "
                          "None: built-in segmentation-3.0 + CAM++",
    )  # fmt: skip
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _bounds(self) -> SpeakersParams:
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError("min_speakers must not exceed max_speakers")
        return self


class WindowParams(SpeakersParams):
    clip: Clip = Field(
        None, description="the window [start, end] s whose local speakers are found "
                          "(None: the whole audio)")


class PlanParams(Params):
    chunk_s: float = Field(diarization.DEFAULT_CHUNK_S, ge=0,
                           description="windows of at most about this many seconds; 0: one")
    chunk_search_s: float = Field(diarization.DEFAULT_SEARCH_S, gt=0,
                                  description="a cut is the quietest point within this many s")


class AttributeParams(Params):
    pass


@register_service
class DiarizationService(Service):
    """pyannote diarization pipelines, built once per actor and kept."""

    name = "diarize"
    uses_gpu = True
    actor_defaults = {"num_cpus": 1.0}

    def _pipeline(self, params: SpeakersParams) -> diarization.DiarizationPipeline:
        device = resolve_device(params.device, "torch")
        return self.models.get(
            (params.pipeline, device),
            lambda: diarization.build_pipeline(params.pipeline, self.settings.models, device),
            model=params.pipeline or "segmentation-3.0 + CAM++", device=device)

    @node(
        "diarize.speakers",
        params=SpeakersParams,
        inputs={"audio": "audio"},
        outputs={"turns": "speaker_turns"},
    )
    def speakers(self, ctx: NodeContext, params: SpeakersParams, audio: Audio) -> dict:
        """Who spoke when (pyannote); writes diarization.rttm and diarization.json."""
        pipe = self._pipeline(params)
        t0 = time.monotonic()
        turns = diarization.diarize(
            pipe,
            audio.samples,
            audio.sample_rate,
            num_speakers=params.num_speakers,
            min_speakers=params.min_speakers,
            max_speakers=params.max_speakers,
            clustering_threshold=params.clustering_threshold,
            chunk_s=params.chunk_s or None,
            chunk_search_s=params.chunk_search_s,
            progress=ctx.progress,
            uri=ctx.workflow_id or "audio",
        )
        return self._finish(ctx, pipe, audio, turns, time.monotonic() - t0)

    @staticmethod
    def _finish(ctx: NodeContext, pipe: diarization.DiarizationPipeline, audio: Audio,
                turns: list[diarization.Turn], seconds: float) -> dict[str, Any]:
        """The turns as the stage's output and its RTTM and JSON artifacts."""
        ctx.add_artifact("diarization.rttm", diarization.to_rttm(turns, ctx.workflow_id or "audio"))
        ctx.add_artifact(
            "diarization.json",
            diarization.to_json(
                turns,
                duration=round(audio.duration, 3),
                pipeline=pipe.source,
                device=pipe.device,
                seconds=round(seconds, 3),
            ),
        )
        return {"turns": turns}

    @node(
        "diarize.plan_chunks",
        params=PlanParams,
        inputs={"audio": "audio"},
        outputs={"chunks": "spans"},
    )
    def plan_chunks(self, ctx: NodeContext, params: PlanParams, audio: Audio) -> dict:
        """Windows of at most about chunk_s seconds cut at the quietest points (one if
        short), as :func:`yivideo.diarization.diarize` cuts them."""
        samples = diarization.prepare_audio(audio.samples, audio.sample_rate)
        spans = plan_audio(samples, diarization.SAMPLE_RATE, params.chunk_s,
                           params.chunk_search_s, at_most=True)
        return {"chunks": spans}

    @node(
        "diarize.window",
        params=WindowParams,
        inputs={"audio": "audio"},
        outputs={"window": "speaker_window"},
    )
    def window(self, ctx: NodeContext, params: WindowParams, audio: Audio) -> dict:
        """The local speakers of one window of the audio, with their centroids."""
        check_clip(params.clip, audio.duration, "audio")
        span = params.clip or (0.0, audio.duration)
        window = diarization.diarize_window(
            self._pipeline(params), audio.samples, audio.sample_rate, span,
            num_speakers=params.num_speakers, max_speakers=params.max_speakers,
            clustering_threshold=params.clustering_threshold,
            progress=lambda f: ctx.progress(f, "embeddings"),
            uri=f"{ctx.workflow_id or 'audio'}@{span[0]:g}")
        ctx.progress(1.0, "done")
        return {"window": window}

    @node(
        "diarize.link_windows",
        params=SpeakersParams,
        inputs={"audio": "audio", "parts": "any"},
        outputs={"turns": "speaker_turns"},
    )
    def link_windows(self, ctx: NodeContext, params: SpeakersParams, audio: Audio,
                     parts: list[dict[str, Any]]) -> dict:
        """Who spoke when over the whole audio from its windows' local speakers (the
        outputs of diarize.window): speakers linked across windows, speech relabelled."""
        windows = [part.get("window") if isinstance(part, dict) else None for part in parts]
        if not windows or not all(isinstance(w, diarization.Window) for w in windows):
            raise ConfigError.at("parts", "expected the outputs of diarize.window, in order")
        pipe = self._pipeline(params)
        t0 = time.monotonic()
        turns = diarization.link_windows(
            pipe, audio.samples, audio.sample_rate, windows,
            num_speakers=params.num_speakers, min_speakers=params.min_speakers,
            max_speakers=params.max_speakers, clustering_threshold=params.clustering_threshold,
            progress=ctx.progress, uri=ctx.workflow_id or "audio")
        return self._finish(ctx, pipe, audio, turns, time.monotonic() - t0)

    @node(
        "diarize.attribute",
        params=AttributeParams,
        inputs={"transcript": "transcript", "turns": "speaker_turns"},
        outputs={"transcript": "transcript"},
    )
    def attribute(
        self, ctx: NodeContext, params: AttributeParams, transcript: Transcript, turns: list
    ) -> dict:
        """Give transcript segments speakers, splitting them where the speaker changes."""
        try:
            # Turns may also arrive as plain dicts (e.g. read back from diarization.json).
            parsed = [t if isinstance(t, diarization.Turn) else diarization.Turn(**t)
                      for t in turns]  # fmt: skip
        except TypeError as err:
            raise ConfigError.at("turns", f"expected speaker turns: {err}") from None
        return {"transcript": diarization.split_by_speaker(transcript, parsed)}


chunked("diarize.speakers", Chunking(
    "diarize.plan_chunks", "clip", chunk_node="diarize.window",
    merge_node="diarize.link_windows", verb="diarized"))

capability(
    "speaker_diarization", "pyannote", "pyannote_audio", "who spoke when; RTTM/JSON",
    Step("diarization", "diarize.speakers"),
    # with a transcript (ASR) as well: its segments get speakers, and so the subtitles
    Step("speakers", "diarize.attribute", tier=REFINE, optional=True))
recipe("subtitles-speakers", {
    "subtitle_generation": {"strategy": "asr", "provider": "faster_whisper"},
    "speaker_diarization": {"strategy": "pyannote", "provider": "pyannote_audio"}})
