"""The recipe form: capabilities, each with a strategy and a provider, wired by data type.

``{"video_path": "a.mp4", "workflow_config": {"subtitle_generation":
{"strategy": "asr", "provider": "faster_whisper", "model": "tiny.en"}}}`` becomes the
explicit stages probe -> audio -> asr -> subtitles.

Service modules declare what they offer (:func:`capability`, :func:`converter`,
:func:`recipe`); this module only wires. A provider is a list of :class:`Step`; each
step's node takes typed inputs, and the expander binds every input to the latest stage
that produced that type (a "board" of type -> output), converting when a type is missing
(a ``video`` becomes ``audio`` through a converter step). Steps run in the order the
capabilities were written, by tier: producers first, then refiners (speakers into a
transcript), then outputs (subtitle files), so a capability never edits another's stages.
The params a user writes under a capability go to every step whose node takes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from yivideo.datatypes import get_type
from yivideo.errors import ConfigError
from yivideo.nodes import get_node, load_services
from yivideo.validation import pydantic_details, raise_details

Stages = dict[str, dict[str, Any]]

PRODUCE, REFINE, OUTPUT = 0, 1, 2


@dataclass(frozen=True)
class Step:
    """One stage a provider adds: ``stage`` is its name in the plan."""

    stage: str
    node: str
    params: dict[str, Any] = field(default_factory=dict)  # defaults under the user's
    renames: dict[str, str] = field(default_factory=dict)  # user key -> node param
    #: type -> output name, where several outputs share a type (vocals, instrumental)
    publish: dict[str, str] = field(default_factory=dict)
    tier: int = PRODUCE
    #: added only when all its inputs are already there (speakers, when there is ASR)
    optional: bool = False

    def takes(self, key: str) -> str | None:
        """The node param a user's ``key`` sets, if this step has it."""
        name = self.renames.get(key, key)
        return name if name in get_node(self.node).params.model_fields else None

    def published(self) -> dict[str, str]:
        """type -> output this step puts on the board."""
        outputs = get_node(self.node).outputs
        by_type: dict[str, list[str]] = {}
        for out, dtype in outputs.items():
            by_type.setdefault(dtype, []).append(out)
        return {t: self.publish.get(t, names[0]) for t, names in by_type.items()
                if len(names) == 1 or t in self.publish}


@dataclass(frozen=True)
class Provider:
    steps: tuple[Step, ...]
    description: str


class RecipeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video_path: str | None = Field(None, min_length=1, description="same as inputs.video")
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="typed inputs: {video|audio_file|subtitle_file|"
                                          "text: value}")
    workflow_config: dict[str, Any]
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _video_path_is_an_input(self) -> RecipeRequest:
        if self.video_path is not None:
            self.inputs = {"video": self.video_path, **self.inputs}
        return self


#: capability -> (strategy, provider) -> steps; the first strategy, and its first
#: provider, are the defaults
CAPABILITIES: dict[str, dict[tuple[str, str], Provider]] = {}
#: type -> steps that make it from another type (first registered first)
CONVERTERS: dict[str, list[Step]] = {}
#: Built-in recipes a user can name instead of writing a config.
RECIPES: dict[str, dict[str, Any]] = {}


def capability(name: str, strategy: str, provider: str, description: str, *steps: Step,
               default: bool = False) -> None:
    """Offer ``name`` done by ``strategy``/``provider`` as ``steps``."""
    options = CAPABILITIES.setdefault(name, {})
    entry = Provider(tuple(steps), description)
    if default:  # the default strategy comes first
        CAPABILITIES[name] = {(strategy, provider): entry, **options}
    else:
        options[(strategy, provider)] = entry


def converter(step: Step) -> None:
    """``step`` (a node with one input) makes its output types from its input type."""
    for dtype in step.published():
        CONVERTERS.setdefault(dtype, []).append(step)


def recipe(name: str, workflow_config: dict[str, Any]) -> None:
    RECIPES[name] = workflow_config


def named_recipes() -> dict[str, dict[str, Any]]:
    load_services()
    return RECIPES


class _Expansion:
    """The stages being built, the board of types, and where each stage came from."""

    def __init__(self, inputs: dict[str, Any]) -> None:
        self.stages: Stages = {}
        self.origins: dict[str, str] = {}
        self.board = {t: f"input.{t}" for t in inputs}

    def source(self, dtype: str) -> str | None:
        """The latest output of type ``dtype``, converting another type when needed."""
        if dtype not in self.board:
            for step in CONVERTERS.get(dtype, []):
                (needs,) = get_node(step.node).inputs.values()
                if needs in self.board:
                    self.add(step, {}, None)
                    break
        return self.board.get(dtype)

    def add(self, step: Step, params: dict[str, Any], origin: str | None) -> None:
        spec = get_node(step.node)
        if step.optional and not set(spec.inputs.values()) <= set(self.board):
            return  # checked before any converter runs, so a skipped step adds nothing
        inputs = {}
        for key, dtype in spec.inputs.items():
            ref = self.source(dtype)
            if ref is None and key not in spec.optional_inputs:
                have = ", ".join(sorted(self.board)) or "nothing"
                raise ConfigError.at(origin or "inputs", f"needs a '{dtype}' "
                                     f"({get_type(dtype).description}); have: {have}")
            if ref is not None:
                inputs[key] = ref
        params = {**step.params, **params}
        known = self.stages.get(step.stage)
        if known is not None and known["node"] != step.node:
            raise ConfigError.at(origin or "workflow_config", f"stage '{step.stage}' is "
                                 f"already added by {self.origins.get(step.stage, 'a converter')}")
        if known is not None:  # the same stage asked for twice: one stage, params merged
            params = {**known.get("params", {}), **params}
        self.stages[step.stage] = {"node": step.node, "inputs": inputs,
                                   **({"params": params} if params else {})}
        if origin and (params or step.stage not in self.origins):
            self.origins[step.stage] = origin
        self.board.update({t: f"{step.stage}.{out}" for t, out in step.published().items()})


def _route(provider: Provider, params: dict[str, Any], loc: str) -> list[dict[str, Any]]:
    """Each step's share of the user's params; a key no step takes is an error."""
    shares: list[dict[str, Any]] = [{} for _ in provider.steps]
    details = []
    for key, value in params.items():
        taken = [(i, name) for i, s in enumerate(provider.steps) if (name := s.takes(key))]
        if not taken:
            details.append({"loc": f"{loc}.{key}", "msg": "unknown field"})
        for i, name in taken:
            shares[i][name] = value
    raise_details(details)
    return shares


def _choose(cap: str, body: Any) -> tuple[Provider, dict[str, Any]]:
    loc = f"workflow_config.{cap}"
    if cap not in CAPABILITIES:
        raise ConfigError.at(loc, f"unknown capability (known: {', '.join(CAPABILITIES)})")
    if not isinstance(body, dict):
        raise ConfigError.at(loc, "expected a mapping with strategy and provider")
    params = dict(body)
    strategy, provider = params.pop("strategy", None), params.pop("provider", None)
    options = CAPABILITIES[cap]
    strategies = list(dict.fromkeys(s for s, _ in options))
    strategy = strategy or strategies[0]
    if strategy not in strategies:
        raise ConfigError.at(f"{loc}.strategy",
                             f"unknown strategy '{strategy}' (known: {', '.join(strategies)})")
    providers = [p for s, p in options if s == strategy]
    provider = provider or providers[0]  # the first offered is the default
    if provider not in providers:
        raise ConfigError.at(f"{loc}.provider", f"unknown provider '{provider}' for "
                             f"strategy '{strategy}' (known: {', '.join(sorted(providers))})")
    return options[(strategy, provider)], params


def expand_recipe(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Turn the recipe form into the explicit form (stages named after their role).

    Also returns, for each stage a capability added, that capability's place in the
    request, so that a bad param is reported where the user wrote it.
    """
    load_services()
    try:
        req = RecipeRequest.model_validate(data)
    except ValidationError as e:
        raise_details(pydantic_details(e, ""))
    if not req.inputs:
        raise ConfigError.at("video_path", "required (or typed inputs: "
                             "{video|audio_file|subtitle_file|text: ...})")
    if not req.workflow_config:
        raise ConfigError.at("workflow_config", "name at least one capability")
    for name, value in req.inputs.items():
        try:
            get_type(name).check_literal(value)
        except (KeyError, ValueError) as e:
            raise ConfigError.at(f"inputs.{name}", str(e).strip('"')) from None
    plan = _Expansion(req.inputs)
    if "video" in req.inputs:  # media facts of every video, kept as media.json
        plan.source("media_info")
    steps = []
    for order, (cap, body) in enumerate(req.workflow_config.items()):
        provider, params = _choose(cap, body)
        shares = _route(provider, params, f"workflow_config.{cap}")
        steps += [(step.tier, order, step, share, f"workflow_config.{cap}")
                  for step, share in zip(provider.steps, shares, strict=True)]
    for _, _, step, share, origin in sorted(steps, key=lambda s: s[:2]):
        plan.add(step, share, origin)
    explicit = {"inputs": req.inputs, "stages": plan.stages, "options": req.options}
    return explicit, plan.origins


def list_capabilities() -> dict[str, list[dict[str, Any]]]:
    """Every capability's strategies and providers: the types they take and give, and
    the nodes they run (a form shows those nodes' params)."""
    load_services()
    out: dict[str, list[dict[str, Any]]] = {}
    for cap, options in CAPABILITIES.items():
        for (strategy, provider), entry in options.items():
            made = {t for s in entry.steps for t in s.published()}
            takes = {t for s in entry.steps for t in get_node(s.node).inputs.values()}
            out.setdefault(cap, []).append({
                "strategy": strategy, "provider": provider, "description": entry.description,
                "consumes": sorted(takes - made), "produces": sorted(made),
                "steps": [{"node": s.node, "renames": s.renames, "params": s.params}
                          for s in entry.steps]})
    return out
