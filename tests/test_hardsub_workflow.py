"""Burnt-in subtitles to text through the engine: the `hardsub` recipe on a real cluster."""

from __future__ import annotations

import json

import jiwer
import pysubs2
import pytest

import yivideo
from yivideo.testmedia import SENTENCES_ZH, make_video

pytestmark = pytest.mark.usefixtures("ray_cluster")


@pytest.fixture(scope="module")
def chinese(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hardsub")
    return make_video(folder / "zh.mp4", lang="zh", sentences=SENTENCES_ZH[:4],
                      watermark="YiVideo TV")


def test_hardsub_recipe_reads_burnt_in_chinese_exactly(chinese, tmp_path):
    result = yivideo.run("hardsub", video=chinese.video, out=tmp_path)
    assert result.status == "succeeded", result.state["error"]
    subs = pysubs2.load(str(tmp_path / "subtitles.srt"))
    assert len(subs) == len(chinese.subtitles)  # every event once, none extra
    for event, cue in zip(subs, chinese.subtitles, strict=True):
        assert jiwer.cer(cue.text, event.plaintext.replace("\n", "")) <= 0.03
        assert abs(event.start / 1000 - cue.start) <= 0.1
        assert abs(event.end / 1000 - cue.end) <= 0.1
        assert "YiVideo" not in event.plaintext  # the watermark is not a subtitle
    events = json.loads((tmp_path / "ocr_events.json").read_text())
    assert all({"start", "end", "text", "confidence", "box"} <= set(e) for e in events)


def test_video_without_subtitles_gives_an_empty_srt(tmp_path):
    plain = make_video(tmp_path / "plain.mp4", sentences=["no text on screen"],
                       burn_subtitles=False, speech=False, width=640, height=360)
    result = yivideo.run("hardsub", video=plain.video, out=tmp_path / "out")
    assert result.status == "succeeded"
    assert len(pysubs2.load(str(tmp_path / "out" / "subtitles.srt"), format_="srt")) == 0
