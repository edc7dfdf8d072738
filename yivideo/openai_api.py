"""``POST /v1/chat/completions``: an OpenAI-compatible chat endpoint on the ingress.

Answered by the ``llm`` service's local model (its ``llm.chat`` node, run on the service's
actor, so the model is loaded once in the cluster and never in the ingress). The route
takes the same caller dependency as every other ``/v1`` route (auth and rate limit), so
the ``openai`` client works against YiVideo with a YiVideo API key as its ``api_key``.
Non-streaming; the response is OpenAI's ``chat.completion`` object, errors are the
usual envelope (whose ``error.message`` OpenAI clients show).
"""

import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from yivideo.errors import ConfigError
from yivideo.llm_models import DEFAULT_LLM, available_llms
from yivideo.runtime import get_service_actor
from yivideo.settings import ModelSettings

__all__ = ["ChatRequest", "KnownModels", "openai_router"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, tool fields: not used here

    role: Literal["system", "user", "assistant"]
    content: str = Field(..., max_length=32_000)


class ChatRequest(BaseModel):
    """The part of OpenAI's chat request the local model serves."""

    model_config = ConfigDict(extra="ignore")  # top_p, n=1, user ... are accepted, unused

    model: str = Field(DEFAULT_LLM, max_length=200, description="a local LLM's name")
    messages: list[_Message] = Field(..., min_length=1, max_length=64)
    max_tokens: int | None = Field(None, ge=1, le=2048)
    max_completion_tokens: int | None = Field(None, ge=1, le=2048)
    temperature: float = Field(0.7, ge=0, le=2)
    stream: bool = False


class KnownModels:
    """The names ``available(models)`` lists, remembered between requests.

    Listing reads every model folder (a GGUF file's first bytes each), too slow for every
    request on the ingress's event loop. The names are listed again, on a worker thread,
    when a folder of ``models.model_dirs`` changes (its mtime: a model added, renamed or
    removed there) or when a request names a model the remembered names lack (a model
    added inside a sub-folder), so a new model is never refused. A removed one may be
    remembered until its folder's mtime changes; the service then refuses it by name.
    """

    def __init__(self, available: Callable[[ModelSettings], dict[str, str]]) -> None:
        self._available = available
        self._stamp: tuple[tuple[str, int | None], ...] | None = None
        self._names: frozenset[str] = frozenset()

    @staticmethod
    def stamp(models: ModelSettings) -> tuple[tuple[str, int | None], ...]:
        """Each model folder with its mtime (None: absent); a stat each, no listing."""
        stamps = []
        for folder in models.model_dirs:
            try:
                stamps.append((str(folder), folder.stat().st_mtime_ns))
            except OSError:
                stamps.append((str(folder), None))
        return tuple(stamps)

    async def names(self, models: ModelSettings, wanted: str) -> frozenset[str]:
        """The known names; listed again unless they are fresh and include ``wanted``."""
        stamp = self.stamp(models)  # taken first: a change while listing shows next time
        if stamp != self._stamp or wanted not in self._names:
            listed = await run_in_threadpool(self._available, models)
            self._stamp, self._names = stamp, frozenset(listed)
        return self._names


def openai_router(caller: Callable[..., Any]) -> APIRouter:
    """The router; ``caller`` is the ingress's dependency that authenticates and limits."""
    router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], dependencies=[Depends(caller)])
    known_llms = KnownModels(available_llms)

    @router.post("/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request) -> JSONResponse:
        """A chat completion from the cluster's local LLM (OpenAI's request and response)."""
        settings = request.app.state.settings
        if body.stream:
            raise ConfigError.at("stream", "streaming is not offered; send stream: false")
        known = await known_llms.names(settings.models, body.model)
        if body.model not in known:
            raise ConfigError.at("model", f"unknown model '{body.model}' "
                                 f"(known: {', '.join(sorted(known)) or 'none'})")
        params = {"model": body.model, "temperature": body.temperature,
                  "messages": [m.model_dump() for m in body.messages],
                  "max_tokens": body.max_tokens or body.max_completion_tokens or 256}
        actor = await run_in_threadpool(get_service_actor, "llm", settings)
        call_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        _, outputs = actor.run.options(num_returns=2).remote(
            "llm.chat", params, [], call_id, "chat")
        completion = dict((await outputs)["completion"])
        completion.update(id=call_id, object="chat.completion", created=int(time.time()))
        return JSONResponse(completion)

    return router
