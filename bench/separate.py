"""Voice separation: quality, speed and memory per provider, and whether it helps ASR.

Synthetic speech (espeak-ng) over a synthetic music bed (yivideo.testmusic), and in pink
noise (yivideo.separation_noise), at -6, 0 and +6 dB relative to the speech, 16 kHz:

- SI-SDR improvement over the mixture of the vocals (against the speech stem) and of the
  instrumental (against the music or noise stem), on ``--clip-s`` seconds per level; the
  UVR denoiser (audio_separator) only on noise, which is what it removes;
- real-time factor and memory separating ``--minutes`` of music over speech, one fresh
  subprocess per provider: the baseline is the process's RSS just before separating
  (model loaded, mixture made), the peak is its high-water mark during separation
  (reset through /proc/self/clear_refs), printed as delta and ratio;
- tiny.en word error rate (ASRService.transcribe, no Ray) on the mixture and on the
  music separators' vocals, with the clean speech as the floor.

Writes a markdown report to bench/results/separate.md (or ``--out``).
Run: OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/separate.py
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jiwer
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.asr import ASRService, TranscribeParams  # noqa: E402
from actors.separate import (  # noqa: E402
    AudioSeparatorParams,
    DeepFilterParams,
    SeparationService,
    SpleeterParams,
)
from yivideo.nodes import NodeContext  # noqa: E402
from yivideo.separation_noise import noise_at  # noqa: E402
from yivideo.settings import Settings  # noqa: E402
from yivideo.testmedia import SENTENCES_EN, normalise_for_wer, speech_track  # noqa: E402
from yivideo.testmusic import mix_at, si_sdr  # noqa: E402
from yivideo.types import Audio  # noqa: E402

RATE = 16000
LEVELS = (-6.0, 0.0, 6.0)
PROVIDERS = {"spleeter": SpleeterParams, "deepfilternet": DeepFilterParams,
             "audio_separator": AudioSeparatorParams}
MUSIC_PROVIDERS = ("spleeter", "deepfilternet")  # UVR-DeNoise-Lite is a denoiser only


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


def _status_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, MB."""
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def cost_case(provider: str, minutes: float) -> dict[str, float]:
    """In this (fresh) process: separate ``minutes`` of music over speech; RTF and memory."""
    clip, _ = speech_of(120.0)
    speech = np.tile(clip, int(np.ceil(minutes * 60 / 120.0)))[: int(minutes * 60 * RATE)]
    mix = mix_at(speech, RATE, 0.0)
    del clip, speech
    service = SeparationService(None)
    separate(service, provider, mix.mixture[: RATE * 5])  # load the model first
    gc.collect()
    baseline = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak from here on is separation's own
    t0 = time.perf_counter()
    out = separate(service, provider, mix.mixture)
    elapsed = time.perf_counter() - t0
    peak = _status_mb("VmHWM")
    return {"rtf": elapsed / (minutes * 60), "baseline_mb": baseline, "peak_mb": peak,
            "delta_mb": peak - baseline, "ratio": peak / baseline,
            "vocals_gain_db": si_sdr(out["vocals"].samples, mix.speech)
            - si_sdr(mix.mixture, mix.speech)}


def gains(out: dict[str, Audio], mix) -> dict[str, float]:
    """SI-SDR gains of both stems over the mixture, dB."""
    return {"vocals": si_sdr(out["vocals"].samples, mix.speech)
            - si_sdr(mix.mixture, mix.speech),
            "instrumental": si_sdr(out["instrumental"].samples, mix.music)
            - si_sdr(mix.mixture, mix.music)}


def wer(reference: str, audio: np.ndarray, asr: ASRService) -> float:
    out = asr.transcribe(NodeContext(), TranscribeParams(model="tiny.en"), Audio(audio, RATE))
    hyp = " ".join(s.text for s in out["transcript"].segments)
    return jiwer.wer(normalise_for_wer(reference), normalise_for_wer(hyp))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="audio for RTF and memory")
    ap.add_argument("--clip-s", type=float, default=60.0, help="audio per level for quality")
    ap.add_argument("--jobs", type=int, default=1,
                    help="cost cases run at once (more is faster but shares the CPUs)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "separate.md"))
    ap.add_argument("--cost-case", help=argparse.SUPPRESS)  # internal: one subprocess case
    args = ap.parse_args()
    if args.cost_case:
        print(json.dumps(cost_case(args.cost_case, args.minutes)))
        return

    def run_case(provider: str) -> dict[str, float]:
        proc = subprocess.run(
            [sys.executable, __file__, "--cost-case", provider, "--minutes", str(args.minutes)],
            capture_output=True, text=True, check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{provider}: {result}", flush=True)
        return result

    # the long cases run in their own processes meanwhile, ``--jobs`` at a time
    pool = ThreadPoolExecutor(max_workers=args.jobs)
    pending = {provider: pool.submit(run_case, provider) for provider in PROVIDERS}

    service, asr = SeparationService(None), ASRService(Settings())
    speech, text = speech_of(args.clip_s)
    quality, wers = [], []
    for level in LEVELS:
        mix = mix_at(speech, RATE, level, seed=3)
        noisy = noise_at(speech, RATE, level, seed=3)
        row_w = {"level": level, "clean": wer(text, mix.speech, asr),
                 "mixture": wer(text, mix.mixture, asr)}
        for provider in PROVIDERS:
            row = {"provider": provider, "level": level}
            if provider in MUSIC_PROVIDERS:
                out = separate(service, provider, mix.mixture)
                row["music"] = gains(out, mix)
                row_w[provider] = wer(text, out["vocals"].samples, asr)
            row["noise"] = gains(separate(service, provider, noisy.mixture), noisy)
            quality.append(row)
        wers.append(row_w)
        print(f"level {level:+.0f} dB done", flush=True)

    costs = {provider: job.result() for provider, job in pending.items()}
    pool.shutdown()

    lines = [
        "# Voice separation bench",
        "",
        f"`bench/separate.py`: espeak-ng speech over the synthetic music bed or in pink "
        f"noise, 16 kHz, {args.clip_s:.0f} s per level for quality and WER. SI-SDR gains are "
        f"dB over the mixture; the level is the music's (noise's) relative to the speech. "
        f"audio_separator is the bundled UVR-DeNoise-Lite, a denoiser, so it is measured "
        f"on noise only.",
        "",
        "| provider | level | vocals gain, music | instrumental gain, music | "
        "vocals gain, noise | noise-stem gain, noise |",
        "|---|---|---|---|---|---|",
    ]
    for q in quality:
        music = q.get("music")
        m = f"{music['vocals']:.1f} | {music['instrumental']:.1f}" if music else "— | —"
        lines.append(f"| {q['provider']} | {q['level']:+.0f} dB | {m} | "
                     f"{q['noise']['vocals']:.1f} | {q['noise']['instrumental']:.1f} |")
    lines += [
        "",
        f"Speed and memory: {args.minutes:g} min of music over speech (0 dB), 30 s windows, "
        f"one fresh process per provider, 1 thread each, {args.jobs} at once on "
        f"{os.cpu_count()} shared CPUs (RTF is wall time over audio time, so it rises when "
        f"cases share the CPUs). Baseline: the process's RSS before separating (model "
        f"loaded, mixture made); peak: its high-water mark while separating.",
        "",
        "| provider | RTF | baseline MB | peak MB | delta MB | peak/baseline | "
        "vocals gain (long run) |",
        "|---|---|---|---|---|---|---|",
    ]
    for provider, c in costs.items():
        lines.append(f"| {provider} | {c['rtf']:.3f} | {c['baseline_mb']:.0f} | "
                     f"{c['peak_mb']:.0f} | {c['delta_mb']:.0f} | {c['ratio']:.2f} | "
                     f"{c['vocals_gain_db']:.1f} |")
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
