"""Hard-subtitle OCR with the real PP-OCRv6 models on generated videos with exact truth."""

from __future__ import annotations

import json
import os
import shutil
from fractions import Fraction
from pathlib import Path

import cv2
import jiwer
import numpy as np
import pytest
from pydantic import ValidationError

from actors.ocr import DetectBandParams, ExtractParams, OCRService
from bench.ocr import score
from yivideo import hardsub
from yivideo.errors import MediaError, ModelNotFound
from yivideo.hardsub import Band, OCRLine
from yivideo.nodes import NodeContext
from yivideo.ocr_models import (
    DEFAULT_MODEL,
    available_ocr_models,
    prepare_ppocr_v6_small,
    resolve_ocr_models,
)
from yivideo.settings import ModelSettings, Settings
from yivideo.testmedia import SENTENCES_EN, SENTENCES_ZH, GroundTruth, make_corrupt, make_video
from yivideo.types import Transcript

WATERMARK_ZH = "YiTV 频道"
WATERMARK_EN = "YiTV News"
# Wider than one line of the 720p test style: libass wraps it onto two lines.
LONG_EN = (
    "This subtitle is much longer than the others, so it has to wrap onto a second line "
    "below the first one."
)
FRAME = 1 / 25
# Cue times are rounded to centiseconds in ASS; a frame-exact boundary is within this.
BOUNDARY_TOLERANCE = FRAME + 0.011


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ocr-models")


@pytest.fixture(scope="module")
def service(cache: Path) -> OCRService:
    return OCRService(Settings(models=ModelSettings(cache_dir=cache)))


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ocr-media")


@pytest.fixture(scope="module")
def zh_video(media: Path) -> GroundTruth:
    return make_video(media / "zh.mp4", lang="zh", sentences=SENTENCES_ZH[:5],
                      watermark=WATERMARK_ZH, audio=False)


@pytest.fixture(scope="module")
def en_video(media: Path) -> GroundTruth:
    sentences = [*SENTENCES_EN[:3], LONG_EN, SENTENCES_EN[3]]
    return make_video(media / "en.mp4", lang="en", sentences=sentences,
                      watermark=WATERMARK_EN, audio=False)


def _extract(service: OCRService, video: str, **params) -> tuple[Transcript, list[dict]]:
    ctx = NodeContext()
    out = service.extract_subtitles(ctx, ExtractParams(**params), video)
    events = json.loads(ctx.artifacts["ocr_events.json"])
    return out["transcript"], events


@pytest.fixture(scope="module")
def zh_result(service: OCRService, zh_video: GroundTruth):
    return _extract(service, zh_video.video, language="ch")


@pytest.fixture(scope="module")
def en_result(service: OCRService, en_video: GroundTruth):
    return _extract(service, en_video.video, language="en")


def _check(truth: GroundTruth, transcript: Transcript, events: list[dict], watermark: str):
    cues = truth.subtitles
    s = score(transcript.segments, cues)
    print(f"\n{Path(truth.video).name}: CER {s.cer:.2%}, start errors "
          f"{[round(e, 3) for e in s.start_errors]}, end errors "
          f"{[round(e, 3) for e in s.end_errors]}")
    assert s.cer <= 0.03, [seg.text for seg in transcript.segments]
    assert (s.found, s.missing, s.duplicates, s.spurious) == (len(cues), 0, 0, 0)
    assert max(s.start_errors) <= BOUNDARY_TOLERANCE
    assert max(s.end_errors) <= BOUNDARY_TOLERANCE
    assert all(watermark not in seg.text and "YiTV" not in seg.text
               for seg in transcript.segments)
    # The artifact carries the same events with confidence and box.
    assert [e["text"] for e in events] == [seg.text for seg in transcript.segments]
    for e in events:
        assert set(e) == {"start", "end", "text", "confidence", "box"}
        assert 0.5 <= e["confidence"] <= 1.0
        x0, y0, x1, y1 = e["box"]
        assert 0 <= x0 < x1 <= truth.width and truth.height / 2 < y0 < y1 <= truth.height


def test_chinese_subtitles(zh_video: GroundTruth, zh_result) -> None:
    transcript, events = zh_result
    _check(zh_video, transcript, events, WATERMARK_ZH)
    assert transcript.language == "zh" and transcript.language_probability == 1.0
    assert transcript.duration == pytest.approx(zh_video.duration, abs=0.05)
    assert all(not seg.words for seg in transcript.segments)


def test_english_subtitles_keep_line_order(en_video: GroundTruth, en_result) -> None:
    transcript, events = en_result
    _check(en_video, transcript, events, WATERMARK_EN)
    assert transcript.language == "en"
    long = next(seg for seg in transcript.segments if seg.text.startswith("This subtitle"))
    lines = long.text.split("\n")
    assert len(lines) == 2, long.text
    assert jiwer.cer(LONG_EN, " ".join(lines)) <= 0.03


def test_detect_band_and_reuse(service: OCRService, zh_video: GroundTruth, zh_result) -> None:
    ctx = NodeContext()
    band = service.detect_band(ctx, DetectBandParams(), zh_video.video)["band"]
    assert isinstance(band, Band)
    # Below the watermark (top right), around the subtitle line at the bottom.
    events = zh_result[1]
    assert band.y0 > 80 and band.y1 <= zh_video.height
    assert all(band.y0 <= e["box"][1] and e["box"][3] <= band.y1 for e in events)
    assert band.x0 <= min(e["box"][0] for e in events)
    assert band.x1 >= max(e["box"][2] for e in events)
    # A band given as the optional input skips detection and reads the same text.
    calls = service.health()["models"][0]["calls"]
    transcript, _ = _extract_with_band(service, zh_video.video, band)
    assert [s.text for s in transcript.segments] == [s.text for s in zh_result[0].segments]
    assert service.health()["models"][0]["calls"] - calls == len(transcript.segments)
    # None from detect_band means no subtitles: nothing is read.
    transcript, events = _extract_with_band(service, zh_video.video, None)
    assert transcript.segments == [] and events == []


def _extract_with_band(service: OCRService, video: str, band: Band | None):
    ctx = NodeContext()
    out = service.extract_subtitles(ctx, ExtractParams(), video, band=band)
    return out["transcript"], json.loads(ctx.artifacts["ocr_events.json"])


def test_manual_band(service: OCRService, zh_video: GroundTruth, zh_result) -> None:
    ctx = NodeContext()
    params = DetectBandParams(band={"y0": 600, "y1": 710})
    band = service.detect_band(ctx, params, zh_video.video)["band"]
    assert band == Band(600, 710, 0, zh_video.width)
    transcript, _ = _extract(service, zh_video.video, band={"y0": 600, "y1": 710})
    assert [s.text for s in transcript.segments] == [s.text for s in zh_result[0].segments]
    # A band covering only the watermark reads only the watermark: the band is obeyed.
    transcript, _ = _extract(service, zh_video.video, band={"y0": 0, "y1": 80, "x0": 900})
    assert {s.text.replace(" ", "") for s in transcript.segments} <= {"YiTV频道"}


def test_no_subtitles(service: OCRService, media: Path) -> None:
    truth = make_video(media / "plain.mp4", lang="zh", sentences=SENTENCES_ZH[:2],
                       burn_subtitles=False, watermark=WATERMARK_ZH, audio=False)
    ctx = NodeContext()
    assert service.detect_band(ctx, DetectBandParams(), truth.video)["band"] is None
    transcript, events = _extract(service, truth.video)
    assert transcript.segments == [] and events == []


def test_corrupt_file_is_media_error(service: OCRService, media: Path) -> None:
    bad = make_corrupt(media / "broken.mp4")
    with pytest.raises(MediaError, match="broken.mp4"):
        service.extract_subtitles(NodeContext(), ExtractParams(), str(bad))
    with pytest.raises(MediaError):
        service.detect_band(NodeContext(), DetectBandParams(), str(bad))
    with pytest.raises(MediaError, match="not found"):
        service.extract_subtitles(NodeContext(), ExtractParams(), str(media / "missing.mp4"))


def test_engine_loads_once(service: OCRService, zh_result, en_result) -> None:
    health = service.health()
    assert health["service"] == "ocr"
    assert len(health["models"]) == 1
    assert health["models"][0]["model"] == DEFAULT_MODEL
    assert health["models"][0]["device"] == "cpu"


# ---------------------------------------------------------------- exact boundaries, VFR


def _draw(text: str | None, size: tuple[int, int], seed: int) -> np.ndarray:
    """A frame with a noisy moving background and ``text`` drawn white with a black edge."""
    w, h = size
    rng = np.random.default_rng(seed)
    ramp = np.linspace(20, 110, w, dtype=np.float32)[None, :] + seed % 40
    img = np.repeat((ramp + rng.normal(0, 4, (h, w))).clip(0, 255)[..., None], 3, axis=2)
    img = img.astype(np.uint8)
    if text:
        font, scale = cv2.FONT_HERSHEY_DUPLEX, 1.2
        (tw, _), _ = cv2.getTextSize(text, font, scale, 2)
        org = ((w - tw) // 2, h - 40)
        cv2.putText(img, text, org, font, scale, (0, 0, 0), 8, cv2.LINE_AA)
        cv2.putText(img, text, org, font, scale, (255, 255, 255), 2, cv2.LINE_AA)
    return img


def _write_vfr(path: Path, shown: list[str | None], durations_ms: list[int]) -> list[float]:
    """Encode one frame per entry of ``shown`` with the given durations; returns frame times."""
    import av

    times, t = [], 0
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.options = {"preset": "ultrafast", "crf": "20"}
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, text in enumerate(shown):
            frame = av.VideoFrame.from_ndarray(_draw(text, (640, 360), i), format="bgr24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            times.append(t / 1000)
            out.mux(stream.encode(frame))
            t += durations_ms[i % len(durations_ms)]
        out.mux(stream.encode())
    return times


def test_exact_frames_on_variable_frame_rate(service: OCRService, media: Path) -> None:
    # 150 frames lasting 30, 50 or 20 ms; a 3-frame flicker between two subtitles.
    shown: list[str | None] = [None] * 150
    shown[13:61] = ["HELLO THERE"] * 48
    shown[70:73] = ["FLICKER"] * 3
    shown[83:131] = ["GOOD MORNING"] * 48
    times = _write_vfr(media / "vfr.mp4", shown, [30, 50, 20])
    engine = service.recognizer(ExtractParams())
    result = hardsub.extract_subtitles(media / "vfr.mp4", engine, Band(240, 360, 0, 640),
                                       sample_fps=5, min_duration=0.2)
    got = [(e.text, e.start, e.end) for e in result.events]
    assert got == [
        ("HELLO THERE", pytest.approx(times[13]), pytest.approx(times[61])),
        ("GOOD MORNING", pytest.approx(times[83]), pytest.approx(times[131])),
    ]
    # One OCR call per subtitle: the flicker was too short to be read.
    assert result.ocr_calls == 2
    assert result.frames == 150


# ---------------------------------------------------------------- models


def test_default_models_prepared_once(cache: Path) -> None:
    models = ModelSettings(cache_dir=cache)
    first = resolve_ocr_models(DEFAULT_MODEL, models)
    assert (first.det.name, first.rec.name) == ("PP-OCRv6_small_det", "PP-OCRv6_small_rec")
    assert first.det.engine == first.rec.engine == "onnxruntime"
    for m in (first.det, first.rec):
        assert (m.path / "inference.onnx").is_file() and (m.path / "inference.yml").is_file()
    stamp = (first.rec.path / "inference.yml").stat().st_mtime_ns
    assert prepare_ppocr_v6_small(cache) == first.det.path.parent
    assert (first.rec.path / "inference.yml").stat().st_mtime_ns == stamp
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp dirs left
    assert available_ocr_models(models)[DEFAULT_MODEL] == "package rapidocr"


def test_model_dirs_and_missing_models(cache: Path, tmp_path: Path) -> None:
    prepared = resolve_ocr_models(DEFAULT_MODEL, ModelSettings(cache_dir=cache))
    root = tmp_path / "models"
    shutil.copytree(prepared.det.path.parent, root / "my-ocr")
    models = ModelSettings(model_dirs=[root], cache_dir=tmp_path / "cache")
    found = resolve_ocr_models("my-ocr", models)
    assert found.det.path == root / "my-ocr" / "PP-OCRv6_small_det"
    with pytest.raises(ModelNotFound, match="allow_local_paths"):
        resolve_ocr_models(str(root / "my-ocr"), models)  # a path only where allowed
    local = models.model_copy(update={"allow_local_paths": True})
    assert resolve_ocr_models(str(root / "my-ocr"), local).rec.name == "PP-OCRv6_small_rec"
    assert set(available_ocr_models(models)) == {"my-ocr", DEFAULT_MODEL}
    with pytest.raises(ModelNotFound) as err:
        resolve_ocr_models("ppocr-v9-huge", models)
    assert "my-ocr" in err.value.message and DEFAULT_MODEL in err.value.message
    assert err.value.details[0]["available"] == sorted(["my-ocr", DEFAULT_MODEL])
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ModelNotFound, match="no text detection"):
        resolve_ocr_models(str(tmp_path / "empty"), local)
    with pytest.raises(ModelNotFound, match="not an existing directory"):
        resolve_ocr_models(str(tmp_path / "nowhere"), local)
    assert not (tmp_path / "cache").exists()  # nothing prepared for a user's model


# ---------------------------------------------------------------- pieces


def test_params_validation() -> None:
    with pytest.raises(ValidationError):
        ExtractParams(unknown=1)
    with pytest.raises(ValidationError):
        ExtractParams(language="fr")
    with pytest.raises(ValidationError):
        ExtractParams(band={"y0": 10, "y1": 5})
    with pytest.raises(ValidationError):
        DetectBandParams(band={"y0": 0, "y1": 5, "x0": 9, "x1": 9})
    for clip in ((5.0, 2.0), (-1.0, 3.0), (2.0, 2.0)):
        with pytest.raises(ValidationError) as info:
            ExtractParams(clip=clip)
        assert info.value.errors()[0]["loc"] == ("clip",)
    params = ExtractParams(band={"y0": 600, "y1": 700})
    assert ExtractParams(**params.model_dump(mode="json")) == params  # JSON round trip


def test_edit_ratio_and_line_order() -> None:
    assert hardsub.edit_ratio("abcd", "abcd") == 1.0
    assert hardsub.edit_ratio("abcd", "abce") == 0.75
    assert hardsub.edit_ratio("", "x") == 0.0
    boxes = [
        OCRLine("line", 0.9, (300, 52, 380, 90)),
        OCRLine("second", 0.9, (100, 50, 290, 92)),
        OCRLine("First", 0.8, (100, 0, 200, 40)),
        OCRLine("line,", 0.8, (210, 2, 300, 41)),
        OCRLine("中文", 0.9, (100, 100, 160, 140)),
        OCRLine("字幕", 0.9, (170, 101, 230, 140)),
    ]
    lines, conf = hardsub.join_text_lines(boxes)
    assert lines == ["First line,", "second line", "中文字幕"]
    assert 0.8 < conf < 0.9


def _lines(*items: tuple[str, tuple[int, int, int, int]]) -> list[OCRLine]:
    return [OCRLine(t, 0.99, b) for t, b in items]


def test_band_ignores_static_overlay() -> None:
    logo = ("LOGO", (1130, 10, 1265, 55))
    per_sample = []
    for i in range(10):
        items = [logo]
        if i % 3:  # subtitles come and go, each different
            items.append((SENTENCES_EN[i], (400 - i, 630, 880 + i, 680)))
        per_sample.append(_lines(*items))
    band = hardsub.band_from_lines(per_sample, 1280, 720)
    assert band is not None
    assert band.y0 < 630 and band.y1 > 680 and band.y0 > 55
    assert (band.x0, band.x1) == (0, 1280)
    # Only the logo: no band.
    assert hardsub.band_from_lines([_lines(logo)] * 10, 1280, 720) is None
    assert hardsub.band_from_lines([[] for _ in range(10)], 1280, 720) is None


def test_signature_ignores_background_but_sees_text() -> None:
    a = cv2.cvtColor(_draw("HELLO", (640, 120), 1), cv2.COLOR_BGR2GRAY)
    b = cv2.cvtColor(_draw("HELLO", (640, 120), 7), cv2.COLOR_BGR2GRAY)  # other background
    c = cv2.cvtColor(_draw("WORLD", (640, 120), 1), cv2.COLOR_BGR2GRAY)
    empty = cv2.cvtColor(_draw(None, (640, 120), 3), cv2.COLOR_BGR2GRAY)
    sig = hardsub.signature
    assert hardsub.signature_distance(sig(a), sig(b)) < 0.1
    assert hardsub.signature_distance(sig(a), sig(c)) > 0.5
    assert hardsub.signature_distance(sig(empty), sig(a)) == 1.0
    assert hardsub.signature_distance(sig(empty), sig(empty)) == 0.0


# ------------------------------------------------------------------ long videos in chunks


def test_video_chunks_cut_at_the_nearest_key_frame() -> None:
    from yivideo.chunking import plan_video_chunks
    from yivideo.types import Span

    assert plan_video_chunks(100.0, [0.0, 50.0], 0) == [Span(0.0, 100.0)]
    assert plan_video_chunks(100.0, [0.0, 50.0], 70.0) == [Span(0.0, 100.0)]  # < 1.5 chunks
    # 3 chunks: targets 33.3 and 66.7; a key frame within a quarter chunk (8.3 s) is taken
    spans = plan_video_chunks(100.0, [0.0, 10.0, 30.0, 60.04, 90.0], 30.0)
    assert [s.start for s in spans] == [0.0, 30.0, 60.04] and spans[-1].end == 100.0
    assert all(a.end == b.start for a, b in zip(spans, spans[1:], strict=False))
    # no key frame near a target: cut there (decoding starts at the key frame before it)
    assert [s.start for s in plan_video_chunks(100.0, [0.0], 50.0)] == [0.0, 50.0]


def test_events_shown_across_a_cut_are_joined() -> None:
    def ev(start: float, end: float, text: str) -> hardsub.OCREvent:
        return hardsub.OCREvent(start, end, text, 0.9, (10, 600, 400, 640))

    first = [ev(1.0, 3.0, "Good morning"), ev(9.0, 10.0, "The weather is")]
    second = [ev(10.04, 12.0, "The weather is"), ev(13.0, 15.0, "Bye")]
    third = [ev(20.0, 20.1, "Bye for now")]  # touches its cut: kept by its chunk
    # a chunk's 0.1 s edge event that joins nothing is dropped, as one pass drops it
    out = hardsub.join_chunks([first, [ev(9.9, 10.0, "Short")], third], [9.9, 10.0])
    assert [e.text for e in out] == ["Good morning", "The weather is"]
    out = hardsub.join_chunks([first, second, third], [10.0, 20.0])
    assert [(e.start, e.end, e.text) for e in out] == [
        (1.0, 3.0, "Good morning"), (9.0, 12.0, "The weather is"), (13.0, 15.0, "Bye")]
    # another text at the cut stays its own event
    out = hardsub.join_chunks([first, [ev(10.0, 12.0, "Something else")]], [10.0])
    assert [e.text for e in out][-2:] == ["The weather is", "Something else"]
    with pytest.raises(ValueError):
        hardsub.join_chunks([first, second], [])


def test_a_chunk_past_the_end_is_refused_naming_the_clip(service: OCRService,
                                                         en_video: GroundTruth) -> None:
    from yivideo.errors import ConfigError

    end = en_video.duration
    with pytest.raises(ConfigError) as info:
        service.extract_subtitles(NodeContext(), ExtractParams(clip=(end + 1, end + 9)),
                                  en_video.video)
    assert info.value.details[0]["loc"] == "clip" and "after the end" in str(info.value)


def test_chunks_read_across_cuts_equal_one_pass(service: OCRService, en_video: GroundTruth,
                                                en_result) -> None:
    """Cuts inside two subtitles, off the key frames: the chunks' events joined are the
    events of one pass over the whole video."""
    from actors.ocr import merge_chunks
    from yivideo.types import Span

    whole, _ = en_result
    cues = en_video.subtitles
    cuts = [round((cues[i].start + cues[i].end) / 2, 3) for i in (1, 3)]
    bounds = [0.0, *cuts, en_video.duration]
    spans = [Span(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    params = ExtractParams(language="en")
    outputs = [service.extract_subtitles(NodeContext(), params.model_copy(update={
        "clip": (s.start, s.end)}), en_video.video) for s in spans]
    assert all(set(o) == {"transcript", "events"} for o in outputs)  # no artifact per chunk
    merged, files = merge_chunks(outputs, spans, params.model_dump())
    joined = merged["transcript"]
    assert [s.text for s in joined.segments] == [s.text for s in whole.segments]
    for a, b in zip(joined.segments, whole.segments, strict=True):
        assert abs(a.start - b.start) <= FRAME + 1e-6 and abs(a.end - b.end) <= FRAME + 1e-6
    events = json.loads(files["ocr_events.json"])
    assert [e["text"] for e in events] == [s.text for s in joined.segments]
    assert joined.duration == whole.duration and joined.language == "en"
