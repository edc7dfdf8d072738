"""Readable subtitles from speech: where events start and end against the spoken sentences.

Clips of separate English sentences (espeak-ng, several voices and seeds, 0.8–1.9 s pauses)
are transcribed by the ASR service's own transcription code (faster-whisper, its
defaults) and segmented by ``subtitle.write``'s rules. Printed per clip and in total:

- starts: the share of true sentence starts with an event starting within 0.5 s
  (bare faster-whisper's own segments alongside, as the reference);
- leaning ends: events ending on an article, preposition, conjunction …;
- rule breaks: lines too wide or too many, reading speed, duration, gap;
- WER of the subtitle text and of the transcript segments (the same decode: the
  subtitles must lose no word).

    python bench/subtitle_segmentation.py --seeds 3
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import wave
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actors.asr import ASRService, TranscribeParams  # noqa: E402
from yivideo.nodes import NodeContext  # noqa: E402
from yivideo.settings import Settings  # noqa: E402
from yivideo.subtitles import DEFAULT_RULES, segments_to_events  # noqa: E402
from yivideo.subtitles.language import leans_forward  # noqa: E402
from yivideo.subtitles.layout import text_width  # noqa: E402
from yivideo.testmedia import normalise_for_wer  # noqa: E402
from yivideo.types import Audio, SubtitleEvent, Transcript  # noqa: E402

RATE = 16000
VOICES = ("en-us", "en+f3", "en-us+m3", "en+klatt4")
#: Sentences unlike the test media's: short and long, with and without inner punctuation.
SENTENCES = [
    "The committee will announce its decision after the holidays.",
    "Please remember to switch off the lights when you leave the office.",
    "My grandmother grew tomatoes, beans and potatoes in her little garden.",
    "Nobody expected the match to end in a draw.",
    "If the train is late again tomorrow, we will take the bus instead.",
    "The museum opens at nine and closes at five on weekdays.",
    "She finished the report before lunch, although her computer crashed twice.",
    "Can you tell me where the nearest pharmacy is?",
    "The engineers tested the bridge for three weeks before they opened it to traffic.",
    "We should plant more trees along the river.",
    "He plays the violin in an orchestra that tours Europe every summer.",
    "What a wonderful surprise!",
    "The old lighthouse on the northern cliff was repaired by volunteers from the village.",
    "Our neighbours adopted a small dog from the animal shelter last month.",
    "The price of coffee has risen sharply because of the poor harvest in Brazil.",
    "I forgot my umbrella, so I got completely soaked on the way home.",
    "The children built a castle of sand and decorated it with shells.",
    "Scientists have discovered a new species of frog in the rainforest.",
    "Turn left at the bakery and walk straight on until you reach the square.",
    "The library will be closed for renovation until the end of March.",
    "My brother wants to study medicine at a university in Scotland.",
    "The storm knocked down several power lines during the night.",
    "They painted the kitchen yellow, which made the room look much brighter.",
    "Would you like tea or coffee with your breakfast?",
    "The pilot announced that we would land twenty minutes early.",
    "Fresh bread from the market tastes better than anything from the supermarket.",
    "When the concert ended, the audience stood up and applauded for five minutes.",
    "The farmer sold his apples at the market on Saturday morning.",
]


@dataclass
class Clip:
    samples: np.ndarray
    starts: list[float]
    text: str


def synthesize(text: str, voice: str) -> np.ndarray:
    """``text`` spoken by espeak-ng ``voice``, 16 kHz mono float32, silence trimmed."""
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(path), text],
                       check=True, capture_output=True)
        with wave.open(str(path), "rb") as wf:
            rate = wf.getframerate()
            raw = np.frombuffer(wf.readframes(wf.getnframes()), "<i2")
    x = raw.astype(np.float32) / 32768.0
    loud = np.flatnonzero(np.abs(x) > 0.005)
    x = x[loud[0] : loud[-1] + 1]
    g = np.gcd(RATE, rate)
    return resample_poly(x, RATE // g, rate // g).astype(np.float32)


def make_clip(seed: int, voice: str, count: int = 14) -> Clip:
    """``count`` sentences in random order with 0.8–1.9 s pauses, 1 s of silence around."""
    rng = random.Random(seed)
    chosen = rng.sample(SENTENCES, count)
    parts, starts, t = [np.zeros(RATE, np.float32)], [], 1.0
    for i, sentence in enumerate(chosen):
        speech = synthesize(sentence, voice)
        starts.append(t)
        parts.append(speech)
        t += len(speech) / RATE
        pause = rng.uniform(0.8, 1.9) if i + 1 < count else 1.0
        parts.append(np.zeros(int(pause * RATE), np.float32))
        t += int(pause * RATE) / RATE
    return Clip(np.concatenate(parts), starts, " ".join(chosen))


def hits(starts: list[float], event_starts: list[float], tol: float = 0.5) -> int:
    return sum(any(abs(s - e) <= tol for e in event_starts) for s in starts)


def speech_rate(event: SubtitleEvent, transcript: Transcript) -> float:
    """Characters per second of the words an event shows, over their own speech time."""
    words = [w for s in transcript.segments for w in s.words
             if event.start - 1e-6 <= w.start < event.end]
    span = max(words[-1].end - words[0].start, 1e-3)
    return len("".join(w.text for w in words).strip()) / span


def rule_breaks(events: list[SubtitleEvent], transcript: Transcript) -> Counter[str]:
    """Limits of the default rules that events break, by kind (1 ms tolerance on times);
    ``cps (speech)`` counts reading-speed breaks where the speech itself is that fast."""
    rules, bad = DEFAULT_RULES, Counter()
    for k, ev in enumerate(events):
        dur = ev.end - ev.start
        shown = sum(text_width(line, rules) for line in ev.lines)
        fast = shown > rules.max_cps * dur + 1e-3
        bad["cps (speech)"] += fast and speech_rate(ev, transcript) > rules.max_cps
        bad["width"] += any(text_width(x, rules) > rules.max_chars_per_line for x in ev.lines)
        bad["lines"] += len(ev.lines) > rules.max_lines
        bad["cps"] += fast
        bad["long"] += dur > rules.max_duration + 1e-3
        bad["short"] += dur < rules.min_duration - 1e-3
        if k + 1 < len(events):
            bad["gap"] += events[k + 1].start - ev.end < rules.min_gap - 1e-3
    return +bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2, help="clips per voice")
    ap.add_argument("--voices", type=int, default=len(VOICES))
    args = ap.parse_args()

    service = ASRService(Settings())
    params = TranscribeParams(cpu_threads=2)
    total = {"n": 0, "bare": 0, "ours": 0, "lean": 0, "events": 0}
    breaks_total: Counter[str] = Counter()
    refs, bare_hyps, our_hyps = [], [], []
    print(f"{'clip':<22}{'starts segs':>12}{'starts ours':>12}{'events':>8}{'leaning':>8}"
          f"{'breaks':>8}{'WER segs':>10}{'WER ours':>10}")
    for voice in VOICES[: args.voices]:
        for seed in range(args.seeds):
            clip = make_clip(seed, voice)
            out = service.transcribe(NodeContext(), params, Audio(clip.samples, RATE))
            transcript: Transcript = out["transcript"]
            events = segments_to_events(transcript)
            bare_starts = [s.start for s in transcript.segments]
            n = len(clip.starts)
            h_bare = hits(clip.starts, bare_starts)
            h_ours = hits(clip.starts, [e.start for e in events])
            lean = sum(leans_forward(" ".join(e.lines)) for e in events)
            breaks = rule_breaks(events, transcript)
            ref = normalise_for_wer(clip.text)
            bare_text = normalise_for_wer(" ".join(s.text for s in transcript.segments))
            our_text = normalise_for_wer(" ".join(" ".join(e.lines) for e in events))
            refs.append(ref)
            bare_hyps.append(bare_text)
            our_hyps.append(our_text)
            print(f"{voice + ' #' + str(seed):<22}{h_bare:>9}/{n}{h_ours:>9}/{n}"
                  f"{len(events):>8}{lean:>8}{breaks.total() - breaks['cps (speech)']:>8}"
                  f"{jiwer.wer(ref, bare_text):>10.3f}{jiwer.wer(ref, our_text):>10.3f}")
            for key, value in (("n", n), ("bare", h_bare), ("ours", h_ours), ("lean", lean),
                               ("events", len(events))):
                total[key] += value
            breaks_total += breaks
    print(f"\nsentence starts hit: ours {total['ours']}/{total['n']} "
          f"({total['ours'] / total['n']:.0%}), segments {total['bare']}/{total['n']}; "
          f"events {total['events']}, leaning ends {total['lean']}, rule breaks "
          f"{dict(breaks_total) or 0}; WER ours {jiwer.wer(refs, our_hyps):.3f}, "
          f"segments {jiwer.wer(refs, bare_hyps):.3f}")


if __name__ == "__main__":
    main()
