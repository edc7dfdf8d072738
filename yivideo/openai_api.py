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

__all__ = ["ChatRequest", "openai_router"]


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


def openai_router(caller: Callable[..., Any]) -> APIRouter:
    """The router; ``caller`` is the ingress's dependency that authenticates and limits."""
    router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], dependencies=[Depends(caller)])

    @router.post("/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request) -> JSONResponse:
        """A chat completion from the cluster's local LLM (OpenAI's request and response)."""
        settings = request.app.state.settings
        if body.stream:
            raise ConfigError.at("stream", "streaming is not offered; send stream: false")
        known = available_llms(settings.models)
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
