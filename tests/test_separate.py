"""Voice separation: real Spleeter and DeepFilterNet weights from their packages, on
synthetic speech over a synthetic music bed whose stems are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

import yivideo
from actors.separate import (
    DeepFilterParams,
    SeparationService,
    SpleeterParams,
    overlap_add,
)
from yivideo.errors import ModelNotFound
from yivideo.media import decode_audio, encode_wav
from yivideo.nodes import NodeContext
from yivideo.testmedia import make_speech_music, speech_track
from yivideo.testmusic import Mix, mix_at, music_bed, si_sdr
from yivideo.types import Audio
from yivideo.workflow import compile_config

SENTENCES = ["The weather is lovely today, so we walked to the park.",
             "Please close the window before you leave the room."]
PROVIDERS = {"spleeter": SpleeterParams, "deepfilternet": DeepFilterParams}
#: how much better than the mixture the vocals must be, dB (spleeter must reach 6)
MIN_GAIN = {"spleeter": 6.0, "deepfilternet": 4.0}


@pytest.fixture(scope="module")
def service() -> SeparationService:
    return SeparationService(None)  # one per module: models load once


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> Mix:
    """About 7 s of speech with music at the same level (0 dB), 16 kHz."""
    return make_speech_music(tmp_path_factory.mktemp("mix"), music_db=0.0,
                             sentences=SENTENCES)[0]


def _separate(service: SeparationService, provider: str, audio: Audio, **params
              ) -> tuple[dict[str, Audio], NodeContext]:
    ctx = NodeContext()
    out = getattr(service, provider)(ctx, PROVIDERS[provider](**params), audio)
    return out, ctx


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_vocals_are_cleaner_than_the_mixture_and_the_music_is_kept(service, mix, provider):
    out, ctx = _separate(service, provider, Audio(mix.mixture, mix.sample_rate))
    vocals, instrumental = out["vocals"], out["instrumental"]
    assert vocals.sample_rate == instrumental.sample_rate == mix.sample_rate
    assert len(vocals.samples) == len(instrumental.samples) == len(mix.mixture)
    baseline = si_sdr(mix.mixture, mix.speech)  # ~0 dB at equal levels
    assert si_sdr(vocals.samples, mix.speech) - baseline >= MIN_GAIN[provider]
    # the instrumental is the music, not the voice
    assert si_sdr(instrumental.samples, mix.music) - si_sdr(mix.mixture, mix.music) >= 4.0
    assert si_sdr(instrumental.samples, mix.music) > si_sdr(instrumental.samples, mix.speech)
    for name in ("vocals.wav", "instrumental.wav"):
        assert ctx.artifacts[name][:4] == b"RIFF"


@pytest.mark.parametrize("rate", [8000, 48000])
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_other_sample_rates_keep_their_rate(service, provider, rate):
    speech, _ = speech_track(SENTENCES[:1], rate=rate, lead_in=0.3)
    mix = mix_at(speech, rate, 0.0, seed=1)
    out, _ = _separate(service, provider, Audio(mix.mixture, rate), save_wav=False)
    assert out["vocals"].sample_rate == rate and len(out["vocals"].samples) == len(speech)
    assert si_sdr(out["vocals"].samples, mix.speech) - si_sdr(mix.mixture, mix.speech) >= 3.0


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_silence_in_gives_silence_out(service, provider):
    out, _ = _separate(service, provider, Audio(np.zeros(16000 * 2, np.float32), 16000))
    for stem in out.values():
        assert len(stem.samples) == 32000 and np.max(np.abs(stem.samples)) < 1e-4


def test_music_alone_leaves_little_in_the_vocals(service):
    music = 0.5 * music_bed(4.0, 16000, seed=2)
    out, _ = _separate(service, "spleeter", Audio(music, 16000), save_wav=False)
    leaked = np.sum(out["vocals"].samples.astype(np.float64) ** 2) / np.sum(music ** 2.0)
    assert leaked < 0.01  # under -20 dB of the music taken for voice


def test_long_input_in_windows_equals_one_pass(service, mix):
    audio = Audio(mix.mixture, mix.sample_rate)
    whole, _ = _separate(service, "spleeter", audio, chunk_s=0, save_wav=False)
    windows, _ = _separate(service, "spleeter", audio, chunk_s=2.5, overlap_s=0.5,
                           save_wav=False)
    for stem in ("vocals", "instrumental"):
        # each window sees less context, so the two agree closely but not exactly
        assert si_sdr(windows[stem].samples, whole[stem].samples) > 15.0
    gain = si_sdr(windows["vocals"].samples, mix.speech) - si_sdr(mix.mixture, mix.speech)
    assert gain >= MIN_GAIN["spleeter"]


def test_overlap_add_crossfades_to_the_identity():
    x = np.random.default_rng(0).standard_normal(10_007).astype(np.float32)
    vocals, rest = overlap_add(lambda s: (s.copy(), 2 * s), x, chunk=1000, overlap=300)
    np.testing.assert_allclose(vocals, x, atol=1e-5)
    np.testing.assert_allclose(rest, 2 * x, atol=1e-5)


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_an_unknown_model_lists_the_available_ones(service, provider):
    with pytest.raises(ModelNotFound) as err:
        _separate(service, provider, Audio(np.zeros(1600, np.float32), 16000),
                  model="htdemucs")
    assert "htdemucs" in str(err.value)
    assert err.value.details[0]["available"] == [PROVIDERS[provider]().model]


def test_separation_before_speech_recognition_feeds_it_the_vocals():
    plan = compile_config({"inputs": {"audio_file": "/a.wav"}, "workflow_config": {
        "audio_separation": {}, "subtitle_generation": {}}})
    assert plan.stages["separate"].node.name == "separate.spleeter"
    assert plan.stages["asr"].bindings["audio"].stage == "separate"
    assert plan.stages["asr"].bindings["audio"].output == "vocals"
    plan = compile_config({"inputs": {"audio_file": "/a.wav"}, "workflow_config": {
        "audio_separation": {"strategy": "deepfilternet", "atten_lim_db": 30}}})
    assert plan.stages["separate"].node.name == "separate.deepfilternet"
    assert plan.stages["separate"].params["atten_lim_db"] == 30


def test_the_separate_recipe_writes_both_stems(ray_cluster, tmp_path, mix):
    wav = tmp_path / "mix.wav"
    wav.write_bytes(encode_wav(Audio(mix.mixture, mix.sample_rate)))
    request = yivideo.build_request("separate")
    request["inputs"] = {"audio_file": str(wav)}
    result = yivideo.run(request, out=tmp_path / "out")
    assert result.status == "succeeded", result.state["error"]
    vocals = decode_audio(tmp_path / "out" / "vocals.wav", mix.sample_rate).samples
    music = decode_audio(tmp_path / "out" / "instrumental.wav", mix.sample_rate).samples
    assert si_sdr(vocals, mix.speech) - si_sdr(mix.mixture, mix.speech) >= 6.0
    assert si_sdr(music, mix.music) > si_sdr(music, mix.speech)
