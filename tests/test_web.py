"""The web page at ``/`` and what it relies on: static files, the API paths its script
calls, Range requests on artifacts, and the upload -> recipe -> VTT path it takes."""

from __future__ import annotations

import importlib.util
import json
import os
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

    from serve_app import build_app, start

    start()  # Serve as `yivideo serve` starts it: HAProxy in front
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
            "/v1/workflows/{x}/artifacts/{x}", "/v1/workflows/{x}/retry",
            "/v1/workflows/{x}/artifacts/{x}/link"} <= called
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


@pytest.fixture(scope="module")
def auth_web(web):
    """A second app under ``/ui-auth`` with auth on; yields the one valid API key."""
    from ray import serve

    from serve_app import build_app
    from yivideo.security.auth import new_api_key

    key, entry = new_api_key("webuser")
    serve.run(build_app({"auth": {"enabled": True, "jwt_secret": "k" * 40,
                                  "api_keys": [entry.model_dump()]}}),
              name="web-auth", route_prefix="/ui-auth")
    yield key
    serve.delete("web-auth")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium)")
def test_chromium_without_a_key_shows_the_401_message(auth_web, tmp_path):
    dom = chromium_dom("http://127.0.0.1:8000/ui-auth/", tmp_path)
    assert "The server needs an API key" in dom
    assert '<form id="key-form" class="row">' in dom  # shown, no longer hidden


# ---------------------------------------------------------------- Playwright
# The page driven like a user would: clicks, keys, a file chooser, a download. Playwright
# drives Debian's Chromium (never `playwright install`). Any console error or uncaught
# exception on a page fails its test; with YIVIDEO_SCREENSHOTS=<folder> the main views are
# written there as PNGs (the README shows them).

BASE = f"http://127.0.0.1:8000{PREFIX}"
HAS_BROWSER = CHROMIUM is not None and importlib.util.find_spec("playwright") is not None
browser_test = pytest.mark.skipif(not HAS_BROWSER,
                                  reason="needs chromium (apt) and playwright (pip)")
VIEWPORT = {"width": 1024, "height": 700}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


class Watched:
    """Pages of one browser context whose console errors and page errors are kept."""

    def __init__(self, browser, **options) -> None:
        self.context = browser.new_context(accept_downloads=True, **options)
        self.context.set_default_timeout(30_000)
        self.errors: list[str] = []
        #: HTTP statuses a test provokes on purpose; Chromium logs each failed fetch
        self.expected: set[int] = set()

    def open(self, address: str):
        page = self.context.new_page()
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.goto(address)
        return page

    def _console(self, msg) -> None:
        if msg.type != "error":
            return
        status = re.search(r"status of (\d{3})", msg.text)
        if status and int(status.group(1)) in self.expected:
            return
        self.errors.append(f"console: {msg.text}")


@pytest.fixture
def watched(browser):
    """Open pages with ``watched.open(url)``; any console or page error fails the test."""
    made: list[Watched] = []

    def new(**options) -> Watched:
        made.append(Watched(browser, **({"viewport": VIEWPORT} | options)))
        return made[-1]

    yield new
    for w in made:
        w.context.close()
    errors = [e for w in made for e in w.errors]
    assert not errors, errors


def screenshot(page, name: str, element: str = "") -> None:
    """Keep a PNG of the window (or of one element) when YIVIDEO_SCREENSHOTS names a folder."""
    folder = os.environ.get("YIVIDEO_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        path = str(Path(folder) / f"{name}.png")
        if element:
            page.locator(element).screenshot(path=path)
        else:
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=path)


def wait_for_form(page) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#recipe option[value=subtitles]")).to_have_count(1)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@browser_test
def test_browser_upload_subtitles_recipe_cues_seek_and_srt(web, sample, watched):
    """Upload through the file chooser, run the ``subtitles`` recipe, follow its progress,
    read the subtitles on the video's track and in the list, seek from the list and
    download the SRT."""
    from playwright.sync_api import expect

    page = watched().open(BASE + "/")
    wait_for_form(page)
    expect(page.locator("#key-form")).to_be_hidden()  # auth is off
    page.set_input_files("#file", sample.video)
    expect(page.locator("#upload-status")).to_contain_text("Uploaded sample.mp4")
    expect(page.locator("#upload-progress")).to_have_attribute("value", "100")
    uploaded = page.input_value("#video-path")
    assert uploaded.endswith("/sample.mp4") and uploaded != sample.video
    page.select_option("#recipe", "subtitles")
    expect(page.locator("#use-subtitle_generation")).to_be_checked()
    request = json.loads(page.input_value("#request-json"))
    assert request["video_path"] == uploaded
    assert request["workflow_config"]["subtitle_generation"]["strategy"] == "asr"
    screenshot(page, "form")

    page.click("#submit")
    expect(page.locator("#submit-status")).to_contain_text("Started")
    expect(page.locator("#stages li").first).to_be_visible()
    if os.environ.get("YIVIDEO_SCREENSHOTS"):  # a view with a stage under way, if one is seen
        page.wait_for_function("""() => /running \\d+%|succeeded/.test(
            document.getElementById('stages').textContent + document.getElementById(
            'view-status').textContent)""")
        screenshot(page, "progress", "#view")
    expect(page.locator("#view-status")).to_have_text("succeeded", timeout=120_000)
    bars = page.eval_on_selector_all("#stages progress", "bars => bars.map(b => b.value)")
    assert bars and all(v == 100 for v in bars), bars
    expect(page.locator("#stages")).to_contain_text("succeeded 100%")

    # the cue list, filled from the produced subtitles
    cues = page.locator("#cues button")
    expect(cues).not_to_have_count(0)
    listed = words(" ".join(cues.all_inner_texts()))
    for cue in sample.speech:
        assert len(words(cue.text) & listed) >= len(words(cue.text)) // 2, (cue.text, listed)

    # the <track>: seek into the second sentence and read the active cue
    target = sample.speech[1]
    page.wait_for_function("document.getElementById('video').readyState >= 1")
    page.eval_on_selector("#video", "(v, t) => { v.currentTime = t; }",
                          (target.start + target.end) / 2)
    active = page.wait_for_function(
        """() => { const t = document.getElementById('video').textTracks[0];
                   return t && t.activeCues && t.activeCues.length
                          ? [...t.activeCues].map(c => c.text).join(' ') : null; }""")
    assert words(active.json_value()) & (words(target.text) - {"a", "the", "new"})
    expect(page.locator("#cues button.active")).to_have_count(1)
    assert words(page.inner_text("#cues button.active")) & words(target.text)
    page.wait_for_function("""() => { const v = document.getElementById('video');
                                      return !v.seeking && v.readyState >= 2; }""")
    screenshot(page, "result", "#result")

    # a click on a cue in the list seeks the video to it
    third = sample.speech[2]
    button = cues.filter(has_text=re.compile("window", re.I)).first
    start = float(button.get_attribute("data-start"))
    assert abs(start - third.start) < 1.0
    button.click()
    now = page.eval_on_selector("#video", "v => { v.pause(); return v.currentTime; }")
    assert start <= now < float(button.get_attribute("data-end"))

    with page.expect_download() as download:
        page.click("#downloads a[download='subtitles.srt']")
    assert download.value.suggested_filename == "subtitles.srt"
    srt = Path(download.value.path()).read_text()
    assert "-->" in srt
    spoken = words(" ".join(c.text for c in sample.speech))
    assert len(words(srt) & spoken) >= 0.7 * len(spoken)


@browser_test
def test_browser_a_bad_param_shows_the_422_at_its_field(web, sample, watched):
    """An out-of-range param in the form, then an unknown capability in the JSON: each
    of the server's 422 details is shown where the user can fix it."""
    from playwright.sync_api import expect

    session = watched()
    session.expected = {422}
    page = session.open(BASE + "/")
    wait_for_form(page)
    page.fill("#video-path", sample.video)
    page.select_option("#recipe", "subtitles")
    page.fill("#f-subtitle_generation-beam_size", "0")
    page.click("#submit")
    field = page.locator('[data-error-for="workflow_config.subtitle_generation.beam_size"]')
    expect(field).to_contain_text("beam_size")
    expect(field).to_be_visible()
    expect(page.locator("#submit-status")).to_contain_text("The request is not valid")
    assert page.locator("#view").is_hidden()  # nothing started

    page.click("#advanced summary")
    body = json.loads(page.input_value("#request-json"))
    body["workflow_config"] = {"no_such_capability": {}}
    page.fill("#request-json", json.dumps(body))
    page.click("#submit")
    expect(field).to_be_empty()  # the errors of the last try are cleared
    fallback = page.locator('#advanced [data-error-for=""]')
    expect(fallback).to_contain_text("no_such_capability")
    expect(fallback).to_be_visible()


@browser_test
def test_browser_a_wrong_api_key_shows_the_401_message(auth_web, watched):
    from playwright.sync_api import expect

    session = watched()
    session.expected = {401}
    page = session.open("http://127.0.0.1:8000/ui-auth/")
    expect(page.locator("#key-form")).to_be_visible()
    expect(page.locator("#message")).to_contain_text("needs an API key")
    page.fill("#api-key", "yv_" + "x" * 43)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#message")).to_contain_text("or the one given is wrong")
    expect(page.locator("#api-key")).to_be_focused()
    expect(page.locator("#recipe option[value=subtitles]")).to_have_count(0)
    # the right key builds the form
    page.fill("#api-key", auth_web)
    page.click("#key-form button[type=submit]")
    wait_for_form(page)
    expect(page.locator("#message")).to_be_empty()


@browser_test
def test_browser_keyboard_alone_runs_a_recipe(web, sample, watched):
    """Tab reaches the main controls in reading order, each with a visible focus ring;
    a recipe is chosen and started and the workflow cancelled with keys only."""
    from playwright.sync_api import expect

    page = watched().open(BASE + "/")
    wait_for_form(page)
    page.locator("#video-path").fill(sample.video)  # typed: the keyboard test is Tab/keys
    page.locator("#video-path").focus()
    page.keyboard.press("Tab")
    expect(page.locator("#recipe")).to_be_focused()
    page.keyboard.type("subtitles")  # a select picks the option typed
    expect(page.locator("#use-subtitle_generation")).to_be_checked()
    order = []
    for _ in range(200):
        page.keyboard.press("Tab")
        focused = page.evaluate("""() => { const e = document.activeElement;
            return [e.id || e.tagName.toLowerCase(), getComputedStyle(e).outlineStyle]; }""")
        order.append(focused[0])
        assert focused[1] != "none", f"{focused[0]} shows no focus"
        if focused[0] == "submit":
            break
    assert order[-1] == "submit", order
    wanted = ["use-subtitle_generation", "how-subtitle_generation",
              "f-subtitle_generation-beam_size", "summary"]
    assert [x for x in order if x in wanted] == wanted, order
    page.keyboard.press("Enter")
    expect(page.locator("#submit-status")).to_contain_text("Started")
    expect(page.locator("#view")).to_be_visible()
    page.locator("#cancel").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#view-status")).to_have_text(re.compile("cancelled|succeeded"))


@browser_test
@pytest.mark.parametrize("view", ["form", "result"])
def test_browser_at_200_percent_zoom_nothing_overflows_sideways(web, srt_flow, watched, view):
    """A 1280-pixel window at 200% zoom: 640 CSS pixels at two device pixels each. The
    page must not scroll sideways (only the workflow table may, inside its own box)."""
    from playwright.sync_api import expect

    page = watched(viewport={"width": 640, "height": 800}, device_scale_factor=2).open(
        BASE + "/" + (f"#workflow={srt_flow}" if view == "result" else ""))
    wait_for_form(page)
    if view == "result":
        expect(page.locator("#cues button")).to_have_count(1)
    else:
        page.select_option("#recipe", "subtitles")
        page.click("#advanced summary")
    wide = page.evaluate("""() => {
        const doc = document.documentElement;
        const out = [...document.querySelectorAll('main *, header *')]
          .filter(e => e.offsetParent !== null && !e.closest('.scroll'))
          .filter(e => e.getBoundingClientRect().right > doc.clientWidth + 1)
          .map(e => (e.id || e.tagName) + ':' + Math.round(e.getBoundingClientRect().right));
        return {scroll: doc.scrollWidth, width: doc.clientWidth, out};
    }""")
    assert wide["scroll"] <= wide["width"] and not wide["out"], wide


@browser_test
def test_browser_with_a_key_the_video_plays_from_a_signed_link_with_range(
        auth_web, sample, watched, tmp_path):
    """With auth on, ``<video>`` and ``<track>`` get short-lived signed links (elements
    cannot send the key), which serve Range requests, so the video can be sought in."""
    from playwright.sync_api import expect

    srt = tmp_path / "in.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:03,000\nSigned and sought\n\n")
    address = "http://127.0.0.1:8000/ui-auth"
    with httpx.Client(base_url=address, headers={"X-API-Key": auth_web}, timeout=60) as api:
        def upload(path: Path) -> str:
            resp = api.post("/v1/files", params={"filename": path.name},
                            content=path.read_bytes(),
                            headers={"content-type": "application/octet-stream"})
            return resp.json()["data"]["path"]

        body = {"inputs": {"video": upload(Path(sample.video)), "subs": upload(srt)},
                "stages": {
            "read": {"node": "subtitle.read", "inputs": {"subtitles": "input.subs"}},
            "write": {"node": "subtitle.write", "params": {"formats": ["vtt", "json"]},
                      "inputs": {"transcript": "read.transcript"}},
            "mux": {"node": "subtitle.mux", "params": {"name": "soft.mp4"},
                    "inputs": {"video": "input.video", "events": "write.events"}}}}
        wid = api.post("/v1/workflows", json=body).json()["data"]["id"]
        assert finished(api, wid)["status"] == "succeeded"

    session = watched()
    session.expected = {401}  # the page's first calls, before the key is given
    page = session.open(address + "/")
    page.fill("#api-key", auth_web)
    page.click("#key-form button[type=submit]")
    page.click(f"#workflows button:text('{wid}')")
    expect(page.locator("#video-note")).to_have_text("Playing soft.mp4.")
    expect(page.locator("#cues button")).to_have_count(1)  # the track's file came by link
    src = page.eval_on_selector("#video", "v => v.src")
    track = page.eval_on_selector("#video track", "t => t.src")
    assert src.startswith(address + "/links/") and track.startswith(address + "/links/")
    page.wait_for_function("document.getElementById('video').readyState >= 1")
    page.eval_on_selector("#video", "v => { v.currentTime = 12; }")
    page.wait_for_function("""() => { const v = document.getElementById('video');
        return !v.seeking && v.readyState >= 2 && v.currentTime > 11; }""")
    assert page.eval_on_selector("#video", "v => v.seekable.length && v.seekable.end(0)") > 12

    part = httpx.get(src, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    assert httpx.get(src[:-3] + ("AAA" if not src.endswith("AAA") else "BBB")).status_code == 401


def test_a_signed_link_names_one_artifact_and_dies_by_expiry_or_key_removal():
    from yivideo.errors import Unauthorized
    from yivideo.security.auth import AuthSettings, Principal, new_api_key
    from yivideo.security.links import sign_link, verify_link

    _, entry = new_api_key("ann", "k_ann")
    auth = AuthSettings(enabled=True, api_keys=[entry])
    ann = Principal("ann", "api_key", key_id="k_ann")
    token, _ = sign_link(ann, "w1", "out.mp4", auth)
    link = verify_link(token, auth)
    assert (link.owner, link.wid, link.name) == ("ann", "w1", "out.mp4")
    with pytest.raises(Unauthorized, match="expired"):
        verify_link(sign_link(ann, "w1", "out.mp4", auth, ttl_s=-60)[0], auth)
    _, other = new_api_key("bob", "k_bob")
    with pytest.raises(Unauthorized):  # signed under other settings: another key
        verify_link(token, AuthSettings(enabled=True, api_keys=[entry, other]))
    with pytest.raises(Unauthorized, match="no longer valid"):
        verify_link(token, AuthSettings(enabled=True, api_keys=[other.model_copy(
            update={"sha256": entry.sha256, "id": "k_new"})]))
