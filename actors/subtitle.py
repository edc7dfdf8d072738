"""Subtitle service: segmentation into events, writers, burning and muxing (CPU)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from yivideo.errors import MediaError
from yivideo.nodes import NodeContext, Params, Service, node, register_service
from yivideo.recipes import Step, converter
from yivideo.subtitles import SegmentationRules, render, render_formats, segments_to_events
from yivideo.subtitles.formats import read_transcript
from yivideo.subtitles.layout import fit_lines
from yivideo.types import SubtitleEvent, Transcript

Format = Literal["srt", "vtt", "ass", "json", "txt"]


class WriteParams(Params):
    name: str = Field("subtitles", pattern=r"^[A-Za-z0-9_.-]+$", description="artifact stem")
    formats: list[Format] = Field(["srt", "vtt", "ass", "json"], min_length=1)
    rules: SegmentationRules = Field(default_factory=SegmentationRules)
    font: str = "DejaVu Sans"
    font_size: int = Field(48, ge=8, le=200)
    speaker_prefix: str | None = "[{speaker}] "
    keep_segments: bool = Field(
        False, description="one event per transcript segment, timings untouched (OCR)")


class ReadParams(Params):
    encoding: str = Field("utf-8", pattern=r"^[A-Za-z0-9_-]+$", description="text encoding")


class BurnParams(Params):
    name: str = Field("burned.mp4", pattern=r"^[A-Za-z0-9_.-]+\.(mp4|mkv|mov)$")
    font: str = "DejaVu Sans"
    font_size: int = Field(48, ge=8, le=200)
    crf: int = Field(20, ge=0, le=51)
    preset: str = Field("veryfast", pattern=r"^[a-z]+$")


class MuxParams(Params):
    name: str = Field("with_subtitles.mkv", pattern=r"^[A-Za-z0-9_.-]+\.(mkv|mp4)$")
    language: str = Field("und", pattern=r"^[a-z]{2,3}$", description="ISO 639 track language")


def _ffmpeg(args: list[str], what: str) -> None:
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise MediaError(f"{what} failed: {lines[-1] if lines else 'ffmpeg error'}")


@register_service
class SubtitleService(Service):
    name = "subtitle"
    actor_defaults = {"num_cpus": 0.25, "max_concurrency": 4}

    @node("subtitle.write", params=WriteParams, inputs={"transcript": "transcript"},
          outputs={"events": "subtitle_events"})
    def write(self, ctx: NodeContext, params: WriteParams, transcript: Transcript
              ) -> dict[str, Any]:
        """Segment a transcript into subtitle events and write SRT/VTT/ASS/JSON/TXT."""
        if params.keep_segments:
            # Timings stay as read off the screen; lines follow the same layout rules.
            events = [SubtitleEvent(s.start, s.end, fit_lines(s.text, params.rules), s.speaker)
                      for s in transcript.segments if s.text.strip()]
        else:
            events = segments_to_events(transcript, params.rules)
        style = {"font": params.font, "font_size": params.font_size,
                 "speaker_prefix": params.speaker_prefix}
        for fmt, text in render_formats(transcript, events, params.formats, **style).items():
            ctx.add_artifact(f"{params.name}.{fmt}", text)
        return {"events": events}

    @node("subtitle.read", params=ReadParams, inputs={"subtitles": "subtitle_file"},
          outputs={"transcript": "transcript"})
    def read(self, ctx: NodeContext, params: ReadParams, subtitles: str) -> dict[str, Any]:
        """Read an SRT/VTT/ASS file into a transcript, one segment per event."""
        return {"transcript": read_transcript(subtitles, params.encoding)}

    @node("subtitle.burn", params=BurnParams,
          inputs={"video": "video", "events": "subtitle_events"}, outputs={"video": "video"})
    def burn(self, ctx: NodeContext, params: BurnParams, video: str,
             events: list[SubtitleEvent]) -> dict[str, Any]:
        """Draw the subtitles into the picture (hard subtitles, libass)."""
        with tempfile.TemporaryDirectory() as tmp:
            ass = Path(tmp) / "subs.ass"
            ass.write_text(render(events, "ass", font=params.font, font_size=params.font_size))
            out = Path(tmp) / params.name
            _ffmpeg(["-i", video, "-vf", f"subtitles=filename={ass}", "-c:v", "libx264",
                     "-preset", params.preset, "-crf", str(params.crf), "-c:a", "copy",
                     str(out)], "burning subtitles")
            ctx.add_artifact(params.name, out.read_bytes())
        return {"video": video}

    @node("subtitle.mux", params=MuxParams,
          inputs={"video": "video", "events": "subtitle_events"}, outputs={"video": "video"})
    def mux(self, ctx: NodeContext, params: MuxParams, video: str,
            events: list[SubtitleEvent]) -> dict[str, Any]:
        """Add the subtitles as a soft track, copying audio and video untouched."""
        mp4 = params.name.endswith(".mp4")
        with tempfile.TemporaryDirectory() as tmp:
            srt = Path(tmp) / "subs.srt"
            srt.write_text(render(events, "srt"))
            out = Path(tmp) / params.name
            _ffmpeg(["-i", video, "-i", str(srt), "-map", "0", "-map", "1", "-c", "copy",
                     "-c:s", "mov_text" if mp4 else "srt",
                     "-metadata:s:s:0", f"language={params.language}", str(out)],
                    "adding the subtitle track")
            ctx.add_artifact(params.name, out.read_bytes())
        return {"video": video}


# a subtitle file given as input is a transcript to whatever needs one
converter(Step("transcript", "subtitle.read"))
