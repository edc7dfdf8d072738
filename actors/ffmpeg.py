"""ffmpeg service: probe, audio, frames and splitting."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from yivideo import media
from yivideo.nodes import NodeContext, Params, Service, node, register_service
from yivideo.recipes import Step, capability, converter, recipe
from yivideo.types import Audio


class ProbeParams(Params):
    save: bool = Field(True, description="keep the facts as the artifact media.json")


class ExtractAudioParams(Params):
    sample_rate: int = Field(media.SAMPLE_RATE, ge=8000, le=48000)
    save_wav: bool = Field(False, description="keep the audio as the artifact audio.wav")


class FramesParams(Params):
    fps: float = Field(1.0, gt=0, le=60, description="frames per second to sample")
    width: int | None = Field(None, ge=16, description="scale down to this width")


class KeyframesParams(Params):
    width: int | None = Field(None, ge=16, description="scale down to this width")


class SplitAudioParams(Params):
    mode: Literal["fixed", "silence"] = "silence"
    window_s: float = Field(30.0, gt=0, description="window (fixed) or longest chunk (silence)")
    min_silence_s: float = Field(0.3, gt=0)
    threshold_db: float = Field(-40.0, lt=0)


@register_service
class FFmpegService(Service):
    name = "ffmpeg"
    actor_defaults = {"num_cpus": 0.5, "max_concurrency": 4}

    @node("ffmpeg.probe", params=ProbeParams, inputs={"video": "video"},
          outputs={"info": "media_info"})
    def probe(self, ctx: NodeContext, params: ProbeParams, video: str) -> dict[str, Any]:
        """Read container and stream facts (duration, size, frame rate, audio)."""
        info = media.probe(video)
        if params.save:
            ctx.add_artifact("media.json", json.dumps(info, indent=2))
        return {"info": info}

    @node("ffmpeg.extract_audio", params=ExtractAudioParams, inputs={"video": "video"},
          outputs={"audio": "audio"})
    def extract_audio(self, ctx: NodeContext, params: ExtractAudioParams, video: str
                      ) -> dict[str, Any]:
        """Decode the audio track to mono float32 (16 kHz by default)."""
        audio = media.decode_audio(video, params.sample_rate)
        if params.save_wav:
            ctx.add_artifact("audio.wav", media.encode_wav(audio))
        return {"audio": audio}

    @node("ffmpeg.decode_audio", params=ExtractAudioParams, inputs={"media": "audio_file"},
          outputs={"audio": "audio"})
    def decode_audio(self, ctx: NodeContext, params: ExtractAudioParams, media: str
                     ) -> dict[str, Any]:
        """Decode an audio file to mono float32 (16 kHz by default)."""
        return self.extract_audio(ctx, params, media)

    @node("ffmpeg.extract_frames", params=FramesParams, inputs={"video": "video"},
          outputs={"frames": "frames"})
    def extract_frames(self, ctx: NodeContext, params: FramesParams, video: str
                       ) -> dict[str, Any]:
        """Sample frames at a fixed rate."""
        return {"frames": media.extract_frames(video, params.fps, params.width)}

    @node("ffmpeg.keyframes", params=KeyframesParams, inputs={"video": "video"},
          outputs={"frames": "frames"})
    def keyframes(self, ctx: NodeContext, params: KeyframesParams, video: str) -> dict[str, Any]:
        """Decode only the key frames, with their times."""
        return {"frames": media.keyframes(video, params.width)}

    @node("ffmpeg.split_audio", params=SplitAudioParams, inputs={"audio": "audio"},
          outputs={"chunks": "spans"})
    def split_audio(self, ctx: NodeContext, params: SplitAudioParams, audio: Audio
                    ) -> dict[str, Any]:
        """Cut audio into fixed windows or at silences; returns the time spans."""
        if params.mode == "fixed":
            spans = media.split_fixed(audio, params.window_s)
        else:
            spans = media.split_at_silence(
                audio, params.window_s, params.min_silence_s, params.threshold_db
            )
        ctx.add_artifact("chunks.json", json.dumps([s.__dict__ for s in spans], indent=2))
        return {"chunks": spans}


# A video or an audio file becomes audio wherever a stage needs audio; videos are probed.
converter(Step("probe", "ffmpeg.probe"))
converter(Step("audio", "ffmpeg.extract_audio"))
converter(Step("audio", "ffmpeg.decode_audio"))

capability("audio_extraction", "decode", "ffmpeg", "decode the audio track; audio.wav",
           Step("audio", "ffmpeg.extract_audio", {"save_wav": True}))
for _mode, _what in (("silence", "chunks cut at silences"), ("fixed", "fixed-length chunks")):
    capability("audio_split", _mode, "ffmpeg", _what,
               Step("chunks", "ffmpeg.split_audio", {"mode": _mode}))
capability("keyframes", "keyframes", "ffmpeg", "decode the key frames",
           Step("keyframes", "ffmpeg.keyframes"))

recipe("audio", {"audio_extraction": {"strategy": "decode", "provider": "ffmpeg"},
                 "audio_split": {"strategy": "silence", "provider": "ffmpeg"}})
recipe("media", {"audio_extraction": {"strategy": "decode", "provider": "ffmpeg"},
                 "keyframes": {"strategy": "keyframes", "provider": "ffmpeg", "width": 320}})
