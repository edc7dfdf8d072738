"""ASR decoding defaults by measurement: each option set against bare faster-whisper.

Clips: English sentences spoken by espeak-ng (``yivideo.testmedia``) at known times with
0.8-1.9 s pauses, several voices and seeds, ~60 s each; ``noisy`` clips lay the same kind
of speech over generated music (chords) and noise. Every option set but the bare one runs
through ``ASRService.transcribe`` itself (no Ray), on the one loaded model, so the params,
the kwargs and the segment clean-up are exactly the service's.

Per option set and clip kind it prints pooled WER (``bench/asr.py``'s normalisation),
sentence-start accuracy (true starts with a segment start within 0.5 s) and time, with
ratios against the bare call measured on the same clips in the same run.

    .venv/bin/python bench/asr_defaults.py --voices 4 --seeds 2 --noisy 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jiwer
import numpy as np

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from actors.asr import ASRService, TranscribeParams, resample_linear  # noqa: E402
from yivideo.nodes import NodeContext  # noqa: E402
from yivideo.settings import Settings  # noqa: E402
from yivideo.testmedia import SENTENCES_EN, Cue, _synthesize, normalise_for_wer  # noqa: E402

SR = 16000
VOICES = ["en-us", "en+f3", "en-us+m3", "en+klatt4", "en-gb-x-rp", "en+f5"]
PAUSE_S = (0.8, 1.9)  # like the user clip that showed the gap
LONG_PAUSE_S = (3.0, 8.0)  # long enough for VAD (2 s) and the hallucination skip to act
LEAD_IN_S = 1.0
START_TOLERANCE_S = 0.5
#: faster-whisper 1.2.1's own ``WhisperModel.transcribe`` defaults where YiVideo's differ.
FW_DEFAULTS: dict[str, Any] = dict(
    vad_filter=False,
    word_timestamps=False,
    condition_on_previous_text=True,
    hallucination_silence_threshold=None,
)
#: YiVideo's defaults before this measurement.
OLD_DEFAULTS: dict[str, Any] = dict(
    vad_filter=True,
    word_timestamps=True,
    condition_on_previous_text=False,
    hallucination_silence_threshold=2.0,
)
BARE = "bare faster-whisper"
#: Direct ``WhisperModel.transcribe`` calls given only the beam; the key sets the model's
#: compute type (the service's int8 on CPU, or float32: what ``WhisperModel(path)`` picks
#: on CPU for these float16 weights).
BARE_SETS: dict[str, dict[str, Any]] = {
    BARE: {},
    "bare, compute_type=float32": {"compute_type": "float32"},
}


@dataclass
class Clip:
    """Mono 16 kHz speech with the true sentence cues."""

    name: str
    kind: str  # "clean", "noisy" or "gappy"
    samples: np.ndarray
    cues: list[Cue]

    @property
    def text(self) -> str:
        """The spoken words, in order."""
        return " ".join(c.text for c in self.cues)


@dataclass
class Result:
    """One option set on one clip."""

    text: str
    starts: list[float]
    seconds: float


@dataclass
class Tally:
    """Pooled results of one option set over the clips of one kind."""

    refs: list[str] = field(default_factory=list)
    hyps: list[str] = field(default_factory=list)
    hits: int = 0
    starts: int = 0
    seconds: float = 0.0


def option_sets() -> dict[str, dict[str, Any]]:
    """Named TranscribeParams overrides; names in ``BARE_SETS`` are direct model calls."""
    sets: dict[str, dict[str, Any]] = {
        **BARE_SETS,
        "fw defaults via service": dict(FW_DEFAULTS),
        "yivideo old": dict(OLD_DEFAULTS),
    }
    for key, value in FW_DEFAULTS.items():
        sets[f"old, {key}={value}"] = {**OLD_DEFAULTS, key: value}
    for key, value in OLD_DEFAULTS.items():
        if key != "hallucination_silence_threshold":  # only acts with word timestamps
            sets[f"fw, {key}={value}"] = {**FW_DEFAULTS, key: value}
    sets["fw, word_ts + hst=2.0"] = {
        **FW_DEFAULTS, "word_timestamps": True, "hallucination_silence_threshold": 2.0
    }  # fmt: skip
    sets["yivideo now"] = {}
    sets["yivideo now, compute_type=float32"] = {"compute_type": "float32"}
    return sets


def _speech(text: str, voice: str, tmp: Path) -> np.ndarray:
    """``text`` spoken by ``voice``, trimmed, as float32 at 16 kHz."""
    samples, rate = _synthesize(text, voice, tmp / "s.wav")
    return resample_linear(samples.astype(np.float32) / 32768, rate, SR)


def _background(n: int, rng: np.random.Generator) -> np.ndarray:
    """Chords that change every 2 s plus low-passed noise, unit RMS."""
    t = np.arange(n) / SR
    music = np.zeros(n, np.float32)
    step = 2 * SR
    for start in range(0, n, step):
        root = 110 * 2 ** (rng.integers(0, 12) / 12)
        seg = t[start : start + step]
        for ratio in (1.0, 1.25, 1.5, 2.0):
            music[start : start + step] += np.sin(2 * np.pi * root * ratio * seg)
    noise = np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same")
    mix = music / np.sqrt(np.mean(music**2)) + 0.7 * noise / np.sqrt(np.mean(noise**2))
    return (mix / np.sqrt(np.mean(mix**2))).astype(np.float32)


def make_clip(
    seed: int,
    voice: str,
    seconds: float,
    tmp: Path,
    snr_db: float | None = None,
    pauses: tuple[float, float] = PAUSE_S,
    kind: str = "clean",
) -> Clip:
    """Shuffled sentences with random pauses; ``snr_db`` adds background at that SNR."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(SENTENCES_EN))
    parts, cues, cursor = [np.zeros(int(LEAD_IN_S * SR), np.float32)], [], int(LEAD_IN_S * SR)
    for i in order:
        speech = _speech(SENTENCES_EN[i], voice, tmp)
        if cues and (cursor + len(speech)) / SR + LEAD_IN_S > seconds:
            break
        cues.append(Cue(cursor / SR, (cursor + len(speech)) / SR, SENTENCES_EN[i]))
        pause = np.zeros(int(rng.uniform(*pauses) * SR), np.float32)
        parts += [speech, pause]
        cursor += len(speech) + len(pause)
    samples = np.concatenate(parts)
    if snr_db is not None:
        speech_rms = np.sqrt(np.mean(np.concatenate(parts[1::2]) ** 2))
        samples = samples + _background(len(samples), rng) * speech_rms / 10 ** (snr_db / 20)
    name = f"{kind} {voice} seed {seed}"
    return Clip(name, kind, samples.astype(np.float32), cues)


def make_clips(args: argparse.Namespace, tmp: Path) -> list[Clip]:
    """``seeds`` x ``voices`` clean clips, then ``noisy`` and ``gappy`` clips (voices in
    turn); gappy clips have long pauses over quiet noise (SNR 25 dB)."""
    voices = VOICES[: args.voices]
    clips = [
        make_clip(seed, voice, args.seconds, tmp)
        for seed in range(args.first_seed, args.first_seed + args.seeds)
        for voice in voices
    ]
    seed = 100 + 10 * args.first_seed
    for k in range(args.noisy):
        voice = voices[k % len(voices)]
        clips.append(make_clip(seed + k, voice, args.seconds, tmp, args.snr, kind="noisy"))
    for k in range(args.gappy):
        voice = voices[(k + 1) % len(voices)]
        clips.append(
            make_clip(seed + 50 + k, voice, args.seconds, tmp, 25.0, LONG_PAUSE_S, "gappy")
        )
    return clips


def run_bare(service: ASRService, clip: Clip, params: TranscribeParams) -> Result:
    """faster-whisper's own defaults: only the model and the beam are given."""
    model = service._load(params)  # the very model object the service uses
    t0 = time.perf_counter()
    segments, _ = model.transcribe(clip.samples, beam_size=params.beam_size)
    segments = list(segments)
    seconds = time.perf_counter() - t0
    return Result(" ".join(s.text for s in segments), [s.start for s in segments], seconds)


def run_service(service: ASRService, clip: Clip, params: TranscribeParams) -> Result:
    """``asr.transcribe`` as the engine calls it, minus Ray."""
    from yivideo.types import Audio

    t0 = time.perf_counter()
    transcript = service.transcribe(NodeContext(), params, Audio(clip.samples, SR))["transcript"]
    seconds = time.perf_counter() - t0
    segments = transcript.segments
    return Result(" ".join(s.text for s in segments), [s.start for s in segments], seconds)


def start_hits(cues: list[Cue], starts: list[float]) -> int:
    """How many true sentence starts have a segment start within the tolerance."""
    return sum(any(abs(c.start - s) <= START_TOLERANCE_S for s in starts) for c in cues)


def measure(
    clips: list[Clip], sets: dict[str, dict[str, Any]], base: dict[str, Any]
) -> dict[tuple[str, str], Tally]:
    """Run every option set on every clip; tallies keyed by (set, clip kind)."""
    service = ASRService(Settings())
    for overrides in sets.values():  # load every model outside the timed runs
        service._load(TranscribeParams(**{**base, **overrides}))
    tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
    for clip in clips:
        for name, overrides in sets.items():
            params = TranscribeParams(**{**base, **overrides})
            run = run_bare if name in BARE_SETS else run_service
            result = run(service, clip, params)
            for kind in (clip.kind, "all"):
                tally = tallies[name, kind]
                tally.refs.append(normalise_for_wer(clip.text))
                tally.hyps.append(normalise_for_wer(result.text) or "<empty>")
                tally.hits += start_hits(clip.cues, result.starts)
                tally.starts += len(clip.cues)
                tally.seconds += result.seconds
            heard = normalise_for_wer(result.text) or "<empty>"
            wer = jiwer.wer(normalise_for_wer(clip.text), heard)
            print(f"  {clip.name:28} {name:40} WER {wer:.3f}  {result.seconds:5.1f} s",
                  flush=True)  # fmt: skip
    return tallies


def report(tallies: dict[tuple[str, str], Tally], sets: list[str], kinds: list[str]) -> str:
    """A Markdown table per clip kind, with ratios against the bare call."""
    lines: list[str] = []
    for kind in kinds:
        bare = tallies[BARE, kind]
        bare_wer = jiwer.wer(bare.refs, bare.hyps)
        lines += [
            f"\n{kind} ({len(bare.refs)} clips, {bare.starts} sentences)\n",
            "| option set | WER | WER - bare | start acc. | time s | time / bare |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name in sets:
            t = tallies[name, kind]
            wer = jiwer.wer(t.refs, t.hyps)
            lines.append(
                f"| {name} | {wer:.3f} | {wer - bare_wer:+.3f} | {t.hits / t.starts:.2f} "
                f"| {t.seconds:.1f} | {t.seconds / bare.seconds:.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Generate the clips, measure, print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--voices", type=int, default=3, help=f"first N of {VOICES}")
    ap.add_argument("--seeds", type=int, default=1, help="clean clips per voice")
    ap.add_argument("--first-seed", type=int, default=0, help="another draw of clips")
    ap.add_argument("--noisy", type=int, default=1, help="clips with music and noise under")
    ap.add_argument("--gappy", type=int, default=1, help="clips with 3-8 s pauses")
    ap.add_argument("--snr", type=float, default=10.0, help="speech to background, dB")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each clip")
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="CTranslate2 CPU threads")
    ap.add_argument("--only", nargs="*", help="option-set names to run (bare always runs)")
    args = ap.parse_args(argv)

    sets = option_sets()
    if args.only:
        sets = {k: v for k, v in sets.items() if k == BARE or k in args.only}
    base = dict(model=args.model, beam_size=args.beam, cpu_threads=args.threads, device="cpu")
    with tempfile.TemporaryDirectory(prefix="asr-defaults-") as tmp:
        t0 = time.perf_counter()
        clips = make_clips(args, Path(tmp))
        print(f"{len(clips)} clips, {sum(len(c.samples) for c in clips) / SR:.0f} s of audio, "
              f"made in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    defaults = TranscribeParams()
    print("yivideo now: " + ", ".join(f"{k}={getattr(defaults, k)}" for k in OLD_DEFAULTS))
    tallies = measure(clips, sets, base)
    kinds = [k for k in ("clean", "noisy", "gappy") if any(c.kind == k for c in clips)] + ["all"]
    print(f"\nmodel {args.model}, beam {args.beam}, cpu_threads {args.threads}")
    print(report(tallies, list(sets), kinds))


if __name__ == "__main__":
    main()
