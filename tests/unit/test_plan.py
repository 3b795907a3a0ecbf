"""Address allocation, scheduling and naming: pure, deterministic, stable across changes."""

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from labnet.errors import SpecError, SpecErrors
from labnet.input.labfile import load_default, parse_lab_text
from labnet.names import IFNAMSIZ, host_veth_name, netns_name, replica_pod_name
from labnet.plan import Plan, make_plan
from tests.manifests import HTTP_8080, NO_PORTS, bare_pods, deployment, lab_text, service

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def lab(text: str):
    return parse_lab_text(text, "lab.yaml", Path("."))


def pods_yaml(n: int, node: str | None = None) -> str:
    return bare_pods(n, node=node, containers=NO_PORTS)


def test_default_plan_addresses():
    plan = make_plan(load_default())
    n1, n2 = plan.nodes
    assert (n1.underlay_ip, n1.pod_cidr, n1.gateway, n1.vtep_ip) == (
        "192.168.255.11", "172.16.1.0/24", "172.16.1.1", "172.16.1.0")
    assert (n2.underlay_ip, n2.pod_cidr, n2.gateway) == ("192.168.255.12", "172.16.2.0/24",
                                                         "172.16.2.1")
    assert plan.external_ip == "192.168.255.254"
    client = next(p for p in plan.pods if p.name == "client")
    assert (client.node, client.ip, client.netns) == ("node1", "172.16.1.2", "demo-default-client")
    nginx = [p for p in plan.pods if p.owner == "Deployment/my-nginx"]
    assert sorted(p.node for p in nginx) == ["node1", "node2"]  # one on each node
    assert all(p.name.startswith("my-nginx-") and len(p.name.split("-")) == 4 for p in nginx)
    assert plan.pod_mtu == 1450


def test_default_plan_matches_golden_file():
    """The whole plan of the default lab, byte for byte (regenerate deliberately if changed)."""
    assert make_plan(load_default()).to_json() == (GOLDEN / "seed.plan.json").read_text()


def test_plan_is_deterministic_and_round_trips():
    a, b = make_plan(load_default()), make_plan(load_default())
    assert a.to_json() == b.to_json()
    assert Plan.from_json(a.to_json()) == a


def test_previous_plan_keeps_addresses_of_surviving_pods():
    text = "name: t\nnodes: 2\nmanifests:\n" + pods_yaml(6)
    before = make_plan(lab(text))
    # remove p1: everyone else keeps node and IP; a new pod takes the lowest free address
    after_text = text.replace(pods_yaml(6), pods_yaml(6).replace("name: p1}", "name: new}"))
    after = make_plan(lab(after_text), previous=before)
    old = {p.name: (p.node, p.ip) for p in before.pods}
    new = {p.name: (p.node, p.ip) for p in after.pods}
    for name in ("p0", "p2", "p3", "p4", "p5"):
        assert new[name] == old[name]
    # like CNI's host-local IPAM, the next address after the last one handed out, not the one
    # just freed: a recreated pod gets a new IP
    assert new["new"][1] not in {ip for _, ip in old.values()}
    assert after.ip_cursor[new["new"][0]] == new["new"][1]


def test_spread_and_pinning():
    plan = make_plan(lab("name: t\nnodes: 3\nmanifests:\n" + pods_yaml(7)))
    counts = [len([p for p in plan.pods_on(n.name) if p.namespace == "default"])
              for n in plan.nodes]
    assert counts == [3, 2, 2]
    # the cluster DNS pod, scheduled after the lab's own pods, goes where there is most room
    (dns,) = [p for p in plan.pods if p.namespace == "kube-system"]
    assert dns.name.startswith("coredns-") and dns.node == "node2"
    pinned = make_plan(lab("name: t\nnodes: 3\nmanifests:\n" + pods_yaml(4, "node3")))
    assert {p.node for p in pinned.pods if p.namespace == "default"} == {"node3"}
    assert [p.ip for p in pinned.pods if p.namespace == "default"] == [
        "172.16.3.2", "172.16.3.3", "172.16.3.4", "172.16.3.5"]


def test_node_selector_scheduling():
    text = ("name: t\nnodes:\n  - node1\n  - {name: node2, labels: {disk: ssd}}\nmanifests:\n"
            "  - {apiVersion: v1, kind: Pod, metadata: {name: db}, spec: {nodeSelector: "
            "{disk: ssd}, containers: [{name: c}]}}\n")
    assert make_plan(lab(text)).pods[0].node == "node2"


def test_too_many_pods_for_a_node():
    text = "name: t\nnodes: 1\nnetwork: {nodeCIDRMaskSize: 28}\nmanifests:\n" + pods_yaml(14)
    with pytest.raises((SpecError, SpecErrors)) as info:
        make_plan(lab(text))
    assert "node node1 is full: its pod CIDR 172.16.0.16/28 holds 13 pods" in str(info.value)


def test_node_cidr_mask_and_count_limits():
    plan = make_plan(lab("name: t\nnodes: 3\nnetwork: {podCIDR: 10.244.0.0/16, "
                         "nodeCIDRMaskSize: 26}\n"))
    assert [n.pod_cidr for n in plan.nodes] == ["10.244.0.64/26", "10.244.0.128/26",
                                                "10.244.0.192/26"]


def test_explicit_node_address_conflict():
    text = "name: t\nnodes:\n  - node1\n  - {name: node2, address: 192.168.255.11}\n"
    with pytest.raises(SpecError, match="192.168.255.11 is already used by node node1"):
        make_plan(lab(text))


def test_names_fit_kernel_limits():
    long_pod = "p" * 200
    name = netns_name("lab", "default", long_pod)
    assert len(name) <= 64 and name == netns_name("lab", "default", long_pod)
    assert len(host_veth_name("default", long_pod)) <= IFNAMSIZ
    assert replica_pod_name("web", "abc", 0) != replica_pod_name("web", "abc", 1)


def test_colliding_netns_names_are_disambiguated():
    text = ("name: t\nnodes: 1\nmanifests:\n"
            "  - {apiVersion: v1, kind: Namespace, metadata: {name: a-b}}\n"
            "  - {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n"
            "  - {apiVersion: v1, kind: Pod, metadata: {name: c, namespace: a-b}, "
            "spec: {containers: [{name: c}]}}\n"
            "  - {apiVersion: v1, kind: Pod, metadata: {name: b-c, namespace: a}, "
            "spec: {containers: [{name: c}]}}\n")
    plan = make_plan(lab(text))
    names = [p.netns for p in plan.pods if p.namespace != "kube-system"]
    assert len(set(names)) == 2 and all(n.startswith("t-a-b-c-") for n in names)


def test_plan_json_is_sorted_and_versioned():
    data = make_plan(load_default()).to_json()
    assert '"version": 1' in data
    with pytest.raises(ValueError):
        Plan.from_json(data.replace('"version": 1', '"version": 99'))


def test_plan_dataclasses_are_frozen():
    plan = make_plan(load_default())
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.nodes[0].name = "x"  # type: ignore[misc]


SERVICES = lab_text(
    deployment(replicas=3, containers=HTTP_8080),
    service(ports="[{name: http, port: 80, targetPort: http}]"),
    service("lb", "[{port: 80, targetPort: 8080}]", app="web", type="LoadBalancer",
            externalTrafficPolicy="Local"),
    service("manual", "[{name: dns, port: 53, protocol: UDP}]", selector=False),
    name="t") + """\
  - apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: manual-1, labels: {kubernetes.io/service-name: manual}}
    addressType: IPv4
    endpoints:
      - {addresses: [10.9.0.2], nodeName: node1}
      - {addresses: [10.9.0.1], conditions: {ready: false}}
    ports: [{name: dns, port: 5353, protocol: UDP}]
"""


def test_service_endpoints_and_allocation():
    plan = make_plan(lab(SERVICES))
    web = plan.service("default/web")
    assert ipaddress.IPv4Address(web.cluster_ip) in ipaddress.IPv4Network("172.19.0.0/16")
    eps = web.ports[0].endpoints
    assert len(eps) == 3 and all(e.port == 8080 for e in eps)
    assert [e.address for e in eps] == sorted(e.address for e in eps)
    assert {e.pod for e in eps} == {p.key for p in plan.pods if p.namespace == "default"}
    lb = plan.service("default/lb")
    assert lb.load_balancer_ips and lb.load_balancer_ips[0].startswith("192.168.255.")
    assert 30000 <= lb.ports[0].node_port <= 32767 and lb.health_check_node_port
    manual = plan.service("default/manual")
    assert [(e.ip, e.port, e.ready) for e in manual.ports[0].endpoints] == [
        ("10.9.0.1", 5353, False), ("10.9.0.2", 5353, True)]


def test_allocations_are_stable_and_kept():
    first = make_plan(lab(SERVICES))
    again = make_plan(lab(SERVICES))
    assert first.services == again.services
    # a new service does not move the others, and the running plan's choices are kept
    more = SERVICES + ("  - {apiVersion: v1, kind: Service, metadata: {name: zz}, spec: "
                       "{selector: {app: web}, ports: [{port: 81}]}}\n")
    after = make_plan(lab(more), previous=first)
    for svc in first.services:
        assert after.service(svc.key).cluster_ip == svc.cluster_ip


def test_seed_render_matches_golden_file():
    from labnet.kubeproxy.for_plan import node_ruleset

    plan = make_plan(load_default())
    for node in ("node1", "node2"):
        text = node_ruleset(plan, node).restore_text()
        assert text == (GOLDEN / f"seed.{node}.rules").read_text()


def test_unready_pods_leave_endpoints_unless_published_anyway():
    from labnet.agent.readiness import Readiness

    text = SERVICES + ("  - {apiVersion: v1, kind: Service, metadata: {name: peers}, spec: "
                       "{clusterIP: None, publishNotReadyAddresses: true, selector: {app: web},"
                       " ports: [{port: 80}]}}\n")
    plan = make_plan(lab(text))
    effective = Readiness().effective(plan)  # nothing probed yet: no pod is ready
    assert not any(e.ready for e in effective.service("default/web").ports[0].endpoints)
    assert all(e.ready for e in effective.service("default/peers").ports[0].endpoints)
    assert all(e.ready for e in effective.service("default/manual").ports[0].endpoints
               if e.ip == "10.9.0.2")  # EndpointSlice endpoints keep their own conditions
