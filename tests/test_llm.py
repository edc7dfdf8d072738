"""The llm service: the real local GGUF model on a few short lines, the OpenAI-compatible
provider through the real ``openai`` client against a local HTTP server (which answers
with the same local model, or with the faults under test), the wiring, and one workflow.

Model calls are few (about a second each on 2 cores). The lines were chosen because the
0.5B model translates them right at temperature 0 ("你好" -> "Hello", "谢谢你的帮助。" ->
"Thank you for your help.").
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import yivideo
from actors.llm import LLMService, ProofreadParams, ProviderError, TranslateParams
from yivideo.errors import ConfigError
from yivideo.llm_models import DEFAULT_LLM, available_llms, resolve_llm
from yivideo.nodes import NodeContext
from yivideo.recipes import named_recipes
from yivideo.settings import Settings
from yivideo.subtitles.answers import check_answer, rewrite_problem, script_problem, scripts_in
from yivideo.subtitles.formats import read_transcript
from yivideo.types import Segment, Transcript
from yivideo.workflow import compile_config

ZH = ["你好", "谢谢你的帮助。", "我不知道他在哪里。"]


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
    return TranslateParams(provider="openai", api_model="qwen-local",
                           api_key_env="TEST_LLM_API_KEY", threads=2, **kw)


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
    out = service.translate(ctx, _openai(price_input_per_mtok=1.0, price_output_per_mtok=2.0),
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
    assert ZH[1] in srv.bodies[0]["messages"][-1]["content"]
    assert srv.bodies[1]["messages"][-1]["content"] == ZH[0]
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
    assert plan.stages["subtitles"].upstream == {"translate"}
    assert plan.stages["subtitles"].params["keep_segments"] is True
    plan = compile_config(yivideo.build_request("subtitles-translated", "/v.mp4"))
    assert plan.stages["translate"].upstream == {"asr"}
    assert plan.stages["subtitles"].upstream == {"translate"}
    # YiVideo's own example config, proofreading with the local model
    plan = compile_config({"video_path": "/v.mp4", "workflow_config": {
        "subtitle_generation": {"strategy": "asr", "provider": "faster_whisper"},
        "subtitle_refinement": {"strategy": "llm_proofread", "provider": "local"}}})
    assert plan.stages["proofread"].upstream == {"asr"}
    assert plan.stages["subtitles"].upstream == {"proofread"}
    plan = compile_config({"video_path": "/v.mp4", "workflow_config": {
        "subtitle_generation": {}, "subtitle_proofreading": {"provider": "gemini"},
        "subtitle_translation": {"provider": "deepseek", "target_language": "ja"}}})
    assert plan.stages["translate"].upstream == {"proofread"}
    assert plan.stages["translate"].params["provider"] == "deepseek"
    assert plan.stages["proofread"].params["provider"] == "gemini"


def test_translate_subtitles_workflow_from_an_srt(ray_cluster, tmp_path):
    srt = tmp_path / "zh.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:02,500\n你好\n\n"
                   "2\n00:00:03,200 --> 00:00:05,000\n谢谢你的帮助。\n", encoding="utf-8")
    request = yivideo.build_request("translate-subtitles")
    request["inputs"] = {"subtitle_file": str(srt)}
    result = yivideo.run(request, out=tmp_path / "out")
    assert result.status == "succeeded", result.state["error"]
    out = read_transcript(tmp_path / "out" / "subtitles.srt")
    assert [(s.start, s.end) for s in out.segments] == [(1.0, 2.5), (3.2, 5.0)]
    assert "hello" in out.segments[0].text.lower()
    assert all("han" not in scripts_in(s.text) for s in out.segments)
    assert (tmp_path / "out" / "subtitles.vtt").is_file()
    report = json.loads((tmp_path / "out" / "translate.llm.json").read_text())
    assert report["requests"] >= 2 and report["failed_lines"] == []
