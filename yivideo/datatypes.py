"""The data types that flow between stages, in one registry.

A node names the type of each input and output (``audio``, ``transcript`` ...). The
type says what Python value it is, whether it is bulky (freed once its consumers are
done), and how a *literal* workflow input of that type is accepted:

* ``media``: a path or URL of a media file, confined and probed before it is admitted;
* ``file``: a path or URL of a small file (a subtitle file), confined and size-limited;
* ``text``: a string, size-limited;
* ``json``: a JSON value validated into the Python type (a transcript read back ...);
* ``None``: never a literal (decoded audio, frames): a stage must produce it.

Services register their own types next to their nodes (``speaker_turns`` ...).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

LiteralKind = Literal["media", "file", "text", "json"] | None


@dataclass(frozen=True)
class DataType:
    name: str
    description: str
    #: ``module:attribute`` of the Python type, imported only when a literal is checked
    python: str = "builtins:object"
    many: bool = False  # a list of ``python``
    bulky: bool = False
    literal: LiteralKind = None

    def adapter(self) -> TypeAdapter:
        return _adapter(self.python, self.many)

    def check_literal(self, value: Any) -> Any:
        """The literal ``value`` as this type, or ValueError saying why it is not one."""
        if self.literal is None:
            raise ValueError(f"type '{self.name}' cannot be given as a workflow input: "
                             "a stage must produce it")
        if self.literal in ("media", "file", "text"):
            if not isinstance(value, str) or not value.strip():
                what = "text" if self.literal == "text" else "a path or URL"
                raise ValueError(f"expected {what} for a '{self.name}', "
                                 f"got {type(value).__name__}")
            return value
        try:
            return self.adapter().validate_python(value)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(map(str, first["loc"]))
            raise ValueError(f"not a valid '{self.name}'"
                             f"{' at ' + where if where else ''}: {first['msg']}") from None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "bulky": self.bulky,
                "literal": self.literal}


@cache
def _adapter(python: str, many: bool) -> TypeAdapter:
    module, _, attr = python.partition(":")
    tp = getattr(importlib.import_module(module), attr)
    return TypeAdapter(list[tp] if many else tp)


_TYPES: dict[str, DataType] = {}


def register_type(dtype: DataType) -> DataType:
    """Add ``dtype``; registering the same definition again is harmless."""
    known = _TYPES.get(dtype.name)
    if known is not None and known != dtype:
        raise ValueError(f"data type '{dtype.name}' is already registered differently")
    _TYPES[dtype.name] = dtype
    return dtype


def get_type(name: str) -> DataType:
    try:
        return _TYPES[name]
    except KeyError:
        raise KeyError(f"unknown data type '{name}' (known: {', '.join(sorted(_TYPES))})"
                       ) from None


def all_types() -> list[DataType]:
    return [_TYPES[k] for k in sorted(_TYPES)]


def file_types() -> set[str]:
    """Types whose value a node opens as a file (media, subtitle files): between nodes they
    travel as media handles (:mod:`yivideo.media.handle`), not as paths."""
    return {t.name for t in _TYPES.values() if t.literal in ("media", "file")}


def bulky_types() -> set[str]:
    """Types too bulky to keep once their consumers are done (audio, frames)."""
    return {t.name for t in _TYPES.values() if t.bulky}


for _t in (
    DataType("video", "a video file (path or URL)", "builtins:str", literal="media"),
    DataType("audio_file", "an audio file (path or URL)", "builtins:str", literal="media"),
    DataType("subtitle_file", "a subtitle file: SRT, VTT, ASS (path or URL)", "builtins:str",
             literal="file"),
    DataType("text", "plain text", "builtins:str", literal="text"),
    DataType("audio", "decoded mono audio", "yivideo.types:Audio", bulky=True),
    DataType("frames", "decoded video frames", "yivideo.types:Frames", bulky=True),
    DataType("transcript", "timed, worded text with speakers", "yivideo.types:Transcript",
             literal="json"),
    DataType("subtitle_events", "subtitle events as shown on screen",
             "yivideo.types:SubtitleEvent", many=True, literal="json"),
    DataType("media_info", "container and stream facts", "builtins:dict", literal="json"),
    DataType("spans", "time ranges in seconds", "yivideo.types:Span", many=True,
             literal="json"),
    DataType("any", "any value"),
):
    register_type(_t)
