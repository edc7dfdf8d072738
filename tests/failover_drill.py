"""Node-loss drill on a simulated three-node cluster (run by test_platform in a subprocess).

A workflow's stage runs on a worker node; that node is removed mid-stage; the actor is
restarted on the other worker and the stage re-run. Prints the outcome as JSON.
"""

from __future__ import annotations

import json
import sys
import time

import ray
from ray.cluster_utils import Cluster

import yivideo
from yivideo.engine import get_controller
from yivideo.runtime import get_service_actor
from yivideo.settings import Settings


def main() -> None:
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1, resources={"worker": 1}) for _ in range(2)]
    cluster.wait_for_nodes()
    yivideo.connect(cluster.address)
    settings = Settings(actors={"diagnostics": {
        "num_cpus": 0, "max_restarts": -1, "resources": {"worker": 0.5}}})
    controller = get_controller(settings)
    wid = ray.get(controller.submit.remote({"inputs": {}, "options": {"cache": False},
                                            "stages": {"nap": {"node": "diagnostics.sleep",
                                                               "params": {"seconds": 6}}}}))
    while yivideo.get(wid)["stages"]["nap"]["status"] != "running":
        time.sleep(0.1)
    actor = get_service_actor("diagnostics", settings)
    before = ray.get(actor.health.remote())["node_id"]
    victim = next(w for w in workers if w.node_id == before)
    cluster.remove_node(victim)
    state = yivideo.wait(wid, timeout=120)
    after = ray.get(actor.health.remote(), timeout=60)["node_id"]
    attempts = [a["error"]["code"] for a in state["stages"]["nap"]["attempts"]]
    print(json.dumps({"status": state["status"], "moved": before != after,
                      "attempts": attempts}))
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
