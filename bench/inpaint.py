"""Subtitle removal: band quality against a subtitle-free render, and speed, per method.

A 720p test video is rendered twice with the same moving background and watermark, with
and without burnt-in subtitles (yivideo.testmedia). Each method erases the subtitles in
the band (rows 560..720, where libass draws them) during the known subtitle times, and
its frames are compared, before encoding, with the clean render's frames shown with a
subtitle: PSNR and SSIM of the band's luma, and the seconds of masking and inpainting
per frame (decoding and encoding excluded; they are listed once). The baseline ("box")
inpaints the whole bounding box of the text, as a box-mask remover would.

Speed of the whole pipeline (decode, mask, inpaint, encode, audio copy) on the same clip,
as seconds per minute of 720p video and real-time factor, next to ffmpeg's plain
re-encode of the clip (the floor: nothing erased) and a naive remover that inpaints whole
frames (the baseline), all in the same run; and each phase on its own, now and as the
pipeline did it before (every frame re-made for the encoder, the band filled in BGR).

Writes a markdown report to bench/results/inpaint.md (or ``--out``).
Run: OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/inpaint.py
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yivideo.inpainting import (  # noqa: E402
    BandCleaner,
    Fill,
    Planes,
    _i420,
    _to_encode,
    auto_grow,
    default_threads,
    event_windows,
    in_windows,
    inpaint,
    inpaint_i420,
    remove_subtitles,
    subtitle_mask,
)
from yivideo.media import Band, iter_band_frames, open_video  # noqa: E402
from yivideo.testmedia import SENTENCES_EN, make_video, psnr  # noqa: E402

W, H, FPS = 1280, 720, 25
BAND = Band(560, 720, 0, W)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two grey images (Gaussian window 11, sigma 1.5)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5)

    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma**2, blur(b * b) - mb**2, blur(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return float(s.mean())


def box_cleaner(planes: Planes, band: Band, grow: int) -> np.ndarray | None:
    """Baseline: inpaint (Telea) the text's whole bounding box in the band."""
    y = planes.y[band.y0 : band.y1]
    mask = subtitle_mask(y, grow)
    if not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    box = np.zeros_like(mask)
    box[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = 255
    y[:] = cv2.inpaint(y, box, 3, cv2.INPAINT_TELEA)
    return box


def run(video: str, clean: dict[int, np.ndarray], windows: list[tuple[float, float]],
        name: str, limit: int | None) -> dict[str, float]:  # fmt: skip
    method, *options = name.split("+")  # "+t12": temporal 12 frames, "+r2": radius 2
    opt = {o[0]: int(o[1:]) for o in options}
    cleaner = (None if method == "box" else
               BandCleaner(BAND, method, auto_grow(H), opt.get("t", 0),  # type: ignore[arg-type]
                           opt.get("r", 3)))
    scores, seconds, frames = [], 0.0, 0
    with open_video(video) as c:
        for i, frame in enumerate(c.decode(video=0)):
            t = float(frame.time)
            active = in_windows(t, windows) and (limit is None or frames < limit)
            if cleaner is None and not active:
                continue
            planes = Planes.of(frame)
            began = time.thread_time()
            if cleaner is None:
                box_cleaner(planes, BAND, auto_grow(H))
            else:
                cleaner.clean(planes, active)
            if active:
                seconds += time.thread_time() - began
                frames += 1
                if i in clean:
                    y = planes.y[BAND.y0 : BAND.y1]
                    scores.append((psnr(y, clean[i]), ssim(y, clean[i])))
            if limit is not None and frames >= limit:
                break
    p, s = np.mean(scores, axis=0)
    return {"psnr": p, "ssim": s, "s_per_frame": seconds / max(frames, 1), "frames": frames}


# ---- speed: the whole pipeline, phase by phase and end to end


def clock() -> tuple[float, float]:
    """(wall, CPU of this process and all its threads) seconds."""
    return time.perf_counter(), time.process_time()


def elapsed(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clock()
    return wall - start[0], cpu - start[1]


def phases(video: str, windows: list[tuple[float, float]], tmp: Path
           ) -> list[tuple[str, float, float, float]]:  # fmt: skip
    """(phase, wall s, CPU s, CPU s before) of each phase run on its own, one thread.

    "before" is the same phase as the pipeline did it before (every frame as planes and
    re-made for the encoder, the band filled in BGR), where it differs.
    """
    rows = []
    start = clock()
    with open_video(video) as c:
        c.streams.video[0].thread_type = "AUTO"
        decoded = [(f, in_windows(float(f.time), windows)) for f in c.decode(video=0)]
    decode = elapsed(start)
    start = clock()
    planes = [Planes.of(f) if active else None for f, active in decoded]
    to_planes = elapsed(start)
    start = clock()
    for f, _ in decoded:
        Planes.of(f)
    to_planes_before = elapsed(start)
    rows.append(("decode (PyAV) + frames to planes", decode[0] + to_planes[0],
                 decode[1] + to_planes[1], decode[1] + to_planes_before[1]))
    start = clock()
    masks = [None if p is None else subtitle_mask(p.y[BAND.y0 : BAND.y1], auto_grow(H))
             for p in planes]
    wall, cpu = elapsed(start)
    rows.append(("text mask", wall, cpu, cpu))
    jobs = [(_i420(p.y[BAND.y0 :], p.u[BAND.y0 // 2 :], p.v[BAND.y0 // 2 :]), m)
            for p, m in zip(planes, masks, strict=True) if p is not None and m.any()]
    start = clock()
    for i420, m in jobs:
        inpaint_i420(i420, m, "telea")
    after = elapsed(start)
    start = clock()
    for i420, m in jobs:
        bgr = cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
        cv2.cvtColor(inpaint(bgr, m, "telea"), cv2.COLOR_BGR2YUV_I420)
    rows.append(("inpaint (Telea, band)", *after, elapsed(start)[1]))
    encode = (0.0, 0.0)
    for before in (False, True):
        start = clock()
        with av.open(str(tmp / "encode.mp4"), "w") as out:
            v = out.add_stream("libx264", rate=FPS, options={"crf": "18", "preset": "veryfast"})
            v.width, v.height, v.pix_fmt = W, H, "yuv420p"
            for i, ((f, _), p) in enumerate(zip(decoded, planes, strict=True)):
                frame = (av.VideoFrame.from_ndarray(Planes.of(f).data, format="yuv420p")
                         if before else _to_encode(f, p, None if p is None else masks[i]))
                frame.pts = i
                for packet in v.encode(frame):
                    out.mux(packet)
            for packet in v.encode():
                out.mux(packet)
        if before:
            rows.append(("encode (libx264 veryfast CRF 18)", *encode, elapsed(start)[1]))
        else:
            encode = elapsed(start)
    start = clock()
    with av.open(video) as c, av.open(str(tmp / "audio.mp4"), "w") as out:
        a = out.add_stream_from_template(c.streams.audio[0])
        for packet in c.demux(c.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = a
                out.mux(packet)
    wall, cpu = elapsed(start)
    rows.append(("audio copy", wall, cpu, cpu))
    return rows


def naive(video: str, dst: Path) -> None:
    """Baseline: every whole frame as BGR, its text masked and inpainted, re-encoded."""
    with open_video(video) as c, av.open(str(dst), "w") as out:
        v = out.add_stream("libx264", rate=FPS, options={"crf": "18", "preset": "veryfast"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        for i, f in enumerate(c.decode(video=0)):
            bgr = f.to_ndarray(format="bgr24")
            mask = subtitle_mask(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), auto_grow(H))
            frame = av.VideoFrame.from_ndarray(cv2.inpaint(bgr, mask, 3, cv2.INPAINT_TELEA),
                                               format="bgr24")
            frame.pts = i
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)


def before(video: str, dst: Path, windows: list[tuple[float, float]]) -> None:
    """The pipeline as it was: every frame as planes, the band filled in BGR, one thread."""
    cleaner = BandCleaner(BAND, "telea", auto_grow(H))
    with open_video(video) as c, av.open(str(dst), "w") as out:
        c.streams.video[0].thread_type = "AUTO"
        v = out.add_stream("libx264", rate=FPS, options={"crf": "18", "preset": "veryfast"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        for i, f in enumerate(c.decode(video=0)):
            p = Planes.of(f)
            if in_windows(float(f.time), windows):
                crops = cleaner._crop(p)
                mask = subtitle_mask(crops[0], cleaner.grow)
                if mask.any():
                    i420 = _i420(*crops)
                    bgr = cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
                    filled = cv2.cvtColor(inpaint(bgr, mask, "telea"), cv2.COLOR_BGR2YUV_I420)
                    Fill(cleaner, crops, filled, mask, np.zeros_like(mask)).run()
            frame = av.VideoFrame.from_ndarray(p.data, format="yuv420p")
            frame.pts = i
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)


def pipelines(video: str, windows: list[tuple[float, float]], tmp: Path, repeat: int
              ) -> list[tuple[str, float, float]]:  # fmt: skip
    """(pipeline, wall s, CPU s) of whole runs, decode to file (audio copied where said):
    the fastest of ``repeat`` rounds, the pipelines taking turns in each."""
    runs = {
        "ffmpeg re-encode, nothing erased (floor)": lambda: subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", video, "-c:v", "libx264", "-preset",
             "veryfast", "-crf", "18", "-c:a", "copy", str(tmp / "ffmpeg.mp4")], check=True),
        "naive: whole frames inpainted (baseline, no audio)": lambda: naive(
            video, tmp / "naive.mp4"),
        "before: band in BGR, one thread (no audio)": lambda: before(
            video, tmp / "before.mp4", windows),
        "remove_subtitles, 1 thread": lambda: remove_subtitles(
            video, tmp / "one.mp4", BAND, windows, threads=1),
        f"remove_subtitles, {default_threads()} threads (default)": lambda: remove_subtitles(
            video, tmp / "all.mp4", BAND, windows),
    }
    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeat):
        for name, fn in runs.items():
            start = clock()
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            fn()
            wall, cpu = elapsed(start)
            done = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu += (done.ru_utime + done.ru_stime) - (children.ru_utime + children.ru_stime)
            print(name, round(wall, 2), round(cpu, 2), flush=True)
            if name not in best or wall < best[name][0]:
                best[name] = (wall, cpu)
    return [(name, *best[name]) for name in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=3)
    parser.add_argument("--patchmatch-frames", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2, help="rounds of the whole runs")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "inpaint.md"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        kw = dict(sentences=SENTENCES_EN[: args.sentences], width=W, height=H,
                  watermark="YiVideo TV", gap=0.4, lead_in=0.5)
        truth = make_video(Path(tmp) / "subs.mp4", **kw)
        make_video(Path(tmp) / "clean.mp4", burn_subtitles=False, **kw)
        shown = [(c.start, c.end) for c in truth.subtitles]
        windows = event_windows(shown, 0.1)
        clean = {i: g for i, (t, g) in enumerate(iter_band_frames(Path(tmp) / "clean.mp4",
                                                                  BAND))
                 if in_windows(t, shown)}
        before = [(psnr(g, clean[i]), ssim(g, clean[i])) for i, (_, g) in
                  enumerate(iter_band_frames(truth.video, BAND)) if i in clean]
        rows = [("input (subtitles)", *np.mean(before, axis=0), float("nan"), len(before))]
        for name in ("box", "telea", "telea+r2", "ns", "telea+t12", "patchmatch"):
            limit = args.patchmatch_frames if name == "patchmatch" else None
            r = run(truth.video, clean, windows, name, limit)
            rows.append((name, r["psnr"], r["ssim"], r["s_per_frame"], r["frames"]))
            print(rows[-1], flush=True)
        steps = phases(truth.video, windows, Path(tmp))
        runs = pipelines(truth.video, windows, Path(tmp), args.repeat)
    n = round(truth.duration * truth.fps)
    per_min = 60 / truth.duration
    floor, naive_cpu = runs[0], runs[1][2]
    lines = [
        "# Subtitle removal (bench/inpaint.py)", "",
        f"{W}x{H}, {truth.duration:.1f} s ({n} frames, {len(clean)} with a subtitle), "
        f"band rows {BAND.y0}..{BAND.y1}; scores over the frames with a subtitle, "
        "luma of the band against the subtitle-free render, before encoding; CPU seconds "
        "of masking and inpainting per frame, one thread ('+r2': radius 2, '+t12': temporal "
        "fill from up to 12 frames back).", "",
        "| method | band PSNR (dB) | band SSIM | CPU s/frame (mask + inpaint) | frames |",
        "|---|---|---|---|---|",
        *(f"| {m} | {p:.2f} | {s:.4f} | {'-' if np.isnan(t) else f'{t:.4f}'} | {f} |"
          for m, p, s, t, f in rows),
        "",
        f"## Speed: seconds per minute of 720p ({os.cpu_count()} CPUs, shared; load "
        f"average {os.getloadavg()[0]:.1f} at the end)", "",
        f"Whole runs, decode to file, the fastest of {args.repeat} rounds. Wall time "
        "depends on what else the machine runs; CPU time (all threads, ffmpeg's process "
        "included) does not. Real-time factor: video seconds per wall second.", "",
        "| pipeline | wall s/min | CPU s/min | real-time factor | CPU vs naive |",
        "|---|---|---|---|---|",
        *(f"| {name} | {wall * per_min:.1f} | {cpu * per_min:.1f} | "
          f"{truth.duration / wall:.2f}x | {cpu / naive_cpu:.2f} |" for name, wall, cpu in runs),
        "",
        f"Floor: ffmpeg alone re-encodes at {truth.duration / floor[1]:.2f}x real time.", "",
        "Phases on their own (one after another, the encoder with its own threads):", "",
        "| phase | wall s/min | CPU s/min | CPU s/min before |",
        "|---|---|---|---|",
        *(f"| {name} | {wall * per_min:.1f} | {cpu * per_min:.1f} | {old * per_min:.1f} |"
          for name, wall, cpu, old in steps),
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
