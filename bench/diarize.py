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
    python bench/diarize.py --counting all    # speaker counting on the fixed voice sets
    python bench/diarize.py --counting all --threads 1 --cache DIR   # reuse model outputs
    python bench/diarize.py --counting all --no-resegment   # pyannote's labels as they are

Speaker counting is tuned on the "tuning" voice sets only and reported on the "held-out"
sets, whose voices and sentences the tuning never saw (results:
bench/results/diarize_counting.md).
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

# Speaker-counting evaluation. Voices are "name[/pPITCH][/sSPEED]". Each pool holds voices
# whose CAM++ cosine similarity to each other (mean over four sentences) is at most about
# 0.5, against 0.63-0.92 for one voice over different sentences; several espeak-ng voices
# are indistinguishable to CAM++ and stay out: en+klatt2/klatt4/klatt6 (0.78-0.82 to each
# other), en-gb-scotland+m2 and en-us+m6/p20 (0.80), en-gb+<variant> (the variant is not
# applied: en-gb+m3, +Andy, +grandpa and +edward give one voice). The tuning and held-out
# pools share no voice, and the held-out dialogues use HELDOUT_SENTENCES only. Sets and
# seeds were fixed before any held-out dialogue was diarized.
TUNING_POOL = ("en-us+f3", "en+klatt4", "en-us+boris", "en+f1/p30", "en-029+m7",
               "en-us+steph/s190")  # fmt: skip
HELDOUT_POOL = ("en-us-nyc+croak", "en-gb-x-rp+f5", "en+m1/p70", "en-us+grandma", "en+Storm",
                "en+travis/s140", "en+whisper", "en+shelby", "en-gb-x-gbclan+m4",
                "en+linda")  # fmt: skip

#: Sentences of the held-out dialogues: none is in SENTENCES_EN, and they differ in length,
#: rhythm and kind (questions, numbers, names, exclamations, lists).
HELDOUT_SENTENCES = [
    "Wait, did anyone remember to lock the back door?",
    "Forty-two thousand, six hundred and nineteen euros, including tax.",
    "Absolutely not!",
    "According to the forecast, heavy snow will reach the northern valleys by Sunday.",
    "Doctor Patel moved her clinic from Baker Street to the old harbour warehouse.",
    "Quick, grab the ladder, the cat is stuck on the roof again.",
    "I would rather walk than wait another hour for that bus.",
    "Version three point one fixes the crash when saving large spreadsheets.",
    "Honestly? I thought the second half of the film was much better.",
    "Add two cups of flour, a pinch of salt, and stir slowly.",
    "The committee postponed its decision until the auditors finish their review.",
    "Yes.",
    "Why would a lighthouse keeper need seventeen clocks?",
    "Bright orange kayaks drifted past the sleepy fishing village.",
    "Call me back after lunch, unless the shipment arrives early.",
    "Nobody expected the quiet intern to win the chess tournament.",
    "Turn the volume down, the neighbours are complaining.",
    "Seven, eight, nine, ten: ready or not, here I come!",
    "Her grandfather repaired radios in a tiny shop near the station.",
    "Is it true that octopuses have three hearts?",
    "We missed the ferry by two minutes and had to sleep in the car.",
    "Please spell your surname slowly, one letter at a time.",
    "The violin sounded sharp, so she tuned it once more before the concert.",
    "Oh no, I left my passport on the kitchen table!",
]


@dataclass(frozen=True)
class VoiceSet:
    """Dialogues of ``voices`` speaking ``sentences``, one per seed."""

    name: str
    role: str  # "tuning" or "held-out"
    voices: tuple[str, ...]
    seeds: tuple[int, ...]
    turns: int = 14
    sentences: str = "tuning"  # "tuning": SENTENCES_EN, "held-out": HELDOUT_SENTENCES
    chunk_s: float | None = None  # diarization window; None: the default


T, H = TUNING_POOL, HELDOUT_POOL
VOICE_SETS: tuple[VoiceSet, ...] = (
    VoiceSet("tune-1", "tuning", (T[4],), (0, 1), turns=8),
    VoiceSet("tune-2a", "tuning", (T[0], T[1]), (0, 1)),
    VoiceSet("tune-2b", "tuning", (T[3], T[5]), (0, 1)),
    VoiceSet("tune-3", "tuning", (T[0], T[2], T[4]), (0, 1)),
    VoiceSet("tune-4", "tuning", T[1:5], (0, 1), turns=16),
    VoiceSet("tune-5", "tuning", T[:5], (0, 1), turns=18),
    VoiceSet("tune-6", "tuning", T, (0,), turns=20),
    VoiceSet("held-1", "held-out", (H[8],), (100, 101), turns=8, sentences="held-out"),
    VoiceSet("held-2a", "held-out", (H[0], H[1]), (100, 101), sentences="held-out"),
    VoiceSet("held-2b", "held-out", (H[6], H[7]), (100, 101), sentences="held-out"),
    VoiceSet("held-2c", "held-out", (H[2], H[9]), (100, 101), sentences="held-out"),
    VoiceSet("held-3a", "held-out", (H[2], H[3], H[5]), (100, 101), sentences="held-out"),
    VoiceSet("held-3b", "held-out", (H[7], H[8], H[4]), (100, 101), sentences="held-out"),
    VoiceSet(
        "held-4a", "held-out", (H[0], H[4], H[1], H[5]), (100, 101), turns=16, sentences="held-out"
    ),  # fmt: skip
    VoiceSet(
        "held-4b", "held-out", (H[6], H[7], H[8], H[9]), (100, 101), turns=16, sentences="held-out"
    ),  # fmt: skip
    VoiceSet("held-5", "held-out", H[:5], (100, 101), turns=18, sentences="held-out"),
    # Several minutes over 60 s windows: the chunked path links speakers across windows.
    VoiceSet(
        "held-long-4",
        "held-out",
        (H[1], H[3], H[5], H[9]),
        (200,),
        turns=72,
        sentences="held-out",
        chunk_s=60.0,
    ),
)


@dataclass
class Dialogue:
    samples: np.ndarray  # mono float32 at 16 kHz
    turns: list[Turn]  # the truth, speaker = voice name

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def synthesize(text: str, voice: str) -> np.ndarray:
    """``text`` spoken by ``voice`` ("en-us+f3"; "en+f1/p30/s190": pitch 30 of 0-99, 190 words
    a minute):
    float32 mono at 16 kHz, leading and trailing silence cut."""
    from scipy.signal import resample_poly

    name, *opts = voice.split("/")
    pitch = next((o[1:] for o in opts if o.startswith("p")), None)
    speed = next((o[1:] for o in opts if o.startswith("s")), "160")
    cmd = ["espeak-ng", "-v", name, "-s", speed, *(["-p", pitch] if pitch else [])]
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
        v = int(rng.choice([i for i in range(len(voices)) if i != last or len(voices) == 1]))
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


def _sentences(kind: str) -> list[str]:
    return SENTENCES_EN if kind == "tuning" else HELDOUT_SENTENCES


def cache_models(pipe: object, folder: Path) -> None:
    """Keep each pass's segmentation and embeddings in ``folder`` (by the pass's uri) and
    reuse them: clustering changes are then scored without running the models again."""
    import pickle

    folder.mkdir(parents=True, exist_ok=True)
    inner = pipe.pipeline  # type: ignore[attr-defined]

    def cached(name: str, compute: object) -> object:
        def run(file: dict, *args: object, **kwargs: object) -> object:
            path = folder / f"{file['uri']}.{name}.pkl"
            if path.exists():
                return pickle.loads(path.read_bytes())
            value = compute(file, *args, **kwargs)  # type: ignore[operator]
            path.write_bytes(pickle.dumps(value))
            return value

        return run

    inner.get_segmentations = cached("segmentation", inner.get_segmentations)
    inner.get_embeddings = cached("embeddings", inner.get_embeddings)
    # Short-window embeddings of the resegmentation, by the content of each batch.
    (folder / "windows").mkdir(exist_ok=True)
    embed = pipe.embed  # type: ignore[attr-defined]

    def embed_cached(waveforms: np.ndarray) -> np.ndarray:
        import hashlib

        path = folder / "windows" / f"{hashlib.sha1(waveforms.tobytes()).hexdigest()}.npy"
        if path.exists():
            return np.load(path)
        value = embed(waveforms)
        np.save(path, value)
        return value

    pipe.embed = embed_cached  # type: ignore[attr-defined]


class _Timer:
    """Seconds spent in the resegmentation (to report the real-time factor without it)."""

    def __init__(self) -> None:
        from yivideo.diarization import resegment

        self.seconds = 0.0
        self._inner = resegment.resegment
        resegment.resegment = self  # type: ignore[assignment]

    def __call__(self, *args: object, **kwargs: object) -> object:
        t0 = time.perf_counter()
        try:
            return self._inner(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            self.seconds += time.perf_counter() - t0


def _counting_row(pipe: object, vs: VoiceSet, seed: int, timer: _Timer | None = None) -> dict:
    """Diarize one dialogue of ``vs``: speakers found, DER, real-time factor (and without
    the resegmentation: ``rtf_no_reseg``, measured in the same call)."""
    from yivideo.diarization import DEFAULT_CHUNK_S, diarize

    dlg = make_dialogue(vs.voices, vs.turns, sentences=_sentences(vs.sentences), seed=seed)
    spent = timer.seconds if timer else 0.0
    t0 = time.perf_counter()
    hyp = diarize(
        pipe,  # type: ignore[arg-type]
        dlg.samples, SAMPLE_RATE, chunk_s=vs.chunk_s or DEFAULT_CHUNK_S, uri=f"{vs.name}-{seed}",
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    reseg_s = (timer.seconds - spent) if timer else 0.0
    return {
        "set": vs.name,
        "role": vs.role,
        "seed": seed,
        "speakers": len(vs.voices),
        "found": len({t.speaker for t in hyp}),
        "duration_s": round(dlg.duration, 1),
        "der_collar": round(der(dlg.turns, hyp), 4),
        "rtf": round(elapsed / dlg.duration, 3),
        "rtf_no_reseg": round((elapsed - reseg_s) / dlg.duration, 3),
    }


def counting_table(rows: list[dict]) -> str:
    """Markdown: per set, dialogues, speaker counts found, right counts and DER."""
    lines = [
        "| set | role | voices | dialogues | minutes | found | right count | mean DER | max DER |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["set"] for r in rows):
        group = [r for r in rows if r["set"] == name]
        ders = [r["der_collar"] for r in group]
        lines.append(
            f"| {name} | {group[0]['role']} | {group[0]['speakers']} | {len(group)} "
            f"| {sum(r['duration_s'] for r in group) / 60:.1f} "
            f"| {', '.join(str(r['found']) for r in group)} "
            f"| {sum(r['found'] == r['speakers'] for r in group)}/{len(group)} "
            f"| {np.mean(ders):.3f} | {max(ders):.3f} |"
        )
    for role in ("tuning", "held-out"):
        group = [r for r in rows if r["role"] == role]
        if group:
            lines.append(
                f"| **all {role}** | | | {len(group)} | "
                f"{sum(r['duration_s'] for r in group) / 60:.1f} | "
                f"| {sum(r['found'] == r['speakers'] for r in group)}/{len(group)} "
                f"| {np.mean([r['der_collar'] for r in group]):.3f} "
                f"| {max(r['der_collar'] for r in group):.3f} |"
            )
    return "\n".join(lines)


def counting(
    role: str,
    names: list[str] | None,
    max_seeds: int | None,
    cache: Path | None = None,
    threads: int = 2,
    resegment: bool = True,
) -> list[dict]:
    """Speaker counting and DER on the fixed voice sets of ``role`` ("all" for both)."""
    import torch

    from yivideo.diarization import build_pipeline

    torch.set_num_threads(min(threads, os.cpu_count() or 1))  # a shared machine: stay lean
    pipe = build_pipeline(device="cpu")
    pipe.resegment = resegment
    if cache is not None:
        cache_models(pipe, cache)
    timer = _Timer()
    rows = []
    for vs in VOICE_SETS:
        if (role != "all" and vs.role != role) or (names and vs.name not in names):
            continue
        for seed in vs.seeds[:max_seeds]:
            rows.append(_counting_row(pipe, vs, seed, timer))
            print(json.dumps(rows[-1]), flush=True)
    print(counting_table(rows), flush=True)
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
    parser.add_argument(
        "--counting", choices=["tuning", "held-out", "all"],
        help="only the speaker-counting evaluation on the fixed voice sets of this role",
    )  # fmt: skip
    parser.add_argument("--sets", nargs="*", help="only these voice sets (with --counting)")
    parser.add_argument("--max-seeds", type=int, help="at most this many dialogues per set")
    parser.add_argument(
        "--cache", type=Path,
        help="keep segmentation and embeddings here and reuse them (clustering experiments; "
        "the real-time factor is then meaningless)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=2,
        help="torch threads of the counting run (1 on a busy machine: waiting threads spin)",
    )  # fmt: skip
    parser.add_argument(
        "--no-resegment", action="store_true",
        help="counting run without the resegmentation (pyannote's labels as they are)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

    if args.counting:
        counting(args.counting, args.sets, args.max_seeds, args.cache, args.threads,
                 not args.no_resegment)  # fmt: skip
        return 0

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
