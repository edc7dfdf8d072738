"""LLM service: subtitle translation and proofreading, line by line, every answer checked.

A small local model (Qwen2.5-Coder-0.5B-Instruct on llama.cpp) loses and merges lines
when given a whole script, so each line is one request, with its neighbours as context.
Every answer is checked (not empty, one line per line, in the expected script, not far
longer than the slot allows); a bad answer is asked again once, without the context, and
a second bad answer keeps the source line with a flag. Line count and timings never change.

Providers: ``local`` (llama.cpp, offline) and OpenAI-compatible APIs through the ``openai``
client (DeepSeek, Gemini, Zhipu, Ollama, vLLM, OpenAI). A hosted provider's base URL is
fixed by its preset or the operator's ``<PROVIDER>_BASE_URL`` environment variable, never
by a request, so a caller cannot send the key elsewhere; the key is read from the
environment variable a request may only *name* (``api_key_env``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import Field

from yivideo.errors import ConfigError, YiVideoError
from yivideo.llm_models import DEFAULT_LLM, LLM_MODELS, resolve_llm
from yivideo.nodes import ModelName, NodeContext, Params, Service, node, register_service
from yivideo.recipes import OUTPUT, REFINE, Step, capability, recipe
from yivideo.subtitles.answers import (
    LANGUAGES,
    check_answer,
    clean_answer,
    dominant_language,
    rewrite_problem,
)
from yivideo.types import Segment, Transcript

ProviderName = Literal["local", "openai", "deepseek", "gemini", "zhipu", "ollama", "vllm"]


@dataclass(frozen=True)
class Preset:
    """An OpenAI-compatible endpoint: where, which key variable, which default model."""

    base_url: str
    key_env: str | None  # None: a local server that needs no key
    model: str


PRESETS: dict[str, Preset] = {
    "openai": Preset("https://api.openai.com/v1", "OPENAI_API_KEY", "gpt-4o-mini"),
    "deepseek": Preset("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", "deepseek-chat"),
    "gemini": Preset("https://generativelanguage.googleapis.com/v1beta/openai/",
                     "GEMINI_API_KEY", "gemini-2.0-flash"),
    "zhipu": Preset("https://open.bigmodel.cn/api/paas/v4/", "ZHIPUAI_API_KEY", "glm-4-flash"),
    "ollama": Preset("http://localhost:11434/v1", None, "qwen2.5:7b"),
    "vllm": Preset("http://localhost:8000/v1", None, "Qwen/Qwen2.5-7B-Instruct"),
}

class ProviderError(YiVideoError):
    """A hosted provider kept failing after the client's own retries (or refused the key)."""

    code = "llm_provider_error"
    http_status = 502


class LLMParams(Params):
    provider: ProviderName = Field("local", description="local (llama.cpp) or a hosted preset")
    model: ModelName(LLM_MODELS) = Field(DEFAULT_LLM, description="local GGUF model name")
    api_model: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$",
        description="hosted provider's model (default: the preset's)")
    api_key_env: str | None = Field(
        None, pattern=r"^[A-Z][A-Z0-9_]{0,63}_API_KEY$",
        description="NAME of the environment variable holding the key (default: the "
                    "preset's, e.g. DEEPSEEK_API_KEY)")
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(128, ge=8, le=4096, description="longest answer for one line")
    context_lines: int = Field(1, ge=0, le=5, description="neighbours shown on each side")
    timeout_s: float = Field(60.0, gt=0, le=600, description="per request (hosted)")
    max_retries: int = Field(3, ge=0, le=10, description="on 429/5xx/timeouts, with backoff")
    threads: int = Field(0, ge=0, le=64, description="llama.cpp threads; 0: the CPUs here")
    max_cps: float = Field(25.0, gt=0, description="reading speed; a far longer line is "
                                                   "rejected")
    price_input_per_mtok: float | None = Field(None, ge=0, description="cost per 1M tokens")
    price_output_per_mtok: float | None = Field(None, ge=0)


class TranslateParams(LLMParams):
    target_language: str = Field("en", pattern=r"^[a-z]{2,3}$", description="ISO 639-1 code")
    glossary: dict[str, str] = Field(default_factory=dict, max_length=200,
                                     description="source term -> required translation")
    style: str | None = Field(None, max_length=200, description="e.g. 'casual, short'")


class ProofreadParams(LLMParams):
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$",
                                 description="the subtitles' language; None: the transcript's")


@dataclass
class Usage:
    """Requests and tokens of one node call (and their cost, with prices)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    lines: list[dict[str, Any]] = field(default_factory=list)

    def add(self, usage: dict[str, Any] | None, seconds: float) -> None:
        self.requests += 1
        self.seconds += seconds
        self.prompt_tokens += int((usage or {}).get("prompt_tokens") or 0)
        self.completion_tokens += int((usage or {}).get("completion_tokens") or 0)

    def report(self, params: LLMParams, provider: str, model: str) -> dict[str, Any]:
        cost = None
        if params.price_input_per_mtok is not None or params.price_output_per_mtok is not None:
            cost = round((self.prompt_tokens * (params.price_input_per_mtok or 0)
                          + self.completion_tokens * (params.price_output_per_mtok or 0)) / 1e6,
                         6)
        return {"provider": provider, "model": model, "requests": self.requests,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "cost": cost,
                "seconds": round(self.seconds, 3), "lines": self.lines}


def _translate_messages(params: TranslateParams, line: str, before: list[str],
                        after: list[str], with_context: bool) -> list[dict[str, str]]:
    target = LANGUAGES.get(params.target_language, params.target_language)
    system = (f"You translate subtitles into {target}. Reply with the {target} translation "
              f"of the line only, on one line, with no notes.")
    if params.style:
        system += f" Style: {params.style}."
    terms = {k: v for k, v in params.glossary.items() if k in line}
    if terms:
        system += " Use these translations: " + "; ".join(f"{k} = {v}" for k, v in
                                                          terms.items()) + "."
    if not with_context or not (before or after):
        return [{"role": "system", "content": system}, {"role": "user", "content": line}]
    system += " The previous and next lines are context only; do not translate them."
    user = (f"Previous line: {' / '.join(before) or '(none)'}\n"
            f"Next line: {' / '.join(after) or '(none)'}\n\n"
            f"Translate this line into {target}:\n{line}")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _proofread_messages(language: str, line: str, before: list[str], after: list[str],
                        with_context: bool) -> list[dict[str, str]]:
    name = LANGUAGES.get(language, language or "its own language")
    system = (f"You correct speech-recognition errors in {name} subtitles: wrong words that "
              f"sound alike, typos, punctuation. Do not translate, do not rephrase, keep "
              f"correct text unchanged. Reply with the corrected line only.")
    if not with_context or not (before or after):
        return [{"role": "system", "content": system}, {"role": "user", "content": line}]
    user = (f"Previous line: {' / '.join(before) or '(none)'}\n"
            f"Next line: {' / '.join(after) or '(none)'}\n\n"
            f"Correct this line:\n{line}")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# ---- the service


@register_service
class LLMService(Service):
    """The local GGUF model (loaded once per actor) and clients of hosted providers."""

    name = "llm"
    uses_gpu = True  # llama.cpp offloads to a GPU where its build supports one
    actor_defaults = {"num_cpus": 1.0}

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self._local_lock = threading.Lock()  # a llama.cpp context serves one call at a time

    @classmethod
    def identity(cls, settings: Any, params: dict[str, Any]) -> str:
        """The local weights (path, size, mtime), or the hosted endpoint and model."""
        provider = params.get("provider", "local")
        if provider != "local":
            preset = PRESETS[provider]
            return f"{provider}:{_base_url(provider)}:{params.get('api_model') or preset.model}"
        path = resolve_llm(params.get("model", DEFAULT_LLM), settings.models)
        st = path.stat()
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"

    # -- one chat completion, local or hosted: (text, usage)

    def local_model(self, params: LLMParams) -> Any:
        """The local llama.cpp model of ``params.model``, loaded once per actor."""
        path = resolve_llm(params.model, self.settings.models)
        threads = params.threads or min(4, len(os.sched_getaffinity(0)))

        def load() -> Any:
            import llama_cpp

            layers = -1 if llama_cpp.llama_supports_gpu_offload() else 0
            return llama_cpp.Llama(str(path), n_ctx=2048, n_threads=threads,
                                   n_gpu_layers=layers, seed=0, verbose=False)

        return self.models.get((str(path), threads), load, model=params.model,
                               path=str(path), threads=threads)

    def _client(self, params: LLMParams) -> tuple[Any, str]:
        """An ``openai`` client for the hosted provider and the model to ask."""
        from openai import OpenAI

        preset = PRESETS[params.provider]
        key_env = params.api_key_env or preset.key_env
        key = os.environ.get(key_env, "") if key_env else "not-needed"
        if not key:
            raise ConfigError(f"provider '{params.provider}' needs an API key: set the "
                              f"environment variable {key_env} on the cluster's nodes")
        client = OpenAI(base_url=_base_url(params.provider), api_key=key,
                        timeout=params.timeout_s, max_retries=params.max_retries)
        return client, params.api_model or preset.model

    def _complete(self, params: LLMParams, messages: list[dict[str, str]],
                  temperature: float, usage: Usage) -> str:
        t0 = time.monotonic()
        if params.provider == "local":
            model = self.local_model(params)
            with self._local_lock:
                out = model.create_chat_completion(messages, temperature=temperature,
                                                   max_tokens=params.max_tokens)
            usage.add(out.get("usage"), time.monotonic() - t0)
            return out["choices"][0]["message"]["content"] or ""
        import openai

        client, model_name = self._client(params)
        try:
            out = client.chat.completions.create(model=model_name, messages=messages,
                                                 temperature=temperature,
                                                 max_tokens=params.max_tokens)
        except openai.APIStatusError as e:
            raise ProviderError(
                f"provider '{params.provider}' ({client.base_url}) answered "
                f"{e.status_code} after {params.max_retries} retries: {e.message}") from None
        except openai.APIError as e:  # connection refused, timeout
            raise ProviderError(f"provider '{params.provider}' ({client.base_url}) "
                                f"unreachable after {params.max_retries} retries: {e}"
                                ) from None
        usage.add(out.usage.model_dump() if out.usage else None, time.monotonic() - t0)
        return (out.choices[0].message.content or "") if out.choices else ""

    # -- line by line

    def _each_line(self, ctx: NodeContext, params: LLMParams, transcript: Transcript,
                   target: str, messages: Any, kind: str,
                   extra_check: Any = None) -> tuple[Transcript, Usage]:
        """Ask for every segment's new text; a rejected answer is asked again once without
        context, then the source is kept with the flag ``llm_<kind>_failed``."""
        usage = Usage()
        texts = [s.text for s in transcript.segments]
        out: list[Segment] = []
        n = params.context_lines
        for i, seg in enumerate(transcript.segments):
            ctx.progress(i / max(1, len(texts)), f"line {i + 1}/{len(texts)}")
            before, after = texts[max(0, i - n):i], texts[i + 1:i + 1 + n]
            record: dict[str, Any] = {"index": i, "source": seg.text, "problems": []}
            answer = None
            if seg.text.strip():
                for attempt in range(2):
                    raw = self._complete(
                        params, messages(seg.text, before, after, attempt == 0),
                        params.temperature if attempt == 0 else max(params.temperature, 0.3),
                        usage)
                    got = clean_answer(raw)
                    problem = check_answer(got, seg.text, before + after, target,
                                           seg.end - seg.start, params.max_cps)
                    if problem is None and extra_check is not None:
                        problem = extra_check(got, seg.text)
                    if problem is None:
                        answer = got
                        break
                    record["problems"].append({"problem": problem, "answer": raw[:500]})
            flags = list(seg.flags)
            record["failed"] = answer is None and bool(seg.text.strip())
            if record["failed"]:
                flags.append(f"llm_{kind}_failed")
            text = seg.text if answer is None else answer
            record["output"] = text
            usage.lines.append(record)
            changed = text != seg.text
            # the old words' times belong to the old text; timings of the line never change
            out.append(replace(seg, text=text, words=[] if changed else seg.words,
                               flags=flags))
        ctx.progress(1.0, f"{len(texts)} lines")
        return replace(transcript, segments=out, language=target), usage

    def _report(self, ctx: NodeContext, params: LLMParams, usage: Usage, kind: str) -> None:
        model = (params.model if params.provider == "local"
                 else params.api_model or PRESETS[params.provider].model)
        report = usage.report(params, params.provider, model)
        report["failed_lines"] = [r["index"] for r in usage.lines if r["failed"]]
        ctx.add_artifact(f"{ctx.stage or kind}.llm.json",
                         json.dumps(report, ensure_ascii=False, indent=2))

    @node("llm.translate", params=TranslateParams, inputs={"transcript": "transcript"},
          outputs={"transcript": "transcript"})
    def translate(self, ctx: NodeContext, params: TranslateParams, transcript: Transcript
                  ) -> dict[str, Any]:
        """Translate every line (neighbours as context); count and times kept."""
        if dominant_language(transcript) == params.target_language:
            # already in the target language (e.g. a dub that only re-voices): no model
            ctx.progress(1.0, f"already {params.target_language}: kept as it is")
            return {"transcript": transcript}

        def messages(line: str, before: list[str], after: list[str], with_context: bool
                     ) -> list[dict[str, str]]:
            return _translate_messages(params, line, before, after, with_context)

        out, usage = self._each_line(ctx, params, transcript, params.target_language,
                                     messages, "translation")
        self._report(ctx, params, usage, "translate")
        return {"transcript": out}

    @node("llm.proofread", params=ProofreadParams, inputs={"transcript": "transcript"},
          outputs={"transcript": "transcript"})
    def proofread(self, ctx: NodeContext, params: ProofreadParams, transcript: Transcript
                  ) -> dict[str, Any]:
        """Fix recognition errors line by line; count and times kept; the diff as JSON."""
        language = params.language or dominant_language(transcript)

        def messages(line: str, before: list[str], after: list[str], with_context: bool
                     ) -> list[dict[str, str]]:
            return _proofread_messages(language, line, before, after, with_context)

        out, usage = self._each_line(ctx, params, transcript, language, messages, "proofread",
                                     rewrite_problem)
        out.language = transcript.language
        self._report(ctx, params, usage, "proofread")
        return {"transcript": out}


def _base_url(provider: str) -> str:
    """The preset's base URL, or the operator's ``<PROVIDER>_BASE_URL`` (never a request's)."""
    return os.environ.get(f"{provider.upper()}_BASE_URL") or PRESETS[provider].base_url


# Placed after any transcript source (ASR, OCR, a subtitle file); the subtitle files are
# written one event per line so that the translated lines keep their times.
_WRITE = Step("subtitles", "subtitle.write", {"keep_segments": True}, tier=OUTPUT)
for _provider in ("local", *PRESETS):
    _fixed = {"provider": _provider}
    capability("subtitle_translation", "llm", _provider,
               f"translate subtitles line by line ({_provider}); count and times kept",
               Step("translate", "llm.translate", _fixed, tier=REFINE), _WRITE)
    capability("subtitle_proofreading", "llm", _provider,
               f"fix recognition errors line by line ({_provider}); times kept",
               Step("proofread", "llm.proofread", _fixed, tier=REFINE), _WRITE)
    # the name YiVideo's own configs use: {"strategy": "llm_proofread", "provider": ...}
    capability("subtitle_refinement", "llm_proofread", _provider,
               f"fix recognition errors line by line ({_provider}); times kept",
               Step("proofread", "llm.proofread", _fixed, tier=REFINE), _WRITE)

recipe("translate-subtitles", {"subtitle_translation": {
    "strategy": "llm", "provider": "local", "target_language": "en",
    "formats": ["srt", "vtt", "json"]}})
recipe("subtitles-translated", {
    "subtitle_generation": {"strategy": "asr", "provider": "faster_whisper", "model": "base"},
    "subtitle_translation": {"strategy": "llm", "provider": "local", "target_language": "en"}})

