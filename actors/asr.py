"""Speech recognition with faster-whisper: the ``asr.transcribe`` node.

faster_whisper (and CTranslate2 under it) is imported inside methods so that importing
this module, as the workflow compiler does, stays fast and needs no GPU libraries.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from yivideo.chunking import (
    Chunking,
    Clip,
    check_clip,
    chunked,
    merge_transcripts,
    plan_audio,
)
from yivideo.errors import ConfigError, MediaError, ModelNotFound
from yivideo.media import resample
from yivideo.modelkit import resolve_device
from yivideo.nodes import ModelName, NodeContext, Params, Service, node, register_service
from yivideo.recipes import OUTPUT, Step, capability, recipe
from yivideo.types import Audio, Segment, Span, Transcript, Word
from yivideo.whisper_models import WHISPER_MODELS, available_models, resolve_model

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # what Whisper's feature extractor expects
#: A segment the model judged probably silent and whose text it was unsure of is flagged.
FLAG_NO_SPEECH_PROB = 0.6
FLAG_AVG_LOGPROB = -0.5
#: An n-gram (up to MAX_LOOP_NGRAM words) repeated this often in a row is a decoding loop.
MIN_LOOP_REPEATS = 4
MAX_LOOP_NGRAM = 10


class VadParams(Params):
    """Silero VAD options (faster-whisper's ``VadOptions``); unset keys keep its defaults."""

    threshold: float | None = Field(None, ge=0, le=1, description="speech probability cut")
    neg_threshold: float | None = Field(None, ge=0, le=1, description="silence probability cut")
    min_speech_duration_ms: int | None = Field(None, ge=0)
    max_speech_duration_s: float | None = Field(None, gt=0)
    min_silence_duration_ms: int | None = Field(None, ge=0)
    speech_pad_ms: int | None = Field(None, ge=0)


class ChunkParams(Params):
    """Where long audio is cut into chunks transcribed in parallel (``yivideo.chunking``)."""

    chunk_s: float = Field(
        600.0, ge=0,
        description=("transcribe audio longer than 1.5 chunks in chunks of about this many "
                     "seconds, cut at silences, in parallel on the ASR replicas; 0: one call"))
    chunk_search_s: float = Field(
        30.0, gt=0, description="a cut is the quietest point within this many s of its target")


class TranscribeParams(ChunkParams):
    model: ModelName(WHISPER_MODELS) = Field("tiny.en", description="model name (models settings)")
    language: str | None = Field(None, description="language code; None detects it")
    task: Literal["transcribe", "translate"] = "transcribe"
    beam_size: int = Field(5, ge=1)
    # Defaults measured against faster-whisper's own (bench/asr_defaults.py, table in
    # bench/results/asr_defaults.md). VAD, word timestamps and the silence skip are on: no
    # consistent WER cost on clean speech, better WER on speech over music and with long
    # pauses, and one segment per sentence. Previous-text conditioning is on as in faster-whisper:
    # turning it off cost WER on every clip kind.
    vad_filter: bool = Field(
        True,
        description="skip non-speech with Silero VAD; cuts WER over music and long pauses",
    )
    vad_parameters: VadParams | None = None
    word_timestamps: bool = Field(
        True, description="per-word times; segments then start at their sentence (±0.5 s)"
    )
    initial_prompt: str | None = None
    hotwords: str | None = None
    temperature: list[float] = Field(
        default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
        min_length=1,
        description="fallback temperatures, tried in order when decoding fails the thresholds",
    )
    compression_ratio_threshold: float | None = 2.4
    log_prob_threshold: float | None = -1.0
    no_speech_threshold: float | None = Field(0.6, ge=0, le=1)
    condition_on_previous_text: bool = Field(
        True,
        description=(
            "feed the previous text as prompt (faster-whisper's default; off cost WER). "
            "Loops it may start on long media are cut by the temperature fallback's prompt "
            "reset and the repetition guard (MIN_LOOP_REPEATS)"
        ),
    )
    hallucination_silence_threshold: float | None = Field(
        2.0,
        gt=0,
        description=(
            "skip silences this long around a likely hallucination (s); needs word "
            "timestamps; helps long pauses when VAD is off, no cost otherwise"
        ),
    )
    compute_type: str = Field("default", description="'default': int8 on CPU, float16 on CUDA")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: int = Field(0, ge=0, description="0: CTranslate2's default")
    batch_size: int = Field(0, ge=0, description=">0 uses faster-whisper's batched pipeline")
    clip: Clip = Field(
        None, description=("transcribe only [start, end] s of the audio (one chunk); times "
                           "stay those of the whole audio"))

    @field_validator("language")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip().lower() or None


def _samples_16k(audio: Audio) -> np.ndarray:
    # asarray does not copy float32 input, e.g. a read-only array from Ray's object store.
    samples = np.asarray(audio.samples, dtype=np.float32)
    if samples.ndim != 1:
        raise MediaError(f"expected mono audio samples, got shape {samples.shape}")
    if audio.sample_rate <= 0:
        raise MediaError(f"invalid sample rate {audio.sample_rate}")
    if audio.sample_rate != SAMPLE_RATE:
        samples = resample(samples, audio.sample_rate, SAMPLE_RATE)
    return samples


def _norm(token: str) -> str:
    return re.sub(r"[^\w]", "", token.lower())


def _loop_at(keys: list[str], i: int, min_repeats: int, max_n: int) -> tuple[int, int]:
    """(n, repeats) of the shortest n-gram looping from ``i``; (1, 1) when there is none."""
    for n in range(1, max_n + 1):  # shortest first: "a a a a" is a 1-gram loop
        if i + n * min_repeats > len(keys):
            break
        gram = keys[i : i + n]
        if not any(gram):
            continue
        reps = 1
        while keys[i + reps * n : i + (reps + 1) * n] == gram:
            reps += 1
        if reps >= min_repeats:
            return n, reps
    return 1, 1


def collapse_loops(
    tokens: list[str], min_repeats: int = MIN_LOOP_REPEATS, max_n: int = MAX_LOOP_NGRAM
) -> list[int]:
    """Indices of ``tokens`` kept when each n-gram repeated ``min_repeats``+ times in a row
    is reduced to one occurrence. Case and punctuation are ignored when comparing."""
    keys = [_norm(t) for t in tokens]
    keep: list[int] = []
    i = 0
    while i < len(keys):
        n, reps = _loop_at(keys, i, min_repeats, max_n)
        keep.extend(range(i, i + n))
        i += n * reps
    return keep


def _is_loop(tokens: list[str], min_repeats: int = MIN_LOOP_REPEATS) -> bool:
    keys = [k for k in map(_norm, tokens) if k]
    for n in range(1, len(keys) // min_repeats + 1):
        if len(keys) % n == 0 and keys == keys[:n] * (len(keys) // n):
            return True
    return False


def clean_segments(segments: list[Segment]) -> list[Segment]:
    """Drop empty segments and segments that are one looped phrase; collapse loops inside
    a segment to one occurrence and flag it ``repetition``."""
    cleaned: list[Segment] = []
    for seg in segments:
        tokens = [w.text for w in seg.words] if seg.words else seg.text.split()
        if not any(_norm(t) for t in tokens):
            continue
        if _is_loop(tokens):
            continue
        keep = collapse_loops(tokens)
        if len(keep) < len(tokens):
            flags = [*seg.flags, "repetition"]
            if seg.words:
                words = [seg.words[i] for i in keep]
                text = "".join(w.text for w in words).strip()
                seg = replace(seg, text=text, words=words, flags=flags)
            else:
                seg = replace(seg, text=" ".join(tokens[i] for i in keep), flags=flags)
        cleaned.append(seg)
    return cleaned


def confidence_flags(no_speech_prob: float, avg_logprob: float) -> list[str]:
    """``["low_confidence"]`` for text the model likely made up over silence.

    faster-whisper already drops a window when no_speech_prob > no_speech_threshold and
    avg_logprob < log_prob_threshold; this flags the band just above its cut-off.
    """
    if no_speech_prob > FLAG_NO_SPEECH_PROB and avg_logprob < FLAG_AVG_LOGPROB:
        return ["low_confidence"]
    return []


@register_service
class ASRService(Service):
    """faster-whisper models, loaded once per actor and kept."""

    name = "asr"
    uses_gpu = True
    actor_defaults = {"num_cpus": 1.0}

    @classmethod
    def identity(cls, settings: Any, params: dict[str, Any]) -> str:
        """The resolved weights (path, size, mtime) of the requested model."""
        path = Path(resolve_model(params.get("model", "tiny.en"), settings.models))
        weights = path / "model.bin"
        if not weights.is_file():
            return str(path)
        st = weights.stat()
        return f"{weights}:{st.st_size}:{st.st_mtime_ns}"

    def _check_language(self, params: TranscribeParams, languages: list[str]) -> None:
        """Reject a language or task the model cannot do. ``["en"]``: English-only."""
        if languages != ["en"]:
            if params.language is not None and params.language not in languages:
                raise ConfigError.at("language", f"unknown language code '{params.language}'")
        elif params.task == "translate" or params.language not in (None, "en"):
            what = "translate" if params.task == "translate" else f"language '{params.language}'"
            multi = [n for n in available_models(self.settings.models) if not n.endswith(".en")]
            hint = f" such as {', '.join(multi)}" if multi else ""
            raise ModelNotFound(
                f"model '{params.model}' is English-only and cannot do {what}; "
                f"choose a multilingual model{hint}"
            )

    def _load(self, params: TranscribeParams) -> WhisperModel:
        models = self.settings.models
        path = resolve_model(params.model, models)
        device = resolve_device(params.device, "ctranslate2")
        compute_type = params.compute_type
        if compute_type == "default":
            compute_type = "float16" if device == "cuda" else "int8"

        def load() -> WhisperModel:
            from faster_whisper import WhisperModel

            return WhisperModel(path, device=device, compute_type=compute_type,
                                cpu_threads=params.cpu_threads,
                                download_root=str(models.cache_dir / "hub"),
                                local_files_only=not models.allow_download)

        return self.models.get((path, device, compute_type, params.cpu_threads), load,
                               model=params.model, path=path, device=device,
                               compute_type=compute_type, cpu_threads=params.cpu_threads)

    @node(
        "asr.transcribe",
        params=TranscribeParams,
        inputs={"audio": "audio"},
        outputs={"transcript": "transcript"},
    )
    def transcribe(self, ctx: NodeContext, params: TranscribeParams, audio: Audio) -> dict:
        """Speech to text with word timestamps (faster-whisper)."""
        if params.model.endswith(".en"):
            self._check_language(params, ["en"])  # fail before loading anything
        samples = _samples_16k(audio)
        model = self._load(params)
        self._check_language(params, model.supported_languages)
        duration = audio.duration
        english_only = model.supported_languages == ["en"]
        transcript = Transcript(
            language=params.language or ("en" if english_only else ""),
            language_probability=1.0 if english_only or params.language else 0.0,
            duration=duration,
            model=params.model,
        )
        offset = 0.0
        check_clip(params.clip, duration, "audio")
        if params.clip is not None:
            # A slice rather than faster-whisper's clip_timestamps: with clip_timestamps it
            # skips VAD and computes features for the whole audio, once per chunk.
            first, last = (round(t * SAMPLE_RATE) for t in params.clip)
            samples, offset = samples[first:last], first / SAMPLE_RATE
        length = samples.size / SAMPLE_RATE
        if samples.size == 0:
            return {"transcript": transcript}

        options: dict[str, Any] = dict(
            language=params.language,
            task=params.task,
            beam_size=params.beam_size,
            vad_filter=params.vad_filter,
            vad_parameters=(
                params.vad_parameters.model_dump(exclude_none=True)
                if params.vad_parameters
                else None
            ),
            word_timestamps=params.word_timestamps,
            initial_prompt=params.initial_prompt,
            hotwords=params.hotwords,
            temperature=list(params.temperature),
            compression_ratio_threshold=params.compression_ratio_threshold,
            log_prob_threshold=params.log_prob_threshold,
            no_speech_threshold=params.no_speech_threshold,
            condition_on_previous_text=params.condition_on_previous_text,
            # faster-whisper only applies it with word timestamps
            hallucination_silence_threshold=(
                params.hallucination_silence_threshold if params.word_timestamps else None
            ),
        )
        if params.batch_size > 0:
            from faster_whisper import BatchedInferencePipeline

            if not params.vad_filter and length >= 30:
                # Without VAD the batched pipeline needs the chunks spelled out.
                options["clip_timestamps"] = [
                    {"start": s, "end": min(s + 30.0, length)}
                    for s in np.arange(0.0, length, 30.0).tolist()
                ]
            pieces, info = BatchedInferencePipeline(model).transcribe(
                samples, batch_size=params.batch_size, **options
            )
        else:
            pieces, info = model.transcribe(samples, **options)

        segments: list[Segment] = []
        for piece in pieces:  # a generator: decoding happens as we iterate
            end = float(piece.end)
            ctx.progress(end / length, f"{end:.0f}/{length:.0f} s")
            flags = confidence_flags(piece.no_speech_prob, piece.avg_logprob)
            # plain floats: faster-whisper mixes in numpy scalars, which JSON cannot encode
            words = [
                Word(float(w.start) + offset, float(w.end) + offset, w.word,
                     float(w.probability))
                for w in piece.words or []
            ]
            segments.append(Segment(float(piece.start) + offset, end + offset,
                                    piece.text.strip(), words=words, flags=flags))
        ctx.progress(1.0, f"{length:.0f}/{length:.0f} s")
        transcript.language = info.language
        transcript.language_probability = float(info.language_probability)
        transcript.segments = clean_segments(segments)
        return {"transcript": transcript}

    @node(
        "asr.plan_chunks",
        params=ChunkParams,
        inputs={"audio": "audio"},
        outputs={"chunks": "spans"},
    )
    def plan_chunks(self, ctx: NodeContext, params: ChunkParams, audio: Audio) -> dict:
        """Spans of about chunk_s seconds cut at the quietest points (one if short)."""
        spans = plan_audio(audio.samples, audio.sample_rate, params.chunk_s,
                           params.chunk_search_s)
        return {"chunks": spans}


def merge_chunks(outputs: list[dict[str, Any]], spans: list[Span], params: dict[str, Any]
                 ) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The chunks' transcripts as one (:func:`yivideo.chunking.merge_transcripts`)."""
    return {"transcript": merge_transcripts([o["transcript"] for o in outputs], spans)}, {}


chunked("asr.transcribe", Chunking("asr.plan_chunks", "clip", merge_chunks,
                                   verb="transcribed"))

capability("subtitle_generation", "asr", "faster_whisper", "speech to SRT/VTT/ASS/JSON",
           Step("asr", "asr.transcribe"), Step("subtitles", "subtitle.write", tier=OUTPUT),
           default=True)
recipe("subtitles", {"subtitle_generation": {"strategy": "asr", "provider": "faster_whisper"}})
