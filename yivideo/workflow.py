"""Workflow configs and their compilation into a validated plan.

Two forms, both checked completely before anything runs:

* explicit: ``{"inputs": {"video": ...}, "stages": {name: {node, params, inputs}}}`` where an
  input is a reference ``"<stage>.<output>"`` (or ``"<stage>"`` for its only output) or
  ``"input.<name>"`` for a workflow input;
* recipe: ``{"video_path": ..., "workflow_config": {capability: {strategy, provider, ...}}}``,
  expanded into explicit stages by :mod:`yivideo.recipes`.

Every problem is reported with the place it was found (``stages.asr.params.beam_size``).
Params that select a model are names from the operator's catalogue, never paths (see
:mod:`yivideo.models_catalogue`); only a trusted local caller passes ``local_paths``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from yivideo.datatypes import get_type
from yivideo.errors import ConfigError, NodeNotFound
from yivideo.models_catalogue import validation_context
from yivideo.nodes import NodeSpec, get_node
from yivideo.recipes import expand_recipe
from yivideo.settings import ModelSettings
from yivideo.validation import pydantic_details, raise_details

WORKFLOW_INPUT = "input"
_NAME = r"^[A-Za-z_][A-Za-z0-9_-]*$"


class StageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: str
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict)


class WorkflowOptions(BaseModel):
    """How a workflow runs, in either form under ``options``."""

    model_config = ConfigDict(extra="forbid")

    cache: bool = Field(True, description="reuse results of identical earlier stages")
    callback_url: str | None = Field(
        None, max_length=2048, description="POSTed the final state, signed (webhooks)")


class WorkflowConfig(BaseModel):
    """The explicit form."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict)
    stages: dict[str, StageConfig]
    options: WorkflowOptions = Field(default_factory=WorkflowOptions)


@dataclass(frozen=True)
class Ref:
    stage: str
    output: str


@dataclass
class PlannedStage:
    name: str
    node: NodeSpec
    params: dict[str, Any]
    bindings: dict[str, Ref | Any]  # input name -> upstream output, or a literal workflow input

    @property
    def upstream(self) -> set[str]:
        return {b.stage for b in self.bindings.values() if isinstance(b, Ref)}


@dataclass
class Plan:
    inputs: dict[str, Any]
    stages: dict[str, PlannedStage]
    order: list[str]
    #: the data type each workflow input is used as (how it is admitted over HTTP)
    input_types: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    options: WorkflowOptions = field(default_factory=WorkflowOptions)

    def consumers(self, stage: str) -> list[str]:
        return [s.name for s in self.stages.values() if stage in s.upstream]


def load_config_text(text: str, source: str = "config") -> dict[str, Any]:
    """Parse JSON or YAML text into a mapping."""
    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as e:
        raise ConfigError.at(source, f"not valid JSON or YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError.at(source, "expected a mapping at the top level")
    return data


def load_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError.at(str(p), "config file not found")
    return load_config_text(p.read_text(), str(p))


def _parse_ref(text: str, loc: str, stages: dict[str, StageConfig], inputs: dict[str, Any]
               ) -> Ref | None:
    stage, _, output = text.partition(".")
    if stage == WORKFLOW_INPUT:
        if output not in inputs:
            raise ConfigError.at(loc, f"unknown workflow input '{output}' (have: "
                                      f"{', '.join(sorted(inputs)) or 'none'})")
        return None
    if stage not in stages:
        raise ConfigError.at(loc, f"reference to unknown stage '{stage}'")
    outputs = get_node(stages[stage].node).outputs
    if not output:
        if len(outputs) != 1:
            raise ConfigError.at(loc, f"stage '{stage}' has outputs {sorted(outputs)}: name one")
        output = next(iter(outputs))
    if output not in outputs:
        raise ConfigError.at(loc, f"stage '{stage}' has no output '{output}' "
                                  f"(has: {', '.join(sorted(outputs))})")
    return Ref(stage, output)


def compile_explicit(data: dict[str, Any], *, local_paths: bool = False,
                     models: ModelSettings | None = None) -> Plan:
    """Validate the explicit form and build the plan.

    ``local_paths``: model params may be directory paths (the local CLI, when the operator
    allows it). ``models``: model names are checked against this catalogue.
    """
    context = validation_context(local_paths, models)
    try:
        cfg = WorkflowConfig.model_validate(data)
    except ValidationError as e:
        raise_details(pydantic_details(e, ""))
    if not cfg.stages:
        raise ConfigError.at("stages", "at least one stage is required")
    details: list[dict[str, str]] = []
    planned: dict[str, PlannedStage] = {}
    input_types: dict[str, dict[str, str]] = {}  # workflow input -> {binding loc: type}
    for name, st in cfg.stages.items():
        loc = f"stages.{name}"
        if name == WORKFLOW_INPUT or "." in name:
            details.append({"loc": loc, "msg": f"'{name}' cannot name a stage"})
            continue
        try:
            spec = get_node(st.node)
        except NodeNotFound as e:
            details.append({"loc": f"{loc}.node", "msg": e.details[0]["msg"]})
            continue
        try:
            params = spec.params.model_validate(st.params, context=context).model_dump(
                mode="json")
        except ValidationError as e:
            details.extend(pydantic_details(e, f"{loc}.params"))
            params = {}
        bindings: dict[str, Ref | Any] = {}
        for key in st.inputs:
            if key not in spec.inputs:
                details.append({"loc": f"{loc}.inputs.{key}",
                                "msg": f"unknown input (node {spec.name} takes: "
                                       f"{', '.join(sorted(spec.inputs))})"})
        for key, dtype in spec.inputs.items():
            iloc = f"{loc}.inputs.{key}"
            if key not in st.inputs:
                if key not in spec.optional_inputs:
                    details.append({"loc": iloc, "msg": f"required input of type '{dtype}'"})
                continue
            try:
                ref = _parse_ref(st.inputs[key], iloc, cfg.stages, cfg.inputs)
            except ConfigError as e:
                details.extend(e.details)
                continue
            if ref is None:
                source = st.inputs[key].partition(".")[2]
                input_types.setdefault(source, {})[iloc] = dtype
                try:
                    bindings[key] = get_type(dtype).check_literal(cfg.inputs[source])
                except ValueError as e:
                    details.append({"loc": iloc, "msg": f"input.{source}: {e}"})
                continue
            have = get_node(cfg.stages[ref.stage].node).outputs[ref.output]
            if have != dtype:
                details.append({"loc": iloc, "msg": f"expected '{dtype}', but "
                                f"{ref.stage}.{ref.output} is '{have}'"})
            bindings[key] = ref
        planned[name] = PlannedStage(name, spec, params, bindings)
    details += _one_kind_per_input(input_types)
    raise_details(details)
    graph = {n: s.upstream for n, s in planned.items()}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as e:
        cycle = " -> ".join(e.args[1])
        raise ConfigError.at("stages", f"cycle: {cycle}") from None
    types = {name: next(iter(used.values())) for name, used in input_types.items()}
    return Plan(inputs=cfg.inputs, stages=planned, order=order, input_types=types,
                config=cfg.model_dump(mode="json"), options=cfg.options)


def _one_kind_per_input(input_types: dict[str, dict[str, str]]) -> list[dict[str, str]]:
    """A workflow input is admitted one way: as media, a file, text or data, never two."""
    details = []
    for name, used in input_types.items():
        kinds = {get_type(t).literal for t in used.values()}
        if len(kinds) > 1:
            uses = ", ".join(f"{loc} ('{t}')" for loc, t in used.items())
            details.append({"loc": f"inputs.{name}",
                            "msg": f"used as different kinds of input: {uses}"})
    return details


def compile_config(data: dict[str, Any], *, local_paths: bool = False,
                   models: ModelSettings | None = None) -> Plan:
    """Compile either form (recipe form when ``workflow_config`` is present).

    ``local_paths`` and ``models`` as for :func:`compile_explicit`; a request from the
    network never passes ``local_paths``.
    """
    if "workflow_config" not in data:
        return compile_explicit(data, local_paths=local_paths, models=models)
    explicit, origins = expand_recipe(data)
    try:
        plan = compile_explicit(explicit, local_paths=local_paths, models=models)
    except ConfigError as e:
        # point at the capability the user wrote, not the stage it expanded into
        for d in e.details:
            stage, _, rest = d["loc"].removeprefix("stages.").partition(".params")
            if stage in origins and d["loc"].startswith("stages."):
                d["loc"] = origins[stage] + rest
        raise_details(e.details)
    plan.config = data
    return plan

