"""Voice separation: real Spleeter, DeepFilterNet and UVR weights from their packages, on
synthetic speech over a synthetic music bed (or noise) whose stems are known exactly."""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile
from pydantic import ValidationError

import yivideo
from actors.separate import (
    AudioSeparatorParams,
    DeepFilterParams,
    SeparationService,
    SpleeterParams,
    overlap_add,
)
from yivideo.errors import ModelNotFound
from yivideo.media import decode_audio
from yivideo.models_catalogue import validation_context
from yivideo.nodes import NodeContext
from yivideo.separation_io import encode
from yivideo.separation_models import BUNDLED_DIR, DEFAULT_UVR_MODEL, model_hash, prepare
from yivideo.separation_noise import noise_at
from yivideo.settings import ModelSettings
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


def test_the_bundled_uvr_denoiser_takes_noise_out_of_speech(service):
    """UVR-DeNoise-Lite through audio-separator's Separator, offline: the speech comes out
    of pink noise cleaner (measured ~2.9 dB), and the noise stem is the noise."""
    speech, _ = speech_track(SENTENCES[:1], rate=16000, lead_in=0.3)
    noisy = noise_at(speech, 16000, 0.0)
    mixture, speech = noisy.mixture, noisy.speech
    out, ctx = _separate_uvr(service, Audio(mixture, 16000))
    vocals, rest = out["vocals"].samples, out["instrumental"].samples
    assert len(vocals) == len(rest) == len(mixture)
    assert si_sdr(vocals, speech) - si_sdr(mixture, speech) >= 1.5
    assert si_sdr(rest, noisy.music) > si_sdr(rest, speech) + 10
    assert set(ctx.artifacts) == {"vocals.wav", "instrumental.wav"}


def _separate_uvr(service: SeparationService, audio: Audio, **params
                  ) -> tuple[dict[str, Audio], NodeContext]:
    ctx = NodeContext()
    return service.audio_separator(ctx, AudioSeparatorParams(**params), audio), ctx


def test_an_unknown_uvr_model_lists_the_available_ones(service):
    with pytest.raises(ModelNotFound) as err:
        _separate_uvr(service, Audio(np.zeros(1600, np.float32), 16000),
                      model="UVR-MDX-NET-Voc_FT.pth")
    assert "UVR-MDX-NET-Voc_FT.pth" in str(err.value)
    assert err.value.details[0]["available"] == [DEFAULT_UVR_MODEL]


def test_uvr_models_come_from_the_model_folders_by_name_only(tmp_path):
    """A .pth in a model folder is offered by its file name and prepared for offline
    loading (the 7 lists, its parameters under the MD5 of its last 10,240,000 bytes);
    one without known parameters is refused, and no request may name a path."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(BUNDLED_DIR / DEFAULT_UVR_MODEL, folder / "MyDenoise.pth")
    (folder / "Unknown.pth").write_bytes(b"not a model")
    models = ModelSettings(model_dirs=[folder], cache_dir=tmp_path / "cache")
    prepared = prepare("MyDenoise.pth", models)
    checks = json.loads((prepared / "download_checks.json").read_text())
    assert len(checks) == 7 and list(checks["vr_download_list"].values()) == ["MyDenoise.pth"]
    params = json.loads((prepared / "vr_model_data.json").read_text())
    assert list(params) == [model_hash(folder / "MyDenoise.pth")]
    assert params[model_hash(folder / "MyDenoise.pth")]["primary_stem"] == "Noise"
    assert (prepared / "MyDenoise.pth").resolve() == (folder / "MyDenoise.pth").resolve()
    with pytest.raises(ModelNotFound, match="no known parameters"):
        prepare("Unknown.pth", models)
    with pytest.raises(ModelNotFound) as err:
        prepare("Absent.pth", models)
    assert err.value.details[0]["available"] == sorted([DEFAULT_UVR_MODEL, "MyDenoise.pth",
                                                        "Unknown.pth"])
    context = validation_context(models=models)
    with pytest.raises(ValidationError, match="by path"):
        AudioSeparatorParams.model_validate({"model": str(folder / "MyDenoise.pth")},
                                            context=context)
    with pytest.raises(ValidationError, match="MyDenoise.pth"):  # the listing names it
        AudioSeparatorParams.model_validate({"model": "Other.pth"}, context=context)


def test_a_moved_model_folder_is_prepared_again(tmp_path):
    """The prepared folder links to the model file: after the model folder moves (a new
    virtual environment, a renamed disk), the link must follow, never dangle."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    shutil.copy(BUNDLED_DIR / DEFAULT_UVR_MODEL, first / "MyDenoise.pth")
    cache = tmp_path / "cache"
    before = prepare("MyDenoise.pth", ModelSettings(model_dirs=[first], cache_dir=cache))
    first.rename(second)
    after = prepare("MyDenoise.pth", ModelSettings(model_dirs=[second], cache_dir=cache))
    assert (after / "MyDenoise.pth").resolve() == (second / "MyDenoise.pth").resolve()
    assert (after / "MyDenoise.pth").is_file() and not (before / "MyDenoise.pth").exists()


def test_a_stereo_source_gives_stereo_stems(service, mix, tmp_path):
    """Left and right carry the voice and the music at different levels; the files keep
    both channels, each separated, and the published audio is their mono mean."""
    left, right = mix.speech + 0.5 * mix.music, 0.5 * mix.speech + mix.music
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], 1), mix.sample_rate, subtype="FLOAT")
    audio = Audio((left + right) / 2, mix.sample_rate)
    ctx = NodeContext()
    out = service.spleeter(ctx, SpleeterParams(), audio, media=str(path))
    stems, rate = soundfile.read(io.BytesIO(ctx.artifacts["vocals.wav"]), dtype="float32")
    assert rate == mix.sample_rate and stems.shape == (len(left), 2)
    for channel, mixed, speech in ((0, left, mix.speech), (1, right, 0.5 * mix.speech)):
        assert si_sdr(stems[:, channel], speech) - si_sdr(mixed, speech) >= 4.0
    # the left voice is twice the right one
    assert 1.6 < np.std(stems[:, 0]) / np.std(stems[:, 1]) < 2.5
    np.testing.assert_allclose(out["vocals"].samples, stems.mean(1), atol=2e-4)
    mono = NodeContext()  # keep_channels off: mono files
    service.spleeter(mono, SpleeterParams(keep_channels=False), audio, media=str(path))
    assert soundfile.info(io.BytesIO(mono.artifacts["vocals.wav"])).channels == 1


def test_the_uvr_denoiser_keeps_a_stereo_source_stereo(service, tmp_path):
    """Noise louder on the right, speech louder on the left: each channel is denoised."""
    speech, _ = speech_track(SENTENCES[:1], rate=16000, lead_in=0.3)
    noisy = noise_at(speech, 16000, 0.0, seed=4)
    left, right = noisy.speech + 0.5 * noisy.music, 0.5 * noisy.speech + noisy.music
    path = tmp_path / "stereo.flac"
    soundfile.write(path, np.stack([left, right], 1), 16000)
    ctx = NodeContext()
    out = service.audio_separator(ctx, AudioSeparatorParams(output_format="flac"),
                                  Audio((left + right) / 2, 16000), media=str(path))
    stems, _ = soundfile.read(io.BytesIO(ctx.artifacts["vocals.flac"]), dtype="float32")
    assert stems.shape == (len(left), 2)
    for channel, mixed in ((0, left), (1, right)):
        assert si_sdr(stems[:, channel], noisy.speech) - si_sdr(mixed, noisy.speech) >= 1.0
    assert np.std(stems[:, 0]) > np.std(stems[:, 1])  # the quieter noise left more
    assert len(out["vocals"].samples) == len(left)


def test_the_stems_can_be_kept_as_flac(service, mix):
    out, ctx = _separate(service, "deepfilternet", Audio(mix.mixture, mix.sample_rate),
                         output_format="flac")
    assert set(ctx.artifacts) == {"vocals.flac", "instrumental.flac"}
    for name in ("vocals", "instrumental"):
        data = ctx.artifacts[f"{name}.flac"]
        assert data[:4] == b"fLaC"
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")
        assert rate == mix.sample_rate
        assert si_sdr(samples, out[name].samples) > 40  # 16-bit, lossless
    assert len(ctx.artifacts["vocals.flac"]) < len(encode(out["vocals"].samples,
                                                          mix.sample_rate, "wav"))


def test_separation_is_off_in_the_subtitles_recipe_unless_set():
    inputs = {"audio_file": "/a.wav"}
    plain = yivideo.build_request("subtitles")
    plan = compile_config({"inputs": inputs, "workflow_config": plain["workflow_config"]})
    assert "separate" not in plan.stages
    assert plan.stages["asr"].bindings["audio"].stage != "separate"
    for sets, node in ((["audio_separation=true"], "separate.spleeter"),
                       (["audio_separation.strategy=audio_separator"],
                        "separate.audio_separator")):
        request = yivideo.build_request("subtitles", overrides=sets)
        plan = compile_config({"inputs": inputs, "workflow_config": request["workflow_config"]})
        assert plan.stages["separate"].node.name == node
        assert plan.stages["asr"].bindings["audio"].stage == "separate"
        assert plan.stages["asr"].bindings["audio"].output == "vocals"


def test_yivideo_run_separate_on_a_video(ray_cluster, tmp_path):
    """`yivideo run separate --input V --out DIR` on Ray: speech and music at equal levels
    in a video; DIR/vocals.wav is the speech, at least 6 dB closer than the mixture."""
    from yivideo.cli import main

    mix, _ = make_speech_music(tmp_path / "src", music_db=0.0, sentences=SENTENCES)
    video = tmp_path / "src" / "mix.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                    "color=c=black:s=64x64:r=5", "-i", str(tmp_path / "src" / "mix.wav"),
                    "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
                    "-b:a", "128k", str(video)], check=True)
    out = tmp_path / "out"
    assert main(["run", "separate", "--input", str(video), "--out", str(out)]) == 0
    rate = mix.sample_rate
    mixture = decode_audio(video, rate).samples  # through the same AAC
    vocals = decode_audio(out / "vocals.wav", rate).samples
    music = decode_audio(out / "instrumental.wav", rate).samples
    assert si_sdr(vocals, mix.speech) - si_sdr(mixture, mix.speech) >= 6.0
    assert si_sdr(music, mix.music) > si_sdr(music, mix.speech)
