"""Voice separation: quality, speed and memory per provider, and whether it helps ASR.

Synthetic speech (espeak-ng) over a synthetic music bed (yivideo.testmusic) at music
levels -6, 0 and +6 dB relative to the speech, 16 kHz:

- SI-SDR improvement over the mixture of the vocals (against the speech stem) and of the
  instrumental (against the music stem), on ``--clip-s`` seconds per level;
- real-time factor and peak memory (ru_maxrss of a fresh subprocess per provider, so one
  case's memory does not hide another's) separating ``--minutes`` of audio;
- tiny.en word error rate (ASRService.transcribe, no Ray) on the mixture and on each
  provider's vocals, with the clean speech as the floor.

Writes a markdown report to bench/results/separate.md (or ``--out``).
Run: OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/separate.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import jiwer
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.asr import ASRService, TranscribeParams  # noqa: E402
from actors.separate import DeepFilterParams, SeparationService, SpleeterParams  # noqa: E402
from yivideo.nodes import NodeContext  # noqa: E402
from yivideo.settings import Settings  # noqa: E402
from yivideo.testmedia import SENTENCES_EN, normalise_for_wer, speech_track  # noqa: E402
from yivideo.testmusic import mix_at, si_sdr  # noqa: E402
from yivideo.types import Audio  # noqa: E402

RATE = 16000
LEVELS = (-6.0, 0.0, 6.0)
PROVIDERS = {"spleeter": SpleeterParams, "deepfilternet": DeepFilterParams}


def speech_of(seconds: float, offset: int = 0) -> tuple[np.ndarray, str]:
    """Sentences from SENTENCES_EN (starting at ``offset``) for about ``seconds``; text."""
    # about 3.5 s a sentence with its gap; a few more, then cut to length
    n = int(seconds / 3.5) + 2
    texts = [SENTENCES_EN[(offset + i) % len(SENTENCES_EN)] for i in range(n)]
    samples, cues = speech_track(texts, rate=RATE)
    end = int(seconds * RATE)
    kept = " ".join(c.text for c in cues if c.end * RATE <= end)
    return samples[:end], kept


def separate(service: SeparationService, provider: str, samples: np.ndarray
             ) -> dict[str, Audio]:
    params = PROVIDERS[provider](save_wav=False)
    return getattr(service, provider)(NodeContext(), params, Audio(samples, RATE))


def cost_case(provider: str, minutes: float) -> dict[str, float]:
    """In this (fresh) process: separate ``minutes`` of music over speech; RTF, peak MB."""
    clip, _ = speech_of(120.0)
    speech = np.tile(clip, int(np.ceil(minutes * 60 / 120.0)))[: int(minutes * 60 * RATE)]
    mix = mix_at(speech, RATE, 0.0)
    service = SeparationService(None)
    separate(service, provider, mix.mixture[: RATE * 5])  # load the model first
    t0 = time.perf_counter()
    out = separate(service, provider, mix.mixture)
    elapsed = time.perf_counter() - t0
    return {"rtf": elapsed / (minutes * 60),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "vocals_gain_db": si_sdr(out["vocals"].samples, mix.speech)
            - si_sdr(mix.mixture, mix.speech)}


def wer(reference: str, audio: np.ndarray, asr: ASRService) -> float:
    out = asr.transcribe(NodeContext(), TranscribeParams(model="tiny.en"), Audio(audio, RATE))
    hyp = " ".join(s.text for s in out["transcript"].segments)
    return jiwer.wer(normalise_for_wer(reference), normalise_for_wer(hyp))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="audio for RTF and memory")
    ap.add_argument("--clip-s", type=float, default=60.0, help="audio per level for quality")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "separate.md"))
    ap.add_argument("--cost-case", help=argparse.SUPPRESS)  # internal: one subprocess case
    args = ap.parse_args()
    if args.cost_case:
        print(json.dumps(cost_case(args.cost_case, args.minutes)))
        return

    service, asr = SeparationService(None), ASRService(Settings())
    speech, text = speech_of(args.clip_s)
    quality, wers = [], []
    for level in LEVELS:
        mix = mix_at(speech, RATE, level, seed=3)
        row_w = {"level": level, "clean": wer(text, mix.speech, asr),
                 "mixture": wer(text, mix.mixture, asr)}
        for provider in PROVIDERS:
            out = separate(service, provider, mix.mixture)
            quality.append({
                "provider": provider, "level": level,
                "vocals": si_sdr(out["vocals"].samples, mix.speech)
                - si_sdr(mix.mixture, mix.speech),
                "instrumental": si_sdr(out["instrumental"].samples, mix.music)
                - si_sdr(mix.mixture, mix.music)})
            row_w[provider] = wer(text, out["vocals"].samples, asr)
        wers.append(row_w)
        print(f"level {level:+.0f} dB done", flush=True)

    costs = {}
    for provider in PROVIDERS:
        proc = subprocess.run(
            [sys.executable, __file__, "--cost-case", provider, "--minutes", str(args.minutes)],
            capture_output=True, text=True, check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        costs[provider] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{provider}: {costs[provider]}", flush=True)

    lines = [
        "# Voice separation bench",
        "",
        f"`bench/separate.py`: espeak-ng speech over the synthetic music bed, 16 kHz, "
        f"{args.clip_s:.0f} s per level for quality and WER, {args.minutes:g} min for speed "
        f"and memory (one fresh process per provider, 1 thread, "
        f"{os.cpu_count()} CPUs). SI-SDR gains are dB over the mixture.",
        "",
        "Peak MB is the whole process (torch, faster-whisper and onnxruntime imported, and "
        "the long mixture generated in float64), so it bounds separation's own memory from "
        "above; with 30 s windows separation memory does not grow with the length.",
        "",
        "| provider | music level | vocals SI-SDR gain | instrumental SI-SDR gain |"
        " RTF | peak MB |",
        "|---|---|---|---|---|---|",
    ]
    for q in quality:
        c = costs[q["provider"]]
        lines.append(f"| {q['provider']} | {q['level']:+.0f} dB | {q['vocals']:.1f} | "
                     f"{q['instrumental']:.1f} | {c['rtf']:.3f} | {c['peak_mb']:.0f} |")
    lines += ["", f"tiny.en WER on {args.clip_s:.0f} s, without and with separation first:", "",
              "| music level | clean speech | mixture | spleeter vocals | deepfilternet vocals |",
              "|---|---|---|---|---|"]
    for w in wers:
        lines.append(f"| {w['level']:+.0f} dB | {w['clean']:.3f} | {w['mixture']:.3f} | "
                     f"{w['spleeter']:.3f} | {w['deepfilternet']:.3f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
