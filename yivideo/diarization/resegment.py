"""Resegmentation: speech relabelled from short-window speaker embeddings.

pyannote labels a frame by the cluster of the local speakers (10 s windows) active there;
when segmentation-3.0 gives two voices one local speaker, the second voice takes the first
one's label although every embedding was clustered right. Here every stretch of speech is
cut into cells of ``hop_s`` seconds, each cell is described by an embedding of the
``window_s`` seconds around it (the same embedding model), scored against the speaker
centroids, and the labels are decoded by Viterbi with a penalty per speaker change (a
voice does not change every half second). Silences split the speech: each stretch is
decoded on its own, so a change of speaker at a pause costs nothing. Overlapped speech and
speakers without a centroid keep pyannote's labels.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np

from yivideo.diarization.turns import SAMPLE_RATE

#: Length (s) of the audio each cell's embedding describes.
WINDOW_S = 1.5
#: Cell length (s): the resolution of the new speaker changes. 0.5 s was as good on the
#: tuning dialogues of bench/diarize.py (mean DER 0.038 either way) at 1.5x the cost.
HOP_S = 0.75
#: Cosine-similarity cost of one speaker change inside a stretch of speech (0.15-0.5 gave
#: the same tuning DER; 1.0 kept mixed turns).
SWITCH_PENALTY = 0.3
#: Similarity bonus for the label pyannote gave a cell (a prior: the clustering of the
#: long local-speaker embeddings is usually right).
KEEP_BONUS = 0.05
#: A speaker's short-window embeddings that fall into two groups whose mean embeddings have
#: at most this cosine similarity are two voices the clustering merged (segmentation-3.0
#: gave both one local speaker in every 10 s window, so no long embedding told them apart).
#: On the tuning dialogues of bench/diarize.py the merged pairs split at 0.44 and 0.47 (12
#: and 15 windows on the smaller side) and one voice at 0.71 or more (0.40 for one window).
SPLIT_SIMILARITY = 0.55
#: Fewest short windows (of HOP_S seconds) on each side of such a split.
MIN_SPLIT_WINDOWS = 6
#: Stretches of speech shorter than this keep their labels (CAM++ needs 0.5 s).
MIN_SPEECH_S = 0.5
#: Frame rate (per second) of the label grid.
FRAMES_PER_S = 100

Track = tuple[float, float, Hashable]
EmbedFn = Callable[[np.ndarray], np.ndarray]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def viterbi(scores: np.ndarray, switch_penalty: float) -> np.ndarray:
    """Best label per row of ``scores`` (cells x labels): the path maximising the summed
    scores minus ``switch_penalty`` per change of label."""
    n, k = scores.shape
    if n == 0:
        return np.zeros(0, dtype=int)
    total = scores[0].astype(float).copy()
    back = np.zeros((n, k), dtype=int)
    for i in range(1, n):
        # stay: total[j]; switch from the best other label: max(total) - penalty
        best = int(np.argmax(total))
        stay = total
        move = total[best] - switch_penalty
        back[i] = np.where(stay >= move, np.arange(k), best)
        total = np.maximum(stay, move) + scores[i]
    path = np.zeros(n, dtype=int)
    path[-1] = int(np.argmax(total))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) frame indices of the runs of True in ``mask``."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def resegment(
    audio: np.ndarray,
    tracks: Sequence[Track],
    centroids: dict[Hashable, np.ndarray],
    embed: EmbedFn,
    *,
    window_s: float = WINDOW_S,
    hop_s: float = HOP_S,
    switch_penalty: float = SWITCH_PENALTY,
    keep_bonus: float = KEEP_BONUS,
    split_similarity: float | None = SPLIT_SIMILARITY,
    max_speakers: int | None = None,
    batch_size: int = 32,
) -> list[Track]:
    """``tracks`` (start, end, label) relabelled where one speaker talks, from embeddings
    (``embed``: (batch, samples) float32 at 16 kHz -> (batch, dim)) of ``window_s`` seconds
    around each ``hop_s`` cell, against ``centroids`` (label -> vector). The speech and
    silence stay as they are; tracks of labels without a centroid and overlapped speech
    keep their labels. A speaker whose windows hold two voices (:func:`split_merged`,
    ``split_similarity`` None: never) becomes two: ``label`` and ``(label, "split")``, as
    long as there are no more than ``max_speakers`` (an imposed count or bound)."""
    labels = [lbl for lbl, c in centroids.items() if np.all(np.isfinite(c)) and np.any(c)]
    if len(labels) < 2 or not tracks:
        return list(tracks)
    index = {lbl: i for i, lbl in enumerate(labels)}
    extra = {lbl for _, _, lbl in tracks if lbl not in index}
    names = labels + sorted(extra, key=str)
    col = {lbl: i for i, lbl in enumerate(names)}
    n_frames = int(np.ceil(max(e for _, e, _ in tracks) * FRAMES_PER_S)) + 1
    active = np.zeros((n_frames, len(names)), dtype=bool)
    for s, e, lbl in tracks:
        active[int(round(s * FRAMES_PER_S)) : int(round(e * FRAMES_PER_S)), col[lbl]] = True
    # One known speaker at a time: the frames resegmentation may relabel.
    free = (active.sum(axis=1) == 1) & active[:, : len(labels)].any(axis=1)
    out = active.copy()

    window = int(window_s * FRAMES_PER_S)
    cells: list[tuple[int, int, int, int]] = []  # (cell start, cell end, window start, end)
    stretches: list[tuple[int, int]] = []  # cell index range of each stretch of speech
    for a, b in _runs(free):
        if b - a < MIN_SPEECH_S * FRAMES_PER_S:
            continue
        n = max(1, int(round((b - a) / (hop_s * FRAMES_PER_S))))
        bounds = np.linspace(a, b, n + 1).round().astype(int)
        first = len(cells)
        for c0, c1 in zip(bounds[:-1], bounds[1:], strict=True):
            mid = (c0 + c1) // 2
            w0 = min(max(a, mid - window // 2), max(a, b - window))
            cells.append((int(c0), int(c1), int(w0), int(min(b, w0 + window))))
        stretches.append((first, len(cells)))
    if not cells:
        return list(tracks)

    vectors = _unit(
        _embed_windows(audio, [(w0, w1) for _, _, w0, w1 in cells], embed, batch_size)
    )
    means = _unit(np.vstack([centroids[lbl] for lbl in labels]))
    prior = np.array([active[c0:c1, : len(labels)].mean(axis=0) for c0, c1, _, _ in cells])
    known = len(labels)
    room = len(labels) if max_speakers is None else max(0, max_speakers - len(labels))
    if split_similarity is not None and room:
        split = split_merged(vectors, means, split_similarity, max_new=room)
        if split is not None:
            # Every speaker is then described by its short windows' mean, so that the two
            # halves of a split compete with the others on equal terms.
            means, parents = split
            for parent in parents[known:]:
                prior = np.hstack([prior, prior[:, parent : parent + 1]])
                labels.append((labels[parent], "split"))
            names = labels + names[known:]
            out = np.hstack([out[:, :known], np.zeros((len(out), len(parents) - known), bool),
                             out[:, known:]])  # fmt: skip
    scores = np.nan_to_num(vectors @ means.T, nan=0.0) + keep_bonus * prior
    for first, last in stretches:
        path = viterbi(scores[first:last], switch_penalty)
        for (c0, c1, _, _), k in zip(cells[first:last], path, strict=True):
            out[c0:c1, : len(labels)] = False
            out[c0:c1, k] = True
    return _to_tracks(out, names)


def split_merged(
    vectors: np.ndarray,
    centroids: np.ndarray,
    max_similarity: float = SPLIT_SIMILARITY,
    min_windows: int = MIN_SPLIT_WINDOWS,
    max_new: int | None = None,
) -> tuple[np.ndarray, list[int]] | None:
    """Speakers whose unit window embeddings (nearest centroid) fall into two groups of at
    least ``min_windows`` with mean similarity at most ``max_similarity`` (a 2-cluster cut of
    an average- or Ward-linkage dendrogram): the new unit centroids (each speaker's windows'
    mean, the second halves appended) and the speaker each centroid comes from; None when
    no speaker splits. At most ``max_new`` speakers split (the most distinct halves first)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    nearest = np.argmax(vectors @ centroids.T, axis=1)
    means = [
        vectors[nearest == k].mean(axis=0) if np.sum(nearest == k) >= min_windows else c
        for k, c in enumerate(centroids)
    ]
    splits: list[tuple[float, int, np.ndarray]] = []
    for k in range(len(centroids)):
        x = vectors[nearest == k]
        if len(x) < 2 * min_windows:
            continue
        best: tuple[float, np.ndarray] | None = None
        for method in ("average", "ward"):
            half = fcluster(linkage(x, method=method), 2, criterion="maxclust") == 2
            if min(half.sum(), (~half).sum()) < min_windows:
                continue
            a, b = _unit(x[~half].mean(axis=0)), _unit(x[half].mean(axis=0))
            if float(a @ b) <= max_similarity and (best is None or float(a @ b) < best[0]):
                best = (float(a @ b), half)
        if best is not None:
            splits.append((best[0], k, best[1]))
    if not splits or max_new == 0:
        return None
    parents = list(range(len(centroids)))
    for _, k, half in sorted(splits, key=lambda t: t[0])[:max_new]:
        x = vectors[nearest == k]
        means[k] = x[~half].mean(axis=0)
        means.append(x[half].mean(axis=0))
        parents.append(k)
    return _unit(np.vstack(means)), parents


def _embed_windows(
    audio: np.ndarray, spans: list[tuple[int, int]], embed: EmbedFn, batch_size: int
) -> np.ndarray:
    """One embedding per (start, end) frame span; spans of one length go in batches."""
    step = SAMPLE_RATE // FRAMES_PER_S
    out: list[np.ndarray | None] = [None] * len(spans)
    by_length: dict[int, list[int]] = {}
    for i, (w0, w1) in enumerate(spans):
        by_length.setdefault(w1 - w0, []).append(i)
    for length, members in by_length.items():
        for j in range(0, len(members), batch_size):
            group = members[j : j + batch_size]
            batch = np.zeros((len(group), length * step), dtype=np.float32)
            for row, i in enumerate(group):
                piece = audio[spans[i][0] * step : spans[i][1] * step]
                batch[row, : len(piece)] = piece
            for row, vec in zip(group, np.asarray(embed(batch), dtype=np.float64), strict=True):
                out[row] = vec
    return np.vstack(out)  # type: ignore[arg-type]


def _to_tracks(active: np.ndarray, names: list[Hashable]) -> list[Track]:
    """(start, end, label) of every run of active frames, sorted by start."""
    tracks = [
        (a / FRAMES_PER_S, b / FRAMES_PER_S, names[k])
        for k in range(active.shape[1])
        for a, b in _runs(active[:, k])
    ]
    return sorted(tracks, key=lambda t: (t[0], t[1]))
