"""Speaker diarization benchmark on generated multi-speaker dialogues.

Dialogues are spoken by clearly different espeak-ng voices at known turns, so the
reference is exact. First the peak resident memory of a child process that diarizes a
``--minutes`` long dialogue (torch allocates outside Python's allocator, so only the
process's own high-water mark counts it); then the diarization error rate (DER,
pyannote.metrics, a collar of 0.25 s on each side of every reference boundary), speakers
found against the truth and the real-time factor (processing time / audio duration) on
shorter dialogues of 2, 3 and 4 speakers.

    python bench/diarize.py                   # 2-minute memory run, then quality
    python bench/diarize.py --minutes 30 --skip-quality   # the 30-minute memory run
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
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from yivideo.diarization import SAMPLE_RATE, Turn  # noqa: E402
from yivideo.testmedia import SENTENCES_EN  # noqa: E402

#: espeak-ng voices ("voice" or "voice/pPITCH") that both models tell apart: CAM++
#: similarity 0.15-0.45 between them (about 0.85 for one voice over different sentences),
#: and segmentation-3.0 does not merge them inside a window, as it does en-us with
#: en+klatt4.
VOICES = ("en-us+f3", "en+klatt4", "en-us+boris", "en+f1/p30")
#: DER collar in pyannote.metrics' convention: the total width removed around a boundary.
COLLAR = 0.5


@dataclass
class Dialogue:
    samples: np.ndarray  # mono float32 at 16 kHz
    turns: list[Turn]  # the truth, speaker = voice name

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def synthesize(text: str, voice: str) -> np.ndarray:
    """``text`` spoken by ``voice`` ("en-us+f3", or "en+f1/p30" for pitch 30 of 0-99):
    float32 mono at 16 kHz, leading and trailing silence cut."""
    from scipy.signal import resample_poly

    name, _, pitch = voice.partition("/p")
    cmd = ["espeak-ng", "-v", name, "-s", "160", *(["-p", pitch] if pitch else [])]
    with tempfile.TemporaryDirectory(prefix="yivideo-diar-") as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run([*cmd, "-w", str(path), text], check=True, capture_output=True)
        with wave.open(str(path), "rb") as wf:
            rate = wf.getframerate()
            raw = np.frombuffer(wf.readframes(wf.getnframes()), "<i2")
    x = raw.astype(np.float32) / 32768.0
    loud = np.flatnonzero(np.abs(x) > 0.005)
    x = x[loud[0] : loud[-1] + 1] if loud.size else x
    g = np.gcd(SAMPLE_RATE, rate)
    return resample_poly(x, SAMPLE_RATE // g, rate // g).astype(np.float32)


def make_dialogue(
    voices: tuple[str, ...] | list[str],
    turns: int = 0,
    *,
    min_duration: float = 0.0,
    gap: float = 0.5,
    lead: float = 0.5,
    sentences: list[str] | None = None,
    seed: int = 0,
) -> Dialogue:
    """``turns`` sentences (or as many as last ``min_duration`` seconds) by ``voices``,
    ``gap`` seconds apart, after ``lead`` seconds of silence.

    Speakers take turns in a shuffled order in which nobody talks twice in a row; a
    sentence is synthesised once per voice.
    """
    rng = np.random.default_rng(seed)
    texts = sentences or SENTENCES_EN
    cache: dict[tuple[int, int], np.ndarray] = {}
    pieces: list[np.ndarray] = [np.zeros(int(lead * SAMPLE_RATE), np.float32)]
    truth: list[Turn] = []
    cursor = len(pieces[0])
    silence = np.zeros(int(gap * SAMPLE_RATE), np.float32)
    last = -1
    k = 0
    while k < turns or cursor / SAMPLE_RATE + lead < min_duration:
        v = int(rng.choice([i for i in range(len(voices)) if i != last]))
        key = (v, k % len(texts))
        if key not in cache:
            cache[key] = synthesize(texts[key[1]], voices[v])
        clip = cache[key]
        truth.append(Turn(cursor / SAMPLE_RATE, (cursor + len(clip)) / SAMPLE_RATE, voices[v]))
        pieces += [clip, silence]
        cursor += len(clip) + len(silence)
        last, k = v, k + 1
    pieces.append(np.zeros(int(lead * SAMPLE_RATE), np.float32))
    return Dialogue(np.concatenate(pieces), truth)


def der(reference: list[Turn], hypothesis: list[Turn], collar: float = COLLAR) -> float:
    """Diarization error rate (pyannote.metrics; ``collar`` in its total-width convention)."""
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    def annotation(turns: list[Turn]) -> Annotation:
        ann = Annotation()
        for i, t in enumerate(turns):
            ann[Segment(t.start, t.end), i] = t.speaker
        return ann

    # Scored region: from 0 to the last turn of either side (pyannote warns otherwise).
    end = max([t.end for t in [*reference, *hypothesis]], default=0.0)
    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    uem = Timeline([Segment(0.0, end)])
    return float(metric(annotation(reference), annotation(hypothesis), uem=uem))


def _quality(pipe: object, speakers: int, turns: int, seeds: list[int]) -> list[dict]:
    from yivideo.diarization import diarize

    rows = []
    for seed in seeds:
        dlg = make_dialogue(VOICES[:speakers], turns, seed=seed)
        t0, c0 = time.perf_counter(), time.process_time()
        hyp = diarize(pipe, dlg.samples, SAMPLE_RATE)  # type: ignore[arg-type]
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append({
            "speakers": speakers,
            "seed": seed,
            "duration_s": round(dlg.duration, 1),
            "found": len({t.speaker for t in hyp}),
            "der_collar": round(der(dlg.turns, hyp), 4),
            "der_no_collar": round(der(dlg.turns, hyp, collar=0.0), 4),
            "rtf": round(elapsed / dlg.duration, 4),
            "cpu_s_per_audio_s": round(cpu / dlg.duration, 4),
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _child(minutes: float, chunk_s: float) -> None:
    """Run in a fresh process: diarize a long dialogue and print the figures as JSON."""
    from yivideo.diarization import build_pipeline, diarize

    voices = VOICES[:3]
    dlg = make_dialogue(voices, 3, min_duration=minutes * 60, seed=7)
    rss_audio = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pipe = build_pipeline(device="cpu")
    t0, c0 = time.perf_counter(), time.process_time()
    hyp = diarize(pipe, dlg.samples, SAMPLE_RATE, chunk_s=chunk_s)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({
        "minutes": round(dlg.duration / 60, 2),
        "chunk_s": chunk_s,
        "speakers_true": len(voices),
        "speakers_found": len({t.speaker for t in hyp}),
        "der_collar": round(der(dlg.turns, hyp), 4),
        "rtf": round(elapsed / dlg.duration, 4),
        "cpu_s_per_audio_s": round(cpu / dlg.duration, 4),
        "seconds": round(elapsed, 1),
        "rss_before_models_mb": round(rss_audio / 1024, 1),
        "vm_hwm_mb": _vm_hwm_mb(),
    }))  # fmt: skip


def _vm_hwm_mb() -> float | None:
    """This process's own peak RSS (Linux), which unlike ru_maxrss owes nothing to a parent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="length of the memory run")
    parser.add_argument("--chunk-s", type=float, default=300.0, help="diarization window (s)")
    parser.add_argument("--turns", type=int, default=16, help="turns per quality dialogue")
    parser.add_argument("--seeds", type=int, default=2, help="dialogues per speaker count")
    parser.add_argument("--skip-quality", action="store_true", help="only the memory run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

    if args.child:
        _child(args.minutes, args.chunk_s)
        return 0

    # The memory run goes first, in a child process: ru_maxrss of a child starts from its
    # parent's resident size at fork, so the parent must not hold models yet.
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "--minutes", str(args.minutes),
         "--chunk-s", str(args.chunk_s)],
        capture_output=True, text=True,
    )  # fmt: skip
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return proc.returncode
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # RUSAGE_CHILDREN: the largest peak among finished children (KiB on Linux); the
    # espeak-ng children are tiny, so this is the diarizing process.
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result), flush=True)

    if not args.skip_quality:
        from yivideo.diarization import build_pipeline

        t0 = time.perf_counter()
        pipe = build_pipeline(device="cpu")
        print(json.dumps({"pipeline_load_s": round(time.perf_counter() - t0, 2)}))
        rows = []
        for speakers in (2, 3, 4):
            rows += _quality(pipe, speakers, args.turns, list(range(args.seeds)))
        print(json.dumps({
            "mean_der_collar": round(float(np.mean([r["der_collar"] for r in rows])), 4),
            "count_correct": f"{sum(r['found'] == r['speakers'] for r in rows)}/{len(rows)}",
            "mean_rtf": round(float(np.mean([r["rtf"] for r in rows])), 4),
        }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
