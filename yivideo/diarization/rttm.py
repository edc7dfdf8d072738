"""Writers and readers of turns: NIST RTTM and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from yivideo.diarization.turns import Turn, speakers_of


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
