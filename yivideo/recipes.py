"""The recipe form: capabilities with a strategy and a provider expand into stages.

``{"video_path": "a.mp4", "workflow_config": {"subtitle_generation":
{"strategy": "asr", "provider": "faster_whisper", "model": "tiny.en"}}}`` becomes the
explicit stages probe -> audio -> asr -> subtitles. Every provider's remaining keys are
the params of the stage it adds, validated by that node's own model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from yivideo.errors import ConfigError

Stages = dict[str, dict[str, Any]]
#: A builder adds its stages to ``stages`` given the provider's params.
Builder = Callable[[Stages, dict[str, Any]], None]


class RecipeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video_path: str = Field(min_length=1)
    workflow_config: dict[str, Any]
    options: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Provider:
    build: Builder
    description: str


def _split(params: dict[str, Any], *keys: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Params named in ``keys`` and the rest."""
    picked = {k: params[k] for k in keys if k in params}
    return picked, {k: v for k, v in params.items() if k not in keys}


def _audio(stages: Stages, params: dict[str, Any] | None = None) -> str:
    stages.setdefault("audio", {"node": "ffmpeg.extract_audio", "inputs": {"video": "input.video"}})
    if params:
        stages["audio"]["params"] = {**stages["audio"].get("params", {}), **params}
    return "audio"


def _extract_audio(stages: Stages, params: dict[str, Any]) -> None:
    _audio(stages, {"save_wav": True, **params})


def _split_audio(mode: str) -> Builder:
    def build(stages: Stages, params: dict[str, Any]) -> None:
        stages["chunks"] = {"node": "ffmpeg.split_audio", "params": {"mode": mode, **params},
                            "inputs": {"audio": f"{_audio(stages)}.audio"}}
    return build


def _keyframes(stages: Stages, params: dict[str, Any]) -> None:
    stages["keyframes"] = {"node": "ffmpeg.keyframes", "params": params,
                           "inputs": {"video": "input.video"}}


_WRITE_KEYS = ("formats", "rules", "name", "font", "font_size", "speaker_prefix",
               "keep_segments")


def _asr_subtitles(stages: Stages, params: dict[str, Any]) -> None:
    write, asr = _split(params, *_WRITE_KEYS)
    stages["asr"] = {"node": "asr.transcribe", "params": asr,
                     "inputs": {"audio": f"{_audio(stages)}.audio"}}
    stages["subtitles"] = {"node": "subtitle.write", "params": write,
                           "inputs": {"transcript": "asr.transcript"}}
    _attribute_speakers(stages)


def _diarize(stages: Stages, params: dict[str, Any]) -> None:
    stages["diarization"] = {"node": "diarize.speakers", "params": params,
                             "inputs": {"audio": f"{_audio(stages)}.audio"}}
    _attribute_speakers(stages)


def _attribute_speakers(stages: Stages) -> None:
    """With both speech recognition and diarization: speakers go into the subtitles."""
    if "asr" in stages and "diarization" in stages and "speakers" not in stages:
        stages["speakers"] = {"node": "diarize.attribute", "inputs": {
            "transcript": "asr.transcript", "turns": "diarization.turns"}}
        stages["subtitles"]["inputs"]["transcript"] = "speakers.transcript"


def _ocr_subtitles(stages: Stages, params: dict[str, Any]) -> None:
    write, ocr = _split(params, *_WRITE_KEYS)
    shared = ("model", "device", "threads", "min_confidence", "similarity")
    band = {k: ocr[k] for k in shared if k in ocr}
    if "band" in ocr:
        band["band"] = ocr["band"]
    if "band_samples" in ocr:
        band["samples"] = ocr.pop("band_samples")
    stages["band"] = {"node": "ocr.detect_band", "params": band,
                      "inputs": {"video": "input.video"}}
    stages["ocr"] = {"node": "ocr.extract_subtitles", "params": ocr,
                     "inputs": {"video": "input.video", "band": "band.band"}}
    # OCR events already have frame-exact timings: keep them as they are
    stages["subtitles"] = {"node": "subtitle.write",
                           "params": {"keep_segments": True, "formats": ["srt", "json"], **write},
                           "inputs": {"transcript": "ocr.transcript"}}


#: capability -> (strategy, provider) -> how it expands; the first strategy is the default
CAPABILITIES: dict[str, dict[tuple[str, str], Provider]] = {
    "audio_extraction": {
        ("decode", "ffmpeg"): Provider(_extract_audio, "decode the audio track; audio.wav"),
    },
    "audio_split": {
        ("silence", "ffmpeg"): Provider(_split_audio("silence"), "chunks cut at silences"),
        ("fixed", "ffmpeg"): Provider(_split_audio("fixed"), "fixed-length chunks"),
    },
    "speaker_diarization": {
        ("pyannote", "pyannote_audio"): Provider(_diarize, "who spoke when; RTTM/JSON"),
    },
    "keyframes": {
        ("keyframes", "ffmpeg"): Provider(_keyframes, "decode the key frames"),
    },
    "subtitle_generation": {
        ("asr", "faster_whisper"): Provider(_asr_subtitles, "speech to SRT/VTT/ASS/JSON"),
        ("ocr", "paddleocr"): Provider(_ocr_subtitles, "burnt-in subtitles read by OCR"),
    },
}

#: Built-in recipes a user can name instead of writing a config.
RECIPES: dict[str, dict[str, Any]] = {
    "subtitles": {"subtitle_generation": {"strategy": "asr", "provider": "faster_whisper"}},
    "subtitles-speakers": {
        "subtitle_generation": {"strategy": "asr", "provider": "faster_whisper"},
        "speaker_diarization": {"strategy": "pyannote", "provider": "pyannote_audio"},
    },
    "hardsub": {"subtitle_generation": {"strategy": "ocr", "provider": "paddleocr"}},
    "audio": {
        "audio_extraction": {"strategy": "decode", "provider": "ffmpeg"},
        "audio_split": {"strategy": "silence", "provider": "ffmpeg"},
    },
    "media": {
        "audio_extraction": {"strategy": "decode", "provider": "ffmpeg"},
        "keyframes": {"strategy": "keyframes", "provider": "ffmpeg", "width": 320},
    },
}


def expand_recipe(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Turn the recipe form into the explicit form (stages named after their role).

    Also returns, for each stage a capability added, that capability's place in the
    request, so that a bad param is reported where the user wrote it.
    """
    try:
        req = RecipeRequest.model_validate(data)
    except ValidationError as e:
        from yivideo.workflow import _pydantic_details, _raise

        _raise(_pydantic_details(e, ""))
    if not req.workflow_config:
        raise ConfigError.at("workflow_config", "name at least one capability")
    stages: Stages = {
        "probe": {"node": "ffmpeg.probe", "inputs": {"video": "input.video"}},
    }
    origins: dict[str, str] = {}
    for cap, body in req.workflow_config.items():
        loc = f"workflow_config.{cap}"
        if cap not in CAPABILITIES:
            raise ConfigError.at(loc, f"unknown capability (known: {', '.join(CAPABILITIES)})")
        if not isinstance(body, dict):
            raise ConfigError.at(loc, "expected a mapping with strategy and provider")
        params = dict(body)
        strategy, provider = params.pop("strategy", None), params.pop("provider", None)
        options = CAPABILITIES[cap]
        strategies = list(dict.fromkeys(s for s, _ in options))
        strategy = strategy or strategies[0]
        if strategy not in strategies:
            raise ConfigError.at(f"{loc}.strategy",
                                 f"unknown strategy '{strategy}' (known: {', '.join(strategies)})")
        providers = sorted(p for s, p in options if s == strategy)
        provider = provider or (providers[0] if len(providers) == 1 else None)
        if provider not in providers:
            raise ConfigError.at(f"{loc}.provider", f"unknown provider '{provider}' for "
                                 f"strategy '{strategy}' (known: {', '.join(providers)})")
        before = set(stages)
        options[(strategy, provider)].build(stages, params)
        origins.update({name: loc for name in set(stages) - before})
    explicit = {"inputs": {"video": req.video_path}, "stages": stages, "options": req.options}
    return explicit, origins


def list_capabilities() -> dict[str, list[dict[str, str]]]:
    return {cap: [{"strategy": s, "provider": p, "description": v.description}
                  for (s, p), v in opts.items()] for cap, opts in CAPABILITIES.items()}
