"""Loudness normalisation service: EBU R128 two-pass ``loudnorm`` of ffmpeg.

Quiet or uneven recordings are brought to a target integrated loudness before speech
recognition or diarization, or before audio is handed back. The first pass measures the
input, the second applies one linear gain computed from that measurement (so dynamics
are kept) when the true-peak limit allows it; ffmpeg falls back to its dynamic mode
otherwise. Both passes run on the samples piped through ffmpeg, nothing on disk.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from typing import Any

import numpy as np
from pydantic import Field

from yivideo.errors import MediaError
from yivideo.media import encode_wav
from yivideo.nodes import NodeContext, Params, Service, node, register_service
from yivideo.recipes import Step, capability, recipe
from yivideo.types import Audio


class LoudnormParams(Params):
    target_i: float = Field(-16.0, ge=-70, le=-5, description="integrated loudness, LUFS")
    true_peak: float = Field(-1.5, ge=-9, le=0, description="maximum true peak, dBTP")
    lra: float = Field(11.0, ge=1, le=50, description="loudness range target, LU")
    save_wav: bool = Field(False, description="keep the result as the artifact normalized.wav")


def _ffmpeg_filter(audio: Audio, audio_filter: str, keep_output: bool) -> tuple[bytes, str]:
    """Pipe ``audio`` through ``audio_filter``: (float32 output samples, ffmpeg's log)."""
    rate = str(audio.sample_rate)
    raw = ["-f", "f32le", "-ar", rate, "-ac", "1"]
    out = [*raw, "pipe:1"] if keep_output else ["-f", "null", "-"]
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", *raw, "-i", "pipe:0",
         "-af", audio_filter, *out],
        input=np.ascontiguousarray(audio.samples, np.float32).tobytes(), capture_output=True)
    log = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise MediaError(f"loudnorm failed: {log.strip().splitlines()[-1:] or 'ffmpeg error'}")
    return proc.stdout, log


def _report(log: str) -> dict[str, Any]:
    """The JSON block loudnorm prints at the end of its log."""
    blocks = re.findall(r"\{[^{}]*\}", log)
    if not blocks:
        raise MediaError("loudnorm printed no measurement")
    return json.loads(blocks[-1])


def measure(audio: Audio, params: LoudnormParams) -> dict[str, Any]:
    """First pass: loudnorm's measurement of ``audio`` (input_i, input_tp, ...)."""
    spec = f"loudnorm=I={params.target_i}:TP={params.true_peak}:LRA={params.lra}"
    return _report(_ffmpeg_filter(audio, spec + ":print_format=json", False)[1])


@register_service
class LoudnormService(Service):
    name = "loudnorm"
    actor_defaults = {"num_cpus": 0.5, "max_concurrency": 2}

    @node("loudnorm.normalize", params=LoudnormParams, inputs={"audio": "audio"},
          outputs={"audio": "audio"})
    def normalize(self, ctx: NodeContext, params: LoudnormParams, audio: Audio
                  ) -> dict[str, Any]:
        """Bring audio to a target loudness (EBU R128, two passes); loudness.json."""
        first = measure(audio, params)
        if not math.isfinite(float(first["input_i"])):  # silence: nothing to scale
            ctx.add_artifact("loudness.json", json.dumps({"input": first, "applied": False}))
            return {"audio": audio}
        ctx.progress(0.5, "measured")
        spec = (f"loudnorm=I={params.target_i}:TP={params.true_peak}:LRA={params.lra}"
                f":measured_I={first['input_i']}:measured_TP={first['input_tp']}"
                f":measured_LRA={first['input_lra']}:measured_thresh={first['input_thresh']}"
                f":offset={first['target_offset']}:linear=true:print_format=json")
        data, log = _ffmpeg_filter(audio, spec, True)
        # loudnorm works at 192 kHz inside; ffmpeg resamples back to the input's rate
        out = Audio(np.frombuffer(data, np.float32).copy(), audio.sample_rate)
        ctx.add_artifact("loudness.json", json.dumps(
            {"input": first, "output": _report(log), "applied": True}, indent=2))
        if params.save_wav:
            ctx.add_artifact("normalized.wav", encode_wav(out))
        return {"audio": out}


# Placed before speech recognition or diarization in a config, they hear the result.
capability("loudness_normalization", "loudnorm", "ffmpeg",
           "bring audio to a target loudness (EBU R128); loudness.json",
           Step("loudnorm", "loudnorm.normalize"))
recipe("normalize-audio", {"loudness_normalization": {"save_wav": True}})
