"""Plain data passed between stages through Ray's object store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class Audio:
    """Mono float32 samples in [-1, 1]."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass
class Word:
    start: float
    end: float
    text: str
    probability: float = 1.0


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    speaker: str | None = None
    flags: list[str] = field(default_factory=list)


@dataclass
class Transcript:
    language: str
    language_probability: float
    duration: float
    segments: list[Segment] = field(default_factory=list)
    model: str = ""

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        segments = [
            Segment(**{**s, "words": [Word(**w) for w in s.get("words", [])]})
            for s in data.get("segments", [])
        ]
        return cls(**{**data, "segments": segments})


@dataclass
class SubtitleEvent:
    """One on-screen subtitle: up to ``max_lines`` lines shown from start to end."""

    start: float
    end: float
    lines: list[str]
    speaker: str | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Frames:
    """Decoded video frames: ``images`` is [N, H, W, 3] uint8 RGB, ``timestamps`` seconds."""

    images: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass
class Span:
    """A time range in seconds, e.g. one chunk of a longer audio."""

    start: float
    end: float
