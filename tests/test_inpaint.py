"""Burnt-in subtitle removal against ground truth: the same video rendered with and without
subtitles (same background, same watermark), compared frame by frame."""

from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pysubs2
import pytest

import yivideo
from yivideo.inpainting import (
    Planes,
    clean_frames,
    event_windows,
    in_windows,
    remove_subtitles,
    subtitle_mask,
)
from yivideo.media import Band, iter_band_frames, open_video
from yivideo.testmedia import make_video, psnr

W, H = 640, 360
# libass draws the subtitles bottom-centre, 20 px above the bottom edge at 360p: rows
# 290.. hold them with room to spare; the watermark sits in the top-right corner.
BAND = Band(290, 360, 0, W)
WATERMARK = (slice(0, 40), slice(500, W))
SENTENCES = ["The weather is lovely today.", "We walked to the park."]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inpaint")
    kwargs = dict(sentences=SENTENCES, width=W, height=H, watermark="YiVideo TV",
                  gap=0.4, lead_in=0.5)
    subs = make_video(folder / "subs.mp4", **kwargs)
    clean = make_video(folder / "clean.mp4", burn_subtitles=False, **kwargs)
    return subs, clean


def _grey(path) -> np.ndarray:
    return np.stack([g for _, g in iter_band_frames(path)]).astype(np.float32)


def _shown(truth, fps: float, n: int) -> np.ndarray:
    """Indices of the frames that show a subtitle."""
    t = np.arange(n) / fps
    return np.flatnonzero([any(c.start <= x < c.end for c in truth.subtitles) for x in t])


def _windows(truth) -> list[tuple[float, float]]:
    return event_windows([(c.start, c.end) for c in truth.subtitles], 0.1)


def test_frames_outside_the_mask_are_bit_identical_and_the_band_is_restored(media):
    subs, clean = media
    originals = [Planes.of(f) for f in open_video(subs.video).decode(video=0)]
    ref = _grey(clean.video)
    changed_frames = 0
    cleaned_band, before_band = [], []
    windows = _windows(subs)
    # Two threads fill frames at once; they must still come out in order, each its own.
    for i, (frame, planes, mask) in enumerate(clean_frames(subs.video, BAND, windows,
                                                           threads=2)):
        orig = originals[i]
        assert round(float(frame.time) * subs.fps) == i
        if planes is None:  # not looked at: passed on as decoded
            assert mask is None and not in_windows(float(frame.time), windows)
            continue
        diff = planes.y != orig.y
        # Nothing outside the band changes, in any plane, before encoding.
        assert not diff[: BAND.y0].any()
        assert (planes.u[: BAND.y0 // 2] == orig.u[: BAND.y0 // 2]).all()
        assert (planes.v[: BAND.y0 // 2] == orig.v[: BAND.y0 // 2]).all()
        if mask is None:
            assert not diff.any() and (planes.u == orig.u).all()  # outside events: untouched
            continue
        changed_frames += 1
        # ... and inside the band only masked pixels change.
        assert not (diff[BAND.y0 :] & (mask == 0)).any()
        cleaned_band.append(planes.y[BAND.y0 :].astype(np.float32))
        before_band.append(orig.y[BAND.y0 :].astype(np.float32))
        assert psnr(cleaned_band[-1], ref[i, BAND.y0 :]) > psnr(before_band[-1],
                                                                   ref[i, BAND.y0 :]) + 10
    assert len(originals) == round(subs.duration * subs.fps)
    shown = _shown(subs, subs.fps, len(originals))
    assert changed_frames >= len(shown)
    refs = ref[shown, BAND.y0 :]
    before = psnr(np.stack(before_band), refs)  # only frames with a mask, as `shown`
    after = psnr(np.stack(cleaned_band), refs)
    assert before < 25 and after >= 35, (before, after)


def test_mask_covers_the_text_and_little_else(media):
    subs, clean = media
    ref, sub = _grey(clean.video), _grey(subs.video)
    for i in _shown(subs, subs.fps, len(sub))[::10]:
        text = np.abs(sub[i, BAND.y0 :] - ref[i, BAND.y0 :]) > 24  # glyphs and outline
        mask = subtitle_mask(sub[i, BAND.y0 :].astype(np.uint8), grow=4) > 0
        assert text.sum() > 300
        assert (mask & text).sum() >= 0.995 * text.sum()  # every drawn pixel is covered
        assert mask.sum() <= 3 * text.sum()  # the text's shape, not a box around it
        assert mask.sum() <= 0.25 * mask.size


def _packets(path, kind: str) -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as c:
        stream = getattr(c.streams, kind)[0]
        return [(p.pts, bytes(p)) for p in c.demux(stream) if p.size]


def _frame_times(path) -> list[float]:
    with av.open(str(path)) as c:
        return [round(float(f.time), 4) for f in c.decode(video=0)]


def test_clean_video_keeps_timing_audio_and_watermark(media, tmp_path):
    subs, clean = media
    out = tmp_path / "clean.mp4"
    stats = remove_subtitles(subs.video, out, BAND, _windows(subs), crf=16,
                             mask_video=tmp_path / "mask.mp4")
    assert stats.frames == round(subs.duration * subs.fps)
    assert _frame_times(out) == _frame_times(subs.video)
    with av.open(str(out)) as a, av.open(subs.video) as b:
        da, db = a.streams.video[0], b.streams.video[0]
        assert abs(float(da.duration * da.time_base) - float(db.duration * db.time_base)) < 1e-3
    assert _packets(out, "audio") == _packets(subs.video, "audio")  # copied, not re-encoded
    got, before, ref = _grey(out), _grey(subs.video), _grey(clean.video)
    assert got.shape == before.shape
    # Outside the band: re-encoding noise only (the watermark's sharp edges the most).
    assert np.abs(got[:, : BAND.y0] - before[:, : BAND.y0]).mean() < 0.5
    mark = np.abs(got[:, WATERMARK[0], WATERMARK[1]] - before[:, WATERMARK[0], WATERMARK[1]])
    assert mark.mean() < 0.5 and (mark > 8).mean() < 0.01
    assert np.abs(before[:, WATERMARK[0], WATERMARK[1]] - ref[:, WATERMARK[0], WATERMARK[1]]
                  ).mean() < 0.5  # the watermark is in the clean render too: it is kept
    shown = _shown(subs, subs.fps, len(got))
    band_before = psnr(before[shown, BAND.y0 :], ref[shown, BAND.y0 :])
    band_after = psnr(got[shown, BAND.y0 :], ref[shown, BAND.y0 :])
    assert band_before < 25 and band_after >= 35, (band_before, band_after)
    assert len(_frame_times(tmp_path / "mask.mp4")) == stats.frames


@pytest.mark.parametrize("method, temporal",
                         [("telea", 0), ("ns", 0), ("patchmatch", 0), ("telea", 8)])
def test_every_method_restores_the_band(media, method, temporal):
    subs, clean = media
    ref = _grey(clean.video)
    first = subs.subtitles[0]
    window = [(first.start + 0.3, first.start + 0.7)]  # ten frames keep PatchMatch quick
    cleaned = [(i, p.y[BAND.y0 :].astype(np.float32), orig)
               for i, ((_, p, m), orig) in enumerate(zip(
                   clean_frames(subs.video, BAND, window, method=method, temporal=temporal),
                   _grey(subs.video), strict=True)) if m is not None]  # fmt: skip
    assert len(cleaned) == 10
    for i, band, orig in cleaned:
        before = psnr(orig[BAND.y0 :], ref[i, BAND.y0 :])
        assert psnr(band, ref[i, BAND.y0 :]) >= max(35, before + 10)


def test_unknown_method_is_refused(media):
    with pytest.raises(ValueError, match="unknown inpainting method"):
        next(clean_frames(media[0].video, BAND, [(0, 1)], method="lama"))


@pytest.mark.usefixtures("ray_cluster")
def test_remove_subs_recipe_on_ray(media, tmp_path):
    subs, clean = media
    result = yivideo.run("remove-subs", video=subs.video, out=tmp_path / "out",
                         overrides=["subtitle_removal.language=en",
                                    "subtitle_removal.save_mask=true"])
    assert result.status == "succeeded", result.state["error"]
    out = tmp_path / "out" / "clean.mp4"
    report = json.loads((tmp_path / "out" / "inpaint.json").read_text())
    assert report["events"] == len(subs.subtitles)
    assert (tmp_path / "out" / "subtitle_mask.mp4").stat().st_size > 0
    band = Band(**report["band"])
    got, before, ref = _grey(out), _grey(subs.video), _grey(clean.video)
    assert len(got) == len(before)
    shown = _shown(subs, subs.fps, len(got))
    assert psnr(got[shown, band.y0 : band.y1], ref[shown, band.y0 : band.y1]) >= 30
    # encoding noise on the watermark's sharp edges only (its text erased: ~6 off)
    mark = np.abs(got[:, WATERMARK[0], WATERMARK[1]] - before[:, WATERMARK[0], WATERMARK[1]])
    assert mark.mean() < 1.0 and (mark > 8).mean() < 0.02
    # OCR of the cleaned video reads no subtitle.
    again = yivideo.run("hardsub", video=str(out), out=tmp_path / "again",
                        overrides=["subtitle_generation.language=en"])
    assert again.status == "succeeded", again.state["error"]
    assert len(pysubs2.load(str(tmp_path / "again" / "subtitles.srt"), format_="srt")) == 0


def test_recipes_wire_ocr_erase_translate_burn():
    from yivideo.recipes import named_recipes
    from yivideo.workflow import compile_config

    recipes = named_recipes()
    plan = compile_config({"video_path": "/data/v.mp4",
                           "workflow_config": recipes["remove-subs"]}, local_paths=True)
    erase = plan.stages["inpaint"]
    assert erase.node.name == "inpaint.remove_subtitles"
    assert {k: (b.stage, b.output) for k, b in erase.bindings.items() if k != "video"} == {
        "band": ("band", "band"), "transcript": ("ocr", "transcript")}
    plan = compile_config({"video_path": "/data/v.mp4",
                           "workflow_config": recipes["replace-subs"]}, local_paths=True)
    stages = plan.stages
    assert stages["translate"].bindings["transcript"].stage == "ocr"
    assert stages["subtitles_translated"].bindings["transcript"].stage == "translate"
    burn = stages["burn"]
    assert burn.node.name == "subtitle.burn" and burn.params["name"] == "replaced.mp4"
    # the new subtitles are drawn on the erased video, not on the original
    assert (burn.bindings["video"].stage, burn.bindings["events"].stage) == (
        "inpaint", "subtitles_translated")
    assert set(stages["subtitles_translated"].params["formats"]) >= {"srt", "ass"}


# ---- the onnx method: a tiny graph made here, that fills the hole with the mean of the
# known pixels around it (a box blur of the image over the known pixels only).

BLUR = 15  # side of the box the graph averages over


def _blur_fill_graph(path) -> None:
    """image (1,3,h,w) 0..1 and mask (1,1,h,w) 1: hole -> image, hole filled."""
    from onnx import TensorProto, helper, save

    pool = dict(kernel_shape=[BLUR, BLUR], pads=[BLUR // 2] * 4, strides=[1, 1],
                count_include_pad=1)
    nodes = [
        helper.make_node("Sub", ["one", "mask"], ["known"]),
        helper.make_node("Mul", ["image", "known"], ["kept"]),
        helper.make_node("AveragePool", ["kept"], ["num"], **pool),
        helper.make_node("AveragePool", ["known"], ["den"], **pool),
        helper.make_node("Add", ["den", "eps"], ["den1"]),
        helper.make_node("Div", ["num", "den1"], ["fill"]),
        helper.make_node("Mul", ["fill", "mask"], ["filled"]),
        helper.make_node("Add", ["kept", "filled"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "blur_fill",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "h", "w"]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
         helper.make_tensor("eps", TensorProto.FLOAT, [], [1e-6])])  # fmt: skip
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    _blur_fill_graph(folder / "blur-fill.onnx")
    return folder


def test_onnx_model_fills_the_hole_as_its_graph_says(model_dir):
    from yivideo.inpaint_models import OnnxInpainter

    model = OnnxInpainter.load(model_dir / "blur-fill.onnx")
    rng = np.random.default_rng(0)
    h, w = 64, 200  # tiles of 64: three, and a last one shifted to end at the edge
    yy, xx = np.mgrid[0:h, 0:w]
    bgr = np.dstack([xx, yy * 3, (xx + yy) % 256]).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[26:36, 10:190] = 255  # every hole pixel has known pixels within the box
    bgr[mask > 0] = rng.integers(200, 256, (int((mask > 0).sum()), 3))  # "text"
    out = model(bgr, mask)
    assert (out[mask == 0] == bgr[mask == 0]).all()  # only the hole changes
    known = (mask == 0).astype(np.float32)
    box = dict(ddepth=-1, ksize=(BLUR, BLUR), normalize=False, borderType=cv2.BORDER_CONSTANT)
    # each tile's own box means, as the graph computes them, in the columns it writes last
    for x0, written in ((0, slice(0, 64)), (64, slice(64, 128)), (128, slice(128, 136)),
                        (136, slice(136, 200))):
        tile = slice(x0, x0 + 64)
        num = cv2.boxFilter(bgr[:, tile].astype(np.float32) * known[:, tile, None], **box)
        want = np.rint(num / (cv2.boxFilter(known[:, tile], **box)[..., None] + 1e-6))
        cols = slice(written.start - x0, written.stop - x0)
        on = mask[:, written] > 0
        assert np.abs(out[:, written][on].astype(int) - want[:, cols][on]).max() <= 1
    assert out[mask > 0].std() > 20  # the gradient's values, not one colour


def test_onnx_method_restores_the_band(media, model_dir):
    from yivideo.inpaint_models import OnnxInpainter

    subs, clean = media
    ref, grey = _grey(clean.video), _grey(subs.video)
    first = subs.subtitles[0]
    model = OnnxInpainter.load(model_dir / "blur-fill.onnx")
    frames = clean_frames(subs.video, BAND, [(first.start + 0.3, first.start + 0.5)],
                          method="onnx", model=model, threads=2)
    done = [(i, p.y[BAND.y0 :]) for i, (_, p, m) in enumerate(frames) if m is not None]
    assert len(done) == 5
    for i, band in done:
        before = psnr(grey[i, BAND.y0 :], ref[i, BAND.y0 :])
        assert psnr(band, ref[i, BAND.y0 :]) >= max(30, before + 10)


def test_onnx_model_is_named_from_the_model_folders(model_dir, tmp_path):
    from yivideo.errors import ModelNotFound
    from yivideo.inpaint_models import resolve_inpainter
    from yivideo.settings import ModelSettings

    models = ModelSettings(model_dirs=[model_dir], cache_dir=tmp_path)
    assert resolve_inpainter("blur-fill", models) == model_dir / "blur-fill.onnx"
    with pytest.raises(ModelNotFound, match=r"'big-lama' is unknown.*Available offline: "
                                            r"blur-fill \("):
        resolve_inpainter("big-lama", models)
    with pytest.raises(ModelNotFound, match="is a path"):  # never a caller's file
        resolve_inpainter(str(model_dir / "blur-fill.onnx"), models)


def test_remove_subtitles_node_runs_a_named_onnx_model(media, model_dir, tmp_path):
    from pydantic import ValidationError

    from actors.inpaint import InpaintService, RemoveParams
    from yivideo.models_catalogue import validation_context
    from yivideo.nodes import NodeContext
    from yivideo.settings import ModelSettings, Settings
    from yivideo.types import Segment, Transcript

    subs, clean = media
    settings = Settings(storage_dir=tmp_path, models=ModelSettings(model_dirs=[model_dir]))
    context = validation_context(models=settings.models)
    with pytest.raises(ValidationError, match="unknown inpainting model 'lama'.*blur-fill"):
        RemoveParams.model_validate({"method": "onnx", "model": "lama"}, context=context)
    with pytest.raises(ValidationError, match="needs a model"):
        RemoveParams.model_validate({"method": "onnx"}, context=context)
    params = RemoveParams.model_validate({"method": "onnx", "model": "blur-fill"},
                                         context=context)
    transcript = Transcript("en", 1.0, subs.duration,
                            [Segment(c.start, c.end, c.text) for c in subs.subtitles])
    ctx = NodeContext()
    out = InpaintService(settings).remove_subtitles(ctx, params, subs.video, BAND, transcript)
    report = json.loads(ctx.artifacts["inpaint.json"])
    assert report["method"] == "onnx" and report["threads"] == 1  # the actor holds 1 CPU
    got, ref = _grey(out["video"]), _grey(clean.video)
    shown = _shown(subs, subs.fps, len(got))
    assert psnr(got[shown, BAND.y0 :], ref[shown, BAND.y0 :]) >= 30


def test_derived_videos_live_until_nothing_can_name_them(media, tmp_path):
    """The cleaned video is kept while a cache entry or a workflow may still hold its path,
    and the node's threads follow the CPUs its actor holds."""
    import os
    import time
    from pathlib import Path

    from actors.inpaint import InpaintService, RemoveParams, derived_lifetime, prune_derived
    from yivideo.nodes import NodeContext
    from yivideo.settings import Settings
    from yivideo.types import Segment, Transcript

    subs, _ = media
    settings = Settings(storage_dir=tmp_path, actors={"inpaint": {"num_cpus": 2}})
    life = derived_lifetime(settings)
    assert life > settings.cache_ttl_s + settings.workflow_ttl_s
    derived, now = tmp_path / "derived", time.time()
    for name, age in (("stale", life + 60), ("recent", life - 60)):
        (derived / name).mkdir(parents=True)
        (derived / name / "clean.mp4").write_bytes(b"old")
        os.utime(derived / name, (now - age, now - age))
    transcript = Transcript("en", 1.0, subs.duration,
                            [Segment(c.start, c.end, c.text) for c in subs.subtitles])
    ctx = NodeContext()
    out = InpaintService(settings).remove_subtitles(ctx, RemoveParams(), subs.video, BAND,
                                                    transcript)
    assert not (derived / "stale").exists() and (derived / "recent").exists()
    assert json.loads(ctx.artifacts["inpaint.json"])["threads"] == 2  # from num_cpus
    folder = Path(out["video"]).parent
    assert folder.parent == derived
    # Reused: its lifetime starts over, so it outlives the folder last used before it.
    os.utime(folder, (now - life + 30, now - life + 30))
    again = InpaintService(settings).remove_subtitles(NodeContext(), RemoveParams(),
                                                      subs.video, BAND, transcript)
    assert again == out and folder.stat().st_mtime > now - 60
    assert prune_derived(derived, life, now=now + 120) == ["recent"]
    assert prune_derived(derived, life, now=time.time() + life + 1) == [folder.name]
    assert prune_derived(tmp_path / "nothing", life) == []
