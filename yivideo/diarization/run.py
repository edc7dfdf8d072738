"""Diarizing an input: one pipeline pass, or window by window with the windows' speaker
centroids clustered together so that one person keeps one label over the whole input.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from yivideo.diarization import resegment as reseg
from yivideo.diarization.clustering import DEFAULT_THRESHOLD, _cluster_centroids
from yivideo.diarization.models import DiarizationPipeline
from yivideo.diarization.turns import SAMPLE_RATE, Turn, prepare_audio

#: Default window of chunked diarization (s); inputs up to 1.5 windows run in one pass.
DEFAULT_CHUNK_S = 300.0

ProgressFn = Callable[[float, str], None]


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
        # pyannote pads the speakers with all-zero centroids where the segmentation counts
        # more overlapping voices than the clustering found speakers: such a speaker is
        # no cluster of any embedding (a spurious overlap, e.g. an echo of one voice).
        phantoms = {lbl for lbl, c in by_label.items() if not np.any(c)}
        if phantoms and len(phantoms) < len(by_label):
            tracks = [t for t in tracks if t[2] not in phantoms]
            by_label = {lbl: c for lbl, c in by_label.items() if lbl not in phantoms}
    return tracks, by_label


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
            tracks, centroids = _run(
                pipe, audio, uri,
                (lambda f: progress(f, "embeddings")) if progress else None,
                num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers,
            )  # fmt: skip
            if pipe.resegment:
                tracks = reseg.resegment(
                    audio, tracks, centroids, pipe.embed, max_speakers=num_speakers or max_speakers
                )
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
    if pipe.resegment and glob:
        # Against the speakers of the whole input: a window whose voice went to the wrong
        # speaker is corrected where its short-window embeddings say so.
        unit = {key: v / np.linalg.norm(v) for key, v in zip(keys, vectors, strict=True)}
        merged = {
            k: np.mean([unit[key] for key, g in glob.items() if g == k], axis=0)
            for k in set(glob.values())
        }
        resolved = reseg.resegment(
            audio, resolved, merged, pipe.embed, max_speakers=num_speakers or max_speakers
        )
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
