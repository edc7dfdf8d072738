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
    ap.add_argument("--reuse-run", action="store_true",
                    help="keep the recipe run already in --work; redo the fit section")
    ap.add_argument("--shrink", type=float, default=0.45,
                    help="timeline scale of the tight-slot fit section")
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

    run_md = work / "run.md"
    if not (args.reuse_run and run_md.exists()):
        run_md.write_text(run_recipe(src, work, args), encoding="utf-8")
    text = run_md.read_text(encoding="utf-8") + "\n" + tight_slots(work, args.shrink)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


def run_recipe(src: DubSource, work: Path, args: argparse.Namespace) -> str:
    """The dub recipe on Ray: its section of the report."""
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
    rows = [
        "# Dubbing: the whole `dub` recipe",
        "",
        f"Generated video: {src.duration:.1f} s, 640x360, {len(src.subtitles)} burnt-in "
        f"Chinese lines ({args.gap} s apart), other English sentences spoken in their slots "
        "over music. `yivideo run dub --set subtitle_translation.target_language=en --set "
        "subtitle_generation.strategy=ocr` (OCR -> local Qwen2.5-0.5B zh->en -> TTS "
        f"`{lines[0]['voice']}` -> Spleeter background -> fit/mix/loudnorm/mux), embedded "
        "Ray, 2 CPU cores shared with other work, no GPU. Baseline: the video's own "
        "length (RTF = wall / length).",
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
             f"{report['max_speed']}); the Chinese slots (espeak-ng Mandarin timing) are "
             "longer than the English said in them:", ""]
    rows += action_table(lines)
    return "\n".join(rows) + "\n"


def action_table(lines: list[dict]) -> list[str]:
    """Lines per fit action, and one dub.json line of each action that occurred."""
    counts = {a: sum(x["action"] == a for x in lines) for a in ACTIONS}
    rows = ["| action | lines | share |", "|---|---:|---:|"]
    rows += [f"| {a} | {counts[a]} | {counts[a] / max(len(lines), 1):.0%} |" for a in ACTIONS]
    rows += ["", "One dub.json line of each action that occurred:", ""]
    for a in ACTIONS:
        x = next((x for x in lines if x["action"] == a), None)
        if x is not None:
            rows += [f"`{a}`:", "", "```json", json.dumps(x, ensure_ascii=False), "```", ""]
    return rows


def tight_slots(work: Path, shrink: float) -> str:
    """The recipe's own script, spoken again, fitted to the source timeline compressed to
    ``shrink`` (every start and end scaled), as a fast-talking source would give:
    dub.mix per policy, no Ray."""
    from actors.dub import DubService, MixParams
    from actors.tts import SynthesizeParams, TTSService
    from yivideo.media import decode_audio
    from yivideo.nodes import NodeContext
    from yivideo.types import Segment, Transcript

    lines = json.loads((work / "out" / "dub.json").read_text())["lines"]
    background = decode_audio(work / "src.mp4", 44100)
    segs = [Segment(shrink * x["slot"][0], shrink * x["slot"][1], x["text"]) for x in lines]
    t0 = time.perf_counter()
    speech = TTSService(None).synthesize(NodeContext(), SynthesizeParams(),
                                         Transcript("en", 1.0, background.duration,
                                                    segs))["speech"]
    tts_s = time.perf_counter() - t0
    rows = [f"## Fit actions when slots are tight (timeline x{shrink})", "",
            f"The same {len(lines)} translated lines spoken again ({tts_s:.1f} s) and fitted "
            f"by `dub.mix` (no Ray, over the source's audio) to the source's timeline "
            f"compressed to {shrink:.0%} (every slot and gap {shrink:.0%} as long, as from "
            "a fast-talking source), once per policy.", ""]
    for policy in ("overlap", "trim", "slow_video"):
        ctx = NodeContext()
        t0 = time.perf_counter()
        DubService(None).mix(ctx, MixParams(policy=policy), speech, background)
        secs = time.perf_counter() - t0
        report = json.loads(ctx.artifacts["dub.json"])
        rows += [f"### policy `{policy}`: mix {secs:.1f} s, video extended by "
                 f"{report['video_extended_s']} s", ""]
        rows += action_table(report["lines"])
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
