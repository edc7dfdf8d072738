"""Config validation and plan compilation: every error names its place."""

from __future__ import annotations

import json

import pytest

from yivideo.client import build_request
from yivideo.errors import ConfigError
from yivideo.workflow import compile_config, load_config_text


def explicit(**stages):
    return {"inputs": {"video": "/v.mp4"}, "stages": stages}


LITERALS = {"video": "/v.mp4", "audio_file": "/a.wav", "subtitle_file": "/s.srt",
            "text": "hello"}
AUDIO = {"node": "ffmpeg.extract_audio", "inputs": {"video": "input.video"}}


def error_of(config) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        compile_config(config)
    return info.value


def test_valid_explicit_plan_orders_stages_and_binds_refs():
    plan = compile_config(explicit(
        asr={"node": "asr.transcribe", "inputs": {"audio": "audio.audio"},
             "params": {"beam_size": 2}},
        audio=AUDIO,
    ))
    assert plan.order.index("audio") < plan.order.index("asr")
    assert plan.stages["asr"].upstream == {"audio"}
    assert plan.stages["asr"].params["beam_size"] == 2
    assert plan.stages["audio"].bindings == {"video": "/v.mp4"}


def test_short_reference_to_a_single_output_stage():
    plan = compile_config(explicit(
        audio=AUDIO, asr={"node": "asr.transcribe", "inputs": {"audio": "audio"}}))
    assert plan.stages["asr"].bindings["audio"].output == "audio"


@pytest.mark.parametrize("config, loc, words", [
    (explicit(audio=AUDIO, asr={"node": "asr.transcribe", "inputs": {"audio": "audio"},
                                "params": {"beam_size": "five"}}),
     "stages.asr.params.beam_size", "expected int"),
    (explicit(audio={**AUDIO, "params": {"colour": 1}}),
     "stages.audio.params.colour", "unknown field"),
    (explicit(x={"node": "ffmpeg.nope", "inputs": {}}), "stages.x.node", "unknown node"),
    (explicit(asr={"node": "asr.transcribe"}), "stages.asr.inputs.audio", "required input"),
    (explicit(asr={"node": "asr.transcribe", "inputs": {"audio": "ghost.audio"}}),
     "stages.asr.inputs.audio", "unknown stage 'ghost'"),
    (explicit(audio=AUDIO, asr={"node": "asr.transcribe", "inputs": {"audio": "audio.x"}}),
     "stages.asr.inputs.audio", "no output 'x'"),
    (explicit(probe={"node": "ffmpeg.probe", "inputs": {"video": "input.film"}}),
     "stages.probe.inputs.video", "unknown workflow input 'film'"),
    (explicit(audio=AUDIO, asr={"node": "asr.transcribe", "inputs": {"audio": "audio",
                                                                       "extra": "audio"}}),
     "stages.asr.inputs.extra", "unknown input"),
    (explicit(probe={"node": "ffmpeg.probe", "inputs": {"video": "input.video"}},
              asr={"node": "asr.transcribe", "inputs": {"audio": "probe.info"}}),
     "stages.asr.inputs.audio", "expected 'audio'"),
    (explicit(audio={**AUDIO, "bogus": 1}), "stages.audio.bogus", "unknown field"),
])
def test_explicit_errors_name_the_place(config, loc, words):
    err = error_of(config)
    assert err.details[0]["loc"] == loc, err.details
    assert words in err.details[0]["msg"]
    assert err.message.startswith(loc)


def test_cycle_is_reported():
    transcript = {"language": "en", "language_probability": 1.0, "duration": 1.0}
    config = {"inputs": {"t": transcript}, "stages": {
        "a": {"node": "subtitle.mux", "inputs": {"video": "b.video", "events": "c.events"}},
        "b": {"node": "subtitle.mux", "inputs": {"video": "a.video", "events": "c.events"}},
        "c": {"node": "subtitle.write", "inputs": {"transcript": "input.t"}},
    }}
    err = error_of(config)
    assert err.details[0]["loc"] == "stages"
    assert "cycle" in err.message and "a" in err.message and "b" in err.message


def test_all_problems_are_listed_together():
    err = error_of(explicit(
        a={"node": "ffmpeg.extract_audio", "params": {"sample_rate": "x"}},
        b={"node": "nope.nope"},
    ))
    locs = {d["loc"] for d in err.details}
    assert {"stages.a.params.sample_rate", "stages.a.inputs.video", "stages.b.node"} <= locs


@pytest.mark.parametrize("workflow_config, loc, words", [
    ({"teleport": {}}, "workflow_config.teleport", "unknown capability"),
    ({"subtitle_generation": {"strategy": "telepathy", "provider": "faster_whisper"}},
     "workflow_config.subtitle_generation.strategy", "unknown strategy 'telepathy'"),
    ({"subtitle_generation": {"strategy": "asr", "provider": "whisperx"}},
     "workflow_config.subtitle_generation.provider", "unknown provider 'whisperx'"),
    ({"subtitle_generation": {"strategy": "asr", "provider": "faster_whisper",
                              "beam_size": "wide"}},
     "workflow_config.subtitle_generation.beam_size", "expected int"),
    ({"audio_extraction": "yes"}, "workflow_config.audio_extraction", "expected a mapping"),
])
def test_recipe_errors_point_at_the_request(workflow_config, loc, words):
    err = error_of({"video_path": "/v.mp4", "workflow_config": workflow_config})
    assert err.details[0]["loc"] == loc, err.details
    assert words in err.details[0]["msg"]


def test_recipe_missing_video_path():
    err = error_of({"workflow_config": {"audio_extraction": {}}})
    assert err.details[0]["loc"] == "video_path"


def test_recipe_expands_into_shared_stages():
    plan = compile_config({"video_path": "/v.mp4", "workflow_config": {
        "subtitle_generation": {"strategy": "asr", "provider": "faster_whisper",
                                "model": "tiny.en", "formats": ["srt"]},
        "audio_split": {"strategy": "silence", "provider": "ffmpeg", "window_s": 20},
    }})
    assert set(plan.stages) == {"probe", "audio", "asr", "subtitles", "chunks"}
    assert plan.stages["chunks"].upstream == {"audio"} == plan.stages["asr"].upstream
    assert plan.stages["subtitles"].params["formats"] == ["srt"]
    assert plan.stages["chunks"].params["window_s"] == 20


def test_yaml_and_json_give_the_same_plan():
    yml = """
inputs: {video: /v.mp4}
stages:
  audio: {node: ffmpeg.extract_audio, inputs: {video: input.video}}
"""
    js = '{"inputs": {"video": "/v.mp4"}, "stages": {"audio": ' \
         '{"node": "ffmpeg.extract_audio", "inputs": {"video": "input.video"}}}}'
    assert compile_config(load_config_text(yml)).config == \
        compile_config(load_config_text(js)).config


def test_broken_text_is_a_config_error():
    with pytest.raises(ConfigError, match="not valid JSON or YAML"):
        load_config_text("stages: [unclosed")
    with pytest.raises(ConfigError, match="mapping"):
        load_config_text("- a list")


def test_build_request_overrides(tmp_path):
    req = build_request("subtitles", tmp_path / "v.mp4",
                        ["subtitle_generation.beam_size=3", "audio_extraction=true"])
    assert req["workflow_config"]["subtitle_generation"]["beam_size"] == 3
    assert req["workflow_config"]["audio_extraction"] == {}
    assert req["video_path"] == str((tmp_path / "v.mp4").resolve())
    compile_config(req)
    off = build_request("audio", "v.mp4", ["audio_split=false"])
    assert "audio_split" not in off["workflow_config"]
    with pytest.raises(ConfigError, match="key=value"):
        build_request("audio", "v.mp4", ["nonsense"])
    with pytest.raises(ConfigError, match="neither a recipe"):
        build_request("no-such-recipe", "v.mp4")


def test_options_are_validated_in_both_forms():
    plan = compile_config({"video_path": "/v.mp4", "workflow_config": {"audio_extraction": {}},
                           "options": {"cache": False}})
    assert plan.options.cache is False
    err = error_of({"inputs": {"video": "/v"}, "stages": {"a": AUDIO}, "options": {"cach": 1}})
    assert err.details[0]["loc"] == "options.cach"
    err = error_of({"video_path": "/v.mp4", "workflow_config": {"audio_extraction": {}},
                    "options": {"cache": "maybe"}})
    assert err.details[0]["loc"] == "options.cache"


@pytest.mark.parametrize("order", [("subtitle_generation", "speaker_diarization"),
                                   ("speaker_diarization", "subtitle_generation")])
def test_diarization_joins_subtitles_in_either_order(order):
    caps = {"subtitle_generation": {}, "speaker_diarization": {"num_speakers": 2}}
    plan = compile_config({"video_path": "/v.mp4",
                           "workflow_config": {k: caps[k] for k in order}})
    assert plan.stages["speakers"].upstream == {"asr", "diarization"}
    assert plan.stages["subtitles"].upstream == {"speakers"}
    assert plan.stages["diarization"].params["num_speakers"] == 2
    via_set = build_request("subtitles", "/v.mp4", ["speaker_diarization=true"])
    assert "speakers" in compile_config(via_set).stages


def test_every_recipe_compiles_and_the_catalogue_is_json():
    from yivideo import catalogue

    described = catalogue.describe()
    json.dumps(described)
    assert {s["name"] for s in described["services"]} >= {"asr", "ocr", "diarize", "ffmpeg"}
    for name in described["recipes"]:  # every kind of input given: each takes what it needs
        request = {**build_request(name), "inputs": dict(LITERALS)}
        assert compile_config(request).stages


# ---------------------------------------------------------------- model names, never paths


def _model_params() -> list[tuple[str, str]]:
    """Every model-selecting param of every node: a new service is covered by itself."""
    from yivideo.nodes import all_nodes

    return [(spec.name, param) for spec in all_nodes() for param in spec.model_params]


MODEL_PARAMS = _model_params()
MODEL_PATHS = ["/tmp/uploads/0a1b/4f3e/config.yaml", "../models/evil", "~/evil", "./evil",
               "uploads/evil", "..\\evil", "evil\x00"]


def one_stage(node: str, **params) -> dict:
    """A workflow running ``node``: inputs given as files, or made from them by other nodes."""
    from yivideo.nodes import all_nodes, get_node

    stages: dict = {}

    def wire(spec) -> dict:
        """Bindings for ``spec``'s inputs, adding a stage that makes each one not given."""
        inputs = {}
        for key, dtype in spec.inputs.items():
            if dtype in LITERALS:
                inputs[key] = f"input.{dtype}"
            elif key not in spec.optional_inputs:
                maker = next(n for n in all_nodes() if dtype in n.outputs.values()
                             and dtype not in n.inputs.values())
                stage = maker.name.replace(".", "_")
                if stage not in stages:
                    stages[stage] = {"node": maker.name, "inputs": wire(maker)}
                out = next(o for o, t in maker.outputs.items() if t == dtype)
                inputs[key] = f"{stage}.{out}"
        return inputs

    stages["s"] = {"node": node, "params": params, "inputs": wire(get_node(node))}
    return {"inputs": LITERALS, "stages": stages}


def test_the_catalogue_knows_every_model_param():
    assert {("asr.transcribe", "model"), ("diarize.speakers", "pipeline"),
            ("ocr.detect_band", "model"), ("ocr.extract_subtitles", "model")} <= set(MODEL_PARAMS)


@pytest.mark.parametrize("path", MODEL_PATHS)
@pytest.mark.parametrize("node, param", MODEL_PARAMS)
def test_a_model_param_refuses_paths(node, param, path):
    err = error_of(one_stage(node, **{param: path}))
    assert err.details[0]["loc"] == f"stages.s.params.{param}"
    assert "by path" in err.details[0]["msg"] or "not a valid" in err.details[0]["msg"]


@pytest.mark.parametrize("node, param", MODEL_PARAMS)
def test_only_a_trusted_local_caller_may_give_a_model_path(node, param):
    config = one_stage(node, **{param: "/srv/models/mine"})
    assert compile_config(config, local_paths=True).stages["s"].params[param] == "/srv/models/mine"


@pytest.mark.parametrize("node, param", MODEL_PARAMS)
def test_an_unknown_model_name_lists_the_available_ones(node, param, tmp_path):
    from yivideo.nodes import get_node
    from yivideo.settings import ModelSettings

    models = ModelSettings(model_dirs=[tmp_path], cache_dir=tmp_path / "cache")
    with pytest.raises(ConfigError) as info:
        compile_config(one_stage(node, **{param: "no-such-model"}), models=models)
    detail = info.value.details[0]
    available = sorted(get_node(node).model_params[param].available(models))
    assert detail["loc"] == f"stages.s.params.{param}" and detail["available"] == available
    assert "no-such-model" in detail["msg"] and "available: " in detail["msg"]


def test_a_recipe_model_path_is_refused_at_the_capability():
    request = build_request("subtitles", "/v.mp4", ["subtitle_generation.model=/tmp/m"])
    err = error_of(request)
    assert err.details[0]["loc"] == "workflow_config.subtitle_generation.model"


def test_the_cli_exits_2_on_a_model_path_unless_the_settings_allow_it(tmp_path, monkeypatch):
    from yivideo import cli
    from yivideo.settings import get_settings

    config = tmp_path / "flow.json"
    config.write_text(json.dumps(one_stage("asr.transcribe", model=str(tmp_path))))
    assert cli.main(["run", str(config)]) == 2
    monkeypatch.setenv("YIVIDEO_MODELS__ALLOW_LOCAL_PATHS", "true")
    get_settings.cache_clear()
    try:
        from yivideo.client import validate_request

        validate_request(json.loads(config.read_text()))  # the operator allowed it
    finally:
        get_settings.cache_clear()


# ---------------------------------------------------------------- typed inputs and wiring


def test_recipe_inputs_are_typed_and_capabilities_are_wired_by_type():
    plan = compile_config({"inputs": {"audio_file": "/a.wav"}, "workflow_config": {
        "speaker_diarization": {}, "subtitle_generation": {"beam_size": 2}}})
    assert set(plan.stages) == {"audio", "asr", "diarization", "speakers", "subtitles"}
    assert plan.stages["audio"].node.name == "ffmpeg.decode_audio"  # no video: no probe
    assert plan.stages["asr"].upstream == {"audio"} == plan.stages["diarization"].upstream
    assert plan.stages["asr"].params["beam_size"] == 2
    assert plan.input_types == {"audio_file": "audio_file"}


def test_a_capability_missing_its_input_type_says_what_it_needs():
    err = error_of({"inputs": {"subtitle_file": "/s.srt"},
                    "workflow_config": {"subtitle_generation": {}}})
    assert err.details[0]["loc"] == "workflow_config.subtitle_generation"
    assert "needs a 'audio'" in err.message and "have: subtitle_file" in err.message


@pytest.mark.parametrize("request_, loc, words", [
    ({"inputs": {"teleport": "x"}, "workflow_config": {"audio_extraction": {}}},
     "inputs.teleport", "unknown data type"),
    ({"inputs": {"audio": "/a.wav"}, "workflow_config": {"audio_extraction": {}}},
     "inputs.audio", "cannot be given as a workflow input"),
    ({"video_path": "/v.mp4", "workflow_config": {"subtitle_generation": {"bogus": 1}}},
     "workflow_config.subtitle_generation.bogus", "unknown field"),
])
def test_recipe_input_and_param_errors_name_the_field(request_, loc, words):
    err = error_of(request_)
    assert err.details[0]["loc"] == loc and words in err.details[0]["msg"], err.details


def test_literal_inputs_are_checked_against_their_type():
    err = error_of({"inputs": {"video": "/v.mp4", "a": [1, 2]}, "stages": {
        "asr": {"node": "asr.transcribe", "inputs": {"audio": "input.a"}}}})
    assert err.details[0]["loc"] == "stages.asr.inputs.audio"
    assert "cannot be given as a workflow input" in err.details[0]["msg"]
    err = error_of({"inputs": {"t": {"language": "en"}}, "stages": {
        "w": {"node": "subtitle.write", "inputs": {"transcript": "input.t"}}}})
    assert err.details[0]["loc"] == "stages.w.inputs.transcript"
    assert "not a valid 'transcript'" in err.details[0]["msg"]
    transcript = {"language": "en", "language_probability": 1.0, "duration": 2.0,
                  "segments": [{"start": 0.0, "end": 1.0, "text": "hi"}]}
    plan = compile_config({"inputs": {"t": transcript}, "stages": {
        "w": {"node": "subtitle.write", "inputs": {"transcript": "input.t"}}}})
    parsed = plan.stages["w"].bindings["transcript"]
    assert parsed.segments[0].text == "hi" and parsed.segments[0].end == 1.0


def test_one_workflow_input_is_admitted_one_way():
    err = error_of({"inputs": {"x": "/v.mp4"}, "stages": {
        "probe": {"node": "ffmpeg.probe", "inputs": {"video": "input.x"}},
        "read": {"node": "subtitle.read", "inputs": {"subtitles": "input.x"}}}})
    assert err.details[0]["loc"] == "inputs.x" and "different kinds" in err.details[0]["msg"]


def test_the_first_provider_offered_is_the_default():
    plan = compile_config({"inputs": {"subtitle_file": "/s.srt"},
                           "workflow_config": {"subtitle_translation": {"strategy": "llm"}}})
    assert plan.stages["translate"].params["provider"] == "local"


def test_a_skipped_optional_step_adds_no_converter_stage():
    # speaker attribution needs a transcript already made; the subtitle file could be
    # converted into one, but nothing asked for it, so no stage reads it
    plan = compile_config({"inputs": {"audio_file": "/a.wav", "subtitle_file": "/s.srt"},
                           "workflow_config": {"speaker_diarization": {}}})
    assert set(plan.stages) == {"audio", "diarization"}
