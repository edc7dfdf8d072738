"""Building the diarization pipeline: the built-in one, or an operator's pyannote pipeline
folder named in the ``PIPELINES`` catalogue (whose config may name only pyannote classes).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from yivideo.diarization.clustering import (
    DEFAULT_THRESHOLD,
    MIN_CLUSTER_SIZE,
    _counting_clustering_class,
)
from yivideo.diarization.models import (
    DiarizationPipeline,
    _check_weights_only,
    _identity_plda,
    _import_pyannote,
    builtin_model_paths,
    campplus_model,
)
from yivideo.errors import ModelNotFound
from yivideo.modelkit import resolve_device
from yivideo.models_catalogue import Catalogue, looks_like_path
from yivideo.settings import ModelSettings

log = logging.getLogger(__name__)


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

    dev = resolve_device(device, "torch")
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
    return DiarizationPipeline(pipeline, label, dev, resegment=source is None)


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
