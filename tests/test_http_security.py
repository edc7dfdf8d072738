"""Operating safely: auth, tenants, limits, hostile paths/URLs/media, metrics, fuzzing.

A second, locked-down application (auth on, small limits, confined inputs) is served at
``/secure`` beside the default one; both share the same engine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import ray

from yivideo.security.auth import AuthSettings, issue_jwt, new_api_key
from yivideo.state import FINAL

from .conftest import METRICS_PORT, wait_until
from .test_security import ATTACK_PIPELINE

SECRET = "s" * 40
MALFORMED = ["zero", "truncated", "text", "playlist", "list", "wide", "long"]
# each malformed-media case polls as a tenant of its own, so no case spends another's rate limit
KEYS = {owner: new_api_key(owner) for owner in ("alice", "bob", "carol", "mallory", "erin",
                                                "frank", *MALFORMED)}
_root_key, _root = new_api_key("root")
KEYS["root"] = (_root_key, _root.model_copy(update={"admin": True}))  # the operator


@pytest.fixture(scope="module")
def roots(tmp_path_factory, sample):
    root = tmp_path_factory.mktemp("inputs")
    os.link(sample.video, root / "clip.mp4")
    (root / "escape.mp4").symlink_to("/etc/hosts")
    return root


@pytest.fixture(scope="module")
def secure(ray_cluster, roots):
    from ray import serve

    from serve_app import build_app, start

    auth = {"enabled": True, "jwt_secret": SECRET,
            "api_keys": [entry.model_dump() for _, entry in KEYS.values()]}
    overrides = {"auth": auth, "rate_limit": {"rate": "40/minute"}, "input_roots": [str(roots)],
                 "max_upload_mb": 1, "max_active_workflows": 2,
                 "max_input_duration_s": 60, "max_input_width": 4096, "max_input_height": 4096}
    start()  # Serve as `yivideo serve` starts it: HAProxy in front
    serve.run(build_app(overrides), name="secure", route_prefix="/secure")
    with httpx.Client(base_url="http://127.0.0.1:8000/secure", timeout=60) as client:
        yield client
    serve.delete("secure")


def key(owner: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[owner][0]}


def finished_state(client: httpx.Client, owner: str, wid: str) -> dict:
    """The workflow's state once it has ended, polled every 2 s: at most 31 requests in a
    minute, under the 40 a minute each credential is allowed here."""
    def ended() -> dict | None:
        state = client.get(f"/v1/workflows/{wid}", headers=key(owner)).json()["data"]
        return state if state["status"] in FINAL else None

    return wait_until(ended, 60, interval=2)


def jwt_for(sub: str, **changes) -> dict[str, str]:
    settings = AuthSettings(enabled=True, jwt_secret=SECRET, **changes.pop("settings", {}))
    token = issue_jwt(sub, settings, **changes)
    return {"Authorization": f"Bearer {token}"}


def test_health_is_open_everything_else_needs_a_credential(secure):
    assert secure.get("/health").status_code == 200
    resp = secure.get("/v1/nodes")
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert secure.get("/v1/nodes", headers=key("alice")).status_code == 200
    assert secure.get("/v1/nodes", headers=jwt_for("dave")).status_code == 200


@pytest.mark.parametrize("headers", [
    {"X-API-Key": "yv_not-a-real-key"},
    {"Authorization": "Bearer yv_forged"},
    {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    {"Authorization": "Bearer not.a.jwt"},
])
def test_wrong_credentials_are_401(secure, headers):
    assert secure.get("/v1/workflows", headers=headers).status_code == 401


def test_expired_and_foreign_tokens_are_401(secure):
    assert secure.get("/v1/workflows", headers=jwt_for("dave", ttl_s=-60)).status_code == 401
    wrong_aud = jwt_for("dave", settings={"jwt_audience": "someone-else"})
    assert secure.get("/v1/workflows", headers=wrong_aud).status_code == 401
    wrong_iss = jwt_for("dave", settings={"jwt_issuer": "evil"})
    assert secure.get("/v1/workflows", headers=wrong_iss).status_code == 401
    forged = AuthSettings(enabled=True, jwt_secret="x" * 40)
    token = issue_jwt("dave", forged)
    assert secure.get("/v1/workflows", headers={"Authorization": f"Bearer {token}"}
                      ).status_code == 401


def test_a_caller_sees_only_its_own_workflows(secure, roots):
    body = {"video_path": "clip.mp4", "workflow_config": {"audio_extraction": {}}}
    resp = secure.post("/v1/workflows", json=body, headers=key("alice"))
    assert resp.status_code == 202, resp.text
    wid = resp.json()["data"]["id"]
    assert finished_state(secure, "alice", wid)["status"] == "succeeded"
    for path in (f"/v1/workflows/{wid}", f"/v1/workflows/{wid}/artifacts/audio.wav",
                 f"/v1/workflows/{wid}/events"):
        assert secure.get(path, headers=key("bob")).status_code == 404
        assert secure.get(path, headers=key("alice")).status_code == 200
    assert secure.delete(f"/v1/workflows/{wid}", headers=key("bob")).status_code == 404
    assert secure.post(f"/v1/workflows/{wid}/retry", headers=key("bob")).status_code == 404
    bobs = secure.get("/v1/workflows", headers=key("bob")).json()["data"]["items"]
    assert wid not in [w["id"] for w in bobs]


def test_rate_limit_429_with_retry_after_not_fooled_by_forwarded_for(secure):
    codes, last = [], None
    for i in range(60):
        last = secure.get("/v1/nodes", headers={**key("carol"),
                                                 "X-Forwarded-For": f"10.0.0.{i}"})
        codes.append(last.status_code)
    assert 429 in codes and codes.index(429) >= 30
    assert int(last.headers["retry-after"]) >= 1
    assert last.json()["error"]["code"] == "rate_limited"
    assert secure.get("/v1/nodes", headers=key("alice")).status_code == 200  # per credential


def test_upload_limit_is_enforced_while_streaming(secure):
    def body():
        for _ in range(4):
            yield b"\0" * (512 * 1024)

    resp = secure.post("/v1/files", params={"filename": "big.mp4"}, content=body(),
                       headers=key("alice"))  # chunked: no Content-Length to trust
    assert resp.status_code == 413
    small = secure.post("/v1/files", params={"filename": "ok.bin"}, content=b"x" * 1000,
                        headers=key("alice"))
    assert small.status_code == 201 and small.json()["data"]["size"] == 1000


def test_concurrent_workflows_per_caller_are_limited(secure):
    nap = {"inputs": {}, "options": {"cache": False},
           "stages": {"nap": {"node": "diagnostics.sleep", "params": {"seconds": 20}}}}
    ids = [secure.post("/v1/workflows", json=nap, headers=key("bob")).json()["data"]["id"]
           for _ in range(2)]
    third = secure.post("/v1/workflows", json=nap, headers=key("bob"))
    assert third.status_code == 429 and "limit 2" in third.json()["error"]["message"]
    for wid in ids:
        secure.delete(f"/v1/workflows/{wid}", headers=key("bob"))


HOSTILE_PATHS = ["../../etc/passwd", "/etc/passwd", "%2e%2e/%2e%2e/etc/passwd",
                 "clip.mp4\x00.txt", "escape.mp4", "~/clip.mp4", "sub/../clip.mp4",
                 "a" * 5000, "", "/proc/self/environ", "file:///etc/passwd"]
HOSTILE_URLS = ["http://127.0.0.1:8000/health", "http://localhost:8265/", "http://[::1]/x",
                "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/v.mp4",
                "http://[::ffff:127.0.0.1]/v.mp4", "http://0x7f000001/v.mp4",
                "http://2130706433/v.mp4", "ftp://example.com/v.mp4"]


@pytest.mark.parametrize("value", HOSTILE_PATHS + HOSTILE_URLS)
def test_hostile_inputs_are_refused_with_the_field(secure, value):
    body = {"video_path": value, "workflow_config": {"audio_extraction": {}}}
    resp = secure.post("/v1/workflows", json=body, headers=key("mallory"))
    assert resp.status_code == 422, (value, resp.text)
    assert resp.json()["error"]["details"][0]["loc"] == "video_path"


def _media(root: Path, name: str, make) -> str:
    path = root / name
    make(path)
    return name


def _lavfi(path: Path, spec: str, *extra: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", spec, *extra,
                    str(path)], check=True)


@pytest.mark.parametrize("name, make, words", [
    ("zero.mp4", lambda p: p.write_bytes(b""), "empty"),
    ("truncated.mp4", None, ""),
    ("text.mp4", lambda p: p.write_text("just some text, not a video\n" * 20), ""),
    ("playlist.m3u8", lambda p: p.write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n/etc/passwd\n#EXT-X-ENDLIST\n"), ""),
    ("list.mp4", lambda p: p.write_text("ffconcat version 1.0\nfile '/etc/hosts'\n"), ""),
    ("wide.mp4", lambda p: _lavfi(p, "color=c=black:s=4200x16:d=1"), "width"),
    ("long.mp4", lambda p: _lavfi(p, "color=c=black:s=32x32:d=61", "-r", "1"), "duration"),
])
def test_malformed_media_is_refused(secure, roots, name, make, words):
    if make is None:
        data = Path(roots / "clip.mp4").read_bytes()
        (roots / name).write_bytes(data[: len(data) // 3])
    else:
        make(roots / name)
    owner = name.split(".")[0]
    body = {"video_path": name, "workflow_config": {"audio_extraction": {}}}
    resp = secure.post("/v1/workflows", json=body, headers=key(owner))
    # new content is probed after the POST (202): a refusal fails the first stage instead
    assert resp.status_code == 202, resp.text
    wid = resp.json()["data"]["id"]
    state = finished_state(secure, owner, wid)
    if name == "truncated.mp4":  # probes fine (a truncated MP4 keeps its index): must end
        assert state["status"] == "succeeded" or state["error"]["message"]
        return
    error = state["error"]
    assert state["status"] == "failed" and error["code"] == "media_error"
    assert error["message"].startswith("video_path: ") and words in error["message"]


def test_secrets_never_appear_in_state_or_errors(secure):
    resp = secure.get("/v1/workflows", headers={"X-API-Key": KEYS["mallory"][0] + "x"})
    assert KEYS["mallory"][0] not in resp.text and SECRET not in resp.text
    health = secure.get("/health").text
    assert SECRET not in health


def test_custom_metrics_reach_rays_prometheus_endpoint(secure):
    import yivideo

    yivideo.wait(yivideo.submit({"inputs": {}, "stages": {
        "n": {"node": "diagnostics.noop"}}}), timeout=60)

    def scraped():
        text = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10).text
        names = ("ray_yivideo_workflows_total", "ray_yivideo_stage_seconds",
                 "ray_yivideo_cache_lookups_total")
        return all(n in text for n in names) and text

    text = wait_until(scraped, 60, interval=2)
    assert 'status="succeeded"' in text


CHAT = "/v1/chat/completions"


def test_schemathesis_finds_no_server_errors(ray_cluster, tmp_path):
    """Fuzz the default application's OpenAPI schema; no request may cause a 5xx."""
    from ray import serve

    from serve_app import build_app, start

    start()
    serve.run(build_app(), name="fuzzed", route_prefix="/")
    wait_until(lambda: httpx.get("http://127.0.0.1:8000/health").status_code == 200, 60)
    started = time.monotonic()

    def fuzz(*options: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "run",
             "http://127.0.0.1:8000/openapi.json", "--checks", "not_a_server_error",
             "--workers", "1", "--seed", "1", *options],
            capture_output=True, text=True, timeout=400, cwd=tmp_path)

    # Every valid chat request is a real generation by the local model (seconds each), so
    # the chat route gets the schema's boundary cases with a timeout that fits one; the
    # other routes get random requests as well.
    runs = [fuzz("--exclude-path", CHAT, "--max-examples", "25",
                 "--phases", "examples,coverage,fuzzing", "--max-time", "30"),
            fuzz("--include-path", CHAT, "--phases", "examples,coverage",
                 "--request-timeout", "120")]
    serve.delete("fuzzed")
    for proc in runs:
        summary = proc.stdout[-3000:]
        print(summary, f"({time.monotonic() - started:.0f} s)")
        assert proc.returncode == 0, summary
    assert "1 selected" in runs[1].stdout  # the chat route was reached


# ---------------------------------------------------------------- model names, never paths


def _model_params() -> list[tuple[str, str]]:
    """Every model-selecting param of every node, from the catalogue itself."""
    from yivideo.nodes import all_nodes

    return [(spec.name, param) for spec in all_nodes() for param in spec.model_params]


MODEL_PARAMS = _model_params()
# each model param its own credential, so that its requests never spend another test's
# rate-limit budget however many model services there are
MODEL_OWNERS = {(n, p): f"models-{n}-{p}".replace(".", "-") for n, p in MODEL_PARAMS}
KEYS.update({owner: new_api_key(owner) for owner in MODEL_OWNERS.values()})


def _one_stage(node: str, **params) -> dict:
    from yivideo.nodes import get_node

    inputs = {key: "input.video" for key in get_node(node).inputs}
    return {"inputs": {"video": "clip.mp4"}, "options": {"cache": False},
            "stages": {"s": {"node": node, "params": params, "inputs": inputs}}}


def _upload(client, owner: str, name: str, data: bytes) -> str:
    resp = client.post("/v1/files", params={"filename": name}, content=data, headers=key(owner))
    assert resp.status_code == 201, resp.text
    return resp.json()["data"]["path"]


def _workflows(client, owner: str) -> int:
    return client.get("/v1/workflows", headers=key(owner)).json()["data"]["total"]


def test_the_pipeline_yaml_attack_is_refused_before_any_stage_runs(secure, tmp_path):
    marker = tmp_path / "pwned"
    path = _upload(secure, "erin", "config.yaml", ATTACK_PIPELINE.format(marker=marker).encode())
    before = _workflows(secure, "erin")
    flow = {"inputs": {"video": "clip.mp4"}, "stages": {
        "audio": {"node": "ffmpeg.extract_audio", "inputs": {"video": "input.video"}},
        "speakers": {"node": "diarize.speakers", "inputs": {"audio": "audio"},
                     "params": {"pipeline": path}}}}
    resp = secure.post("/v1/workflows", json=flow, headers=key("erin"))
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_config"
    assert error["details"][0]["loc"] == "stages.speakers.params.pipeline"
    assert _workflows(secure, "erin") == before  # no workflow, so no stage, ever ran
    assert not marker.exists()


@pytest.mark.parametrize("node, param", MODEL_PARAMS)
def test_every_model_param_refuses_an_uploaded_file(secure, node, param):
    owner = MODEL_OWNERS[(node, param)]
    path = _upload(secure, owner, "model.bin", b"\x80\x04not a model")
    for value in (path, str(Path(path).parent), f"../{Path(path).parent.name}/model.bin"):
        resp = secure.post("/v1/workflows", json=_one_stage(node, **{param: value}),
                           headers=key(owner))
        assert resp.status_code == 422, (value, resp.text)
        assert resp.json()["error"]["details"][0]["loc"] == f"stages.s.params.{param}"


@pytest.mark.parametrize("node, param", MODEL_PARAMS)
def test_an_unknown_model_name_is_a_422_listing_the_available_ones(secure, node, param):
    from yivideo.nodes import get_node
    from yivideo.settings import ModelSettings

    resp = secure.post("/v1/workflows", json=_one_stage(node, **{param: "no-such-model"}),
                       headers=key(MODEL_OWNERS[(node, param)]))
    assert resp.status_code == 422, resp.text
    detail = resp.json()["error"]["details"][0]
    available = get_node(node).model_params[param].available(ModelSettings())
    assert detail["loc"] == f"stages.s.params.{param}"
    assert detail["available"] == sorted(available)
    assert all(name in detail["msg"] for name in available)


# ---------------------------------------------------------------- what one tenant sees of another


def _waiting(client, owner: str) -> set[str]:
    data = client.get("/v1/gpu-locks/status", headers=key(owner)).json()["data"]
    return {w["workflow"] for w in data["waiting"]}


def test_tenants_see_only_their_own_waiting_stages_and_health_shows_no_ids(secure):
    from yivideo.runtime import get_service_actor

    # more parallel stages than the diagnostics actor runs at once: some wait in its queue
    naps = {f"frankstage{i}": {"node": "diagnostics.sleep", "params": {"seconds": 30}}
            for i in range(12)}
    resp = secure.post("/v1/workflows", json={"inputs": {}, "options": {"cache": False},
                                              "stages": naps}, headers=key("frank"))
    assert resp.status_code == 202, resp.text
    wid = resp.json()["data"]["id"]
    actor = get_service_actor("diagnostics")
    try:
        wait_until(lambda: wid in _waiting(secure, "frank"), 60, interval=1)
        assert wid not in _waiting(secure, "bob")
        assert wid in _waiting(secure, "root")  # the operator sees every queue
        # stop one running stage from inside, so the actor's own health names it
        def a_running_stage() -> str | None:
            state = secure.get(f"/v1/workflows/{wid}", headers=key("frank")).json()["data"]
            return next((n for n, st in state["stages"].items() if st["status"] == "running"),
                        None)

        running = wait_until(a_running_stage, 30, interval=1)
        actor.cancel.remote(wid, running)
        wait_until(lambda: [wid, running] in map(list, ray.get(actor.health.remote())[
            "stopped"]), 30)
    finally:
        secure.delete(f"/v1/workflows/{wid}", headers=key("frank"))
    health = secure.get("/health")
    assert health.status_code == 200
    assert wid not in health.text and "frankstage" not in health.text
    assert {"running", "stopped"}.isdisjoint(health.json()["data"]["services"]["diagnostics"])


def test_retrying_a_workflow_that_cannot_be_retried_is_a_409(secure):
    flow = {"inputs": {}, "stages": {"n": {"node": "diagnostics.noop"}}}
    wid = secure.post("/v1/workflows", json=flow, headers=key("erin")).json()["data"]["id"]
    assert finished_state(secure, "erin", wid)["status"] == "succeeded"
    resp = secure.post(f"/v1/workflows/{wid}/retry", headers=key("erin"))
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "conflict"


def test_openapi_declares_the_api_key_and_bearer_schemes_on_every_v1_operation(secure):
    spec = secure.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "apiKey", "in": "header",
                                 "name": "X-API-Key"}
    assert schemes["BearerJWT"]["scheme"] == "bearer"
    assert schemes["BearerJWT"]["bearerFormat"] == "JWT"
    operations = [(path, op) for path, ops in spec["paths"].items() if path.startswith("/v1")
                  for op in ops.values()]
    assert operations
    for path, op in operations:
        assert {"ApiKey", "BearerJWT"} == {k for s in op["security"] for k in s}, path
