"""The web page at ``/`` and what it relies on: static files, the API paths its script
calls, Range requests on artifacts, and the upload -> recipe -> VTT path it takes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.test_http import finished

WEB = Path(__file__).resolve().parents[1] / "yivideo" / "web"
PREFIX = "/ui"  # under a route prefix, so the page's relative URLs are exercised


@pytest.fixture(scope="module")
def web(ray_cluster):
    from ray import serve

    from serve_app import build_app

    serve.start(http_options={"host": "127.0.0.1", "port": 8000})
    serve.run(build_app(), name="web", route_prefix=PREFIX)
    with httpx.Client(base_url=f"http://127.0.0.1:8000{PREFIX}", timeout=60) as client:
        yield client
    serve.delete("web")


@pytest.fixture(scope="module")
def srt_flow(web, tmp_path_factory):
    """A finished workflow whose artifacts include subtitles.vtt (no model needed)."""
    srt = tmp_path_factory.mktemp("web") / "in.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:02,000\nHello from the page\n\n")
    body = {"inputs": {"subs": str(srt)}, "stages": {
        "read": {"node": "subtitle.read", "inputs": {"subtitles": "input.subs"}},
        "write": {"node": "subtitle.write", "params": {"formats": ["vtt", "srt", "json"]},
                  "inputs": {"transcript": "read.transcript"}}}}
    wid = web.post("/v1/workflows", json=body).json()["data"]["id"]
    assert finished(web, wid)["status"] == "succeeded"
    return wid


def test_page_and_assets_are_served_with_their_types(web):
    page = web.get("/", follow_redirects=False)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'src="static/app.js"' in page.text and 'href="static/app.css"' in page.text
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        resp = web.get(f"/static/{name}")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith(kind)
        assert resp.content == (WEB / name).read_bytes()
    assert web.get("/static/nope.js").status_code == 404
    assert web.get("/static/..%2Fserve_app.py").status_code == 404


def test_page_without_trailing_slash_redirects_so_relative_urls_resolve(web):
    resp = httpx.get(f"http://127.0.0.1:8000{PREFIX}", follow_redirects=False)
    assert resp.status_code in (307, 308) and resp.headers["location"].endswith(f"{PREFIX}/")


def test_no_external_urls_in_the_page():
    for path in WEB.iterdir():
        text = path.read_text()
        found = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I)
        assert not found, f"{path.name} names {found}"
        assert "cdn" not in text.lower()


def _api_paths(js: str) -> set[str]:
    """Every ``/v1/...`` literal in the script, with ``${...}`` as one path segment."""
    paths = set()
    for raw in re.findall(r"[`'\"](/v1/[^`'\"?]*)", js):
        paths.add(re.sub(r"\$\{[^}]*\}", "{x}", raw))
    return paths


def test_every_api_path_the_script_calls_exists(web):
    js = (WEB / "app.js").read_text()
    called = _api_paths(js)
    assert {"/v1/info", "/v1/nodes", "/v1/files", "/v1/workflows", "/v1/workflows/{x}/events",
            "/v1/workflows/{x}/artifacts/{x}", "/v1/workflows/{x}/retry"} <= called
    schema = web.get("/openapi.json").json()["paths"]
    patterns = [re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$") for p in schema]
    for path in called:
        concrete = path.replace("{x}", "abc")
        assert any(p.match(concrete) for p in patterns), f"{path} is not in the API"


def test_info_says_the_upload_limit_and_capability_nodes(web):
    data = web.get("/v1/info").json()["data"]
    assert data["max_upload_mb"] == 8  # YIVIDEO_MAX_UPLOAD_MB in conftest
    nodes = {n["name"] for n in web.get("/v1/nodes").json()["data"]["nodes"]}
    asr = data["capabilities"]["subtitle_generation"][0]
    assert asr["strategy"] == "asr" and "asr.transcribe" in [s["node"] for s in asr["steps"]]
    for options in data["capabilities"].values():
        for option in options:
            assert {s["node"] for s in option["steps"]} <= nodes


def test_range_requests_on_artifacts(web, srt_flow):
    path = f"/v1/workflows/{srt_flow}/artifacts/subtitles.vtt"
    whole = web.get(path)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"].startswith("text/vtt")
    size = len(whole.content)
    assert size > 20
    first = web.get(path, headers={"Range": "bytes=0-9"})
    assert first.status_code == 206 and first.content == whole.content[:10]
    assert first.headers["content-range"] == f"bytes 0-9/{size}"
    tail = web.get(path, headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == whole.content[-5:]
    assert tail.headers["content-range"] == f"bytes {size - 5}-{size - 1}/{size}"
    rest = web.get(path, headers={"Range": "bytes=10-"})
    assert rest.status_code == 206 and rest.content == whole.content[10:]
    beyond = web.get(path, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
    kinds = {name: web.get(f"/v1/workflows/{srt_flow}/artifacts/{name}").headers["content-type"]
             for name in ("subtitles.json", "subtitles.srt")}
    assert kinds["subtitles.json"] == "application/json"
    assert kinds["subtitles.srt"].startswith("application/x-subrip")


def test_upload_run_a_recipe_and_fetch_its_vtt_as_the_page_does(web, sample):
    # the page sends a raw body with ?filename= (XMLHttpRequest, for upload progress)
    resp = web.post("/v1/files", params={"filename": "talk.mp4"},
                    content=Path(sample.video).read_bytes(),
                    headers={"content-type": "application/octet-stream"})
    assert resp.status_code == 201, resp.text
    path = resp.json()["data"]["path"]
    recipe = web.get("/v1/nodes").json()["data"]["recipes"]["subtitles"]
    body = {"video_path": path, "workflow_config": recipe}
    wid = web.post("/v1/workflows", json=body).json()["data"]["id"]
    states = []
    with web.stream("GET", f"/v1/workflows/{wid}/events") as events:
        for line in events.iter_lines():
            if line.startswith("data: "):
                states.append(line)
    state = finished(web, wid, timeout=300)
    assert state["status"] == "succeeded", state
    assert '"status": "succeeded"' in states[-1]
    assert state["inputs"]["video"] == path  # the page matches it to the file it uploaded
    vtt = web.get(f"/v1/workflows/{wid}/artifacts/subtitles.vtt")
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert vtt.text.startswith("WEBVTT") and "-->" in vtt.text


def test_a_bad_param_is_422_at_the_field_the_form_names(web, sample):
    body = {"video_path": str(sample.video), "workflow_config": {"subtitle_generation": {
        "strategy": "asr", "provider": "faster_whisper", "beam_size": "x"}}}
    resp = web.post("/v1/workflows", json=body)
    assert resp.status_code == 422
    # app.js gives each field data-loc / data-error-for "workflow_config.<cap>.<key>"
    assert resp.json()["error"]["details"][0]["loc"] == \
        "workflow_config.subtitle_generation.beam_size"
    assert "`workflow_config.${cap}.${key}`" in (WEB / "app.js").read_text()


CHROMIUM = shutil.which("chromium")


def chromium_dom(address: str, profile: Path, until: str = "") -> str:
    """The page's DOM after its scripts ran, in headless Chromium; nothing may be logged
    to the console (the page logs nothing itself, so any line there is an error).

    ``--dump-dom`` does not wait for a streamed response (the event stream), so about one
    run in eight dumps before it was read: up to three runs, until ``until`` shows."""
    for attempt in range(3):
        run = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={profile / str(attempt)}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=10000", "--dump-dom", address],
            capture_output=True, text=True, timeout=120)
        console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
        assert not console, console
        if until in run.stdout:
            break
    return run.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium)")
def test_the_page_runs_in_headless_chromium_without_errors(web, srt_flow, tmp_path):
    """The script fetches the catalogue and fills the form and the list."""
    dom = chromium_dom(f"http://127.0.0.1:8000{PREFIX}/", tmp_path)
    assert 'id="use-subtitle_generation"' in dom  # form built from /v1/info + /v1/nodes
    assert 'id="f-subtitle_generation-beam_size"' in dom
    assert '<option value="subtitles">subtitles</option>' in dom
    assert srt_flow in dom  # the workflow list was filled
    assert "Largest accepted file: 8 MB." in dom
    assert 'class="bad"' not in dom  # no error message shown


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium)")
def test_chromium_shows_a_finished_workflow_with_its_subtitles(web, srt_flow, tmp_path):
    """Opened by its link, a workflow's stages (from the event stream), its downloads,
    the VTT track on the video and the clickable subtitle list are on the page."""
    dom = chromium_dom(f"http://127.0.0.1:8000{PREFIX}/#workflow={srt_flow}", tmp_path,
                       until="Hello from the page")
    assert f'<code id="view-id">{srt_flow}</code>' in dom
    assert "succeeded 100%" in dom and 'value="100"' in dom
    assert re.search(r'<track [^>]*src="[^"]*/artifacts/subtitles.vtt"', dom)
    assert re.search(r"<button[^>]*>.*00:00:00.50 → 00:00:02.00 .*Hello from the page", dom)
    assert 'download="subtitles.srt"' in dom


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium)")
def test_chromium_without_a_key_shows_the_401_message(web, tmp_path):
    from ray import serve

    from serve_app import build_app

    serve.run(build_app({"auth": {"enabled": True, "jwt_secret": "k" * 40}}),
              name="web-auth", route_prefix="/ui-auth")
    try:
        dom = chromium_dom("http://127.0.0.1:8000/ui-auth/", tmp_path)
    finally:
        serve.delete("web-auth")
    assert "The server needs an API key" in dom
    assert '<form id="key-form" class="row">' in dom  # shown, no longer hidden
