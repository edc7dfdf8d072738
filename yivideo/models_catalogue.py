"""Model names: how a node param selects a model, pipeline, voice or checkpoint.

A model-selecting param is typed ``ModelName(catalogue)``. Its value is a *name* that the
service resolves from the operator's catalogue (bundled models plus ``models.model_dirs``),
never a caller's path: loaders such as pyannote's pipeline YAML, pickled torch checkpoints,
CTranslate2 or ONNX files run code or parse untrusted bytes, so only operator files may
reach them. Validation knows the type, so every service gets the rule by using it:

* a path (absolute, relative, ``~``, ``.``) is refused unless the validation context says
  ``local_paths`` (the local CLI, when ``models.allow_local_paths`` is on);
* with ``models`` in the context, a name that is not in the catalogue is refused with the
  list of available names (skipped when the catalogue cannot be seen from here).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from yivideo.settings import ModelSettings

__all__ = ["Catalogue", "ModelName", "looks_like_path", "model_params", "validation_context"]

#: One path component of letters, digits and ``._+-``, not starting with a dot.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def looks_like_path(value: str) -> bool:
    """True for anything a loader could read as a file system path rather than a name."""
    return (
        "/" in value or "\\" in value or os.sep in value or "\x00" in value
        or value.startswith(("~", ".")) or os.path.isabs(value)
    )  # fmt: skip


def validation_context(local_paths: bool = False, models: ModelSettings | None = None
                       ) -> dict[str, Any]:
    """The pydantic context that :class:`Catalogue` reads (see the module docstring)."""
    return {"local_paths": local_paths, "models": models}


@dataclass(frozen=True)
class Catalogue:
    """Marks a ``str`` param as a name from one catalogue of models.

    ``available(models)`` lists the names usable offline (name -> where it comes from).
    """

    kind: str  # what is selected, for messages: "whisper model", "OCR model set" ...
    available: Callable[[ModelSettings], dict[str, str]]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler
                                     ) -> core_schema.CoreSchema:
        return core_schema.with_info_after_validator_function(self._validate, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        out = handler(schema)
        out.update({"format": "model-name", "x-model-catalogue": self.kind})
        return out

    def _validate(self, value: str, info: core_schema.ValidationInfo) -> str:
        context = info.context or {}
        if looks_like_path(value):
            if context.get("local_paths"):
                return value
            raise PydanticCustomError(
                "model_path", "names a {kind} by path; give a name from the operator's "
                "catalogue (paths are accepted only by the local CLI with "
                "models.allow_local_paths)", {"kind": self.kind})
        if not NAME.fullmatch(value):
            raise PydanticCustomError("model_name", "'{value}' is not a valid {kind} name",
                                      {"value": value[:200], "kind": self.kind})
        models = context.get("models")
        if models is not None and _checkable(models):
            found = self.available(models)
            if value not in found:
                raise PydanticCustomError(
                    "model_unknown", "unknown {kind} '{value}'; available: {names}",
                    {"kind": self.kind, "value": value, "available": sorted(found),
                     "names": ", ".join(sorted(found)) or "none"})
        return value


def _checkable(models: ModelSettings) -> bool:
    # With downloads on, a hub fetches unknown names; a model folder that does not exist
    # here (a head node without the workers' models) leaves the check to the service.
    return not models.allow_download and all(d.is_dir() for d in models.model_dirs)


def ModelName(catalogue: Catalogue) -> Any:  # noqa: N802 - used as a type
    """The type of a param that selects a model from ``catalogue``: ``Annotated[str, ...]``."""
    return Annotated[str, catalogue]


def _catalogue_in(annotation: Any) -> Catalogue | None:
    if get_origin(annotation) is Annotated:
        found = next((m for m in annotation.__metadata__ if isinstance(m, Catalogue)), None)
        return found or _catalogue_in(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return next((c for a in get_args(annotation) if (c := _catalogue_in(a))), None)
    return None


def model_params(params: type[BaseModel]) -> dict[str, Catalogue]:
    """The model-selecting params of a params model: field name -> its catalogue."""
    found: dict[str, Catalogue] = {}
    for name, field in params.model_fields.items():
        marker = next((m for m in field.metadata if isinstance(m, Catalogue)), None)
        marker = marker or _catalogue_in(field.annotation)
        if marker is not None:
            found[name] = marker
    return found
