"""Dubbing service: speech fitted to its slots, mixed over the background, muxed.

``dub.mix`` places each synthesized line (``speech`` from ``tts.synthesize``) at its
line's start. A clip longer than its slot is sped up with ffmpeg's ``atempo`` (tempo
without pitch change) up to ``max_speed``; still too long, it extends into the silence
before the next line; beyond that the ``policy`` decides (``overlap`` keeps all of it
running into the next line, ``trim`` cuts it with a short fade, ``slow_video`` slows the
picture and background from the line's start to the next line's so that the line fits,
shifting every later time), and the line is reported in ``dub.json``. Nothing is cut
silently. The background (the instrumental from
separation, or the original audio) is ducked under the speech.

``dub.mux`` puts the (loudness-normalised) mix into the source video: the video stream is
copied (re-encoded only where ``slow_video`` slowed it), the new audio is the first
track, the original audio optionally the second.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from actors.tts import SpeechLine
from yivideo.datatypes import DataType, register_type
from yivideo.dubbing_retime import Retime, Span, retime_audio, video_filter
from yivideo.errors import MediaError
from yivideo.media import encode_wav, probe, resample
from yivideo.nodes import NodeContext, Params, Service, node, register_service
from yivideo.recipes import OUTPUT, Step, capability, recipe
from yivideo.subtitles import render
from yivideo.types import Audio, SubtitleEvent

Policy = Literal["overlap", "trim", "slow_video"]
_FADE_S = 0.03  # a cut clip fades out instead of clicking


@dataclass
class Fit:
    """Where and how fast one line is spoken (one line of ``dub.json``)."""

    index: int
    text: str
    voice: str
    speaker: str | None
    slot: tuple[float, float]
    speech_s: float  # the clip as synthesized
    speed: float  # tempo factor applied (1: as synthesized)
    start: float  # placed on the timeline
    end: float
    action: str  # fit | speed_up | extend | overlap | trim | slow_video
    overflow_s: float = 0.0  # how far past the room before the next line it would run
    #: the time the line holds on the output timeline: its slot, extended by its speech
    final_slot: tuple[float, float] = (0.0, 0.0)
    slowed_s: float = 0.0  # how much longer slow_video made the video here


register_type(DataType("retime", "source spans the dub slowed (slow_video), each with the "
                       "seconds it added", "yivideo.dubbing_retime:Retime"))


def plan_fit(slots: list[tuple[float, float]], durations: list[float], total: float,
             max_speed: float, policy: Policy, gap_s: float = 0.1
             ) -> list[tuple[float, float, str, float]]:
    """Per line: (speed, placed length s, action, overflow s).

    ``room`` is the time from a line's start to the next line's start less ``gap_s``
    (or to the end of the audio), never less than the line's own slot. With
    ``slow_video`` the overflow is what the video must be lengthened by.
    """
    out = []
    for i, ((start, end), d) in enumerate(zip(slots, durations, strict=True)):
        slot = max(end - start, 1e-3)
        following = slots[i + 1][0] - gap_s if i + 1 < len(slots) else total
        room = max(slot, following - start)
        if d <= slot + 1e-6:
            out.append((1.0, d, "fit", 0.0))
            continue
        speed = min(d / slot, max_speed)
        length = d / speed
        if length <= slot + 1e-6:
            out.append((speed, length, "speed_up", 0.0))
        elif length <= room + 1e-6:
            out.append((speed, length, "extend", 0.0))
        else:
            placed = room if policy == "trim" else length  # slow_video: room grows
            out.append((speed, placed, policy, length - room))
    return out


def atempo(samples: np.ndarray, rate: int, speed: float) -> np.ndarray:
    """``samples`` played ``speed`` times faster at the same pitch (ffmpeg ``atempo``)."""
    if abs(speed - 1.0) < 1e-3 or len(samples) == 0:
        return samples
    fmt = ["-f", "f32le", "-ar", str(rate), "-ac", "1"]
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", *fmt, "-i", "pipe:0",
         "-af", f"atempo={speed:.6f}", *fmt, "pipe:1"],
        input=np.ascontiguousarray(samples, np.float32).tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise MediaError(f"atempo failed: {proc.stderr.decode(errors='replace')[-300:]}")
    return np.frombuffer(proc.stdout, np.float32).copy()


def duck_envelope(n: int, rate: int, spans: list[tuple[float, float]], duck_db: float,
                  ramp_s: float) -> np.ndarray:
    """Gain 1 outside ``spans``, ``-duck_db`` inside, with linear ramps around them."""
    if duck_db <= 0 or not spans:
        return np.ones(n, np.float32)
    merged: list[list[float]] = []
    for a, b in sorted(spans):  # spans closer than two ramps stay ducked between them
        if merged and a - merged[-1][1] < 2 * ramp_s:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    low = 10 ** (-duck_db / 20)
    xs, ys = [0.0], [1.0]
    for a, b in merged:
        xs += [max(a - ramp_s, xs[-1]), max(a, xs[-1]), b, b + ramp_s]
        ys += [1.0, low, low, 1.0]
    t = np.arange(n, dtype=np.float64) / rate
    return np.interp(t, xs, ys).astype(np.float32)


class MixParams(Params):
    max_speed: float = Field(1.3, ge=1.0, le=2.0,
                             description="most a line is sped up (atempo, pitch kept)")
    policy: Policy = Field(
        "overlap", description="a line too long even sped up and extended into the gap: "
                               "overlap the next, trim it, or slow_video (slow the picture "
                               "up to the next line; the video is re-encoded and longer)")
    gap_s: float = Field(0.1, ge=0, le=2, description="silence kept before the next line "
                                                      "when a line extends")
    duck_db: float = Field(6.0, ge=0, le=60, description="background lowered under speech, dB")
    ramp_s: float = Field(0.15, ge=0.01, le=2, description="duck ramp length, s")


class DubMuxParams(Params):
    name: str = Field("dubbed.mp4", pattern=r"^[A-Za-z0-9_.-]+\.(mp4|mkv|mov)$")
    keep_original: bool = Field(False, description="keep the source audio as a second track")
    bitrate: str = Field("160k", pattern=r"^[0-9]{2,3}k$", description="AAC bitrate")


def _spans(speech: list[SpeechLine], plan: list[tuple[float, float, str, float]],
           total: float) -> Retime:
    """The source spans ``slow_video`` lengthens: a line's start to the next line's."""
    spans = []
    for i, (line, (_, _, action, overflow)) in enumerate(zip(speech, plan, strict=True)):
        if action == "slow_video" and overflow > 0:
            end = speech[i + 1].start if i + 1 < len(speech) else total
            spans.append(Span(line.start, max(end, line.start + 0.04), overflow))
    return Retime(spans)


def _srt(fits: list[Fit]) -> str:
    events = [SubtitleEvent(f.start, f.end, [f.text], f.speaker) for f in fits if f.text]
    return render(events, "srt")


@register_service
class DubService(Service):
    """Timing fit, remix and mux (CPU, ffmpeg)."""

    name = "dub"
    actor_defaults = {"num_cpus": 0.5, "max_concurrency": 2}

    @node("dub.mix", params=MixParams, inputs={"speech": "speech", "audio": "audio"},
          outputs={"audio": "audio", "retime": "retime"})
    def mix(self, ctx: NodeContext, params: MixParams, speech: list[SpeechLine],
            audio: Audio) -> dict[str, Any]:
        """Fit each line's speech to its slot and mix it over the ducked background."""
        rate = audio.sample_rate
        plan = plan_fit([(s.start, s.end) for s in speech], [s.duration for s in speech],
                        audio.duration, params.max_speed, params.policy, params.gap_s)
        retime = _spans(speech, plan, audio.duration)
        background = retime_audio(np.asarray(audio.samples, np.float32), rate, retime)
        n = len(background)
        track = np.zeros(n, np.float32)
        fits = []
        for line, (speed, length, action, overflow) in zip(speech, plan, strict=True):
            clip = atempo(resample(line.samples, line.sample_rate, rate), rate, speed)
            # atempo may add a few ms of tail: the clip keeps its planned length, on
            # which the room (and slow_video's extra time) was reckoned
            clip = clip[:int(round(length * rate))]
            if action == "trim":
                clip = clip[:int(length * rate)].copy()
                fade = min(len(clip), int(_FADE_S * rate))
                clip[len(clip) - fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
            start = retime(line.start)
            at = int(round(start * rate))
            piece = clip[:max(0, n - at)]
            track[at:at + len(piece)] += piece
            fits.append(Fit(line.index, line.text, line.voice, line.speaker,
                            (round(line.start, 3), round(line.end, 3)),
                            round(line.duration, 3), round(speed, 3), round(start, 3),
                            round(start + len(clip) / rate, 3), action,
                            round(overflow, 3),
                            (round(start, 3), round(max(retime(line.end),
                                                         start + len(clip) / rate), 3)),
                            round(overflow if action == "slow_video" else 0.0, 3)))
            ctx.progress(len(fits) / max(len(speech), 1), f"line {len(fits)}/{len(speech)}")
        env = duck_envelope(n, rate, [(f.start, f.end) for f in fits if f.end > f.start],
                            params.duck_db, params.ramp_s)
        mixed = background * env + track
        actions = [f.action for f in fits]
        ctx.add_artifact("dub.json", json.dumps({
            "lines": [asdict(f) for f in fits],
            "summary": {a: actions.count(a) for a in dict.fromkeys(actions)},
            "max_speed": params.max_speed, "policy": params.policy,
            "source_s": round(audio.duration, 3), "output_s": round(n / rate, 3),
            "video_extended_s": round(retime.extra_s, 3),
            "slowed_spans": [{k: round(v, 3) for k, v in asdict(s).items()}
                             for s in retime.spans]}, indent=2,
            ensure_ascii=False))
        ctx.add_artifact("dub.srt", _srt(fits))
        return {"audio": Audio(mixed, rate), "retime": retime}

    @node("dub.mux", params=DubMuxParams,
          inputs={"video": "video", "audio": "audio", "retime": "retime"},
          optional_inputs=("retime",))
    def mux(self, ctx: NodeContext, params: DubMuxParams, video: str, audio: Audio,
            retime: Retime | None = None) -> dict[str, Any]:
        """The source video with the dub as its audio; dub.wav too.

        The video stream is copied, or re-encoded where ``slow_video`` slowed spans."""
        wav = encode_wav(audio)
        ctx.add_artifact("dub.wav", wav)
        if retime is not None and retime.spans:
            if params.keep_original:
                raise MediaError("keep_original cannot be used with slow_video: the "
                                 "original audio no longer matches the slowed picture")
            fps = (probe(video)["video"] or {}).get("fps") or 25.0
            vcodec = ["-filter_complex", video_filter(retime, fps), "-map", "[v]",
                      "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
                      "-pix_fmt", "yuv420p"]
        else:
            vcodec = ["-map", "0:v:0", "-c:v", "copy"]
        with tempfile.TemporaryDirectory(prefix="yivideo-dub-") as tmp:
            dub_path, out = Path(tmp) / "dub.wav", Path(tmp) / params.name
            dub_path.write_bytes(wav)
            extra = ["-map", "0:a:0?"] if params.keep_original else []
            proc = subprocess.run(
                ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", video, "-i", str(dub_path),
                 *vcodec, "-map", "1:a:0", *extra, "-c:a", "aac",
                 "-b:a", params.bitrate, "-disposition:a:0", "default",
                 *(["-disposition:a:1", "0"] if params.keep_original else []), str(out)],
                capture_output=True, text=True)
            if proc.returncode != 0:
                raise MediaError(f"muxing the dub failed: {proc.stderr.strip()[-300:]}")
            ctx.add_artifact(params.name, out.read_bytes())
        return {}


def _dubbing(strategy: str, engine: str, description: str, *background: Step,
             duck_db: float) -> None:
    # the cloning servers take each speaker's voice from the source audio: their step
    # comes before separation, while the board's audio is still the source's
    cloning = engine in ("gpt_sovits", "index_tts")
    tts = (Step("tts", "tts.clone", {"provider": engine}, tier=OUTPUT) if cloning
           else Step("tts", "tts.synthesize", {"engine": engine}, tier=OUTPUT))
    capability(
        "dubbing", strategy, engine, description,
        # the dub's own copy of the source audio at a listening rate, so that it does not
        # depend on what earlier steps (speech recognition at 16 kHz, separation for ASR)
        # made of the board's audio
        Step("dub_source", "ffmpeg.extract_audio", {"sample_rate": 44100}, tier=OUTPUT),
        tts,
        *background,
        Step("dub_mix", "dub.mix", {"duck_db": duck_db}, tier=OUTPUT),
        Step("dub_loudnorm", "loudnorm.normalize", tier=OUTPUT),
        Step("dub", "dub.mux", tier=OUTPUT))


for _engine in ("auto", "espeak", "piper", "kokoro", "index_tts", "gpt_sovits"):
    _dubbing("separated", _engine,
             f"speak the transcript ({_engine}), fitted to its slots, over the separated "
             "background (Spleeter); dubbed.mp4, dub.wav, dub.json, dub.srt",
             Step("background", "separate.spleeter", {"save_wav": False},
                  publish={"audio": "instrumental"}, tier=OUTPUT), duck_db=6.0)
    # without separation the original voices are still in the background: duck it deep
    _dubbing("ducked", _engine,
             f"speak the transcript ({_engine}), fitted to its slots, over the original "
             "audio ducked under it; dubbed.mp4, dub.wav, dub.json, dub.srt", duck_db=24.0)

recipe("dub", {
    "subtitle_generation": {"strategy": "asr", "provider": "faster_whisper", "model": "base"},
    "subtitle_translation": {"strategy": "llm", "provider": "local", "target_language": "en"},
    "dubbing": {"strategy": "separated", "provider": "auto"}})
