"""Clients of the user's own voice-cloning TTS servers: GPT-SoVITS and IndexTTS2.

Neither ships weights on PyPI, so YiVideo talks to a server the operator runs, at a URL
from the settings (``tts.gpt_sovits.url``, ``tts.index_tts.url``), never from a request.
Each call sends the line's text and language and a reference clip of the speaker's own
voice (cut from the source), and gets a WAV back.

* GPT-SoVITS ``api_v2.py``: ``POST /tts`` with JSON (``text``, ``text_lang``,
  ``ref_audio_path``, ``prompt_text``, ``prompt_lang``, ``media_type: wav``...); the
  reference is a path *on the server*, so the clip is written into ``ref_dir``, a folder
  the server sees as ``ref_dir_on_server``. Errors come back as 400 with JSON.
* IndexTTS2's web UI (Gradio): the clip is uploaded (``POST /gradio_api/upload``), then
  ``gen_single`` is called (``POST /gradio_api/call/gen_single`` -> ``event_id``, then
  ``GET /gradio_api/call/gen_single/<event_id>``, server-sent events ending in
  ``complete`` with the output file), and the file is downloaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from yivideo.errors import YiVideoError


class ProviderError(YiVideoError):
    """A voice-cloning server failed, refused the request or is not configured."""

    code = "tts_server_error"
    http_status = 502


#: ISO 639-1 -> GPT-SoVITS ``text_lang``; other languages go as "auto"
GPT_SOVITS_LANGUAGES = {"zh": "zh", "en": "en", "ja": "ja", "ko": "ko", "yue": "yue"}
#: ISO 639-1 -> IndexTTS 2.5's language choice
INDEX_TTS_LANGUAGES = {"zh": "ZH", "en": "EN", "ja": "JA", "ar": "AR", "es": "ES"}


class GptSovitsServer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description="base URL of api_v2.py, e.g. "
                                              "http://127.0.0.1:9880; unset: not offered")
    ref_dir: Path | None = Field(None, description="folder reference clips are written to "
                                                   "(the server must read it)")
    ref_dir_on_server: str | None = Field(None, description="that folder as the server "
                                                            "sees it; unset: the same path")
    text_split_method: str = Field("cut5", description="how the server splits long text")
    timeout_s: float = Field(300.0, gt=0)


class IndexTTSServer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description="base URL of IndexTTS2's webui.py, e.g. "
                                              "http://127.0.0.1:7860; unset: not offered")
    version: str = Field("2.5", pattern=r"^2(\.5)?$", description="2.5 sends the language")
    emotion_choice: str = Field(
        "Same as the voice reference",
        description="the web UI's label of its first emotion mode, in the UI's language "
                    "(zh_CN: 与音色参考音频相同)")
    timeout_s: float = Field(300.0, gt=0)


class TTSServers(BaseModel):
    """Operator settings: where the voice-cloning servers are."""

    model_config = ConfigDict(extra="forbid")

    gpt_sovits: GptSovitsServer = Field(default_factory=GptSovitsServer)
    index_tts: IndexTTSServer = Field(default_factory=IndexTTSServer)


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the rate of 16-bit PCM WAV bytes (first channel)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise ProviderError(f"the TTS server did not answer with a WAV: {e}") from None
    if width != 2:
        raise ProviderError(f"the TTS server's WAV has {8 * width}-bit samples, not 16")
    pcm = np.frombuffer(raw, "<i2").reshape(-1, channels)[:, 0]
    return pcm.astype(np.float32) / 32768, rate


def _check(resp: httpx.Response, what: str) -> httpx.Response:
    if resp.status_code != 200:
        raise ProviderError(f"{what} answered {resp.status_code}: {resp.text[:300]}")
    return resp


def gpt_sovits_speak(server: GptSovitsServer, text: str, language: str, reference: bytes,
                     reference_text: str, reference_language: str) -> tuple[np.ndarray, int]:
    """``text`` in ``language`` spoken in the reference clip's voice by GPT-SoVITS."""
    if not server.url or server.ref_dir is None:
        raise ProviderError("GPT-SoVITS is not configured (settings tts.gpt_sovits.url and "
                            "tts.gpt_sovits.ref_dir)")
    # named by content: the same speaker's clip is written once and reused
    name = hashlib.sha256(reference).hexdigest()[:24] + ".wav"
    server.ref_dir.mkdir(parents=True, exist_ok=True)
    (server.ref_dir / name).write_bytes(reference)
    remote = server.ref_dir_on_server or str(server.ref_dir)
    body = {"text": text, "text_lang": GPT_SOVITS_LANGUAGES.get(language, "auto"),
            "ref_audio_path": f"{remote.rstrip('/')}/{name}",
            "prompt_text": reference_text,
            "prompt_lang": GPT_SOVITS_LANGUAGES.get(reference_language, "auto"),
            "text_split_method": server.text_split_method, "media_type": "wav",
            "streaming_mode": False, "batch_size": 1, "speed_factor": 1.0}
    try:
        resp = httpx.post(f"{server.url.rstrip('/')}/tts", json=body, timeout=server.timeout_s)
    except httpx.HTTPError as e:
        raise ProviderError(f"GPT-SoVITS at {server.url} is unreachable: {e}") from None
    return read_wav(_check(resp, f"GPT-SoVITS at {server.url}").content)


def _sse_result(text: str) -> Any:
    """The data of the ``complete`` event of a Gradio call's event stream."""
    event = None
    for line in text.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            data = line.split(":", 1)[1].strip()
            if event == "error":
                raise ProviderError(f"IndexTTS2 failed: {data[:300]}")
            return json.loads(data)
    raise ProviderError("IndexTTS2's event stream ended without a result")


def _file_url(base: str, value: Any) -> str:
    """Where the output file of a Gradio answer (FileData, maybe inside an update) is."""
    if isinstance(value, dict) and "value" in value and "path" not in value:
        value = value["value"]
    if not isinstance(value, dict) or not (value.get("url") or value.get("path")):
        raise ProviderError(f"IndexTTS2 answered no audio file: {str(value)[:200]}")
    return value.get("url") or f"{base}/gradio_api/file={value['path']}"


def index_tts_speak(server: IndexTTSServer, text: str, language: str, reference: bytes
                    ) -> tuple[np.ndarray, int]:
    """``text`` spoken in the reference clip's voice by IndexTTS2's web UI."""
    if not server.url:
        raise ProviderError("IndexTTS2 is not configured (settings tts.index_tts.url)")
    base = server.url.rstrip("/")
    what = f"IndexTTS2 at {base}"
    try:
        with httpx.Client(timeout=server.timeout_s) as client:
            up = _check(client.post(f"{base}/gradio_api/upload",
                                    files={"files": ("reference.wav", reference,
                                                     "audio/wav")}), what).json()
            prompt = {"path": up[0], "meta": {"_type": "gradio.FileData"},
                      "orig_name": "reference.wav"}
            lang = [INDEX_TTS_LANGUAGES.get(language, "EN")] if server.version == "2.5" else []
            # gen_single's inputs in the web UI's order: emotion mode, voice prompt, text,
            # [language], emotion audio and weight, 8 emotion vectors, emotion text and
            # random, tokens per segment, duration factor, then the sampling settings
            data = [server.emotion_choice, prompt, text, *lang, None, 0.65, *[0.0] * 8,
                    "", False, 120, 1.0, True, 0.8, 30, 0.8, 0.0, 3, 10.0, 1500]
            call = _check(client.post(f"{base}/gradio_api/call/gen_single",
                                      json={"data": data}), what).json()
            events = _check(client.get(f"{base}/gradio_api/call/gen_single/"
                                       f"{call['event_id']}"), what).text
            url = _file_url(base, _sse_result(events)[0])
            audio = _check(client.get(url), what).content
    except httpx.HTTPError as e:
        raise ProviderError(f"{what} is unreachable: {e}") from None
    return read_wav(audio)
