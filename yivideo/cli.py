"""``yivideo`` command line: run a workflow, serve the HTTP API, list nodes, stop actors.

Exit codes: 0 success, 1 the workflow failed or was cancelled, 2 bad config or usage.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from yivideo.errors import ConfigError, YiVideoError


class _Progress:
    """One line per stage change on stderr; a running stage's progress as a bar."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, int]] = {}

    def __call__(self, state: dict[str, Any]) -> None:
        for name, st in state["stages"].items():
            pct = int(st["progress"] * 100)
            key = (st["status"], pct // 5)
            if self.seen.get(name) == key or st["status"] == "pending":
                continue
            self.seen[name] = key
            bar = "#" * (pct // 5) + "-" * (20 - pct // 5)
            line = f"  {name:<12} {st['status']:<10} [{bar}] {pct:3d}%"
            if st["status"] == "running" and st["message"]:
                line += f"  {st['message']}"
            if st["duration_s"] is not None and st["status"] != "running":
                line += f"  {st['duration_s']:.2f}s"
            if st["error"]:
                line += f"  {st['error']['message']}"
            print(line, file=sys.stderr, flush=True)


def _cmd_run(args: argparse.Namespace) -> int:
    import yivideo

    request = yivideo.build_request(args.config, args.input, args.set)
    yivideo.validate_request(request)
    yivideo.connect(args.address)
    if not args.json:
        print(f"running '{args.config}' on {args.input}", file=sys.stderr)
    result = yivideo.run(request, out=args.out, on_update=None if args.json else _Progress())
    state = result.state
    if args.json:
        print(json.dumps({"state": state, "files": [str(p) for p in result.files]},
                         default=str, indent=2))
    else:
        print(f"workflow {state['id']}: {state['status']} in {state['duration_s']:.2f}s")
        if state["error"]:
            print(f"error in stage {state['error'].get('stage')}: {state['error']['message']}")
        if result.files:
            print(f"results in {args.out}:")
            for path in result.files:
                print(f"  {path}")
    return 0 if state["status"] == "succeeded" else 1


def _cmd_nodes(args: argparse.Namespace) -> int:
    from yivideo import catalogue
    from yivideo.nodes import all_nodes
    from yivideo.recipes import list_capabilities, named_recipes

    if args.json:
        print(json.dumps(catalogue.describe(), indent=2))
        return 0
    for spec in all_nodes():
        ins = ", ".join(f"{k}: {v}" for k, v in spec.inputs.items())
        outs = ", ".join(f"{k}: {v}" for k, v in spec.outputs.items())
        params = ", ".join(spec.params.model_fields)
        print(f"{spec.name:<24} ({ins}) -> ({outs})\n    {spec.description}")
        if params:
            print(f"    params: {params}")
    print("\ncapabilities:")
    for cap, options in list_capabilities().items():
        for o in options:
            print(f"  {cap}: {o['strategy']}/{o['provider']} "
                  f"({', '.join(o['consumes'])}) -> ({', '.join(o['produces'])})")
    print("\nrecipes: " + ", ".join(named_recipes()))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from ray import serve

    import yivideo
    from serve_app import build_app, start

    yivideo.connect(args.address)
    start(args.host, args.port)  # Serve's proxies with the application's logging
    serve.run(build_app(), name="yivideo", route_prefix="/")
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"YiVideo is serving: open http://{host}:{args.port}/ (Ctrl-C stops)", flush=True)
    try:
        signal.pause()  # Serve runs in the cluster; this process only keeps it up
    except KeyboardInterrupt:
        serve.shutdown()
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    import yivideo
    from yivideo.runtime import stop_actors
    from yivideo.settings import get_settings

    yivideo.connect(args.address)
    stopped = stop_actors(get_settings(), args.service or None)
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yivideo", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a workflow (recipe name or config file)")
    run.add_argument("config", help="recipe name (e.g. subtitles) or a JSON/YAML config file")
    run.add_argument("--input", "-i", help="the video (or audio) to process")
    run.add_argument("--out", "-o", help="directory to write the results into")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value (repeatable)")
    run.add_argument("--json", action="store_true", help="print the final state as JSON")
    run.add_argument("--address", help="Ray cluster address (default: local or RAY_ADDRESS)")
    run.set_defaults(func=_cmd_run)
    nodes = sub.add_parser("nodes", help="list nodes, capabilities and recipes")
    nodes.add_argument("--json", action="store_true")
    nodes.set_defaults(func=_cmd_nodes)
    serve = sub.add_parser("serve", help="serve the HTTP API through Ray Serve")
    serve.add_argument("--address", help="Ray cluster address")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=_cmd_serve)
    stop = sub.add_parser("stop", help="stop the named actors; the next use starts them again "
                                       "with its settings (running workflows are lost)")
    stop.add_argument("--address", help="Ray cluster address")
    stop.add_argument("--service", action="append", default=[], metavar="NAME",
                      help="only this service's actor (repeatable; default: every service "
                           "actor and the controller)")
    stop.set_defaults(func=_cmd_stop)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"config error: {e.message}", file=sys.stderr)
        return 2
    except YiVideoError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    except ConnectionError as e:  # no cluster at the given address
        print(f"error: cannot reach the Ray cluster: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
