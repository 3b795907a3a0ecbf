"""The status report as types: its JSON (`labnet status -o json`), its text, and how it is built
from the plan, the kernel's answer and the agent's (no root, no lab)."""

import json

import click
import pytest

from labnet.cli import format_status
from labnet.input.labfile import load_default
from labnet.kernel.inspect import KernelReport, NetnsCheck
from labnet.plan import PlanNetwork, make_plan
from labnet.status import (
    AgentReport,
    AgentStatus,
    ExternalStatus,
    NodeStatus,
    PodStatus,
    ProcessStatus,
    ServiceStatus,
    StatusReport,
    UnderlayStatus,
    build,
)

NETWORK = PlanNetwork(underlay_cidr="192.168.255.0/24", pod_cidr="172.16.0.0/16",
                      node_cidr_mask=24, service_cidr="172.19.0.0/16",
                      cluster_dns="172.19.0.10", cluster_domain="cluster.local", vxlan_vni=1,
                      vxlan_port=8472, mtu=1500, dns_ttl=5)


@pytest.fixture
def report() -> StatusReport:
    return StatusReport(
        lab="t1",
        agent=AgentStatus(pid=4242, alive=True, restarts=2, supervisor=4241, state="running"),
        underlay=UnderlayStatus("t1-underlay", "192.168.255.0/24"),
        external=ExternalStatus("t1-external", "192.168.255.254"),
        network=NETWORK,
        nodes=(
            NodeStatus("node1", "t1-node1", "192.168.255.11", "172.16.1.0/24", 2,
                       foreign=("link foo0",), proxy_pid=4300, proxy_restarts=1),
            NodeStatus("node2", "t1-node2", "192.168.255.12", "172.16.2.0/24", 1,
                       missing=("route 172.16.1.0/24 via flannel.1",), proxy_pid=4301),
            NodeStatus("node3", "t1-node3", "192.168.255.13", "172.16.3.0/24", 1,
                       remote="host-b"),
        ),
        pods=(
            PodStatus("default", "web", "172.16.1.2", "node1", "t1-default-web", ("80/TCP",),
                      ("80/TCP",), (ProcessStatus("py", ("python3", "-m", "http.server"), 4400,
                                                  True, 0, None),)),
            PodStatus("default", "worker", "172.16.1.3", "node1", "t1-default-worker",
                      processes=(ProcessStatus("loop", ("sleep", "1"), None, False, 3, 1),),
                      missing=("process loop",)),
            PodStatus("kube-system", "far", "172.16.3.2", "node3", "t1-kube-system-far",
                      remote=True),
        ),
        services=(
            ServiceStatus("default", "web", "NodePort", "172.19.0.20", "<none>",
                          ("80:30080/TCP",),
                          tuple(f"172.16.1.{i}:80" for i in range(2, 7))),
            ServiceStatus("default", "ext", "ExternalName", "<none>", "<none>"),
        ),
        stray_netns=("t1-stray",),
    )


def test_to_dict_is_the_json_schema_of_labnet_status(report):
    data = report.to_dict()
    assert list(data) == ["lab", "healthy", "agent", "underlay", "external", "nodes", "pods",
                          "stray_netns", "services", "network"]
    assert data["healthy"] is False and data["stray_netns"] == ["t1-stray"]
    assert data["agent"] == {"pid": 4242, "alive": True, "restarts": 2, "supervisor": 4241,
                             "state": "running"}
    assert data["underlay"] == {"netns": "t1-underlay", "cidr": "192.168.255.0/24",
                                "missing": []}
    assert data["external"] == {"netns": "t1-external", "ip": "192.168.255.254", "missing": []}
    local, _, remote = data["nodes"]
    assert local == {"name": "node1", "netns": "t1-node1", "underlay_ip": "192.168.255.11",
                     "pod_cidr": "172.16.1.0/24", "pods": 2, "ready": True, "missing": [],
                     "foreign": ["link foo0"], "proxy_pid": 4300, "proxy_restarts": 1}
    assert remote == {"name": "node3", "netns": "t1-node3", "underlay_ip": "192.168.255.13",
                      "pod_cidr": "172.16.3.0/24", "pods": 1, "ready": True, "missing": [],
                      "foreign": [], "remote": "host-b"}
    web, worker, far = data["pods"]
    assert web == {"namespace": "default", "name": "web", "ip": "172.16.1.2", "node": "node1",
                   "netns": "t1-default-web", "ports": ["80/TCP"], "listening": ["80/TCP"],
                   "processes": [{"container": "py", "argv": ["python3", "-m", "http.server"],
                                  "pid": 4400, "running": True, "restarts": 0,
                                  "last_exit": None}],
                   "ready": True, "missing": []}
    assert worker["ready"] is False and worker["missing"] == ["process loop"]
    assert far["remote"] is True and far["ready"] is True and "remote" not in web
    assert data["services"][1] == {"namespace": "default", "name": "ext",
                                   "type": "ExternalName", "cluster_ip": "<none>",
                                   "external_ip": "<none>", "ports": [], "endpoints": []}
    assert data["network"]["underlay_cidr"] == "192.168.255.0/24"
    assert data["network"]["dns_upstream"] == []


def test_json_round_trips(report):
    data = report.to_dict()
    text = report.to_json()
    assert text == json.dumps(data, indent=2, sort_keys=True)
    assert json.loads(text) == data
    assert StatusReport.from_dict(json.loads(text)) == report
    assert StatusReport.from_dict(data).to_dict() == data


def test_healthy_is_every_part_ready(report):
    assert not report.healthy
    fixed = StatusReport(report.lab, report.agent, report.underlay, report.external,
                         report.network, report.nodes[:1] + report.nodes[2:],
                         report.pods[:1] + report.pods[2:], report.services)
    assert fixed.healthy
    down = AgentStatus(pid=None, alive=False, restarts=None, supervisor=None, state="down")
    assert not StatusReport(fixed.lab, down, fixed.underlay, fixed.external, fixed.network,
                            fixed.nodes, fixed.pods, fixed.services).healthy


def test_format_status_renders_the_typed_report(report):
    assert click.unstyle(format_status(report)).splitlines() == [
        "lab t1: DEGRADED   pod agent: pid 4242, restarted 2x   kube-proxy: iptables mode",
        "NODE    UNDERLAY IP      POD CIDR        PODS   STATUS",
        "node1   192.168.255.11   172.16.1.0/24   2      ok  foreign: link foo0"
        "  (kube-proxy restarted 1x)",
        "node2   192.168.255.12   172.16.2.0/24   1      missing: route 172.16.1.0/24 via"
        " flannel.1",
        "node3   192.168.255.13   172.16.3.0/24   1      ok",
        "",
        "NAMESPACE     POD      IP           NODE    PORTS    SERVING     STATUS",
        "default       web      172.16.1.2   node1   80/TCP   80/TCP,py   ok",
        "default       worker   172.16.1.3   node1   -        -           missing: process loop",
        "kube-system   far      172.16.3.2   node3   -        -           ok",
        "",
        "NAMESPACE   SERVICE   TYPE           CLUSTER-IP    EXTERNAL-IP   PORT(S)        "
        "ENDPOINTS",
        "default     web       NodePort       172.19.0.20   <none>        80:30080/TCP   "
        "172.16.1.2:80,172.16.1.3:80,172.16.1.4:80 + 2 more",
        "default     ext       ExternalName   <none>        <none>        <none>         <none>",
        "foreign netns with the lab's prefix: t1-stray",
    ]


def test_long_cells_never_run_into_the_next_column():
    """The bug the issue measured: `53/UDP,53/TCP,9153/TCPok` in the cluster DNS pod's row."""
    plan = make_plan(load_default())
    text = click.unstyle(format_status(build(plan, all_present(plan), None, None)))
    header = next(x for x in text.splitlines() if x.startswith("NAMESPACE") and "POD" in x)
    dns = next(x for x in text.splitlines() if x.startswith("kube-system"))
    cells = dns.split()
    assert "53/UDP,53/TCP,9153/TCP" in cells  # its own cell, whatever follows
    assert dns.index("53/UDP") == header.index("PORTS")


def test_a_command_pod_shows_the_ports_it_declares():
    from pathlib import Path

    from labnet.input.labfile import parse_lab_text
    from tests.manifests import lab_text

    pod = ("  - apiVersion: v1\n    kind: Pod\n    metadata: {name: cmd}\n    spec:\n"
           "      containers: [{name: srv, command: [/bin/sleep, '60'],"
           " ports: [{containerPort: 8080}, {containerPort: 5353, protocol: UDP}]}]\n")
    plan = make_plan(parse_lab_text(lab_text(pod), "lab.yaml", Path(".")))
    status = build(plan, all_present(plan), None, None).pod("cmd")
    assert status.ports == ("8080/TCP", "5353/UDP")
    assert not any("server" in m for m in status.missing)  # the agent does not serve them


@pytest.mark.parametrize("supervisor, shown", [
    (4241, "RESTARTING (its supervisor is starting it again)"),
    (None, "NOT RUNNING (`labnet up` starts it)"),
])
def test_format_status_without_an_agent(supervisor, shown):
    plan = make_plan(load_default())
    kernel = all_present(plan)
    text = click.unstyle(format_status(build(plan, kernel, None, supervisor)))
    assert text.splitlines()[0] == (f"lab demo: DEGRADED   pod agent: {shown}   "
                                    "kube-proxy: iptables mode")
    assert "missing: kube-proxy rules (the agent's worker for this node)" in text


def all_present(plan) -> KernelReport:
    return KernelReport(
        nodes={n.name: NetnsCheck(n.netns, present=True) for n in plan.nodes},
        pods={p.key: NetnsCheck(p.netns, present=True) for p in plan.pods},
        underlay=NetnsCheck(plan.underlay_netns, present=True),
        external=NetnsCheck(plan.external_netns, present=True))


def agent_wire(plan, **changed) -> dict:
    """What the agent answers over its control socket when everything serves."""
    pods = {p.key: {"listening": [f"{q.port}/{q.protocol}" for q in p.ports], "errors": [],
                    "ready": True, "processes": []} for p in plan.pods}
    pods.update(changed)
    return {"pid": 900, "restarts": 0, "pods": pods,
            "proxy": {n.netns: {"pid": 910 + n.index, "alive": True, "synced": True,
                                "restarts": 0} for n in plan.nodes}}


def test_build_combines_plan_kernel_and_agent():
    plan = make_plan(load_default())
    report = build(plan, all_present(plan), AgentReport.from_wire(agent_wire(plan)), 899)
    assert report.healthy, report.to_dict()
    assert report.agent == AgentStatus(pid=900, alive=True, restarts=0, supervisor=899,
                                       state="running")
    assert [n.proxy_pid for n in report.nodes] == [911, 912]
    assert [p.key for p in report.pods] == [p.key for p in plan.pods]
    assert report.network == plan.network
    assert report.to_dict()["network"] == json.loads(plan.to_json())["network"]

    nginx = next(p for p in plan.pods if p.name.startswith("my-nginx-"))
    changed = {nginx.key: {"listening": [], "errors": [], "ready": False, "processes": [
        {"container": "c", "argv": ["sleep"], "pid": None, "running": False, "restarts": 1,
         "last_exit": 2}]}}
    kernel = all_present(plan)
    kernel = KernelReport({**kernel.nodes, "node1": NetnsCheck(
        "demo-node1", True, ("link flannel.1",), ("link foo0",))}, kernel.pods,
        ("demo-stray",), kernel.underlay, kernel.external)
    report = build(plan, kernel, AgentReport.from_wire(agent_wire(plan, **changed)), 899)
    assert not report.healthy and report.stray_netns == ("demo-stray",)
    assert report.pod(nginx.name).missing == (
        "server 80/TCP", "process c", "readiness (not answering yet)")
    assert report.node("node1").missing == ("link flannel.1",)
    assert report.node("node1").foreign == ("link foo0",)
    svc = next(s for s in report.services if s.name == "my-nginx")
    assert f"{nginx.ip}:80" not in svc.endpoints and len(svc.endpoints) == 1  # unready: left out


def test_build_for_a_lab_across_hosts():
    plan = make_plan(load_default())
    far = plan.nodes[1]
    kernel = all_present(plan)
    kernel = KernelReport(
        {**kernel.nodes, far.name: NetnsCheck(far.netns, remote=True, host="b")},
        {p.key: (NetnsCheck(p.netns, remote=True, host="b") if p.node == far.name
                 else kernel.pods[p.key]) for p in plan.pods})
    report = build(plan, kernel, AgentReport.from_wire(agent_wire(plan)), 899)
    assert report.healthy, report.to_dict()
    data = report.to_dict()
    assert data["nodes"][1]["remote"] == "b" and "proxy_pid" not in data["nodes"][1]
    assert all(p["remote"] for p in data["pods"] if p["node"] == far.name)
    assert data["underlay"]["missing"] == [] and data["external"]["missing"] == []
