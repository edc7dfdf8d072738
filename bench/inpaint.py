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
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


# ---- the whole remove-subs recipe, as a user runs it from the CLI


class CpuWatch:
    """CPU seconds of a process and all its descendants (Ray's raylet, workers, actors),
    polled while they run: in all, by process title (``ray::Controller``), and between
    two times (a stage's start and end)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        import threading

        self.pid, self.interval = pid, interval
        self.cpu: dict[int, float] = {}
        self.title: dict[int, str] = {}
        self.samples: list[tuple[float, float]] = []  # (epoch time, CPU s of the tree)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            for p in procs:
                try:
                    t = p.cpu_times()
                    cmd = p.cmdline()
                except psutil.Error:
                    continue
                self.cpu[p.pid] = max(self.cpu.get(p.pid, 0.0), t.user + t.system
                                      + t.children_user + t.children_system)
                name = "cli" if p.pid == self.pid else (" ".join(cmd[:1]) or p.name())
                # a Ray worker starts as python and takes its ray:: title a moment later
                if p.pid not in self.title or name.startswith("ray::"):
                    self.title[p.pid] = name
            self.samples.append((time.time(), sum(self.cpu.values())))
            self._stop.wait(self.interval)

    def between(self, start: float, end: float) -> float:
        """CPU seconds of the whole tree from ``start`` to ``end`` (epoch seconds)."""
        def at(t: float) -> float:
            return max((c for s, c in self.samples if s <= t), default=0.0)

        return at(end) - at(start)

    def stop(self) -> dict[str, float]:
        """CPU seconds by group: the CLI, Ray's own processes, its workers (actors)."""
        self._stop.set()
        self._thread.join()
        groups: dict[str, float] = {}
        for pid, cpu in self.cpu.items():
            title = self.title.get(pid, "?")
            if title == "cli":
                key = "CLI (driver: Ray start, submit, download)"
            elif title.startswith("ray::"):
                key = "Ray workers (controller, media store, service actors)"
            else:
                key = "Ray's own processes (gcs, raylet, agents)"
            groups[key] = groups.get(key, 0.0) + cpu
        return groups


def run_cli(video: str, out: Path, storage: Path, *extra: str, lock: str | None = None
            ) -> tuple[float, dict[str, Any], CpuWatch]:  # fmt: skip
    """``yivideo run remove-subs`` in a subprocess, Ray embedded (no cluster to join):
    (wall s, the workflow's final state, its process tree's CPU)."""
    env = {**os.environ, "YIVIDEO_STORAGE_DIR": str(storage), "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    cli = Path(sys.executable).parent / "yivideo"
    with ray_lock(lock):
        return _run_cli(cli, video, out, env, extra)


def ray_lock(path: str | None) -> Any:
    """An exclusive flock on ``path`` while Ray runs (Ray's ports are fixed: one cluster
    per machine at a time); nothing without a path."""
    import contextlib
    import fcntl

    if not path:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def held() -> Any:
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    return held()


def _run_cli(cli: Path, video: str, out: Path, env: dict[str, str], extra: tuple[str, ...]
             ) -> tuple[float, dict[str, Any], CpuWatch]:  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen([str(cli), "run", "remove-subs", "--input", video, "--out",
                             str(out), "--json", "--set", "subtitle_removal.language=en",
                             *extra], env=env, stdout=subprocess.PIPE, text=True)
    watch = CpuWatch(proc.pid)
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - start
    watch.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"remove-subs failed ({proc.returncode}): {stdout[-2000:]}")
    return wall, json.loads(stdout)["state"], watch


def ffmpeg_reencode(video: str, dst: Path) -> tuple[float, float]:
    """Baseline: ffmpeg's plain re-encode at the recipe's settings; (wall s, CPU s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", video, "-c:v", "libx264", "-preset",
                    "veryfast", "-crf", "18", "-c:a", "copy", str(dst)], check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def ocr_leftovers(video: str, band: Band) -> list[str]:
    """Subtitles OCR still reads in ``band`` of ``video`` (the default PP-OCR models)."""
    from yivideo.hardsub import PaddleRecognizer, extract_subtitles
    from yivideo.ocr_models import DEFAULT_MODEL, resolve_ocr_models
    from yivideo.settings import get_settings

    rec = PaddleRecognizer(resolve_ocr_models(DEFAULT_MODEL, get_settings().models), threads=1)
    return [e.text for e in extract_subtitles(video, rec, band).events]


def recipe_bench(args: argparse.Namespace) -> None:
    """Time ``remove-subs`` end to end next to ffmpeg's re-encode, and check its result."""
    import psutil  # noqa: F401  (fail before rendering when it is missing)

    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        kw = dict(width=W, height=H, watermark="YiVideo TV", gap=0.4, lead_in=0.5,
                  sentences=SENTENCES_EN, duration_min=args.seconds)
        truth = make_video(tmp / "subs.mp4", **kw)
        make_video(tmp / "clean.mp4", burn_subtitles=False, **kw)
        duration = truth.duration
        rows: list[dict[str, Any]] = []
        for r in range(args.repeat):
            wall, cpu = ffmpeg_reencode(truth.video, tmp / "ffmpeg.mp4")
            rows.append({"run": "ffmpeg", "round": r, "wall": wall, "cpu": cpu})
            print(rows[-1], flush=True)
            out = tmp / f"out{r}"
            wall, state, watch = run_cli(truth.video, out, tmp / f"storage{r}",
                                         *args.set, lock=args.lock)
            report = json.loads((out / "inpaint.json").read_text())
            stage_cpu = {name: watch.between(st["started_at"], st["ended_at"])
                         for name, st in state["stages"].items() if st.get("ended_at")}
            rows.append({"run": "recipe", "round": r, "wall": wall, "state": state,
                         "cpu_groups": watch.stop(), "stage_cpu": stage_cpu,
                         "report": report, "out": out})
            print({k: v for k, v in rows[-1].items() if k != "state"}, flush=True)
        best_ff = min((x for x in rows if x["run"] == "ffmpeg"), key=lambda x: x["wall"])
        best = min((x for x in rows if x["run"] == "recipe"), key=lambda x: x["wall"])
        band = Band(**best["report"]["band"])
        clean_out = best["out"] / "clean.mp4"
        shown = [(c.start, c.end) for c in truth.subtitles]
        ref = {i: g for i, (t, g) in enumerate(iter_band_frames(tmp / "clean.mp4", BAND))
               if in_windows(t, shown)}
        got = [g for i, (_, g) in enumerate(iter_band_frames(clean_out, BAND)) if i in ref]
        band_psnr = psnr(np.stack(got), np.stack([ref[i] for i in sorted(ref)]))
        mark = (slice(0, 80), slice(W - 320, W))
        src = [g[mark] for _, g in iter_band_frames(truth.video)]
        dst = [g[mark] for _, g in iter_band_frames(clean_out)]
        mark_diff = float(np.abs(np.stack(src).astype(np.float32) - np.stack(dst)).mean())
        left = ocr_leftovers(str(clean_out), band)
    lines = recipe_report(args, duration, load, best_ff, best, rows, band_psnr, mark_diff, left)
    out_md = Path(args.out)
    text = out_md.read_text() if out_md.exists() else ""
    marker = "\n## The whole remove-subs recipe"
    text = (text.split(marker)[0].rstrip("\n") + "\n") if text else ""
    out_md.write_text(text + "\n".join(lines) + "\n")
    print("\n".join(lines))


def recipe_report(args: argparse.Namespace, duration: float, load: tuple[float, ...],
                  ff: dict[str, Any], best: dict[str, Any], rows: list[dict[str, Any]],
                  band_psnr: float, mark_diff: float, left: list[str]) -> list[str]:  # fmt: skip
    """The markdown section of a recipe run."""
    state, report, groups = best["state"], best["report"], best["cpu_groups"]
    wf, cpu_total = state["duration_s"], sum(groups.values())

    def rtf(seconds: float) -> str:
        return f"{duration / max(seconds, 1e-9):.2f}x"

    rounds = [f"{duration / x['wall']:.2f}x" for x in rows if x["run"] == "recipe"]
    settings = ", ".join([*(f"{k}={v}" for k, v in os.environ.items()
                            if k.startswith("YIVIDEO_ACTORS")), *args.set]) or "defaults"
    lines = [
        "", "## The whole remove-subs recipe (bench/inpaint.py --recipe)", "",
        f"`yivideo run remove-subs` as a user runs it (the CLI in a subprocess, Ray embedded "
        f"and started by it, a fresh storage dir so no stage comes from the cache; "
        f"settings: {settings}) on a {W}x{H} {duration:.1f} s video with a watermark, next "
        f"to ffmpeg's plain re-encode of the same video (libx264 veryfast CRF 18, audio "
        f"copied), taking turns, {len(rows) // 2} round(s), the fastest shown. "
        f"{os.cpu_count()} CPUs shared with other work: load average {load[0]:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after. Real-time factor: video seconds per wall second. "
        "Queued: waiting for the actor (the first stage on a service starts it); the "
        "first OCR stage also loads the model. CPU seconds: the CLI's whole process tree "
        "(Ray and its workers), polled every 0.2 s; they hardly depend on the machine's "
        "load.", "",
        "| stage | queued s | wall s | real-time factor | CPU s |", "|---|---|---|---|---|",
    ]
    for name, st in state["stages"].items():
        if st.get("duration_s") is not None:
            lines.append(f"| {name} ({st['node']}) | {st.get('queued_s') or 0:.2f} | "
                         f"{st['duration_s']:.2f} | {rtf(st['duration_s'])} | "
                         f"{best['stage_cpu'].get(name, 0):.1f} |")
    if "total_seconds" in report:
        enc = report.get("encode_seconds", 0.0)
        lines += [
            f"| - inpaint: decode, mask, fill ({report.get('threads', '?')} threads) | | "
            f"{report['total_seconds'] - enc:.2f} | {rtf(report['total_seconds'] - enc)} | |",
            f"| - inpaint: encode (x264 calls, {report.get('threads', '?')} threads) | | "
            f"{enc:.2f} | {rtf(enc)} | |",
            f"| - inpaint: the removal in all (its process's CPU) | | "
            f"{report['total_seconds']:.2f} | {rtf(report['total_seconds'])} | "
            f"{report.get('cpu_seconds', float('nan')):.1f} |",
        ]
    lines += [
        f"| workflow, submit to end | | {wf:.2f} | {rtf(wf)} | |",
        f"| **CLI, the whole command** (Ray's start and stop, files written) | | "
        f"**{best['wall']:.2f}** | **{rtf(best['wall'])}** | **{cpu_total:.1f}** |",
        f"| baseline: ffmpeg re-encode, nothing erased | | {ff['wall']:.2f} | "
        f"{rtf(ff['wall'])} | {ff['cpu']:.1f} |", "",
        f"CLI real-time factor in each round: {', '.join(rounds)}; CLI wall / ffmpeg wall: "
        f"{best['wall'] / ff['wall']:.1f}; CPU / ffmpeg CPU: {cpu_total / ff['cpu']:.1f}. "
        "CPU by process: " + "; ".join(f"{k} {v:.1f} s" for k, v in sorted(groups.items()))
        + ".", "",
        f"Result: band PSNR {band_psnr:.2f} dB against the subtitle-free render (frames with a "
        f"subtitle, rows {BAND.y0}..{BAND.y1}); watermark: mean luma difference "
        f"{mark_diff:.2f} to the input (kept); OCR of the output reads {len(left)} "
        f"subtitle(s){': ' + repr(left) if left else ''}; "
        f"{report.get('masked_frames')}/{report.get('frames')} frames cleaned.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=3)
    parser.add_argument("--patchmatch-frames", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2, help="rounds of the whole runs")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "inpaint.md"))
    parser.add_argument("--recipe", action="store_true",
                        help="time the whole remove-subs recipe from the CLI (starts Ray, "
                             "see --lock) and add its section to --out")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="--recipe: length of the test video")
    parser.add_argument("--lock", default=None,
                        help="--recipe: a file to flock while Ray runs (one cluster at a time)")
    parser.add_argument("--set", action="append", default=[],
                        help="--recipe: a key=value override passed to the CLI")
    args = parser.parse_args()
    if args.recipe:
        recipe_bench(args)
        return
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
