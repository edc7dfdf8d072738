"""The llm service: the real local GGUF model on a few short lines, the OpenAI-compatible
provider through the real ``openai`` client against a local HTTP server (which answers
with the same local model, or with the faults under test), the wiring, and one workflow.

Model calls are few (about a second each on 2 cores). The lines were chosen because the
0.5B model translates them right at temperature 0 ("你好" -> "Hello", "谢谢你的帮助。" ->
"Thank you for your help.").
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pysubs2
import pytest
import sacrebleu

import yivideo
from actors.llm import (
    LLMService,
    ProofreadParams,
    ProviderError,
    SummaryParams,
    TranslateParams,
    WriteTranslationParams,
)
from yivideo.errors import ConfigError
from yivideo.llm_models import DEFAULT_LLM, available_llms, resolve_llm
from yivideo.nodes import NodeContext
from yivideo.recipes import named_recipes
from yivideo.security.auth import new_api_key
from yivideo.settings import Settings
from yivideo.subtitles import SegmentationRules
from yivideo.subtitles.answers import check_answer, rewrite_problem, script_problem, scripts_in
from yivideo.subtitles.formats import read_transcript
from yivideo.subtitles.layout import text_width
from yivideo.testmedia import SENTENCES_ZH, SENTENCES_ZH_EN, make_video
from yivideo.types import Segment, Transcript
from yivideo.workflow import compile_config

ZH = ["你好", "谢谢你的帮助。", "我不知道他在哪里。"]
#: Burnt-in lines of the translate test, and a system prompt for the chat endpoint
TEST_LINES = 8
SYSTEM_EN = "Translate the user's text into English. Reply with the translation only."
#: YiVideo's own example config, its proofreading on a hosted provider
SEED_CONFIG = {"subtitle_generation": {"strategy": "asr", "provider": "faster_whisper"},
               "subtitle_refinement": {"strategy": "llm_proofread", "provider": "gemini"}}


def _transcript(lines: list[str], language: str = "zh") -> Transcript:
    # odd start times and lengths, so that a rounded or re-segmented time shows
    return Transcript(language, 1.0, 3.0 * len(lines),
                      [Segment(0.37 + 3.0 * i, 2.11 + 3.0 * i, t) for i, t in enumerate(lines)])


@pytest.fixture(scope="module")
def service() -> LLMService:
    return LLMService(Settings())


def _report(ctx: NodeContext) -> dict[str, Any]:
    (name,) = [n for n in ctx.artifacts if n.endswith(".llm.json")]
    return json.loads(ctx.artifacts[name])


# ---- answer checks, no model


def test_scripts_and_answer_checks():
    assert scripts_in("Hello 你好 カ") == {"latin", "han", "kana"}
    assert script_problem("Hello", "你好", "en") is None
    assert script_problem("Hello 你好", "你好", "en") == "source_script_left"
    assert script_problem("你好", "你好", "en") == "source_script_left"
    assert script_problem("Привет", "你好", "en") == "wrong_script"
    assert script_problem("Hello", "Hello", "zh") == "wrong_script"  # English left as is
    assert script_problem("你好 OK", "Hello OK", "zh") is None
    assert script_problem("123!", "123!", "en") is None  # nothing to translate
    assert check_answer("", "你好", [], "en", 2, 25) == "empty"
    assert check_answer("Hello\nThank you", "你好", [], "en", 2, 25) == "extra_lines"
    assert check_answer("Hello. Thank you for help", "Hello.", ["Thank you for help"], "en",
                        2, 25) == "merged"
    assert check_answer("word " * 40, "你好", [], "en", 1, 25) == "too_long"
    assert check_answer("Hello", "你好", ["谢谢"], "en", 2, 25) is None
    # proofreading may fix words that sound alike, never rephrase
    assert rewrite_problem("They're going to read it.", "Their going to red it.") is None
    assert rewrite_problem("Thanks for your assistance.", "Thanks for your help.") == "rewritten"
    assert rewrite_problem("我们再见面吧", "我们在见面吧") is None
    assert rewrite_problem("今天天气非常好呀", "今天天气很好") == "rewritten"


def test_models_are_named_and_assembled_once(service, tmp_path):
    models = service.settings.models
    assert DEFAULT_LLM in available_llms(models)
    path = resolve_llm(DEFAULT_LLM, models)
    assert path.read_bytes()[:4] == b"GGUF" and path.stat().st_size > 490_000_000
    assert resolve_llm(DEFAULT_LLM, models).stat().st_mtime_ns == path.stat().st_mtime_ns
    with pytest.raises(Exception, match="is a path"):
        resolve_llm(str(path), models)
    with pytest.raises(ConfigError):  # a path never reaches llama.cpp from a config
        compile_config({"inputs": {"subtitle_file": "/a.srt"}, "workflow_config": {
            "subtitle_translation": {"provider": "local", "model": str(path)}}})


# ---- the real local model


def test_translation_keeps_count_and_times_and_leaves_no_chinese(service):
    source = _transcript(ZH)
    ctx = NodeContext(stage="translate")
    out = service.translate(ctx, TranslateParams(target_language="en", threads=2),
                            source)["transcript"]
    assert [(s.start, s.end) for s in out.segments] == [(s.start, s.end)
                                                        for s in source.segments]
    texts = [s.text for s in out.segments]
    assert all(t and "han" not in scripts_in(t) for t in texts), texts
    assert "hello" in texts[0].lower(), texts  # the semantic check
    assert "thank" in texts[1].lower(), texts
    assert out.language == "en" and not any(s.flags for s in out.segments)
    report = _report(ctx)
    assert report["provider"] == "local" and report["requests"] >= 3
    assert report["prompt_tokens"] > 0 and report["completion_tokens"] > 0
    assert report["failed_lines"] == []


def test_proofreading_keeps_language_count_and_times(service):
    source = _transcript(["I red the book yesterday.", "Thank you for your help."], "en")
    ctx = NodeContext(stage="proofread")
    out = service.proofread(ctx, ProofreadParams(threads=2), source)["transcript"]
    assert [(s.start, s.end) for s in out.segments] == [(s.start, s.end)
                                                        for s in source.segments]
    assert out.segments[0].text == "I read the book yesterday."  # the one fix
    assert out.segments[1].text == "Thank you for your help."  # correct text unchanged
    assert [r["source"] for r in _report(ctx)["lines"]] == [s.text for s in source.segments]


# ---- an OpenAI-compatible server here: the local model behind it, or faults


class _Server:
    """Speaks POST /v1/chat/completions; ``answer(body)`` returns (status, JSON)."""

    def __init__(self, answer: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]):
        self.answer = answer
        self.bodies: list[dict[str, Any]] = []
        self.keys: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.bodies.append(body)
                outer.keys.append(self.headers.get("authorization", ""))
                status, data = outer.answer(body) if self.path.endswith(
                    "/chat/completions") else (404, {"error": {"message": "no such path"}})
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                if status == 429:
                    self.send_header("retry-after", "0.2")
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"


@pytest.fixture
def server(service, monkeypatch) -> Iterator[Callable[..., _Server]]:
    """A server factory; the ``openai`` provider's base URL and key point at it."""
    made: list[_Server] = []

    def make(answer: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]) -> _Server:
        srv = _Server(answer)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url)
        made.append(srv)
        return srv

    monkeypatch.setenv("TEST_LLM_API_KEY", "sk-test-123")
    yield make
    for srv in made:
        srv.http.shutdown()


def _local_answer(service: LLMService) -> Callable[[dict[str, Any]], tuple[int, dict]]:
    model = service.local_model(TranslateParams(threads=2))

    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with service._local_lock:
            return 200, model.create_chat_completion(
                body["messages"], temperature=body.get("temperature", 0),
                max_tokens=body.get("max_tokens", 64))
    return answer


def _reply(text: str) -> tuple[int, dict[str, Any]]:
    return 200, {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": text}}],
                 "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}


def _openai(**kw: Any) -> TranslateParams:
    return TranslateParams(**{"provider": "openai", "api_model": "qwen-local",
                              "api_key_env": "TEST_LLM_API_KEY", "threads": 2, **kw})


def test_openai_provider_retries_a_429_then_succeeds(service, server):
    local = _local_answer(service)
    calls = []

    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        calls.append(body)
        if len(calls) == 1:
            return 429, {"error": {"message": "slow down", "type": "rate_limit"}}
        return local(body)

    srv = server(answer)
    ctx = NodeContext(stage="translate")
    out = service.translate(ctx, _openai(price_input_per_1k=1.0, price_output_per_1k=2.0),
                            _transcript(ZH[:1]))["transcript"]
    assert "hello" in out.segments[0].text.lower()
    assert len(srv.bodies) == 2 and srv.bodies[0]["model"] == "qwen-local"
    assert srv.keys == ["Bearer sk-test-123"] * 2  # the key from the named variable
    report = _report(ctx)
    assert report["provider"] == "openai" and report["requests"] == 1
    assert report["prompt_tokens"] > 0 and report["cost"] > 0


def test_openai_provider_failing_for_ever_fails_the_node_clearly(service, server):
    srv = server(lambda body: (500, {"error": {"message": "boom"}}))
    with pytest.raises(ProviderError, match=r"answered 500 after 1 retries"):
        service.translate(NodeContext(), _openai(max_retries=1), _transcript(ZH[:1]))
    assert len(srv.bodies) == 2  # one try and one retry, then the stage fails


def test_a_bad_answer_is_retried_once_then_the_source_is_kept_and_flagged(service, server):
    answers = iter(["你好", "", "Thank you."])  # Chinese left, then empty; then fine
    srv = server(lambda body: _reply(next(answers)))
    ctx = NodeContext(stage="translate")
    out = service.translate(ctx, _openai(context_lines=1), _transcript(ZH[:2]))["transcript"]
    assert [s.text for s in out.segments] == [ZH[0], "Thank you."]
    assert out.segments[0].flags == ["llm_translation_failed"] and out.segments[1].flags == []
    assert len(srv.bodies) == 3
    # the first try had the neighbour as context, the retry asked for the line alone
    assert ZH[1] in srv.bodies[0]["messages"][0]["content"]
    assert ZH[1] not in srv.bodies[1]["messages"][0]["content"]
    assert [m["content"] for m in srv.bodies[1]["messages"][1:]] == [ZH[0]]
    report = _report(ctx)
    assert report["failed_lines"] == [0]
    assert [p["problem"] for p in report["lines"][0]["problems"]] == ["source_script_left",
                                                                      "empty"]


def test_a_hosted_provider_without_its_key_fails_clearly(service, monkeypatch):
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="DEEPSEEK_API_KEY"):
        service.translate(NodeContext(), TranslateParams(provider="deepseek"),
                          _transcript(ZH[:1]))
    with pytest.raises(Exception, match="api_key_env"):  # a variable name, never a key
        TranslateParams(provider="deepseek", api_key_env="sk-abc123")


# ---- wiring and a workflow


def test_recipes_wire_translation_after_the_transcript_source():
    plan = compile_config({"inputs": {"subtitle_file": "/a.srt"},
                           "workflow_config": named_recipes()["translate-subtitles"]})
    assert plan.stages["translate"].upstream == {"transcript"}
    assert plan.stages["subtitles"].upstream == {"transcript"}  # the source, as it was
    assert plan.stages["subtitles"].params["keep_segments"] is True
    assert plan.stages["subtitles_translated"].upstream == {"translate"}
    # `translate`: ASR by default, burnt-in subtitles with the OCR strategy; the source's
    # files come from the source, the translated ones from the translation
    for extra, source in (([], "asr"), (["subtitle_generation.strategy=ocr"], "ocr")):
        plan = compile_config(yivideo.build_request("translate", "/v.mp4", extra))
        assert plan.stages["translate"].upstream == {source}
        assert plan.stages["subtitles"].upstream == {source}
        assert plan.stages["subtitles_translated"].upstream == {"translate"}
    assert named_recipes()["subtitles-translated"] == named_recipes()["translate"]
    # YiVideo's own example config, proofreading with the local model
    plan = compile_config({"video_path": "/v.mp4", "workflow_config": SEED_CONFIG})
    assert plan.stages["proofread"].upstream == {"asr"}
    assert plan.stages["subtitles"].upstream == {"proofread"}
    plan = compile_config({"video_path": "/v.mp4", "workflow_config": {
        "subtitle_generation": {}, "subtitle_proofreading": {"provider": "gemini"},
        "subtitle_translation": {"provider": "deepseek", "target_language": "ja"},
        "summary": {"provider": "local"}}})
    assert plan.stages["translate"].upstream == {"proofread"}
    assert plan.stages["translate"].params["provider"] == "deepseek"
    assert plan.stages["proofread"].params["provider"] == "gemini"
    assert plan.stages["summary"].upstream == {"translate"}  # summarised in the target


def test_translate_subtitles_workflow_from_an_srt(ray_cluster, tmp_path):
    srt = tmp_path / "zh.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:02,500\n你好\n\n"
                   "2\n00:00:03,200 --> 00:00:05,000\n谢谢你的帮助。\n", encoding="utf-8")
    request = yivideo.build_request("translate-subtitles", overrides={
        "subtitle_translation.bilingual": True})
    request["inputs"] = {"subtitle_file": str(srt)}
    result = yivideo.run(request, out=tmp_path / "out")
    assert result.status == "succeeded", result.state["error"]
    source = read_transcript(tmp_path / "out" / "subtitles.srt")
    assert [s.text for s in source.segments] == ["你好", "谢谢你的帮助。"]
    out = pysubs2.load(str(tmp_path / "out" / "subtitles.en.srt"))
    assert [(e.start, e.end) for e in out] == [(1000, 2500), (3200, 5000)]
    # bilingual: the source line above its translation
    assert [e.text.split("\\N")[0] for e in out] == ["你好", "谢谢你的帮助。"]
    english = [e.text.split("\\N", 1)[1] for e in out]
    assert "hello" in english[0].lower()
    assert all("han" not in scripts_in(t) for t in english)
    assert (tmp_path / "out" / "subtitles.en.vtt").is_file()
    report = json.loads((tmp_path / "out" / "translate.llm.json").read_text())
    assert report["requests"] >= 2 and report["failed_lines"] == []


# ---- translated subtitle files, settings, summary (no Ray)


def test_translated_events_keep_count_and_times_and_follow_the_layout(service):
    source = _transcript(["今天天气很好。", "好", "我们去公园散步吧。"])
    long = "We are going to take a long walk in the park if the weather stays nice"
    english = replace(source, language="en", segments=[
        replace(source.segments[0], text="The weather is nice today."),
        replace(source.segments[1], text="OK"), replace(source.segments[2], text=long)])
    rules = SegmentationRules()
    ctx = NodeContext(stage="subtitles_translated")
    params = WriteTranslationParams(target_language="en", formats=["srt", "json"])
    events = service.write_translation(ctx, params, english, source)["events"]
    assert set(ctx.artifacts) == {"subtitles.en.srt", "subtitles.en.json"}
    assert [(e.start, e.end) for e in events] == [(s.start, s.end) for s in source.segments]
    assert events[2].lines != [long] and len(events[2].lines) <= rules.max_lines
    assert all(text_width(line, rules) <= rules.max_chars_per_line for line in events[2].lines)
    assert " ".join(events[2].lines) == long  # laid out again, no word lost or added
    bilingual = service.write_translation(
        NodeContext(), params.model_copy(update={"bilingual": True}), english, source)["events"]
    assert [e.lines[0] for e in bilingual] == [s.text for s in source.segments]
    assert [e.lines[1:] for e in bilingual] == [e.lines for e in events]
    with pytest.raises(ConfigError, match="bilingual"):
        service.write_translation(NodeContext(), params.model_copy(update={"bilingual": True}),
                                  english, None)


def test_llm_settings_hold_the_presets_and_the_configs_overrides(monkeypatch):
    default = Settings().llm.providers
    assert set(default) == {"openai", "deepseek", "gemini", "zhipu", "ollama", "vllm"}
    assert default["gemini"].key_env == "GEMINI_API_KEY"
    assert default["deepseek"].price_input_per_1k > 0
    settings = Settings(llm={"providers": {"deepseek": {"base_url": "http://10.0.0.5/v1",
                                                        "price_input_per_1k": 0.5}}})
    deepseek = settings.llm.providers["deepseek"]
    assert (deepseek.base_url, deepseek.key_env, deepseek.price_input_per_1k) == (
        "http://10.0.0.5/v1", "DEEPSEEK_API_KEY", 0.5)  # the rest stays the preset's
    assert "10.0.0.5" in LLMService.identity(settings, {"provider": "deepseek"})
    with pytest.raises(ValueError, match="unknown provider.*claude"):
        Settings(llm={"providers": {"claude": {"base_url": "http://x/v1"}}})


def test_summary_has_ordered_chapters_within_the_media(service):
    lines = ["今天我们去公园散步。", "公园里有很多花。", "孩子们在踢足球。",
             "中午我们在饭店吃饭。", "这家饭店的菜很好吃。", "晚上我们回家看电影。"]
    transcript = Transcript("zh", 1.0, 95.0, [Segment(2.0 + 15.0 * i, 8.5 + 15.0 * i, t)
                                              for i, t in enumerate(lines)])
    ctx = NodeContext(stage="summary")
    service.summarize(ctx, SummaryParams(language="en", max_chapters=2, max_tokens=60,
                                         threads=2), transcript)
    result = json.loads(ctx.artifacts["summary.json"])
    assert result["language"] == "en" and result["summary"]
    assert "han" not in scripts_in(result["summary"])
    chapters = result["chapters"]
    assert len(chapters) == 2 and all(c["title"] for c in chapters)
    starts = [c["start"] for c in chapters]
    assert starts == sorted(starts) and len(set(starts)) == 2
    assert all(0 <= c["start"] < c["end"] <= transcript.duration for c in chapters)
    assert [c["end"] for c in chapters[:-1]] == starts[1:]  # no gap, no overlap
    markdown = ctx.artifacts["summary.md"].decode()
    assert markdown.startswith("# Summary") and "0:00 " in markdown
    assert all(c["title"] in markdown for c in chapters)


# ---- on Ray: burnt-in Chinese -> English, the example config, the chat endpoint


def test_translate_recipe_reads_burnt_in_chinese_into_english(ray_cluster, tmp_path):
    """OCR of generated burnt-in Chinese subtitles whose English is known -> `translate`."""
    truth = make_video(tmp_path / "zh.mp4", lang="zh", sentences=SENTENCES_ZH[:TEST_LINES],
                       speech=False)
    request = yivideo.build_request("translate", truth.video,
                                    ["subtitle_generation.strategy=ocr"])
    result = yivideo.run(request, out=tmp_path / "out")
    assert result.status == "succeeded", result.state["error"]
    out = tmp_path / "out"
    source = pysubs2.load(str(out / "subtitles.srt"))
    english = pysubs2.load(str(out / "subtitles.en.srt"))
    assert len(source) == len(truth.subtitles) == len(english)
    assert [(e.start, e.end) for e in english] == [(e.start, e.end) for e in source]
    texts = [e.plaintext.replace("\n", " ") for e in english]
    assert not any(re.search(r"[\u3400-\u9fff]", t) for t in texts), texts
    chrf = sacrebleu.corpus_chrf(texts, [SENTENCES_ZH_EN[:TEST_LINES]]).score
    assert chrf >= 45, (chrf, texts)
    assert all((out / f"subtitles.en.{fmt}").is_file() for fmt in ("vtt", "ass", "json"))


def test_the_example_config_fails_clearly_without_a_key_and_runs_locally(
        ray_cluster, sample, tmp_path, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    result = yivideo.run({"video_path": sample.video, "workflow_config": SEED_CONFIG},
                         out=tmp_path / "gemini")
    assert result.status == "failed"
    error = result.state["error"]
    assert error["stage"] == "proofread" and "GEMINI_API_KEY" in error["message"]
    local = copy.deepcopy(SEED_CONFIG)
    local["subtitle_refinement"]["provider"] = "local"
    result = yivideo.run({"video_path": sample.video, "workflow_config": local},
                         out=tmp_path / "local")
    assert result.status == "succeeded", result.state["error"]
    out = read_transcript(tmp_path / "local" / "subtitles.srt")
    assert len(out.segments) >= len(sample.subtitles) // 2
    report = json.loads((tmp_path / "local" / "proofread.llm.json").read_text())
    assert report["provider"] == "local" and report["requests"] >= 1


@pytest.fixture(scope="module")
def own_endpoint(ray_cluster) -> Iterator[tuple[str, str]]:
    """The project's own ingress with auth on: (its /v1 URL, a valid API key)."""
    from ray import serve

    from serve_app import build_app, start

    key, entry = new_api_key("translator")
    start()  # Serve as `yivideo serve` starts it: HAProxy in front
    serve.run(build_app({"auth": {"enabled": True, "api_keys": [entry.model_dump()]}}),
              name="llm-openai", route_prefix="/llm-openai")
    yield "http://127.0.0.1:8000/llm-openai/v1", key
    serve.delete("llm-openai")


def test_chat_completions_endpoint_answers_the_openai_client(own_endpoint):
    from openai import OpenAI

    url, key = own_endpoint
    client = OpenAI(base_url=url, api_key=key, max_retries=0, timeout=120)
    out = client.chat.completions.create(model=DEFAULT_LLM, max_tokens=16, temperature=0,
                                         messages=[{"role": "system", "content": SYSTEM_EN},
                                                   {"role": "user", "content": "你好"}])
    assert "hello" in out.choices[0].message.content.lower()
    assert out.object == "chat.completion" and out.choices[0].finish_reason in ("stop",
                                                                                 "length")
    assert out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0
    with pytest.raises(Exception, match="401"):  # not a key of this cluster
        OpenAI(base_url=url, api_key="none", max_retries=0).chat.completions.create(
            model=DEFAULT_LLM, messages=[{"role": "user", "content": "你好"}])


def test_openai_provider_against_the_projects_own_endpoint(service, own_endpoint,
                                                           monkeypatch):
    url, key = own_endpoint
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.setenv("TEST_LLM_API_KEY", key)
    params = _openai(api_model=DEFAULT_LLM, max_retries=1)
    ctx = NodeContext(stage="translate")
    out = service.translate(ctx, params, _transcript(ZH[:1]))["transcript"]
    assert "hello" in out.segments[0].text.lower()
    assert _report(ctx)["prompt_tokens"] > 0  # the endpoint's own usage
    monkeypatch.setenv("TEST_LLM_API_KEY", "yv_wrong-key")
    with pytest.raises(ProviderError, match=r"refused the key in TEST_LLM_API_KEY \(401\)"):
        service.translate(NodeContext(), params, _transcript(ZH[:1]))
