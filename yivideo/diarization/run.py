"""Diarizing an input: one pipeline pass, or window by window with the windows' speaker
centroids clustered together so that one person keeps one label over the whole input.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from yivideo.chunking import MERGE_SHARE, plan_chunks
from yivideo.diarization import resegment as reseg
from yivideo.diarization.clustering import DEFAULT_THRESHOLD, _cluster_centroids
from yivideo.diarization.models import DiarizationPipeline
from yivideo.diarization.turns import SAMPLE_RATE, Turn, prepare_audio

#: Default window of chunked diarization (s); inputs up to 1.5 windows run in one pass.
DEFAULT_CHUNK_S = 300.0
#: A window's cut is the quietest point within this many seconds of its target.
DEFAULT_SEARCH_S = 30.0

ProgressFn = Callable[[float, str], None]


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
    chunk_search_s: float = DEFAULT_SEARCH_S,
    progress: ProgressFn | None = None,
    uri: str = "audio",
) -> list[Turn]:
    """Who spoke when: speaker turns sorted by start time; [] when nobody speaks.

    Inputs longer than 1.5 ``chunk_s`` are diarized window by window, in windows of at
    most about ``chunk_s`` cut at the quietest points (:func:`yivideo.chunking.plan_chunks`;
    on the dialogues of ``bench/scale.py --part d`` the nearest count of windows instead
    gave one speaker too many), and the windows' speakers
    linked (:func:`link_windows`); ``chunk_s`` None or 0: one pass. A workflow runs the
    same windows on the service's replicas at once, with the same result.
    """
    audio = prepare_audio(samples, sample_rate)
    if _silent(audio):
        return []
    if num_speakers is not None and num_speakers < 1:
        raise ValueError("num_speakers must be at least 1")
    spans = plan_chunks(audio, SAMPLE_RATE, chunk_s or 0.0, chunk_search_s, at_most=True)
    if len(spans) > 1:
        windows = []
        for w, span in enumerate(spans):
            report = None
            if progress:
                def report(f: float, w: int = w) -> None:
                    progress((1 - MERGE_SHARE) * (w + f) / len(spans),
                             f"window {w + 1}/{len(spans)}")
            windows.append(diarize_window(
                pipe, audio, SAMPLE_RATE, (span.start, span.end),
                num_speakers=num_speakers, max_speakers=max_speakers,
                clustering_threshold=clustering_threshold, progress=report, uri=f"{uri}#{w}"))
        return link_windows(
            pipe, audio, SAMPLE_RATE, windows, num_speakers=num_speakers,
            min_speakers=min_speakers, max_speakers=max_speakers,
            clustering_threshold=clustering_threshold, uri=uri,
            progress=(lambda f, m: progress(1 - MERGE_SHARE * (1 - f), m)) if progress else None)
    with pipe.lock:
        pipe.configure(clustering_threshold)
        tracks, centroids = _run(
            pipe, audio, uri, (lambda f: progress(f, "embeddings")) if progress else None,
            num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers,
        )  # fmt: skip
        if pipe.resegment:
            tracks = reseg.resegment(
                audio, tracks, centroids, pipe.embed, max_speakers=num_speakers or max_speakers
            )
    if progress:
        progress(1.0, "done")
    return _relabel(tracks)


def _silent(audio: np.ndarray) -> bool:
    """Silence (or nothing) has no speakers: the models are skipped entirely."""
    return audio.size < SAMPLE_RATE // 10 or not np.any(np.abs(audio) > 1e-4)


@dataclass(frozen=True)
class Window:
    """One window's local speakers: ``(start, end, label)`` tracks on the whole input's
    timeline and each label's centroid (the input to :func:`link_windows`)."""

    start: float
    end: float
    tracks: list[tuple[float, float, str]]
    centroids: dict[str, np.ndarray]


def diarize_window(
    pipe: DiarizationPipeline,
    samples: np.ndarray,
    sample_rate: int,
    span: tuple[float, float],
    *,
    num_speakers: int | None = None,
    max_speakers: int | None = None,
    clustering_threshold: float | None = None,
    progress: Callable[[float], None] | None = None,
    uri: str = "audio",
) -> Window:
    """The local speakers of ``span`` (s) of the input: one pipeline pass over the window."""
    audio = prepare_audio(samples, sample_rate)
    a, b = (min(len(audio), round(t * SAMPLE_RATE)) for t in span)
    if _silent(audio[a:b]):
        return Window(span[0], span[1], [], {})
    offset = a / SAMPLE_RATE
    with pipe.lock:
        pipe.configure(clustering_threshold)
        # A window may hold fewer speakers than the whole, so only the upper bound applies.
        local, centroids = _run(pipe, audio[a:b], uri, progress,
                                max_speakers=num_speakers or max_speakers)
    tracks = [(start + offset, end + offset, label) for start, end, label in local]
    return Window(span[0], span[1], tracks, centroids)


def link_windows(
    pipe: DiarizationPipeline,
    samples: np.ndarray,
    sample_rate: int,
    windows: list[Window],
    *,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    clustering_threshold: float | None = None,
    progress: ProgressFn | None = None,
    uri: str = "audio",
) -> list[Turn]:
    """Speaker turns of the whole input from its windows: the windows' speaker centroids
    clustered into speakers of the whole (an imposed count is met), then the speech
    relabelled from short-window embeddings against those speakers, so that a window
    whose voice went to the wrong speaker is corrected."""
    audio = prepare_audio(samples, sample_rate)
    tracks: list[tuple[float, float, tuple[int, str]]] = []
    keys: list[tuple[int, str]] = []
    vectors: list[np.ndarray] = []
    for w, window in enumerate(windows):
        if window.tracks and not window.centroids:
            # A pipeline that gives no speaker embeddings cannot link windows: one pass.
            with pipe.lock:
                pipe.configure(clustering_threshold)
                whole, _ = _run(pipe, audio, uri, None, num_speakers=num_speakers,
                                min_speakers=min_speakers, max_speakers=max_speakers)
            if progress:
                progress(1.0, "done")
            return _relabel(whole)
        tracks.extend((start, end, (w, label)) for start, end, label in window.tracks)
        for label, vector in window.centroids.items():
            vector = np.asarray(vector, dtype=np.float64)
            if np.all(np.isfinite(vector)) and np.linalg.norm(vector) > 0:
                keys.append((w, label))
                vectors.append(vector)
    if not tracks:
        return []
    with pipe.lock:
        threshold = pipe.configure(clustering_threshold)
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
            if progress:
                progress(0.0, "relabelling speech against the linked speakers")
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
