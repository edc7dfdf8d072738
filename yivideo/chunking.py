"""Long media in parallel: cut at the quietest points, run each chunk as its own call, merge.

A stage whose node is registered with :func:`chunked` and whose ``chunk_s`` param is above
0 runs in three steps (:class:`ChunkedStage`, called by the stage runner):

1. the plan node (``asr.plan_chunks``) chooses cut points near every ``chunk_s`` seconds,
   each at the quietest moment of a search window around it (:func:`plan_chunks`), so no
   word is cut; media shorter than 1.5 chunks stays one call;
2. every chunk is a call of the stage's node (or the chunking's own chunk node) with
   ``clip=[start, end]``, each on a replica of the service's pool
   (``StageRunner.replica``), all at once as far as the pool has replicas; a chunk whose
   actor died is tried again, alone;
3. the chunks' outputs are merged in order: by a pure function in the controller
   (:func:`merge_transcripts`), or, when merging needs the models (speakers linked across
   chunks), by a merge node on a replica, which gets the stage's inputs and params and the
   chunks' outputs as ``parts``. Same schema as one call over the whole media, times on
   the whole media's timeline.

Cancelling the stage cancels every chunk call; progress is the chunks' progress weighted by
their length (:class:`Parts`). Planning and the merge functions are pure functions.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import AfterValidator

from yivideo.types import Segment, Span, Transcript, Word

if TYPE_CHECKING:
    from yivideo.stage_runner import StageRunner
    from yivideo.workflow import PlannedStage

#: Media is chunked only when longer than this many chunks (shorter: one call).
MIN_CHUNKS = 1.5
#: Energy frames (s) and the pause a cut is centred in (s): the quietest point is the
#: middle of the quietest ``PAUSE_S`` stretch, so a cut keeps clear of word edges.
FRAME_S = 0.01
PAUSE_S = 0.4
#: Frames within this many dB of the quietest count as equally quiet (noise floor wobble).
TIE_DB = 3.0
#: The separator of a stage's part names (``asr#plan``, ``asr#0``): stage names cannot hold it.
PART = "#"
#: The part that merges the chunks when a merge node does (``diarize#merge``).
MERGE = "merge"
#: Share of a stage's progress that its merge node takes.
MERGE_SHARE = 0.1


def _ordered(clip: tuple[float, float] | None) -> tuple[float, float] | None:
    if clip is not None and not 0 <= clip[0] < clip[1]:
        raise ValueError("clip must be [start, end] with 0 <= start < end")
    return clip


#: A node's ``clip`` param: the window [start, end] s of the media it works on (one chunk;
#: times stay the whole media's), or None for all of it.
Clip = Annotated[tuple[float, float] | None, AfterValidator(_ordered)]


def check_clip(clip: tuple[float, float] | None, duration: float, media: str) -> None:
    """A :class:`~yivideo.errors.ConfigError` naming ``clip`` when it starts at or after
    the end of the ``duration`` s ``media`` ("audio", "video")."""
    from yivideo.errors import ConfigError

    if clip is not None and clip[0] >= duration:
        raise ConfigError.at("clip", f"starts at {clip[0]} s, after the end of the "
                                     f"{duration:.1f} s {media}")


# ----------------------------------------------------------------------------- planning


def _frame_db(samples: np.ndarray, sample_rate: int, start: int, end: int) -> np.ndarray:
    """Mean power (dB) of ``PAUSE_S`` windows starting at every ``FRAME_S`` frame in
    ``samples[start:end]``."""
    hop = max(1, int(round(FRAME_S * sample_rate)))
    x = np.asarray(samples[start:end], dtype=np.float64)
    n = len(x) // hop
    if n == 0:
        return np.zeros(0)
    power = np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1)
    width = max(1, min(n, int(round(PAUSE_S / FRAME_S))))
    smooth = np.convolve(power, np.ones(width) / width, mode="valid")
    return 10 * np.log10(smooth + 1e-12)


def quietest_point(samples: np.ndarray, sample_rate: int, target: float, half_window: float
                   ) -> tuple[float, float]:
    """``(time, level dB)`` of the quietest point within ``target ± half_window`` seconds.

    Frames within :data:`TIE_DB` of the quietest form quiet runs; the cut is the middle of
    the run nearest ``target`` (so a long digital silence is cut in its middle, not at the
    edge next to a word).
    """
    lo = max(0, int((target - half_window) * sample_rate))
    hi = min(len(samples), int(math.ceil((target + half_window) * sample_rate)))
    db = _frame_db(samples, sample_rate, lo, hi)
    if db.size == 0:
        return target, 0.0
    quiet = db <= db.min() + TIE_DB
    edges = np.flatnonzero(np.diff(np.concatenate(([0], quiet.astype(np.int8), [0]))))
    runs = list(zip(edges[::2], edges[1::2], strict=True))
    # frame i's window covers [i, i + PAUSE_S): its middle is half a pause later
    mids = [lo / sample_rate + ((a + b - 1) / 2) * FRAME_S + PAUSE_S / 2 for a, b in runs]
    best = min(range(len(runs)), key=lambda k: (abs(mids[k] - target), k))
    a, b = runs[best]
    return float(mids[best]), float(db[a:b].min())


def chunk_count(duration: float, chunk_s: float, at_most: bool = False) -> int:
    """How many chunks: one when ``chunk_s`` is 0 or the media no longer than
    :data:`MIN_CHUNKS` chunks; else the nearest count, or (``at_most``) the fewest that
    keep each within ``chunk_s``."""
    if chunk_s == 0 or duration <= MIN_CHUNKS * chunk_s:
        return 1
    return math.ceil(duration / chunk_s) if at_most else int(math.floor(duration / chunk_s + 0.5))


def plan_chunks(samples: np.ndarray, sample_rate: int, chunk_s: float, search_s: float,
                *, at_most: bool = False) -> list[Span]:
    """Consecutive spans covering the audio, cut at silences near every ``chunk_s`` s.

    ``chunk_s`` 0 (or audio no longer than :data:`MIN_CHUNKS` chunks) gives one span. Else
    the audio is split into ``round(duration / chunk_s)`` near-equal chunks (equal chunks
    finish together on parallel replicas), or with ``at_most`` into as many as keep each
    within about ``chunk_s`` (``ceil``); each cut is the quietest point
    (:func:`quietest_point`) within ``search_s`` of its target, the window narrowed to a
    quarter of a chunk so that cuts stay in order.
    """
    if sample_rate <= 0:
        raise ValueError(f"invalid sample rate {sample_rate}")
    if chunk_s < 0 or search_s <= 0:
        raise ValueError("chunk_s must be >= 0 and search_s > 0")
    duration = len(samples) / sample_rate
    n = chunk_count(duration, chunk_s, at_most)
    if n == 1:
        return [Span(0.0, duration)]
    step = duration / n
    half = min(search_s, step / 4)
    cuts = [quietest_point(samples, sample_rate, k * step, half)[0] for k in range(1, n)]
    bounds = [0.0, *cuts, duration]
    return [Span(round(a, 3), round(b, 3)) for a, b in zip(bounds, bounds[1:], strict=False)]


def plan_audio(samples: np.ndarray, sample_rate: int, chunk_s: float, search_s: float,
               *, at_most: bool = False) -> list[Span]:
    """:func:`plan_chunks` of decoded audio, which must be mono (a plan node's body)."""
    from yivideo.errors import MediaError

    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1 or sample_rate <= 0:
        raise MediaError(f"expected mono audio samples, got shape {samples.shape} at "
                         f"{sample_rate} Hz")
    return plan_chunks(samples, sample_rate, chunk_s, search_s, at_most=at_most)


def plan_video_chunks(duration: float, key_frames: list[float], chunk_s: float
                      ) -> list[Span]:
    """Consecutive spans covering a video of ``duration`` s, cut near every ``chunk_s`` s
    (into ``round(duration / chunk_s)`` near-equal chunks), each cut at the key frame
    nearest its target when one lies within a quarter of a chunk (where decoding starts
    without decoding what comes before); one span when ``chunk_s`` is 0 or the video is
    no longer than :data:`MIN_CHUNKS` chunks."""
    if chunk_s < 0:
        raise ValueError("chunk_s must be >= 0")
    n = chunk_count(duration, chunk_s)
    if n == 1:
        return [Span(0.0, duration)]
    step = duration / n
    cuts: list[float] = []
    for k in range(1, n):
        target = k * step
        near = [t for t in key_frames if abs(t - target) <= step / 4]
        cuts.append(min(near, key=lambda t: (abs(t - target), t)) if near else target)
    bounds = [0.0, *cuts, duration]
    return [Span(round(a, 6), round(b, 6)) for a, b in zip(bounds, bounds[1:], strict=False)]


# ------------------------------------------------------------------------------ merging


def _clamp(t: float, span: Span) -> float:
    return min(max(t, span.start), span.end)


def merge_transcripts(parts: list[Transcript], spans: list[Span]) -> Transcript:
    """One transcript from chunk transcripts (times already on the whole timeline).

    Chunk ``i`` owns the words whose middle lies in ``spans[i]`` (a word another chunk also
    heard, where chunks overlap, is kept once); the times of what is kept are clamped into
    the chunk's span, so they rise monotonically across seams. The language is the one
    detected over the most audio, its probability the length-weighted mean of those
    chunks'.
    """
    if len(parts) != len(spans) or not parts:
        raise ValueError("one transcript per span is needed")
    segments: list[Segment] = []
    last_end = 0.0
    for index, (part, span) in enumerate(zip(parts, spans, strict=True)):
        final = index == len(spans) - 1

        def own(start: float, end: float, span: Span = span, final: bool = final) -> bool:
            mid = (start + end) / 2
            return span.start <= mid and (mid < span.end or final)

        for seg in sorted(part.segments, key=lambda s: (s.start, s.end)):
            words = [w for w in seg.words if own(w.start, w.end)]
            if (seg.words and not words) or (not seg.words and not own(seg.start, seg.end)):
                continue
            start = max(_clamp(seg.start, span), last_end)
            kept, cursor = [], start
            for w in words:
                w_start = max(_clamp(w.start, span), cursor)
                cursor = max(_clamp(w.end, span), w_start)
                kept.append(Word(w_start, cursor, w.text, w.probability))
            if kept:
                start = min(start, kept[0].start)
            end = max(_clamp(seg.end, span), cursor, start)
            text = (seg.text if len(kept) == len(seg.words)
                    else "".join(w.text for w in kept).strip())
            segments.append(replace(seg, start=start, end=end, text=text, words=kept))
            last_end = end
    weight: dict[str, float] = {}
    for part, span in zip(parts, spans, strict=True):
        weight[part.language] = weight.get(part.language, 0.0) + (span.end - span.start)
    language = max(weight, key=lambda lang: (weight[lang], lang == parts[0].language))
    same = [(p, s.end - s.start) for p, s in zip(parts, spans, strict=True)
            if p.language == language]
    total = sum(d for _, d in same) or 1.0
    return Transcript(
        language=language,
        language_probability=sum(p.language_probability * d for p, d in same) / total,
        duration=max(p.duration for p in parts),
        segments=segments,
        model=parts[0].model,
    )


# ------------------------------------------------------------------------------ fan-out


#: A pure merge: (the chunks' outputs in order, their spans, the stage's params) ->
#: (the stage's outputs, its artifacts by name).
Merge = Callable[[list[dict[str, Any]], list[Span], dict[str, Any]],
                 tuple[dict[str, Any], dict[str, bytes]]]


@dataclass(frozen=True)
class Chunking:
    """How a node's stage is chunked: the node that plans spans (inputs as the stage's,
    output ``chunks``), the param each chunk's span goes to, and how outputs merge:
    ``merge`` in the controller, or else ``merge_node`` on a replica."""

    plan_node: str
    clip_param: str
    merge: Merge | None = None
    #: the node each chunk runs (inputs and params as the stage's, plus the clip param);
    #: None: the stage's own node
    chunk_node: str | None = None
    #: the node that merges (inputs as the stage's plus ``parts``, params as the stage's)
    merge_node: str | None = None
    #: what was done to the chunks, for the stage's message ("transcribed")
    verb: str = "processed"
    #: the stage's params the plan node takes
    plan_params: tuple[str, ...] = ("chunk_s", "chunk_search_s")

    def __post_init__(self) -> None:
        if (self.merge is None) == (self.merge_node is None):
            raise ValueError("a chunking merges with either a function or a node")


_CHUNKED: dict[str, Chunking] = {}


def chunked(node: str, chunking: Chunking) -> None:
    """Declare that stages of ``node`` may run in chunks (in the node's service module)."""
    _CHUNKED[node] = chunking


def chunking_of(stage: PlannedStage) -> Chunking | None:
    """The stage's chunking when its node has one and its ``chunk_s`` is above 0."""
    chunking = _CHUNKED.get(stage.node.name)
    if chunking is None or not stage.params.get("chunk_s"):
        return None
    if stage.params.get(chunking.clip_param) is not None:
        return None  # already a window of the media: the caller chose it
    return chunking


@dataclass
class _Fan:
    spans: list[Span]
    merged: bool = False  # a merge node takes the last MERGE_SHARE of the progress
    fractions: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fractions = [0.0] * len(self.spans)


class Parts:
    """Progress of the stages that run in parts, by ``(workflow, stage)``: a part's report
    (stage ``asr#3``) becomes its stage's, weighted by the parts' lengths."""

    def __init__(self) -> None:
        self._fans: dict[tuple[str, str], _Fan] = {}

    @staticmethod
    def stage_of(stage: str) -> str:
        """The stage a part belongs to (a stage's own name is its own)."""
        return stage.partition(PART)[0]

    def progress(self, wid: str, stage: str, fraction: float, message: str
                 ) -> tuple[str, float, str]:
        """``(stage, fraction, message)`` for a part's report: the stage's whole progress."""
        whole, _, part = stage.partition(PART)
        fan = self._fans.get((wid, whole))
        if fan is not None and fan.merged and part == MERGE:
            return whole, 1 - MERGE_SHARE * (1 - max(0.0, min(1.0, fraction))), message
        if fan is None or not part.isdigit() or int(part) >= len(fan.spans):
            return whole, (0.0 if part else fraction), ("planning chunks" if part else message)
        fan.fractions[int(part)] = max(0.0, min(1.0, fraction))
        lengths = [s.end - s.start for s in fan.spans]
        done = sum(f * n for f, n in zip(fan.fractions, lengths, strict=True))
        total = sum(lengths) or 1.0
        finished = sum(f >= 1.0 for f in fan.fractions)
        share = 1 - MERGE_SHARE if fan.merged else 1.0
        return whole, share * done / total, (
            f"{done:.0f}/{total:.0f} s, {finished}/{len(fan.spans)} chunks done")

    def open(self, wid: str, stage: str, spans: list[Span], merged: bool = False) -> None:
        """Follow a stage's chunks (``merged``: and then its merge node)."""
        self._fans[(wid, stage)] = _Fan(spans, merged)

    def close(self, wid: str, stage: str) -> None:
        self._fans.pop((wid, stage), None)


class ChunkedStage:
    """One run of a chunked stage on a :class:`~yivideo.stage_runner.StageRunner`.

    Each part (the plan, every chunk) is tried ``stage_attempts`` times when its actor
    died or its error is transient, alone; its attempts are recorded in the stage's
    ``attempts`` with ``part``. Any other error fails the stage and cancels the other parts.
    """

    def __init__(self, runner: StageRunner, wid: str, name: str, stage: PlannedStage,
                 chunking: Chunking, info: dict[str, Any], refs: list[Any],
                 bindings: list[tuple[str, str | None, Any]], changed: Callable[[], None]
                 ) -> None:
        self.runner, self.wid, self.name, self.stage = runner, wid, name, stage
        self.chunking, self.info, self.refs, self.bindings = chunking, info, refs, bindings
        self.changed = changed
        self.service = stage.node.service

    async def run(self) -> tuple[dict[str, Any], Any] | None:
        """``(metadata, outputs ref)`` of the merged chunks; None when the plan is one
        chunk (the caller then runs the stage as one call)."""
        import ray

        now = time.time()
        self.info.update(status="queued", submitted_at=now, started_at=now, error=None)
        self.changed()
        try:
            params = {k: self.stage.params[k] for k in self.chunking.plan_params}
            _, out, _ = await self._part("plan", self.chunking.plan_node, params)
            spans = [s if isinstance(s, Span) else Span(**s) for s in (await out)["chunks"]]
            if len(spans) <= 1:
                return None
            chunking = self.chunking
            self.runner.parts.open(self.wid, self.name, spans, chunking.merge_node is not None)
            node = chunking.chunk_node or self.stage.node.name
            clip = chunking.clip_param
            tasks = [asyncio.ensure_future(self._part(
                str(i), node, {**self.stage.params, clip: [s.start, s.end]}))
                for i, s in enumerate(spans)]
            results = await _all_or_none(tasks)
            outputs = list(await asyncio.gather(*(out for _, out, _ in results)))
            metas = [meta for meta, _, _ in results]
            merged_files: dict[str, Any] = {}
            if chunking.merge_node is not None:
                bindings = [*self.bindings, ("parts", None, outputs)]
                meta, merged, _ = await self._part(
                    MERGE, chunking.merge_node, self.stage.params, bindings)
                metas.append(meta)
            else:
                assert chunking.merge is not None
                # off the event loop: a long transcript takes a while to merge
                merged, merged_files = await asyncio.to_thread(
                    chunking.merge, outputs, spans, self.stage.params)
                merged = ray.put(merged)
            self.info["chunks"] = [
                {"start": s.start, "end": s.end, "replica": rep, "pid": meta["pid"],
                 "started_at": meta["began"], "ended_at": meta["began"] + meta["compute_s"]}
                for s, (meta, _, rep) in zip(spans, results, strict=True)]
            # a late progress report of a chunk may arrive after the stage ended
            self.info["message"] = f"{len(spans)} chunks {chunking.verb} and merged"
            self.info["replica"] = results[0][2]
            self.info["pid"] = metas[0]["pid"]
            artifacts: dict[str, Any] = {}
            for meta in metas:
                artifacts.update(meta["artifacts"])
            artifacts.update(merged_files)  # the whole stage's files, over its chunks'
            meta = {"began": min(m["began"] for m in metas),
                    "compute_s": sum(m["compute_s"] for m in metas),
                    "artifacts": artifacts, "pid": metas[0]["pid"]}
            return meta, merged
        except asyncio.CancelledError:
            self.info["status"] = "cancelled"
            raise
        except Exception as exc:
            from yivideo import metrics
            from yivideo.stage_runner import error_dict

            self.info.update(status="failed", error=error_dict(exc))
            metrics.stage_seconds().observe(time.time() - self.info["submitted_at"], tags={
                "node": self.stage.node.name, "status": "failed"})
            raise
        finally:
            self.runner.parts.close(self.wid, self.name)
            self.info["ended_at"] = time.time()
            self.info["duration_s"] = round(self.info["ended_at"] - self.info["started_at"], 4)
            self.changed()

    async def _part(self, part: str, node: str, params: dict[str, Any],
                    bindings: list[tuple[str, str | None, Any]] | None = None
                    ) -> tuple[dict[str, Any], Any, str | None]:
        """Run one part on a free replica until it succeeds or fails for good:
        ``(metadata, outputs ref, replica name)``; ``bindings``: the stage's if None."""
        import ray

        from yivideo.stage_runner import RETRIED, end_reason, error_dict

        settings = self.runner.settings
        label = f"{self.name}{PART}{part}"
        delay = settings.retry_backoff_s
        for attempt in range(1, settings.stage_attempts + 1):
            started, call = time.time(), None
            try:
                async with self.runner.replica(self.service) as actor:
                    replica = self.runner.name_of(self.service, actor)
                    call = actor.run.options(num_returns=2).remote(
                        node, params, bindings or self.bindings, self.wid, label, *self.refs)
                    meta = await call[0]
                return meta, call[1], replica
            except asyncio.CancelledError:
                if call is not None:
                    actor.cancel.remote(self.wid, label)  # a running part stops at its check
                    ray.cancel(call[0])  # a queued one never starts
                raise
            except Exception as exc:
                reason = end_reason(exc)
                retried = RETRIED[reason] and attempt < settings.stage_attempts
                self.info["attempts"].append({
                    "attempt": attempt, "part": part, "error": error_dict(exc),
                    "reason": reason, "retried": retried, "started_at": started,
                    "ended_at": time.time()})
                self.changed()
                if not retried:
                    raise
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")


async def _all_or_none(tasks: list[asyncio.Future]) -> list[Any]:
    """The tasks' results in order; the first failure (or a cancel) cancels the rest."""
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if pending:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    for task in tasks:  # the first failure in part order, for a deterministic error
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()
    return [task.result() for task in tasks]
