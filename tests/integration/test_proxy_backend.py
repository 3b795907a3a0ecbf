"""The proxy-backend and rule-producer seams on a real node: a full kube-proxy sync deletes
stale chains kube-proxy owns and leaves every other producer's chains alone; the backend's
cleanup removes all kube-proxy wrote (jumps included), and the next full sync puts it back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.integration.conftest import wait_for

FOREIGN = "KUBE-NWPLCY-LABNETTEST"  # what a NetworkPolicy producer's chain looks like
USER = "LABNET-USER-CHAIN"
STALE = "KUBE-SVC-LABNETSTALE00000"  # kube-proxy's by its prefix, wanted by no Service

CLEANUP = """
import sys
from labnet.kubeproxy.modes import backend_for
backend = backend_for("iptables")
worker = backend.start_worker(sys.argv[1])
try:
    worker.send(backend.cleanup_changes())
    answer = worker.receive()
finally:
    worker.stop()
sys.exit(0 if answer.get("ok") else answer.get("error"))
"""


def clusterip_answers(t, pod: str, ip: str) -> bool:
    return t.exec(pod, ["curl", "-s", "-o", "/dev/null", "-m", "2", f"http://{ip}/"],
                  timeout=10).returncode == 0


def restart_worker(lab, node: str) -> None:
    """Kill a node's kube-proxy worker: the agent starts another, whose first sync is full."""
    before = lab.status().node(node).proxy_restarts
    os.kill(lab.status().node(node).proxy_pid, signal.SIGKILL)
    assert wait_for(lambda: lab.status().node(node).proxy_restarts == before + 1, 5)


def test_a_full_sync_deletes_only_the_stale_chains_kube_proxy_owns(labnet_lab):
    t = labnet_lab()
    lab = t.lab
    for argv in (["-N", FOREIGN], ["-A", FOREIGN, "-j", "RETURN"], ["-N", USER],
                 ["-t", "nat", "-N", STALE], ["-t", "nat", "-A", STALE, "-j", "RETURN"]):
        result = t.exec("node/node2", ["iptables-legacy", *argv])
        assert result.returncode == 0, result.stderr
    restart_worker(lab, "node2")
    lab.scale("default", "my-nginx", 3)  # the new worker's first sync: a full one
    rules = lab.installed_rules("node2")
    assert f":{STALE} " not in rules  # kube-proxy's own leftover: deleted, as kube-proxy does
    assert f":{FOREIGN} " in rules and f"-A {FOREIGN} -j RETURN" in rules
    assert f":{USER} " in rules
    assert "-A KUBE-SERVICES" in rules  # and its own rules are all there


def test_the_backend_cleanup_removes_what_it_wrote_and_a_full_sync_restores_it(labnet_lab):
    t = labnet_lab()
    lab = t.lab
    vip = t.service_ip("my-nginx")
    client = next(p for p in lab.running_plan().pods if p.name == "client")
    node = client.node
    assert clusterip_answers(t, "client", vip)
    assert t.exec(f"node/{node}", ["iptables-legacy", "-N", FOREIGN]).returncode == 0
    netns = lab.running_plan().node(node).netns
    done = subprocess.run([sys.executable, "-c", CLEANUP, netns], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rules = lab.installed_rules(node)
    assert "KUBE-SERVICES" not in rules and "KUBE-SEP-" not in rules, rules
    assert "-j KUBE-" not in rules  # no jump from a built-in chain is left
    assert f":{FOREIGN} " in rules  # another producer's chain stays
    assert not clusterip_answers(t, "client", vip)  # nothing DNATs the ClusterIP now
    restart_worker(lab, node)
    lab.scale("default", "my-nginx", 3)
    assert wait_for(lambda: clusterip_answers(t, "client", vip), 10)
    assert "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES" \
        in lab.installed_rules(node)
