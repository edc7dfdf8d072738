"""What media handles cost on one machine, against plain paths in the same run.

Prints, warm, median of N runs, cache off:
  path       a workflow whose input is a plain local path (how inputs travelled before)
  handle     the same through ``yivideo.submit``: the file hashed (remembered while
             unchanged), looked up in the media store, resolved to the origin file
  first      the first submission of new content of that size: hash + put into the
             object store, as a front door does once per new file
for a one-stage probe and for the ``audio`` recipe, and the ratio handle/path.
Writes the table to bench/results/media_handles.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import ray
from engine import median_ms  # bench/engine.py, beside this script

import yivideo
from yivideo.engine import get_controller
from yivideo.media.handle import MediaHandle
from yivideo.settings import get_settings
from yivideo.testmedia import SENTENCES_EN, make_video


def big_video(folder: Path, mb: int) -> Path:
    """A video of about ``mb`` megabytes (noise compresses badly)."""
    out = folder / f"big{mb}.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "nullsrc=s=640x360:r=25,geq=random(1)*255:128:128", "-t", "30",
                    "-c:v", "libx264", "-preset", "ultrafast", "-b:v", f"{mb * 8 // 30}M",
                    "-fs", str(mb << 20), str(out)], check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--big-mb", type=int, default=100)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    video = make_video(tmp / "clip.mp4", sentences=SENTENCES_EN[:2]).video
    yivideo.connect()
    settings = get_settings()
    controller = get_controller(settings)

    def probe(v: str) -> dict:
        return {"inputs": {"video": v}, "options": {"cache": False},
                "stages": {"p": {"node": "ffmpeg.probe", "inputs": {"video": "input.video"},
                                 "params": {"save": False}}}}

    def audio(v: str) -> dict:
        return {"video_path": v, "options": {"cache": False},
                "workflow_config": {"audio_extraction": {}}}

    def plain(cfg: dict) -> None:  # straight to the controller: the path as it is
        state = yivideo.wait(ray.get(controller.submit.remote(cfg, "", 0)))
        assert state["status"] == "succeeded", state["error"]

    def handled(cfg: dict) -> None:
        state = yivideo.wait(yivideo.submit(cfg))
        assert state["status"] == "succeeded", state["error"]

    rows = []
    for name, make in (("probe", probe), ("audio recipe", audio)):
        base = median_ms(lambda m=make: plain(m(video)), args.runs)
        hand = median_ms(lambda m=make: handled(m(video)), args.runs)
        rows.append((name, os.path.getsize(video), base, hand))

    big = big_video(tmp, args.big_mb)
    copies = []

    def fresh() -> str:  # new content each time: the store has not seen it
        path = tmp / f"copy{len(copies)}.mp4"
        shutil.copyfile(big, path)
        with path.open("ab") as fh:
            fh.write(os.urandom(16))
        copies.append(path)
        return str(path)

    base = median_ms(lambda: plain(probe(str(big))), args.runs)
    hand = median_ms(lambda: handled(probe(str(big))), args.runs)
    first = []
    for _ in range(max(3, args.runs // 3)):
        path = fresh()
        t = time.perf_counter()
        MediaHandle.from_file(path, namespace=settings.namespace, keep=True)
        first.append((time.perf_counter() - t) * 1000)
    rows.append(("probe (big)", big.stat().st_size, base, hand))

    lines = ["| workflow | input MB | path ms | handle ms | handle/path |",
             "|---|---|---|---|---|"]
    lines += [f"| {n} | {size / 1e6:.1f} | {b:.1f} | {h:.1f} | {h / b:.2f} |"
              for n, size, b, h in rows]
    lines += ["", f"first submission of new content ({big.stat().st_size / 1e6:.0f} MB: "
                  f"hash + put into the object store): {statistics.median(first):.0f} ms "
                  f"median of {len(first)}"]
    table = "\n".join(lines)
    print(table)
    out = Path(__file__).parent / "results" / "media_handles.md"
    out.write_text(f"# Media handles on one machine (median of {args.runs}, warm)\n\n"
                   f"{table}\n")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
