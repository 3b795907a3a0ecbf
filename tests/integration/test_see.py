"""Seeing the lab: graph of a running lab, and packet capture inside it."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.integration.conftest import labnet_cli


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
            seed_lab.exec("client", ["curl", "-s", "-m", "2", f"http://{remote.ip}/"])
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
