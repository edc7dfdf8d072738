"""Speech to subtitles: YiVideo end to end against the bare library path, same run.

(a) bare: ffmpeg decode + faster-whisper (same model and params) in this process;
(b) `yivideo run subtitles` through the engine, warm (model already loaded), twice:
the second request shows the actor reuses its model (load count stays 1).
Prints wall times, the ratio b/a, WER of both against the ground truth, peak memory.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import jiwer
import ray

import yivideo
from actors.asr import TranscribeParams
from yivideo import media
from yivideo.runtime import get_service_actor
from yivideo.settings import get_settings
from yivideo.testmedia import SENTENCES_EN, make_video, normalise_for_wer
from yivideo.whisper_models import resolve_model


def bare(video: str, params: TranscribeParams, threads: int = 0) -> tuple[float, str]:
    from faster_whisper import WhisperModel

    model = WhisperModel(resolve_model(params.model, get_settings().models),
                         device="cpu", compute_type="int8", cpu_threads=threads)
    t0 = time.perf_counter()
    audio = media.decode_audio(video)
    segments, _ = model.transcribe(
        audio.samples, beam_size=params.beam_size, vad_filter=params.vad_filter,
        word_timestamps=params.word_timestamps, temperature=params.temperature,
        condition_on_previous_text=params.condition_on_previous_text,
        hallucination_silence_threshold=params.hallucination_silence_threshold,
    )
    text = " ".join(s.text for s in segments)
    return time.perf_counter() - t0, text


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=5.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    truth = make_video(tmp / "speech.mp4", sentences=SENTENCES_EN,
                       duration_min=args.minutes * 60, width=640, height=360)
    print(f"generated {truth.duration:.0f} s of speech video in {time.perf_counter() - t0:.0f} s")
    reference = normalise_for_wer(" ".join(c.text for c in truth.speech))
    params = TranscribeParams()

    # a 1-CPU Ray actor runs with OMP_NUM_THREADS=1, so time the bare path both ways
    bare_default_s, _ = bare(truth.video, params)
    bare_s, bare_text = bare(truth.video, params, threads=1)
    bare_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    yivideo.connect()
    warm = make_video(tmp / "warm.mp4", sentences=SENTENCES_EN[:1], burn_subtitles=False)
    yivideo.run("subtitles", video=warm.video)  # loads the model into the actor
    uncached = {**yivideo.build_request("subtitles", truth.video), "options": {"cache": False}}
    runs = []
    for i in range(2):
        t = time.perf_counter()
        result = yivideo.run(uncached, out=tmp / f"out{i}")
        runs.append(time.perf_counter() - t)
        assert result.status == "succeeded", result.state["error"]
    yivideo.run("subtitles", video=truth.video)  # fills the result cache
    t = time.perf_counter()
    yivideo.run("subtitles", video=truth.video)
    cached = time.perf_counter() - t
    srt = (tmp / "out1" / "subtitles.srt").read_text()
    ours = normalise_for_wer(" ".join(ln for ln in srt.splitlines()
                              if ln and not ln[0].isdigit()))
    health = ray.get(get_service_actor("asr").health.remote())
    loads = len(health["models"])

    print(f"audio: {truth.duration:.1f} s, model {params.model}, beam {params.beam_size}")
    bare_wer = jiwer.wer(reference, normalise_for_wer(bare_text))
    print(f"(a) bare, default threads    {bare_default_s:7.2f} s")
    print(f"(a) bare, cpu_threads=1      {bare_s:7.2f} s  "
          f"({truth.duration / bare_s:5.1f}x real time)  WER {bare_wer:.3f}")
    print(f"(b) yivideo run, warm #1     {runs[0]:7.2f} s  ratio b/a {runs[0] / bare_s:5.2f}")
    print(f"(b) yivideo run, warm #2     {runs[1]:7.2f} s  ratio b/a {runs[1] / bare_s:5.2f}  "
          f"WER {jiwer.wer(reference, ours):.3f} (from the SRT)")
    print(f"(c) same request, result cache on: {cached:.2f} s")
    print(f"models loaded in the ASR actor: {loads} (load {health['models'][0]['load_s']} s, "
          f"once, before the timed runs)")
    print(f"peak RSS: bare process {bare_rss:.0f} MB; ASR actor {vm_hwm_mb(health['pid']):.0f} MB")


if __name__ == "__main__":
    main()
