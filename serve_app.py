"""The HTTP API: a Ray Serve deployment with a FastAPI ingress.

Every response is the envelope ``{success, data, error}``. The ingress keeps no state:
workflows live in the engine's controller actor, so replicas can come and go.
Run with ``yivideo serve`` or ``serve run serve_app:app``.
"""

import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import ray
from fastapi import FastAPI, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve

from yivideo.engine import get_controller
from yivideo.errors import ConfigError, YiVideoError
from yivideo.nodes import all_nodes, all_services
from yivideo.recipes import RECIPES, list_capabilities
from yivideo.runtime import actor_name
from yivideo.settings import get_settings
from yivideo.workflow import compile_config, load_config_text

api = FastAPI(
    title="YiVideo",
    version="0.1.0",
    description="Configuration-driven AI video processing on Ray.",
)


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"success": True, "data": data, "error": None}, status_code=status)


def fail(status: int, code: str, message: str, details: list | None = None) -> JSONResponse:
    error = {"code": code, "message": message, "details": details or []}
    return JSONResponse({"success": False, "data": None, "error": error}, status_code=status)


def _cause(exc: BaseException) -> BaseException:
    return getattr(exc, "cause", None) or exc


@api.exception_handler(YiVideoError)
async def _yivideo_error(_: Request, exc: YiVideoError) -> JSONResponse:
    return fail(exc.http_status, exc.code, exc.message, exc.details)


@api.exception_handler(ray.exceptions.RayTaskError)
async def _ray_error(_: Request, exc: ray.exceptions.RayTaskError) -> JSONResponse:
    cause = _cause(exc)
    if isinstance(cause, YiVideoError):
        return fail(cause.http_status, cause.code, cause.message, cause.details)
    return fail(500, "internal", str(cause))


@api.exception_handler(RequestValidationError)
async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    details = [{"loc": ".".join(map(str, e["loc"])), "msg": e["msg"]} for e in exc.errors()]
    return fail(422, "invalid_request", details[0]["loc"] + ": " + details[0]["msg"], details)


@serve.deployment(ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class Ingress:
    def __init__(self) -> None:
        self.settings = get_settings()
        self.controller = get_controller(self.settings)

    @api.get("/health")
    async def health(self) -> JSONResponse:
        """Liveness of the controller and of each service actor that has started."""
        status = {"controller": await self.controller.ping.remote()}
        services: dict[str, Any] = {}
        for svc in all_services():
            try:
                actor = ray.get_actor(actor_name(svc.name), namespace=self.settings.namespace)
            except ValueError:
                services[svc.name] = {"alive": False, "started": False}
                continue
            try:
                services[svc.name] = await actor.health.remote()
            except ray.exceptions.RayError as e:
                services[svc.name] = {"alive": False, "error": str(e)[:200]}
        return ok({**status, "services": services})

    @api.get("/v1/nodes")
    async def nodes(self) -> JSONResponse:
        """Every node with its inputs, outputs and parameter schema; capabilities; recipes."""
        return ok({"nodes": [n.describe() for n in all_nodes()],
                   "capabilities": list_capabilities(), "recipes": RECIPES})

    @api.post("/v1/workflows", status_code=202)
    async def submit(self, request: Request) -> JSONResponse:
        """Start a workflow from a JSON or YAML body (recipe or explicit form)."""
        body = (await request.body()).decode(errors="replace")
        config = load_config_text(body, "body")
        compile_config(config)  # 422 with the precise place before anything starts
        wid = await self.controller.submit.remote(config)
        return ok({"id": wid, "status": "pending", "url": f"/v1/workflows/{wid}"}, 202)

    @api.get("/v1/workflows")
    async def list_workflows(
        self,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
        status: str | None = None,
    ) -> JSONResponse:
        limit = min(limit, self.settings.list_page_max)
        return ok(await self.controller.list.remote(offset, limit, status))

    @api.get("/v1/workflows/{wid}")
    async def get_workflow(self, wid: str) -> JSONResponse:
        return ok(await self.controller.get.remote(wid))

    @api.delete("/v1/workflows/{wid}")
    async def cancel_workflow(self, wid: str) -> JSONResponse:
        """Cancel: queued stages never start, running ones stop at their next check."""
        return ok(await self.controller.cancel.remote(wid))

    @api.post("/v1/workflows/{wid}/retry", status_code=202)
    async def retry_workflow(self, wid: str) -> JSONResponse:
        """Run a failed or cancelled workflow again, reusing the stages that succeeded."""
        return ok(await self.controller.retry.remote(wid), 202)

    @api.get("/v1/workflows/{wid}/events")
    async def events(self, wid: str) -> StreamingResponse:
        """Server-Sent Events: the workflow's state at every change, until it is final."""
        first = await self.controller.get.remote(wid)  # 404 before the stream starts

        async def stream() -> AsyncIterator[str]:
            state = first
            while True:
                yield f"event: state\ndata: {json.dumps(state, default=str)}\n\n"
                if state["status"] in ("succeeded", "failed", "cancelled"):
                    return
                state = await self.controller.wait.remote(wid, 15.0)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @api.get("/v1/workflows/{wid}/artifacts/{name}")
    async def artifact(self, wid: str, name: str) -> Response:
        data = await self.controller.artifact.remote(wid, name)
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @api.post("/v1/files", status_code=201)
    async def upload(self, request: Request, file: UploadFile) -> JSONResponse:
        """Upload a video (multipart field ``file``); returns the path to use as input."""
        limit = int(self.settings.max_upload_mb * 1024 * 1024)
        declared = int(request.headers.get("content-length") or 0)
        if declared > limit:
            return fail(413, "too_large", f"upload exceeds {self.settings.max_upload_mb} MB")
        name = Path(file.filename or "upload").name.replace("\x00", "") or "upload"
        folder = self.settings.storage_dir.expanduser() / "uploads" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        target, size = folder / name, 0
        with target.open("wb") as out:
            while chunk := await file.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    out.close()
                    shutil.rmtree(folder, ignore_errors=True)
                    return fail(413, "too_large",
                                f"upload exceeds {self.settings.max_upload_mb} MB")
                out.write(chunk)
        return ok({"path": str(target), "size": size}, 201)

    @api.get("/v1/gpu-locks/status")
    async def gpu_status(self) -> JSONResponse:
        """GPUs: total, free, which service actors hold which fraction, which stages wait."""
        return ok(await self.controller.gpu_status.remote())


def build_app() -> serve.Application:
    return Ingress.bind()


app = build_app()

__all__ = ["app", "build_app", "ConfigError"]
