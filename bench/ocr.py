"""Hard-subtitle extraction benchmark: YiVideo's extractor against a naive baseline.

Generates 720p 25 fps videos with burnt-in Chinese and English subtitles, a static
watermark and a moving background (``yivideo.testmedia``), then for each prints the
real-time factor (video seconds per wall second), CER, median and worst start/end error,
and OCR calls against the number of true subtitles, for:

* ``yivideo``: band detection + :func:`yivideo.hardsub.extract_subtitles`;
* ``naive``: the same OCR engine on the band of every 5th frame, identical consecutive
  texts merged (given the band for free).

    python bench/ocr.py --minutes 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WATERMARKS = {"zh": "YiTV 频道", "en": "YiTV News"}


@dataclass
class Score:
    """How well predicted events match the true subtitle cues."""

    cer: float
    found: int  # cues matched by exactly one event
    missing: int
    duplicates: int  # extra events on a cue already matched
    spurious: int  # events overlapping no cue
    start_errors: list[float]
    end_errors: list[float]

    def row(self) -> dict[str, Any]:
        def med(v: list[float]) -> float:
            return statistics.median(v) if v else float("nan")

        return {
            "CER": f"{self.cer:.2%}",
            "found": self.found,
            "missing": self.missing,
            "dup": self.duplicates,
            "spurious": self.spurious,
            "start med/max": f"{med(self.start_errors):.3f}/"
            f"{max(self.start_errors, default=float('nan')):.3f}",
            "end med/max": f"{med(self.end_errors):.3f}/"
            f"{max(self.end_errors, default=float('nan')):.3f}",
        }


def _norm(text: str) -> str:
    return " ".join(text.split())


def score(events: list[Any], cues: list[Any]) -> Score:
    """Match each event to the cue it overlaps most; CER of all texts in time order.

    ``events`` and ``cues`` need ``start``, ``end`` and ``text``. A cue with one event is
    found (its boundary errors are counted), none is missing, more are duplicates.
    """
    import jiwer

    assigned: dict[int, list[Any]] = {i: [] for i in range(len(cues))}
    spurious = 0
    for ev in events:
        overlaps = [min(ev.end, c.end) - max(ev.start, c.start) for c in cues]
        best = max(range(len(cues)), key=lambda i: overlaps[i], default=None)
        if best is None or overlaps[best] <= 0:
            spurious += 1
        else:
            assigned[best].append(ev)
    found = sum(1 for v in assigned.values() if len(v) == 1)
    missing = sum(1 for v in assigned.values() if not v)
    duplicates = sum(len(v) - 1 for v in assigned.values() if len(v) > 1)
    starts = [abs(v[0].start - cues[i].start) for i, v in assigned.items() if len(v) == 1]
    ends = [abs(v[0].end - cues[i].end) for i, v in assigned.items() if len(v) == 1]
    ref = " ".join(_norm(c.text) for c in cues)
    hyp = " ".join(_norm(e.text) for e in sorted(events, key=lambda e: e.start))
    cer = float(jiwer.cer(ref, hyp)) if ref else float(bool(hyp))
    return Score(cer, found, missing, duplicates, spurious, starts, ends)


@dataclass
class _Event:
    start: float
    end: float
    text: str


def naive_extract(path: Path, recognize: Any, band: Any, every: int = 5) -> tuple[list, int]:
    """OCR the band of every ``every``-th frame; merge identical consecutive texts.

    An event starts at the first OCR'd frame showing its text and ends at the first OCR'd
    frame showing another (or the end of the video).
    """
    from yivideo.hardsub import iter_band_frames, join_text_lines, video_info

    events: list[_Event] = []
    calls = 0
    current: _Event | None = None
    end = video_info(path)["duration"]
    for i, (t, grey) in enumerate(iter_band_frames(path, band)):
        if i % every:
            continue
        calls += 1
        lines, _ = join_text_lines(recognize(grey))
        text = "\n".join(lines)
        if current is not None and text == current.text:
            continue
        if current is not None:
            current.end = t
            events.append(current)
        current = _Event(t, end, text)
    if current is not None:
        events.append(current)
    return [e for e in events if e.text], calls


def _run(name: str, fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="length of each video")
    parser.add_argument("--lang", nargs="+", default=["zh", "en"], choices=["zh", "en"])
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep (and reuse) the videos here; default: a temporary folder")
    parser.add_argument("--threads", type=int, default=1,
                        help="OCR threads (the service's default: the actor's num_cpus, 1)")
    parser.add_argument("--every", type=int, default=5, help="baseline: OCR every Nth frame")
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive baseline")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="yivideo-ocr-bench-") as tmp:
        return _bench(args, args.workdir or Path(tmp))


def _bench(args: argparse.Namespace, work: Path) -> int:
    from yivideo import hardsub
    from yivideo.ocr_models import resolve_ocr_models
    from yivideo.settings import ModelSettings
    from yivideo.testmedia import GroundTruth, make_video

    work.mkdir(parents=True, exist_ok=True)
    models = resolve_ocr_models("ppocr-v6-small", ModelSettings())
    engine, load_s = _run("load", lambda: hardsub.PaddleRecognizer(models,
                                                                   threads=args.threads))
    print(f"OCR: PaddleOCR {models.det.name} + {models.rec.name} ({models.det.engine}), "
          f"loaded in {load_s:.1f} s; videos in {work}")
    rows = []
    for lang in args.lang:
        video = work / f"{lang}-{args.minutes:g}min.mp4"
        truth_path = video.with_name(f"{video.stem}.truth.json")
        if truth_path.is_file() and video.is_file():
            truth = GroundTruth.from_json(truth_path)
        else:
            truth, gen_s = _run("gen", lambda lang=lang, video=video: make_video(
                video, lang=lang, duration_min=args.minutes * 60, watermark=WATERMARKS[lang],
                moving_background=True, audio=False))
            print(f"generated {video.name} in {gen_s:.0f} s")
        engine(hardsub.sample_frames(video, 1)[0][1])  # warm-up outside the timings
        cues = truth.subtitles

        engine.calls = 0
        t0 = time.perf_counter()
        band = hardsub.detect_band(video, lambda im: engine(im, det_side=640))
        band_s = time.perf_counter() - t0
        band_calls = engine.calls
        if band is None:
            print(f"{lang}: no subtitle band found")
            continue
        result = hardsub.extract_subtitles(video, engine, band)
        wall = time.perf_counter() - t0
        s = score(result.events, cues)
        rows.append({"video": video.name, "method": "yivideo",
                     "RTF": f"{truth.duration / wall:.1f}x", "wall s": f"{wall:.1f}",
                     **s.row(), "OCR calls": f"{band_calls}+{result.ocr_calls}",
                     "true events": len(cues)})
        print(f"  band {band} found in {band_s:.1f} s; watermark in output: "
              f"{any(WATERMARKS[lang] in e.text for e in result.events)}")
        if not args.no_baseline:
            engine.calls = 0
            (events, calls), wall = _run("naive", lambda v=video, b=band: naive_extract(
                v, engine, b, args.every))
            s = score(events, cues)
            rows.append({"video": video.name, "method": f"naive 1/{args.every}",
                         "RTF": f"{truth.duration / wall:.1f}x", "wall s": f"{wall:.1f}",
                         **s.row(), "OCR calls": str(calls), "true events": len(cues)})
    if rows:
        keys = list(rows[0])
        widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
        print("  ".join(k.ljust(widths[k]) for k in keys))
        for r in rows:
            print("  ".join(str(r[k]).ljust(widths[k]) for k in keys))
    print("errors in seconds; RTF = video seconds / wall seconds; yivideo's time includes "
          "band detection, the baseline is given the band")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
