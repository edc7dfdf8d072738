"""LLM service: subtitle translation and proofreading, line by line, every answer checked.

A small local model (Qwen2.5-Coder-0.5B-Instruct on llama.cpp) loses and merges lines
when given a whole script, so each line is one request, with its neighbours as context.
Every answer is checked (not empty, one line per line, in the expected script, not far
longer than the slot allows); a bad answer is asked again once, without the context, and
a second bad answer keeps the source line with a flag. Line count and timings never change.

Providers: ``local`` (llama.cpp, offline) and OpenAI-compatible APIs through the ``openai``
client (DeepSeek, Gemini, Zhipu, Ollama, vLLM, OpenAI), configured in the ``llm`` settings
section (base URL, key variable, model, prices, timeout). A hosted provider's base URL is
fixed by the settings or the operator's ``<PROVIDER>_BASE_URL`` environment variable, never
by a request, so a caller cannot send the key elsewhere; the key is read from the
environment variable a request may only *name* (``api_key_env``).

Besides the per-line nodes: ``llm.write_translation`` writes the translated subtitles
(``subtitles.<lang>.*``, optionally bilingual, laid out by the subtitle rules),
``llm.summarize`` a summary with chapters, and ``llm.chat`` one chat completion (the
ingress's OpenAI-compatible ``/v1/chat/completions``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from yivideo.datatypes import DataType, register_type
from yivideo.errors import ConfigError, YiVideoError
from yivideo.llm_models import DEFAULT_LLM, LLM_MODELS, resolve_llm
from yivideo.llm_settings import PRESETS, ProviderSettings
from yivideo.nodes import ModelName, NodeContext, Params, Service, node, register_service
from yivideo.recipes import OUTPUT, REFINE, Step, capability, recipe
from yivideo.subtitles import SegmentationRules, render_formats
from yivideo.subtitles.answers import (
    LANGUAGES,
    check_answer,
    clean_answer,
    dominant_language,
    rewrite_problem,
)
from yivideo.subtitles.layout import fit_lines
from yivideo.summary import chapter_spans, check_title, fallback_title, summary_markdown
from yivideo.types import Segment, SubtitleEvent, Transcript

ProviderName = Literal["local", "openai", "deepseek", "gemini", "zhipu", "ollama", "vllm"]
Format = Literal["srt", "vtt", "ass", "json", "txt"]

# the transcript a translation was made from, beside the translated one (bilingual files)
register_type(DataType("source_transcript", "the transcript a translation was made from",
                       "yivideo.types:Transcript", literal="json"))


class ProviderError(YiVideoError):
    """A hosted provider kept failing after the client's own retries (or refused the key)."""

    code = "llm_provider_error"
    http_status = 502


class LLMParams(Params):
    provider: ProviderName = Field("local", description="local (llama.cpp) or a hosted preset")
    model: ModelName(LLM_MODELS) = Field(DEFAULT_LLM, description="local GGUF model name")
    api_model: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$",
        description="hosted provider's model (default: the llm settings')")
    api_key_env: str | None = Field(
        None, pattern=r"^[A-Z][A-Z0-9_]{0,63}_API_KEY$",
        description="NAME of the environment variable holding the key (default: the "
                    "llm settings', e.g. DEEPSEEK_API_KEY)")
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(128, ge=8, le=4096, description="longest answer for one line")
    context_lines: int = Field(1, ge=0, le=5, description="neighbours shown on each side")
    timeout_s: float | None = Field(None, gt=0, le=600,
                                    description="per request (hosted); default: llm settings")
    max_retries: int | None = Field(None, ge=0, le=10, description="on 429/5xx/timeouts, "
                                    "with backoff; default: llm settings")
    threads: int = Field(0, ge=0, le=64, description="llama.cpp threads; 0: the CPUs here")
    max_cps: float = Field(25.0, gt=0, description="reading speed; a far longer line is "
                                                   "rejected")
    price_input_per_1k: float | None = Field(None, ge=0, description="cost per 1k prompt "
                                             "tokens; default: llm settings")
    price_output_per_1k: float | None = Field(None, ge=0)


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

    def report(self, params: LLMParams, provider: str, model: str,
               hosted: ProviderSettings | None = None) -> dict[str, Any]:
        price_in = params.price_input_per_1k
        price_out = params.price_output_per_1k
        if hosted is not None:
            price_in = hosted.price_input_per_1k if price_in is None else price_in
            price_out = hosted.price_output_per_1k if price_out is None else price_out
        cost = None
        if price_in is not None or price_out is not None:
            cost = round((self.prompt_tokens * (price_in or 0)
                          + self.completion_tokens * (price_out or 0)) / 1e3, 6)
        return {"provider": provider, "model": model, "requests": self.requests,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "cost": cost,
                "seconds": round(self.seconds, 3), "lines": self.lines}


def _translate_messages(params: TranslateParams, source: str, line: str, before: list[str],
                        after: list[str], with_context: bool) -> list[dict[str, str]]:
    """The request for one line: natural, fluent, grammatical sentences from the named
    source language (the 0.5B model otherwise drops articles; chrF within a few points of a
    bare "translate", bench/results/llm.md); neighbours are shown in the system message,
    apart from the line itself, so that the model does not translate them into it."""
    target = LANGUAGES.get(params.target_language, params.target_language)
    what = f"{LANGUAGES[source]} subtitle line" if source in LANGUAGES else "subtitle line"
    system = (f"You are a professional subtitle translator. Translate the {what} into "
              f"natural, fluent, grammatical {target}. Reply with the {target} translation "
              f"only, on one line, with no notes.")
    if params.style:
        system += f" Style: {params.style}."
    terms = {k: v for k, v in params.glossary.items() if k in line}
    if terms:
        system += " Use these translations: " + "; ".join(f"{k} = {v}" for k, v in
                                                          terms.items()) + "."
    if with_context and (before or after):
        system += (f" For context only (do not translate it): the previous line is "
                   f"{' / '.join(before) or '(none)'} and the next line is "
                   f"{' / '.join(after) or '(none)'}.")
    return [{"role": "system", "content": system}, {"role": "user", "content": line}]


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


# ---- params of the writer, the summary and the chat


class WriteTranslationParams(Params):
    name: str = Field("subtitles", pattern=r"^[A-Za-z0-9_-]+$",
                      description="artifact stem: <name>.<target_language>.<format>")
    target_language: str = Field("en", pattern=r"^[a-z]{2,3}$", description="ISO 639-1 code")
    formats: list[Format] = Field(["srt", "vtt", "ass", "json"], min_length=1)
    bilingual: bool = Field(False, description="each event: the source line, then the "
                                               "translated one")
    rules: SegmentationRules = Field(default_factory=SegmentationRules,
                                     description="line width and lines per language")
    font: str = "DejaVu Sans"
    font_size: int = Field(48, ge=8, le=200)


class SummaryParams(LLMParams):
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$",
                                 description="the summary's language; None: the transcript's")
    max_chapters: int = Field(5, ge=1, le=30)
    min_chapter_s: float = Field(20.0, gt=0, description="shortest chapter")
    max_tokens: int = Field(120, ge=16, le=4096, description="longest answer (a title: "
                                                            "at most 32)")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send optional fields (name)

    role: Literal["system", "user", "assistant"]
    content: str = Field(..., max_length=32_000)


class ChatParams(Params):
    model: ModelName(LLM_MODELS) = Field(DEFAULT_LLM, description="local GGUF model name")
    # a default, so that a plan naming only the model compiles; the node needs one
    messages: list[ChatMessage] = Field(default_factory=list, max_length=64)
    max_tokens: int = Field(256, ge=1, le=2048)
    temperature: float = Field(0.7, ge=0, le=2)
    threads: int = Field(0, ge=0, le=64, description="llama.cpp threads; 0: the CPUs here")


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
            hosted = settings.llm.providers[provider]
            return (f"{provider}:{_base_url(provider, hosted)}:"
                    f"{params.get('api_model') or hosted.model}")
        path = resolve_llm(params.get("model", DEFAULT_LLM), settings.models)
        st = path.stat()
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"

    # -- one chat completion, local or hosted: (text, usage)

    def local_model(self, params: LLMParams | ChatParams) -> Any:
        """The local llama.cpp model of ``params.model``, loaded once per actor."""
        path = resolve_llm(params.model, self.settings.models)
        threads = params.threads or min(4, len(os.sched_getaffinity(0)))

        def load() -> Any:
            import llama_cpp

            layers = -1 if llama_cpp.llama_supports_gpu_offload() else 0
            return llama_cpp.Llama(str(path), n_ctx=_N_CTX, n_threads=threads,
                                   n_gpu_layers=layers, seed=0, verbose=False)

        return self.models.get((str(path), threads), load, model=params.model,
                               path=str(path), threads=threads)

    def hosted(self, provider: str) -> ProviderSettings:
        """The settings of a hosted provider (presets merged with the config)."""
        return self.settings.llm.providers[provider]

    def _client(self, params: LLMParams) -> tuple[Any, str]:
        """An ``openai`` client for the hosted provider and the model to ask."""
        from openai import OpenAI

        hosted = self.hosted(params.provider)
        key_env = params.api_key_env or hosted.key_env
        key = os.environ.get(key_env, "") if key_env else "not-needed"
        if not key:
            raise ConfigError(f"provider '{params.provider}' needs an API key: set the "
                              f"environment variable {key_env} on the cluster's nodes "
                              f"(or use provider: local)")
        client = OpenAI(base_url=_base_url(params.provider, hosted), api_key=key,
                        timeout=params.timeout_s or hosted.timeout_s,
                        max_retries=self._retries(params))
        return client, params.api_model or hosted.model

    def _retries(self, params: LLMParams) -> int:
        return self.settings.llm.max_retries if params.max_retries is None else params.max_retries

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
        retries = self._retries(params)
        try:
            out = client.chat.completions.create(model=model_name, messages=messages,
                                                 temperature=temperature,
                                                 max_tokens=params.max_tokens)
        except openai.AuthenticationError as e:
            key_env = params.api_key_env or self.hosted(params.provider).key_env
            raise ProviderError(
                f"provider '{params.provider}' ({client.base_url}) refused the key in "
                f"{key_env} (401): {e.message}") from None
        except openai.APIStatusError as e:
            raise ProviderError(
                f"provider '{params.provider}' ({client.base_url}) answered "
                f"{e.status_code} after {retries} retries: {e.message}") from None
        except openai.APIError as e:  # connection refused, timeout
            raise ProviderError(f"provider '{params.provider}' ({client.base_url}) "
                                f"unreachable after {retries} retries: {e}") from None
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

    def _report(self, ctx: NodeContext, params: LLMParams, usage: Usage, kind: str,
                extra: dict[str, Any] | None = None) -> None:
        hosted = None if params.provider == "local" else self.hosted(params.provider)
        model = params.model if hosted is None else params.api_model or hosted.model
        report = usage.report(params, params.provider, model, hosted)
        report["failed_lines"] = [r["index"] for r in usage.lines if r["failed"]]
        report.update(extra or {})
        ctx.add_artifact(f"{ctx.stage or kind}.llm.json",
                         json.dumps(report, ensure_ascii=False, indent=2))

    @node("llm.translate", params=TranslateParams, inputs={"transcript": "transcript"},
          outputs={"transcript": "transcript", "source": "source_transcript"})
    def translate(self, ctx: NodeContext, params: TranslateParams, transcript: Transcript
                  ) -> dict[str, Any]:
        """Translate every line (neighbours as context); count and times kept."""
        if dominant_language(transcript) == params.target_language:
            # already in the target language (e.g. a dub that only re-voices): no model
            ctx.progress(1.0, f"already {params.target_language}: kept as it is")
            return {"transcript": transcript, "source": transcript}

        source = dominant_language(transcript)

        def messages(line: str, before: list[str], after: list[str], with_context: bool
                     ) -> list[dict[str, str]]:
            return _translate_messages(params, source, line, before, after, with_context)

        out, usage = self._each_line(ctx, params, transcript, params.target_language,
                                     messages, "translation")
        self._report(ctx, params, usage, "translate")
        return {"transcript": out, "source": transcript}

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

    @node("llm.write_translation", params=WriteTranslationParams,
          inputs={"transcript": "transcript", "source": "source_transcript"},
          outputs={"events": "subtitle_events"}, optional_inputs=("source",))
    def write_translation(self, ctx: NodeContext, params: WriteTranslationParams,
                          transcript: Transcript, source: Transcript | None = None
                          ) -> dict[str, Any]:
        """Write ``<name>.<lang>.*``: one event per translated line, times untouched, lines
        laid out again by the subtitle rules; bilingual: the source line above."""
        events = translated_events(transcript, source, params.rules, params.bilingual)
        style = {"font": params.font, "font_size": params.font_size}
        for fmt, text in render_formats(transcript, events, params.formats, **style).items():
            ctx.add_artifact(f"{params.name}.{params.target_language}.{fmt}", text)
        return {"events": events}

    @node("llm.summarize", params=SummaryParams, inputs={"transcript": "transcript"},
          outputs={})
    def summarize(self, ctx: NodeContext, params: SummaryParams, transcript: Transcript
                  ) -> dict[str, Any]:
        """A short summary and chapter titles with times: summary.json and summary.md."""
        language = params.language or dominant_language(transcript)
        name = LANGUAGES.get(language, language)
        spans = chapter_spans(transcript, params.max_chapters, params.min_chapter_s)
        usage = Usage()
        short = params.model_copy(update={"max_tokens": min(params.max_tokens, 32)})
        chapters = []
        for k, (start, end, texts) in enumerate(spans):
            ctx.progress(k / (len(spans) + 1), f"chapter {k + 1}/{len(spans)}")
            body = _clip(" ".join(texts), 1500)
            title, problem = "", "empty"
            for attempt in range(2):
                title = clean_answer(self._complete(short, [
                    {"role": "system", "content": f"You write chapter titles for videos. "
                     f"Reply with one short {name} title (2 to 6 words) for the passage, "
                     f"and nothing else."},
                    {"role": "user", "content": body}],
                    params.temperature if attempt == 0 else 0.3, usage)).rstrip(".")
                problem = check_title(title, language)
                if problem is None:
                    break
            record = {"index": k, "source": body[:200], "failed": problem is not None,
                      "problems": [] if problem is None else [{"problem": problem,
                                                               "answer": title[:200]}]}
            usage.lines.append(record)
            if problem is not None:
                title = fallback_title(texts)
            chapters.append({"start": round(start, 3), "end": round(end, 3), "title": title,
                             **({"flags": ["llm_title_failed"]} if problem else {})})
        ctx.progress(len(spans) / (len(spans) + 1), "summary")
        text = _clip(" ".join(s.text for s in transcript.segments), 3000)
        summary = ""
        if text.strip():
            summary = clean_answer(self._complete(params, [
                {"role": "system", "content": f"You summarise video transcripts. Reply with "
                 f"a short {name} summary of two or three sentences, and nothing else."},
                {"role": "user", "content": text}], params.temperature, usage))
        result = {"language": language, "duration": transcript.duration,
                  "summary": " ".join(summary.split()), "chapters": chapters}
        ctx.add_artifact("summary.json", json.dumps(result, ensure_ascii=False, indent=2))
        ctx.add_artifact("summary.md", summary_markdown(result))
        self._report(ctx, params, usage, "summary")
        ctx.progress(1.0, f"{len(chapters)} chapters")
        return {}

    @node("llm.chat", params=ChatParams, outputs={"completion": "any"})
    def chat(self, ctx: NodeContext, params: ChatParams) -> dict[str, Any]:
        """One chat completion with the local model, in OpenAI's response form."""
        if not params.messages:
            raise ConfigError.at("messages", "at least one message is needed")
        model = self.local_model(params)
        messages = [m.model_dump() for m in params.messages]
        try:
            with self._local_lock:
                out = model.create_chat_completion(messages, temperature=params.temperature,
                                                   max_tokens=params.max_tokens)
        except ValueError as e:  # llama.cpp: the prompt does not fit the context
            raise ConfigError.at("messages", f"{e} (the model's context is {_N_CTX} "
                                 "tokens)") from None
        out["model"] = params.model
        return {"completion": out}


#: llama.cpp's context: prompt and answer together
_N_CTX = 2048


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` characters (the local model's context is small)."""
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def translated_events(transcript: Transcript, source: Transcript | None,
                      rules: SegmentationRules, bilingual: bool) -> list[SubtitleEvent]:
    """One event per segment (times untouched), its text laid out by ``rules``; bilingual:
    the source's lines first (the same segment of ``source``)."""
    if bilingual and (source is None or len(source.segments) != len(transcript.segments)):
        raise ConfigError.at("bilingual", "needs the transcript the translation was made "
                             "from, line for line")
    events = []
    for i, seg in enumerate(transcript.segments):
        if not seg.text.strip():
            continue
        lines = fit_lines(seg.text, rules)
        if bilingual:
            lines = fit_lines(source.segments[i].text, rules) + lines
        events.append(SubtitleEvent(seg.start, seg.end, lines, seg.speaker))
    return events


def _base_url(provider: str, hosted: ProviderSettings) -> str:
    """The settings' base URL, or the operator's ``<PROVIDER>_BASE_URL`` (never a request's)."""
    return os.environ.get(f"{provider.upper()}_BASE_URL") or hosted.base_url


# After any transcript source (ASR, OCR, a subtitle file) and its own subtitle files:
# translation is an output step, so the source's writer (``subtitles``, added first) keeps
# the source text, and what comes after (dubbing, burning) takes the translation.
_SOURCE = Step("subtitles", "subtitle.write", tier=OUTPUT)
_TRANSLATED = Step("subtitles_translated", "llm.write_translation", tier=OUTPUT)
for _provider in ("local", *PRESETS):
    _fixed = {"provider": _provider}
    capability("subtitle_translation", "llm", _provider,
               f"translate subtitles line by line ({_provider}); count and times kept; "
               f"subtitles.* (source) and subtitles.<lang>.*",
               _SOURCE, Step("translate", "llm.translate", _fixed, tier=OUTPUT), _TRANSLATED)
    capability("subtitle_proofreading", "llm", _provider,
               f"fix recognition errors line by line ({_provider}); times kept",
               Step("proofread", "llm.proofread", _fixed, tier=REFINE), _SOURCE)
    # the name YiVideo's own configs use: {"strategy": "llm_proofread", "provider": ...}
    capability("subtitle_refinement", "llm_proofread", _provider,
               f"fix recognition errors line by line ({_provider}); times kept",
               Step("proofread", "llm.proofread", _fixed, tier=REFINE), _SOURCE)
    capability("summary", "llm", _provider,
               f"a short summary and chapter titles with times ({_provider}); "
               f"summary.json, summary.md",
               Step("summary", "llm.summarize", _fixed, tier=OUTPUT))

_TRANSLATE = {"subtitle_generation": {"strategy": "asr", "provider": "faster_whisper",
                                      "model": "base"},
              "subtitle_translation": {"strategy": "llm", "provider": "local",
                                       "target_language": "en"}}
# video -> subtitles (ASR; subtitle_generation.strategy=ocr: the burnt-in ones) -> translated
recipe("translate", _TRANSLATE)
recipe("subtitles-translated", _TRANSLATE)  # the older name
# a subtitle file -> translated; the source file's events kept as they are
recipe("translate-subtitles", {"subtitle_translation": {
    "strategy": "llm", "provider": "local", "target_language": "en", "keep_segments": True}})
recipe("summarize", {"subtitle_generation": {"strategy": "asr", "provider": "faster_whisper",
                                             "model": "base"},
                     "summary": {"strategy": "llm", "provider": "local"}})
