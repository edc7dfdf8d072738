"""The whole `dub` recipe on a generated video: wall time, real-time factor, per stage.

The video (yivideo.dubbing_testmedia) has Chinese lines burnt in (SENTENCES_ZH, cycled
for ``--minutes``), other English sentences spoken in their slots, over a music bed. It is
dubbed as `yivideo run dub --set subtitle_translation.target_language=en --set
subtitle_generation.strategy=ocr` would: OCR -> local LLM zh->en -> TTS (auto: Piper if
installed) -> Spleeter background -> fit, mix, loudnorm, mux, on an embedded Ray.

Reports wall time and real-time factor (wall / video length) of the workflow and of
each stage (with its share of the summed stage time), the baseline being the video's
own length; the share of lines that fit, needed speed-up, extension or the policy; and
one dub.json line of each action. Writes bench/results/dub.md (or ``--out``).
Run: OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/dub.py --minutes 5
(the video is made first; Ray runs holding /tmp/yivideo-ray.lock, as the tests do).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yivideo  # noqa: E402
from yivideo.dubbing_testmedia import DubSource, make_dub_source  # noqa: E402
from yivideo.testmedia import SENTENCES_EN, SENTENCES_ZH  # noqa: E402

ACTIONS = ("fit", "speed_up", "extend", "overlap", "trim", "slow_video")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--gap", type=float, default=0.4, help="silence between source lines, s")
    ap.add_argument("--work", help="folder for the video and results; a video made there "
                                   "before with the same settings is reused")
    ap.add_argument("--lock", default="/tmp/yivideo-ray.lock",
                    help="file locked while Ray runs (the tests' lock)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "dub.md"))
    args = ap.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="yivideo-bench-dub-"))
    work.mkdir(parents=True, exist_ok=True)
    made_with = {"minutes": args.minutes, "gap": args.gap}
    saved = work / "src.json"
    if saved.exists() and json.loads(saved.read_text())["made_with"] == made_with:
        src = json.loads(saved.read_text())["source"]
        src = DubSource(src["video"], src["duration"], src["subtitles"], src["speech"])
    else:
        t0 = time.perf_counter()
        # the spoken English is other sentences than the burnt-in Chinese says
        spoken = [SENTENCES_EN[(i + 7) % len(SENTENCES_EN)] for i in range(len(SENTENCES_ZH))]
        src = make_dub_source(work / "src.mp4", subtitles=SENTENCES_ZH, spoken=spoken,
                              duration_min=args.minutes * 60, gap=args.gap)
        print(f"video made in {time.perf_counter() - t0:.1f} s")
        saved.write_text(json.dumps({"made_with": made_with, "source": asdict(src)}))
    print(f"video: {src.duration:.1f} s, {len(src.subtitles)} lines")

    request = yivideo.build_request("dub", src.video, [
        "subtitle_translation.target_language=en", "subtitle_generation.strategy=ocr"])
    with open(args.lock, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one Ray on this machine at a time
        yivideo.connect()
        t0 = time.perf_counter()
        result = yivideo.run(request, out=work / "out")
        wall = time.perf_counter() - t0
        import ray

        ray.shutdown()
    state = result.state
    if result.status != "succeeded":
        raise SystemExit(f"dub failed: {state['error']}")
    stages = {n: st["duration_s"] or 0.0 for n, st in state["stages"].items()}
    total_stage = sum(stages.values())
    report = json.loads((work / "out" / "dub.json").read_text())
    lines = report["lines"]
    counts = {a: sum(x["action"] == a for x in lines) for a in ACTIONS}
    examples = {a: next(x for x in lines if x["action"] == a) for a in ACTIONS if counts[a]}

    rows = [
        "# Dubbing: the whole `dub` recipe",
        "",
        f"Generated video: {src.duration:.1f} s, 640x360, {len(src.subtitles)} burnt-in "
        f"Chinese lines ({args.gap} s apart), other English sentences spoken in their slots "
        "over music. `yivideo run dub --set subtitle_translation.target_language=en --set "
        "subtitle_generation.strategy=ocr` (OCR -> local Qwen2.5-0.5B zh->en -> TTS "
        f"`{lines[0]['voice']}` -> Spleeter background -> fit/mix/loudnorm/mux), embedded "
        "Ray, 2 shared CPU cores, no GPU. Baseline: the video's own length (RTF = wall / "
        "length).",
        "",
        f"Workflow wall time **{wall:.1f} s**, real-time factor **{wall / src.duration:.2f}**"
        f" (stages summed: {total_stage:.1f} s; stages run in parallel where they can).",
        "",
        "| stage | s | RTF | share of stage time |",
        "|---|---:|---:|---:|",
    ]
    for name, secs in sorted(stages.items(), key=lambda kv: -kv[1]):
        rows.append(f"| {name} | {secs:.1f} | {secs / src.duration:.3f} | "
                    f"{secs / max(total_stage, 1e-9):.0%} |")
    rows += ["", f"Lines: {len(lines)} (policy `{report['policy']}`, max_speed "
             f"{report['max_speed']})", "", "| action | lines | share |", "|---|---:|---:|"]
    for a in ACTIONS:
        rows.append(f"| {a} | {counts[a]} | {counts[a] / max(len(lines), 1):.0%} |")
    rows += ["", "One dub.json line of each action that occurred:", ""]
    for a, x in examples.items():
        rows += [f"`{a}`:", "", "```json", json.dumps(x, ensure_ascii=False), "```", ""]
    text = "\n".join(rows) + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
