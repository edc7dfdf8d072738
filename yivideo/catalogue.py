"""The whole catalogue in one document: services, data types, nodes, capabilities, recipes.

``yivideo nodes --json`` prints it and ``GET /v1/nodes`` returns it, so both always say
the same thing, read from the service modules themselves.
"""

from __future__ import annotations

from typing import Any

from yivideo.datatypes import all_types
from yivideo.nodes import all_nodes, all_services
from yivideo.recipes import list_capabilities, named_recipes


def describe() -> dict[str, Any]:
    nodes = all_nodes()
    return {
        "services": [{"name": svc.name, "uses_gpu": svc.uses_gpu,
                      "actor_defaults": svc.actor_defaults,
                      "nodes": [n.name for n in nodes if n.service == svc.name]}
                     for svc in all_services()],
        "types": [t.describe() for t in all_types()],
        "nodes": [n.describe() for n in nodes],
        "capabilities": list_capabilities(),
        "recipes": named_recipes(),
    }
