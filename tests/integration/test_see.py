"""Seeing the lab: graph of a running lab, and packet capture inside it."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import labnet_cli


@pytest.fixture(scope="module")
def seed_lab(labnet_module_lab):
    """The default lab, shared by the tests of this module."""
    return labnet_module_lab()


def test_graph_of_the_running_lab(seed_lab):
    result = labnet_cli("graph", "--lab", seed_lab.name, "-o", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {v["id"] for v in data["vertices"] if v["kind"] == "pod"} == {
        f"pod:{p.key}" for p in seed_lab.running_plan().pods}


def test_capture_writes_a_pcap_with_the_vxlan_hop(seed_lab, tmp_path):
    pcap = tmp_path / "vxlan.pcap"
    remote = next(p for p in seed_lab.running_plan().pods
                  if p.node == "node2" and p.labels.get("app") == "my-nginx")
    capture = subprocess.Popen(
        [sys.executable, "-m", "labnet", "capture", "--lab", seed_lab.name, "node/node1:eth0",
         "-c", "2", "-w", str(pcap), "udp", "port", "8472"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(50):  # tcpdump needs a moment before it listens
            time.sleep(0.1)
            labnet_cli("trace", "--lab", seed_lab.name, "client", f"http://{remote.ip}/")
            if capture.poll() is not None:
                break
        capture.wait(timeout=10)
    finally:
        if capture.poll() is None:
            capture.kill()
    assert capture.returncode == 0, capture.stderr
    text = subprocess.run(["tcpdump", "-n", "-r", str(pcap)], capture_output=True,
                          text=True, timeout=10).stdout
    node1, node2 = seed_lab.running_plan().nodes
    assert f"{node1.underlay_ip}." in text and f"{node2.underlay_ip}.8472" in text
    assert f"> {remote.ip}.80" in text  # the request inside the VXLAN packet


def test_trace_explains_a_request_hop_by_hop(seed_lab):
    from labnet.kubeproxy import chains

    plan = seed_lab.running_plan()
    svc = plan.service("default/my-nginx")
    remote_seen = False
    for _ in range(12):  # until the random choice lands on the pod across the lab
        result = labnet_cli("trace", "--lab", seed_lab.name, "client", "http://my-nginx",
                            "-o", "json")
        assert result.returncode == 0, result.stdout + result.stderr
        data = json.loads(result.stdout)
        steps = {s["what"].split(" ")[0]: s for s in data["steps"]}
        assert "172.19.0.10" in steps["DNS"]["detail"] and "coredns-" in steps["DNS"]["detail"]
        assert "no interface in the lab" in steps["route"]["evidence"]
        answer = steps["answer"]["detail"]
        pod = next(p for p in plan.pods if p.key == answer.split(" on ")[0])
        chain_step = next(s for s in data["steps"] if "nat chains" in s["what"])
        assert chains.svc_chain("default/my-nginx", "tcp") in chain_step["detail"]
        assert chains.sep_chain("default/my-nginx", "tcp", pod.ip, 80) in chain_step["detail"]
        conntrack = next(s for s in data["steps"] if s["what"].startswith("conntrack"))
        assert f"DNATed to {pod.ip}:80" in conntrack["detail"]
        assert svc.cluster_ip in conntrack["detail"]
        if pod.node != "node1":
            vxlan = steps["VXLAN"]["detail"]
            assert "192.168.255.11 -> 192.168.255.12 UDP 8472, VNI 1" in vxlan
            remote_seen = True
            break
    assert remote_seen, "never reached the pod on node2"


def test_trace_icmp_says_why_ping_fails(seed_lab):
    result = labnet_cli("trace", "--lab", seed_lab.name, "client", "my-nginx", "--icmp")
    assert result.returncode == 1
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("=> ping ") and "never DNATed" in last and "no interface owns" in last
