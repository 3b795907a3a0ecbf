"""Nodes on several hosts, simulated on one machine: each host is a netns with its own NIC on a
shared bridge and its own mount namespace (its own /run/netns, /etc/netns and state
directory), running `labnet up --host` for its share of one lab file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.manifests import bare_pod, deployment, lab_text, service

LAB = lab_text(
    bare_pod("client", node="node1"),
    deployment(replicas=1, node="node2"),
    service(clusterIP="172.19.5.5"),
    nodes="[node1, node2]",
    settings="hosts:\n"
             "  - {name: hosta, nodes: [node1], interface: eth0}\n"
             "  - {name: hostb, nodes: [node2], interface: eth0}\n")


def run(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


class Host:
    """One simulated machine: a netns with eth0 on the LAN, labnet run in a private mount
    namespace inside it."""

    def __init__(self, name: str, netns: str, run_dir: Path, lab_file: Path) -> None:
        self.name, self.netns, self.run_dir, self.lab_file = name, netns, run_dir, lab_file

    def up(self) -> subprocess.CompletedProcess:
        script = ("mount -t tmpfs lab /run/netns && mount -t tmpfs lab /etc/netns && "
                  f"exec {sys.executable} -m labnet up --host {self.name} {self.lab_file}")
        return run("ip", "netns", "exec", self.netns, "unshare", "-m", "--propagation",
                   "private", "sh", "-c", script, env={**os.environ,
                                                       "LABNET_RUN_DIR": str(self.run_dir)})

    def labnet(self, lab: str, *args: str) -> subprocess.CompletedProcess:
        """A labnet command on this host: inside its agent's mount and network namespaces."""
        pid = (self.run_dir / lab / "agent.pid").read_text().strip()
        return run("nsenter", "-t", pid, "-m", "-n", sys.executable, "-m", "labnet", *args,
                   env={**os.environ, "LABNET_RUN_DIR": str(self.run_dir)})


@pytest.fixture
def two_hosts(labnet_lab, tmp_path):
    """The lab (named, not built: each host builds its share) and its two hosts on a LAN."""
    tag = labnet_lab.unique_name()  # for the host namespaces
    lan, names = f"{tag}-lan", {"hosta": f"{tag}-ha", "hostb": f"{tag}-hb"}
    made_etc = not Path("/etc/netns").exists()
    planned = labnet_lab(text=LAB, up=False)
    lab, lab_file = planned.name, planned.path
    hosts = {}
    try:
        if made_etc:
            os.makedirs("/etc/netns")
        assert run("ip", "netns", "add", lan).returncode == 0
        run("ip", "-n", lan, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", lan, "link", "set", "br0", "up")
        for i, (host, netns) in enumerate(names.items()):
            assert run("ip", "netns", "add", netns).returncode == 0
            port = f"p{i}"
            assert run("ip", "-n", lan, "link", "add", port, "type", "veth", "peer", "name",
                       "eth0", "netns", netns).returncode == 0
            run("ip", "-n", lan, "link", "set", port, "master", "br0", "up")
            run("ip", "-n", netns, "link", "set", "lo", "up")
            run("ip", "-n", netns, "link", "set", "eth0", "up")
            run("ip", "-n", netns, "addr", "add", f"10.250.0.{i + 1}/24", "dev", "eth0")
            hosts[host] = Host(host, netns, tmp_path / f"{host}-run", lab_file)
        yield lab, hosts
    finally:
        for host in hosts.values():
            if (host.run_dir / lab / "agent.pid").exists():
                host.labnet(lab, "down", lab)
        for netns in [lan, *names.values()]:
            run("ip", "netns", "del", netns)
        if made_etc:
            with __import__("contextlib").suppress(OSError):
                os.rmdir("/etc/netns")


def test_a_cluster_ip_on_one_host_served_from_another(two_hosts):
    lab, hosts = two_hosts
    for host in hosts.values():
        result = host.up()
        assert result.returncode == 0, result.stdout + result.stderr
    a, b = hosts["hosta"], hosts["hostb"]
    # host A built only node1 and its pods; host B only node2's
    listed = a.labnet(lab, "exec", "node/node1", "--", "true")
    assert listed.returncode == 0, listed.stderr
    assert b.labnet(lab, "exec", "client", "--", "true").returncode != 0
    # from a pod on host A, the ClusterIP whose only endpoint is on host B
    answer = a.labnet(lab, "exec", "client", "--", "curl", "-s", "-m", "5", "http://172.19.5.5/")
    assert answer.returncode == 0, answer.stderr
    assert "node: node2" in answer.stdout and "pod: web-" in answer.stdout
    assert "pod: web-" in a.labnet(lab, "exec", "client", "--", "curl", "-s", "-m", "5",
                                   "http://web/").stdout  # DNS: its pod lives on host A
    # VXLAN between the hosts, seen on host A's NIC
    capture = subprocess.Popen(["ip", "netns", "exec", a.netns, "tcpdump", "-n", "-i", "eth0",
                                "-c", "2", "udp", "port", "8472"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for _ in range(30):
            a.labnet(lab, "exec", "client", "--", "curl", "-s", "-m", "2", "http://172.19.5.5/")
            if capture.poll() is not None:
                break
            time.sleep(0.2)
        out = capture.communicate(timeout=10)[0]
    finally:
        if capture.poll() is None:
            capture.kill()
    assert "192.168.255.11" in out and "192.168.255.12.8472" in out
    status = a.labnet(lab, "status", "--lab", lab)
    assert status.returncode == 0, status.stdout
    # host B's part goes away: host A's lab stays, and says it is degraded
    assert b.labnet(lab, "down", lab).returncode == 0
    status = a.labnet(lab, "status", "--lab", lab)
    assert status.returncode == 1 and "remote VTEP 192.168.255.12" in status.stdout
    assert a.labnet(lab, "exec", "node/node1", "--", "true").returncode == 0


def test_a_multi_host_lab_needs_host_and_a_single_one_refuses_it(labnet_lab):
    from tests.integration.conftest import labnet_cli

    result = labnet_cli("up", str(labnet_lab(text=LAB, up=False).path))
    assert result.returncode == 2 and "spans hosts hosta, hostb" in result.stderr
    single = labnet_lab(up=False).path  # the default lab
    result = labnet_cli("up", "--host", "hosta", str(single))
    assert result.returncode == 2 and "has no hosts section" in result.stderr
