"""Speaker counting: the number of speakers estimated from the embeddings, and the
clustering of per-window speaker centroids into speakers of the whole input.

scipy, scikit-learn and pyannote are imported inside functions.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

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
#: A cluster too small to be kept by size alone is still a speaker of its own when it has
#: at least :data:`MIN_DISTINCT_SIZE` embeddings and its centroid's cosine similarity to
#: every large cluster is at most this: a voice that speaks once in a long dialogue (0.44
#: in bench held-4a). Pieces split off one voice stay at 0.79-0.93 to that voice's centroid,
#: but a spread-out (whispered) voice left a 5-embedding piece at 0.65 and lone embeddings
#: reach 0.63-0.75; two different voices are at most 0.65 apart on the tuning dialogues
#: (bench/results/diarize_counting.md). A small centroid is noisy, hence the stricter bound.
DISTINCT_SIMILARITY = 0.55
#: Fewest embeddings (10 s windows 1 s apart: about one turn) of a distinct small cluster;
#: 3 kept a 17 ms speaker in bench held-4b.
MIN_DISTINCT_SIZE = 5
#: Most speakers the estimator considers when ``max_speakers`` does not say.
MAX_ESTIMATED_SPEAKERS = 20
#: Linkages whose cuts are candidate partitions: centroid linkage (pyannote's) can merge two
#: close voices before it splits a spread-out one, average and Ward linkage less often.
CANDIDATE_LINKAGES = ("centroid", "average", "ward")


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


def absorb_small(
    x: np.ndarray,
    labels: np.ndarray,
    min_size: int,
    distinct: float | None = DISTINCT_SIMILARITY,
) -> np.ndarray:
    """Clusters smaller than ``min_size`` join the large cluster with the nearest centroid,
    unless (``distinct`` not None) they hold :data:`MIN_DISTINCT_SIZE` or more embeddings
    and no large centroid is more alike than ``distinct``; labels renumbered 0..k-1."""
    ids, counts = np.unique(labels, return_counts=True)
    large = ids[counts >= min_size]
    labels = labels.copy()
    if 0 < len(large) < len(ids):
        centroids = _unit(np.vstack([x[labels == i].mean(axis=0) for i in large]))
        for small, count in zip(ids, counts, strict=True):
            if count >= min_size:
                continue
            sims = centroids @ _unit(x[labels == small].mean(axis=0))
            if distinct is not None and count >= MIN_DISTINCT_SIZE and sims.max() <= distinct:
                continue  # a voice of its own that spoke briefly, not a piece of another
            labels[labels == small] = large[int(np.argmax(sims))]
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
    ``max_clusters`` clusters, small clusters absorbed unless distinct (:func:`absorb_small`).
    A candidate whose two closest centroids exceed ``same_speaker`` cosine similarity splits
    a speaker and is dropped; of the rest the one with the best silhouette (cosine) wins.
    With none left: one speaker, or the closest candidate to ``min_clusters`` when more are
    required.

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
