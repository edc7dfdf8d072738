"""Loudness normalisation: the node on real ffmpeg, its wiring, and a workflow on Ray."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest

import yivideo
from actors.loudnorm import LoudnormParams, LoudnormService
from yivideo.media import encode_wav
from yivideo.nodes import NodeContext
from yivideo.types import Audio
from yivideo.workflow import compile_config

RATE = 16000


def _speechlike(amplitude: float, seconds: float = 6.0) -> Audio:
    """A 220 Hz tone whose loudness swells like a voice (so it is not a flat test signal)."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t)
    return Audio((amplitude * envelope * np.sin(2 * np.pi * 220 * t)).astype(np.float32), RATE)


def _ebur128_lufs(audio: Audio) -> float:
    """Integrated loudness measured by ffmpeg's ebur128 filter (not the one under test)."""
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-f", "f32le", "-ar", str(audio.sample_rate),
         "-ac", "1", "-i", "pipe:0", "-af", "ebur128", "-f", "null", "-"],
        input=audio.samples.astype(np.float32).tobytes(), capture_output=True, check=True)
    summary = proc.stderr.decode().rsplit("Summary:", 1)[1]
    return float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))


def _normalize(audio: Audio, **params) -> tuple[Audio, NodeContext]:
    ctx = NodeContext()
    out = LoudnormService(None).normalize(ctx, LoudnormParams(**params), audio)["audio"]
    return out, ctx


def test_quiet_audio_reaches_the_target_with_one_linear_gain():
    quiet = _speechlike(0.01)
    assert _ebur128_lufs(quiet) < -35
    out, ctx = _normalize(quiet, target_i=-18)
    assert out.sample_rate == RATE and len(out.samples) == pytest.approx(len(quiet.samples),
                                                                         abs=RATE // 100)
    assert _ebur128_lufs(out) == pytest.approx(-18, abs=1.0)
    n = min(len(out.samples), len(quiet.samples))
    gain = np.dot(out.samples[:n], quiet.samples[:n]) / np.dot(quiet.samples[:n],
                                                               quiet.samples[:n])
    residual = out.samples[:n] - gain * quiet.samples[:n]
    assert np.sqrt(np.mean(residual**2)) < 0.02 * np.sqrt(np.mean(out.samples**2))
    report = json.loads(ctx.artifacts["loudness.json"])
    assert report["applied"] and float(report["output"]["output_i"]) == pytest.approx(-18, abs=1)


def test_silence_is_returned_unchanged():
    silence = Audio(np.zeros(RATE * 2, np.float32), RATE)
    out, ctx = _normalize(silence)
    assert out is silence
    assert json.loads(ctx.artifacts["loudness.json"])["applied"] is False


def test_placed_before_speech_recognition_it_feeds_it():
    plan = compile_config({"inputs": {"audio_file": "/a.wav"}, "workflow_config": {
        "loudness_normalization": {"target_i": -20}, "subtitle_generation": {}}})
    assert plan.stages["loudnorm"].upstream == {"audio"}
    assert plan.stages["asr"].upstream == {"loudnorm"}
    assert plan.stages["loudnorm"].params["target_i"] == -20


def test_the_recipe_runs_on_an_audio_file(ray_cluster, tmp_path):
    wav = tmp_path / "quiet.wav"
    wav.write_bytes(encode_wav(_speechlike(0.01)))
    request = yivideo.build_request("normalize-audio")
    request["inputs"] = {"audio_file": str(wav)}
    result = yivideo.run(request, out=tmp_path / "out")
    assert result.status == "succeeded", result.state["error"]
    report = json.loads((tmp_path / "out" / "loudness.json").read_text())
    assert float(report["output"]["output_i"]) == pytest.approx(-16, abs=1)
    assert (tmp_path / "out" / "normalized.wav").read_bytes()[:4] == b"RIFF"
