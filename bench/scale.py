"""The front door under load: POST /v1/workflows from many clients at once.

For a one-stage no-op workflow and for a workflow with a video input (admission probes
it), prints and writes (``--out``) the POST latency p50/p99 and submissions per second:

* *alone*: one client, one request after another: the in-run baseline;
* *closed*: ``--clients`` clients, each sending its next request as soon as the last one
  is answered (the most the front door takes; latency is then about clients / rate);
* *paced*: the same clients offering ``--rate`` submissions/s in all, each on its own
  schedule; a latency counts from when the request was due, so a front door that falls
  behind shows it (no coordinated omission).

This machine is noisy (other work shares its cores), so the ratio to *alone* in the same
run is what compares between runs. The client is the standard library's ``http.client``
on one kept-alive connection per client: it costs far less CPU than a full HTTP client,
which would otherwise take a share of the same cores as the server.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import yivideo
from yivideo.testmedia import SENTENCES_EN, make_video

HOST, PORT = "127.0.0.1", 8000


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


def _stats(latencies: list[float], wall: float) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, submissions/s)."""
    p99 = statistics.quantiles(latencies, n=100)[98]
    return statistics.median(latencies) * 1000, p99 * 1000, len(latencies) / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--per-client", type=int, default=10)
    ap.add_argument("--rate", type=float, default=100.0, help="paced: submissions/s offered")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scale.md")
    ap.add_argument("--title", default="Front door under load")
    args = ap.parse_args()
    yivideo.connect()
    from ray import serve

    from serve_app import build_app

    tmp = Path(tempfile.mkdtemp())
    video = str(make_video(tmp / "clip.mp4", sentences=SENTENCES_EN[:1]).video)
    serve.start(http_options={"host": HOST, "port": PORT})
    # a fresh storage folder: the controller starts with no earlier workflows to recover
    serve.run(build_app({"rate_limit": {"enabled": False}, "storage_dir": str(tmp / "store")}),
              name="yivideo", route_prefix="/")
    bodies = {
        "no-op stage": {"stages": {"n": {"node": "diagnostics.noop"}},
                        "options": {"cache": False}},
        "probe stage (video)": {"inputs": {"video": video}, "options": {"cache": False},
                                "stages": {"p": {"node": "ffmpeg.probe",
                                                 "inputs": {"video": "input.video"}}}},
    }
    n = args.per_client
    lines = [f"## {args.title}", "",
             f"{args.clients} clients x {n} POSTs each; paced: {args.rate:g}/s offered in all; "
             f"ratio: p50 over the p50 of one client alone", "",
             "| workflow | load | p50 ms | p99 ms | submissions/s | p50 / alone |",
             "|---|---|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for name, body in bodies.items():
        _posts(body, 1, 5)  # warm: the controller, the service actor, the connection
        runs = {"alone": _posts(body, 1, 2 * n),
                "closed": _posts(body, args.clients, n),
                "paced": _posts(body, args.clients, n, args.rate)}
        alone_p50 = _stats(*runs["alone"])[0]
        for load, (latencies, wall) in runs.items():
            p50, p99, rate = _stats(latencies, wall)
            line = (f"| {name} | {load} | {p50:.1f} | {p99:.1f} | {rate:.1f} | "
                    f"{p50 / alone_p50:.1f} |")
            lines.append(line)
            print(line, flush=True)
    serve.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
