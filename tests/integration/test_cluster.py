"""The default lab for real: pods, nodes, cni0, flannel.1 — traffic across them."""

from __future__ import annotations

import json

import pytest

from labnet.kernel import nsfs
from labnet.kernel.netlink import NetnsLink
from tests.integration.conftest import labnet_cli, parse_whoami


@pytest.fixture(scope="module")
def seed_lab(labnet_module_lab):
    """The default lab, shared by the read-only tests of this module."""
    return labnet_module_lab()


def nginx_pods(lab):
    return [p for p in lab.running_plan().pods if p.owner == "Deployment/my-nginx"]


def curl(lab, target: str, url: str) -> dict[str, str]:
    result = lab.exec(target, ["curl", "-s", "-m", "5", url])
    assert result.returncode == 0, result.stderr
    return parse_whoami(result.stdout)


def test_every_pod_and_node_is_where_the_plan_says(seed_lab):
    plan = seed_lab.running_plan()
    for node in plan.nodes:
        with NetnsLink(node.netns) as link:
            links = link.links()
            addrs = link.addresses()
            routes = link.routes()
        assert links["cni0"].kind == "bridge" and links["flannel.1"].kind == "vxlan"
        assert links["flannel.1"].mac == node.vtep_mac and links["flannel.1"].mtu == 1450
        assert ("eth0", f"{node.underlay_ip}/24") in addrs
        assert ("cni0", f"{node.gateway}/24") in addrs
        assert ("flannel.1", f"{node.vtep_ip}/32") in addrs
        for other in plan.nodes:
            if other is not node:
                assert (other.pod_cidr, other.vtep_ip, "flannel.1") in routes
        for pod in plan.pods_on(node.name):
            assert links[pod.host_veth].master == links["cni0"].index
        assert nsfs.read_sysctl(node.netns, "net/ipv4/ip_forward") == "1"
    node1 = plan.node("node1")
    cni = seed_lab.exec("node/node1", ["ip", "-d", "link", "show", "cni0"]).stdout
    assert "nf_call_iptables 1" in cni  # same-node service traffic must see iptables
    vxlan = seed_lab.exec("node/node1", ["ip", "-d", "link", "show", "flannel.1"]).stdout
    assert f"vxlan id 1 local {node1.underlay_ip} dev eth0" in vxlan
    assert "dstport 8472" in vxlan and "nolearning" in vxlan
    fdb = seed_lab.exec("node/node1", ["bridge", "fdb", "show", "dev", "flannel.1"]).stdout
    node2 = plan.node("node2")
    assert f"{node2.vtep_mac} dst {node2.underlay_ip} self permanent" in fdb
    neigh = seed_lab.exec("node/node1", ["ip", "neigh", "show", "dev", "flannel.1"]).stdout
    assert f"{node2.vtep_ip} lladdr {node2.vtep_mac} PERMANENT" in neigh
    for pod in plan.pods:
        with NetnsLink(pod.netns) as link:
            assert ("eth0", f"{pod.ip}/24") in link.addresses()
            assert ("0.0.0.0/0", plan.node(pod.node).gateway, "eth0") in link.routes()
            assert link.links()["eth0"].mtu == 1450


def test_pod_to_pod_same_node_and_across_nodes(seed_lab):
    client = seed_lab.pod("client")
    pods = nginx_pods(seed_lab)
    assert {p.node for p in pods} == {"node1", "node2"}
    for pod in pods:
        ping = seed_lab.exec("client", ["ping", "-c", "2", "-W", "2", pod.ip])
        assert ping.returncode == 0 and " 0% packet loss" in ping.stdout
        answer = curl(seed_lab, "client", f"http://{pod.ip}/")
        # the pod that answered names itself, and saw the client's own address (no NAT)
        assert answer["pod"] == pod.name and answer["node"] == pod.node
        assert answer["ip"] == pod.ip and answer["namespace"] == "default"
        assert answer["client"].split(":")[0] == client.ip


def test_node_to_pod_over_vxlan(seed_lab):
    plan = seed_lab.running_plan()
    remote = next(p for p in nginx_pods(seed_lab) if p.node == "node2")
    answer = curl(seed_lab, "node/node1", f"http://{remote.ip}/")
    assert answer["pod"] == remote.name
    # node1 reaches node2's pods from its flannel.1 address, as on a flannel cluster
    assert answer["client"].split(":")[0] == plan.node("node1").vtep_ip
    ping = seed_lab.exec("node/node2", ["ping", "-c", "1", "-W", "2", plan.node("node1").gateway])
    assert ping.returncode == 0


def test_external_host_reaches_nodes_on_the_underlay(seed_lab):
    plan = seed_lab.running_plan()
    for node in plan.nodes:
        ping = seed_lab.exec("external", ["ping", "-c", "1", "-W", "2", node.underlay_ip])
        assert ping.returncode == 0, ping.stdout


def test_status_is_healthy_and_lists_pods(seed_lab):
    result = labnet_cli("status", "--lab", seed_lab.name, "-o", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["healthy"] and data["agent"]["alive"]
    assert {p["name"] for p in data["pods"]} == {p.name for p in seed_lab.running_plan().pods}
    assert all(p["listening"] == ["80/TCP"] for p in data["pods"] if p["name"].startswith("my-nginx"))
    (dns,) = [p for p in data["pods"] if p["namespace"] == "kube-system"]
    assert dns["listening"] == ["53/UDP", "53/TCP", "9153/TCP"]


def test_cli_exec_passes_exit_code_and_output(seed_lab):
    result = labnet_cli("exec", "--lab", seed_lab.name, "client", "--", "sh", "-c",
                        "ip -o -4 addr show eth0; exit 7")
    assert result.returncode == 7
    assert seed_lab.pod("client").ip in result.stdout
    result = labnet_cli("exec", "--lab", seed_lab.name, "node/node2", "--", "ip", "link")
    assert "flannel.1" in result.stdout and "cni0" in result.stdout
    bad = labnet_cli("exec", "--lab", seed_lab.name, "nosuchpod", "--", "true")
    assert bad.returncode == 2 and "no pod 'nosuchpod'" in bad.stderr


def test_second_up_changes_nothing(seed_lab):
    plan_before = seed_lab.state.plan_path.read_text()
    agent_before = seed_lab.state.agent_pid()

    def indexes():
        result = {}
        for netns in seed_lab.running_plan().all_netns():
            with NetnsLink(netns) as link:
                result[netns] = {n: (x.index, x.mac) for n, x in link.links().items()}
        return result

    links_before = indexes()
    report = seed_lab.up()
    assert not report.changed, report
    assert seed_lab.state.plan_path.read_text() == plan_before
    assert seed_lab.state.agent_pid() == agent_before
    assert indexes() == links_before
    result = labnet_cli("up", str(seed_lab.path))
    assert result.returncode == 0 and "nothing to change" in result.stdout


@pytest.mark.parametrize("damage", ["host-veth", "pod-address", "vxlan-route", "agent"])
def test_up_repairs_what_was_broken(labnet_lab, damage):
    lab = labnet_lab()
    plan = lab.running_plan()
    pod = next(p for p in nginx_pods(lab) if p.node == "node2")
    node = plan.node("node2")
    if damage == "host-veth":
        with NetnsLink(node.netns) as link:
            link.delete_link(pod.host_veth)
    elif damage == "pod-address":
        with NetnsLink(pod.netns) as link:
            link.delete_address("eth0", f"{pod.ip}/24")
    elif damage == "vxlan-route":
        with NetnsLink(plan.node("node1").netns) as link:
            link.delete_route(node.pod_cidr)
    else:
        import os
        import signal
        os.kill(lab.state.agent_pid(), signal.SIGKILL)
    assert lab.exec("client", ["curl", "-s", "-m", "2", f"http://{pod.ip}/"]).returncode != 0
    assert not lab.status().healthy
    report = lab.up()
    assert report.changed or damage == "agent"
    assert curl(lab, "client", f"http://{pod.ip}/")["pod"] == pod.name
    assert lab.status().healthy
