"""Subtitle removal: band quality against a subtitle-free render, and speed, per method.

A 720p test video is rendered twice with the same moving background and watermark, with
and without burnt-in subtitles (yivideo.testmedia). Each method erases the subtitles in
the band (rows 560..720, where libass draws them) during the known subtitle times, and
its frames are compared, before encoding, with the clean render's frames shown with a
subtitle: PSNR and SSIM of the band's luma, and the seconds of masking and inpainting
per frame (decoding and encoding excluded; they are listed once). The baseline ("box")
inpaints the whole bounding box of the text, as a box-mask remover would.

Writes a markdown report to bench/results/inpaint.md (or ``--out``).
Run: OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/inpaint.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yivideo.inpainting import (  # noqa: E402
    BandCleaner,
    Planes,
    auto_grow,
    event_windows,
    in_windows,
    remove_subtitles,
    subtitle_mask,
)
from yivideo.media import Band, iter_band_frames, open_video  # noqa: E402
from yivideo.testmedia import SENTENCES_EN, make_video, psnr  # noqa: E402

W, H = 1280, 720
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
    method, _, temporal = name.partition("+t")
    cleaner = (None if method == "box" else
               BandCleaner(BAND, method, auto_grow(H), int(temporal or 0)))  # type: ignore[arg-type]
    scores, seconds, frames = [], 0.0, 0
    with open_video(video) as c:
        for i, frame in enumerate(c.decode(video=0)):
            t = float(frame.time)
            active = in_windows(t, windows) and (limit is None or frames < limit)
            if cleaner is None and not active:
                continue
            planes = Planes.of(frame)
            began = time.perf_counter()
            if cleaner is None:
                box_cleaner(planes, BAND, auto_grow(H))
            else:
                cleaner.clean(planes, active)
            if active:
                seconds += time.perf_counter() - began
                frames += 1
                if i in clean:
                    y = planes.y[BAND.y0 : BAND.y1]
                    scores.append((psnr(y, clean[i]), ssim(y, clean[i])))
            if limit is not None and frames >= limit:
                break
    p, s = np.mean(scores, axis=0)
    return {"psnr": p, "ssim": s, "s_per_frame": seconds / max(frames, 1), "frames": frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=3)
    parser.add_argument("--patchmatch-frames", type=int, default=20)
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
        for name in ("box", "telea", "ns", "telea+t12", "patchmatch"):
            limit = args.patchmatch_frames if name == "patchmatch" else None
            r = run(truth.video, clean, windows, name, limit)
            rows.append((name, r["psnr"], r["ssim"], r["s_per_frame"], r["frames"]))
            print(rows[-1], flush=True)
        began = time.perf_counter()
        stats = remove_subtitles(truth.video, Path(tmp) / "out.mp4", BAND, windows)
        whole = time.perf_counter() - began
    n = round(truth.duration * truth.fps)
    lines = [
        "# Subtitle removal (bench/inpaint.py)", "",
        f"{W}x{H}, {truth.duration:.1f} s ({n} frames, {len(clean)} with a subtitle), "
        f"band rows {BAND.y0}..{BAND.y1}; scores over the frames with a subtitle, "
        "luma of the band against the subtitle-free render, before encoding.", "",
        "| method | band PSNR (dB) | band SSIM | s/frame (mask + inpaint) | frames |",
        "|---|---|---|---|---|",
        *(f"| {m} | {p:.2f} | {s:.4f} | {'-' if np.isnan(t) else f'{t:.4f}'} | {f} |"
          for m, p, s, t, f in rows),
        "",
        f"Whole pipeline, telea (decode, erase, libx264 veryfast CRF 18, audio copy): "
        f"{whole:.2f} s for {stats.frames} frames = {whole / stats.frames:.4f} s/frame, "
        f"{truth.duration / whole:.2f}x real time.", "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
