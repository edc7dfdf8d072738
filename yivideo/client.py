"""The Python API (also what the CLI uses): build a request, submit it, wait, fetch results.

    import yivideo
    yivideo.connect()                       # or connect("auto") on a cluster
    result = yivideo.run("subtitles", video="talk.mp4", out="out/")
    result.output("asr")["transcript"]      # Python objects, straight from the object store
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import yaml

from yivideo.engine import FINAL, get_controller
from yivideo.errors import ConfigError
from yivideo.media.handle import inputs_to_handles
from yivideo.recipes import named_recipes
from yivideo.runtime import connect
from yivideo.settings import get_settings
from yivideo.workflow import Plan, compile_config, load_config_file

Config = str | Path | dict[str, Any]


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError.at(dotted, f"'{key}' is not a mapping")
    node[leaf] = value


def build_request(config: Config, video: str | Path | None = None,
                  overrides: list[str] | dict[str, Any] | None = None) -> dict[str, Any]:
    """A request dict from a recipe name, a config file or a dict, plus ``key=value`` overrides.

    For the recipe form, override keys are relative to ``workflow_config``
    (``subtitle_generation.model=base``); for the explicit form, to the top
    (``stages.asr.params.beam_size=3``). Values are parsed as YAML scalars.
    """
    if isinstance(config, dict):
        request = copy.deepcopy(config)
    elif isinstance(config, str) and config in named_recipes():
        request = {"workflow_config": copy.deepcopy(named_recipes()[config])}
    elif Path(config).suffix.lower() in (".json", ".yml", ".yaml") or Path(config).exists():
        request = load_config_file(config)
    else:
        raise ConfigError.at("config", f"'{config}' is neither a recipe "
                             f"({', '.join(named_recipes())}) nor a config file")
    recipe_form = "workflow_config" in request
    if isinstance(overrides, list):
        pairs = {}
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep or not key:
                raise ConfigError.at("--set", f"expected key=value, got '{item}'")
            pairs[key] = yaml.safe_load(raw) if raw else ""
        overrides = pairs
    for key, value in (overrides or {}).items():
        if not recipe_form:
            _set(request, key, value)
        elif "." not in key and isinstance(value, bool):
            # "--set capability=true|false" turns a capability on (defaults) or off
            caps = request["workflow_config"]
            caps.setdefault(key, {}) if value else caps.pop(key, None)
        else:
            cap, _, field = key.partition(".")
            body = request["workflow_config"].get(cap)
            if field == "strategy" and isinstance(body, dict) and body.get("strategy") != value:
                # another strategy: the recipe's provider and params were the old one's
                request["workflow_config"][cap] = {}
            _set(request["workflow_config"], key, value)
    if video is not None:
        path = str(Path(video).expanduser().resolve())
        if recipe_form:
            request["video_path"] = path
        else:
            request.setdefault("inputs", {})["video"] = path
    return request


@dataclass
class WorkflowResult:
    """A finished workflow: its state, and its outputs as Python objects on demand."""

    state: dict[str, Any]
    files: list[Path]

    @property
    def id(self) -> str:
        return self.state["id"]

    @property
    def status(self) -> str:
        return self.state["status"]

    def output(self, stage: str) -> dict[str, Any]:
        """The outputs of a final stage (e.g. ``output("asr")["transcript"]``)."""
        refs = ray.get(get_controller().output_refs.remote(self.id, [stage]))
        return ray.get(refs[stage])


def validate_request(request: dict[str, Any]) -> Plan:
    """The request's plan; :class:`ConfigError` if it is not a valid workflow.

    Model params may be paths only where the settings allow it (``models.allow_local_paths``).
    """
    return compile_config(request, local_paths=get_settings().models.allow_local_paths)


def submit(request: dict[str, Any], owner: str = "") -> str:
    """Start a workflow; returns its id at once.

    The running controller must have been started with these settings (SettingsMismatch
    otherwise); the per-caller limit is this front door's own.
    """
    plan = validate_request(request)  # fail here, in the caller, with the precise error
    connect()
    settings = get_settings()
    controller = get_controller(settings)
    # local files become media any node can read: the stages may run on other machines
    request = inputs_to_handles(copy.deepcopy(request), plan.input_types, settings.namespace)
    return ray.get(controller.submit.remote(request, owner, settings.max_active_workflows))


def get(workflow_id: str) -> dict[str, Any]:
    connect()
    return ray.get(get_controller().get.remote(workflow_id))


def wait(workflow_id: str, on_update: Callable[[dict[str, Any]], None] | None = None,
         timeout: float | None = None) -> dict[str, Any]:
    """Block until the workflow is final, calling ``on_update`` on every change."""
    controller = get_controller()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        state = ray.get(controller.wait.remote(workflow_id, 5.0))
        if on_update:
            on_update(state)
        if state["status"] in FINAL:
            return state
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"workflow {workflow_id} still {state['status']}")


def download(workflow_id: str, out: str | Path, state: dict[str, Any] | None = None
             ) -> list[Path]:
    """Write every artifact of the workflow into ``out``; returns the paths."""
    controller = get_controller()
    state = state or get(workflow_id)
    folder = Path(out).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for art in state["artifacts"]:
        path = folder / art["name"]
        path.write_bytes(ray.get(controller.artifact.remote(workflow_id, art["name"])))
        paths.append(path.resolve())
    return paths


def run(config: Config, video: str | Path | None = None, out: str | Path | None = None,
        overrides: list[str] | dict[str, Any] | None = None,
        on_update: Callable[[dict[str, Any]], None] | None = None) -> WorkflowResult:
    """Build, submit and wait for a workflow; write its artifacts to ``out`` if given."""
    request = build_request(config, video, overrides)
    wid = submit(request)
    state = wait(wid, on_update)
    files = download(wid, out, state) if out is not None else []
    return WorkflowResult(state=state, files=files)


def cancel(workflow_id: str) -> dict[str, Any]:
    return ray.get(get_controller().cancel.remote(workflow_id))
