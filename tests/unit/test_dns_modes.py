"""Pod records in CoreDNS's three `pods` modes, and labs without the built-in cluster DNS
(`dns: {enabled: false}`): what the lab file accepts, what the plan, the rules, the zone and
pods' resolv.conf then hold, and the example lab that brings its own DNS server."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from labnet.dns.answer import answer, pod_address
from labnet.dns.resolvconf import resolv_conf
from labnet.dns.zone import cluster_data
from labnet.dns.zonefile import zone_file
from labnet.errors import SpecError, SpecErrors
from labnet.input.labfile import load_lab, parse_lab_text
from labnet.kubeproxy.for_plan import node_ruleset
from labnet.plan import Plan, make_plan
from tests.manifests import bare_pod, lab_text, namespace, service

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "own-dns.yaml"

KUBE_DNS = ("  - {apiVersion: v1, kind: Service, metadata: {name: kube-dns, namespace: kube-system}, "
            "spec: {clusterIP: 172.19.0.10, selector: {k8s-app: kube-dns}, "
            "ports: [{name: dns, port: 53, protocol: UDP}]}}\n")


POD_B = ("  - {apiVersion: v1, kind: Pod, metadata: {name: b, namespace: shop}, "
         "spec: {nodeName: node2, containers: [{name: c}]}}\n")


def lab(settings: str = "", *extra: str) -> str:
    return lab_text(namespace("shop"), bare_pod("a", node="node1"), POD_B, *extra,
                    settings=settings)


def plan_of(text: str) -> Plan:
    return make_plan(parse_lab_text(text, "lab.yaml", ROOT))


def errors_of(text: str) -> list[str]:
    with pytest.raises((SpecError, SpecErrors)) as info:
        parse_lab_text(text, "lab.yaml", ROOT)
    exc = info.value
    return [e.line() for e in exc.errors] if isinstance(exc, SpecErrors) else [exc.line()]


def ask(plan: Plan, name: str, qtype: str = "A") -> DNSRecord:
    return answer(DNSRecord.question(name, qtype), cluster_data(plan, ttl=5, serial=7))


def rcode_and_data(reply: DNSRecord) -> tuple[str, list[str]]:
    return RCODE.get(reply.header.rcode), [str(rr.rdata) for rr in reply.rr]


def dashed(ip: str) -> str:
    return ip.replace(".", "-")


@pytest.fixture(scope="module", params=["insecure", "verified", "disabled"])
def moded(request):
    return request.param, plan_of(lab(f"dns: {{pods: {request.param}}}\n"))


# --- pod records --------------------------------------------------------------------------

def test_default_is_insecure_as_kubeadm():
    plan = plan_of(lab())
    assert plan.network.dns_pods == "insecure" and plan.network.dns_enabled
    assert rcode_and_data(ask(plan, "10-244-1-10.default.pod.cluster.local")) == \
        ("NOERROR", ["10.244.1.10"])


def test_a_pods_own_dashed_ip(moded):
    mode, plan = moded
    pod = next(p for p in plan.pods if p.name == "a")
    reply = ask(plan, f"{dashed(pod.ip)}.default.pod.cluster.local")
    if mode == "disabled":
        assert rcode_and_data(reply) == ("NXDOMAIN", [])
    else:
        assert rcode_and_data(reply) == ("NOERROR", [pod.ip])
        assert reply.rr[0].ttl == 5 and reply.header.aa
        assert str(reply.rr[0].rname) == f"{dashed(pod.ip)}.default.pod.cluster.local."


def test_an_ip_no_pod_has(moded):
    mode, plan = moded
    reply = ask(plan, "10-244-1-10.default.pod.cluster.local")
    expected = ("NOERROR", ["10.244.1.10"]) if mode == "insecure" else ("NXDOMAIN", [])
    assert rcode_and_data(reply) == expected


def test_verified_needs_the_pod_in_that_namespace(moded):
    mode, plan = moded
    b = next(p for p in plan.pods if p.name == "b")  # in shop, not in default
    in_default = rcode_and_data(ask(plan, f"{dashed(b.ip)}.default.pod.cluster.local"))
    in_shop = rcode_and_data(ask(plan, f"{dashed(b.ip)}.shop.pod.cluster.local"))
    if mode == "verified":
        assert in_default == ("NXDOMAIN", []) and in_shop == ("NOERROR", [b.ip])
    elif mode == "insecure":
        assert in_default == in_shop == ("NOERROR", [b.ip])
    else:
        assert in_default == in_shop == ("NXDOMAIN", [])


@pytest.mark.parametrize("name, qtype, enabled, disabled", [
    # namespace apex and pod.<zone>: empty non-terminals (NODATA) while pods are on
    ("default.pod.cluster.local", "A", "NODATA", "NXDOMAIN"),
    ("shop.pod.cluster.local", "A", "NODATA", "NXDOMAIN"),
    ("pod.cluster.local", "A", "NODATA", "NODATA"),
    ("nosuchns.pod.cluster.local", "A", "NXDOMAIN", "NXDOMAIN"),
    ("10-244-1-10.nosuchns.pod.cluster.local", "A", "NXDOMAIN", "NXDOMAIN"),
    ("blah.default.pod.cluster.local", "A", "NXDOMAIN", "NXDOMAIN"),  # not an IP
    ("blah.default.pod.cluster.local", "AAAA", "NXDOMAIN", "NXDOMAIN"),
    ("010-244-1-10.default.pod.cluster.local", "A", "NXDOMAIN", "NXDOMAIN"),  # Go: no 0 lead
    ("10-244-1.default.pod.cluster.local", "A", "NXDOMAIN", "NXDOMAIN"),
    ("a.b.c.10-244-1-10.default.pod.cluster.local", "A", "NXDOMAIN", "NXDOMAIN"),  # too long
])
def test_negative_answers(moded, name, qtype, enabled, disabled):
    mode, plan = moded
    reply = ask(plan, name, qtype)
    status = RCODE.get(reply.header.rcode)
    if status == "NOERROR" and not reply.rr:
        status = "NODATA"
    assert status == (disabled if mode == "disabled" else enabled)
    assert not reply.rr and reply.header.aa and QTYPE[reply.auth[0].rtype] == "SOA"


def test_aaaa_of_an_ipv4_pod_name_is_nodata(moded):
    mode, plan = moded
    a = next(p for p in plan.pods if p.name == "a")
    reply = ask(plan, f"{dashed(a.ip)}.default.pod.cluster.local", "AAAA")
    status = RCODE.get(reply.header.rcode)
    assert (status, reply.rr) == (("NXDOMAIN" if mode == "disabled" else "NOERROR"), [])
    assert QTYPE[reply.auth[0].rtype] == "SOA"


def test_insecure_corners_as_coredns_reads_the_label():
    plan = plan_of(lab())
    # IPv6 when not exactly three dashes: AAAA, and NODATA for A
    assert rcode_and_data(ask(plan, "fd00--1.default.pod.cluster.local", "AAAA")) == \
        ("NOERROR", ["fd00::1"])
    assert rcode_and_data(ask(plan, "fd00--1.default.pod.cluster.local", "A")) == ("NOERROR", [])
    # one label left of the dashed IP is read as an endpoint, which findPods ignores
    assert rcode_and_data(ask(plan, "x.10-0-0-1.default.pod.cluster.local")) == \
        ("NOERROR", ["10.0.0.1"])
    # SRV: port 0, the pod name as target (CoreDNS's msg.Service with no port)
    srv = ask(plan, "10-0-0-1.default.pod.cluster.local", "SRV")
    assert [str(rr.rdata) for rr in srv.rr] == ["0 100 0 10-0-0-1.default.pod.cluster.local."]
    assert [str(rr.rdata) for rr in srv.ar] == ["10.0.0.1"]
    # the question's spelling is echoed, the zone's too
    reply = ask(plan, "10-0-0-1.DeFault.POD.Cluster.Local")
    assert str(reply.rr[0].rname) == "10-0-0-1.DeFault.POD.Cluster.Local."


@pytest.mark.parametrize("label, text, address", [
    ("10-244-1-10", "10.244.1.10", "10.244.1.10"),
    ("010-244-1-10", "010.244.1.10", None),
    ("10-244-1-256", "10.244.1.256", None),
    ("fd00--1", "fd00::1", "fd00::1"),
    ("--ffff-a00-1", "::ffff:a00:1", "10.0.0.1"),  # IPv4-mapped: Go's To4 makes it an A
    ("1-2-3", "1:2:3", None),
    ("blah", "blah", None),
    ("", "", None),
])
def test_pod_address(label, text, address):
    assert pod_address(label) == (text, address)


def test_zone_file_lists_the_pods(moded):
    mode, plan = moded
    text = zone_file(cluster_data(plan, 5))
    a = next(p for p in plan.pods if p.name == "a")
    b = next(p for p in plan.pods if p.name == "b")
    assert f"; pods {mode}: " in text
    listed = [f"{dashed(a.ip)}.default.pod.cluster.local. 5 IN A {a.ip}",
              f"{dashed(b.ip)}.shop.pod.cluster.local. 5 IN A {b.ip}"]
    for line in listed:
        assert (line in text.splitlines()) == (mode != "disabled")


# --- the lab file --------------------------------------------------------------------------

@pytest.mark.parametrize("settings, expected", [
    ("dns: {pods: secure}\n",
     "lab.yaml:4: dns.pods 'secure' is not one of insecure, verified, disabled (CoreDNS's pods "
     "option: insecure answers any dashed IP, verified only the IPs of pods, disabled none)"),
    ("dns: {pods: Insecure}\n",
     "lab.yaml:4: dns.pods 'Insecure' is not one of insecure, verified, disabled (CoreDNS's pods "
     "option: insecure answers any dashed IP, verified only the IPs of pods, disabled none)"),
    ("dns:\n  pods: [insecure]\n", "lab.yaml:5: dns.pods must be a string, not a list"),
    ("dns:\n  enabled: 'false'\n", "lab.yaml:5: dns.enabled must be true or false, not 'false'"),
    ("dns: {enabled: 0}\n", "lab.yaml:4: dns.enabled must be true or false, not 0"),
    ("dns:\n  enabled: false\n  pods: verified\n",
     "lab.yaml:6: dns.pods has no effect with dns.enabled: false (the lab runs no cluster DNS of "
     "its own: remove it, or enable it)"),
    ("dns:\n  enabled: false\n  ttl: 30\n",
     "lab.yaml:6: dns.ttl has no effect with dns.enabled: false (the lab runs no cluster DNS of "
     "its own: remove it, or enable it)"),
    ("dns: {enable: false}\n", "lab.yaml:4: unknown field 'enable' in dns"),
])
def test_dns_section_errors(settings, expected):
    errors = errors_of(lab(settings))
    assert any(line.startswith(expected) for line in errors), errors


def test_without_the_built_in_dns():
    plan = plan_of(lab("dns: {enabled: false}\n"))
    assert not plan.network.dns_enabled
    assert not [s for s in plan.services if s.namespace == "kube-system"]
    assert not [p for p in plan.pods if p.namespace == "kube-system" or p.is_dns]
    for node in plan.nodes:
        rules = node_ruleset(plan, node.name).restore_text()
        assert "kube-dns" not in rules and "172.19.0.10" not in rules
    # kubelet without --cluster-dns: ClusterFirst falls back to Default (no file is written)
    assert all(resolv_conf(plan, pod) is None for pod in plan.pods)
    assert zone_file(cluster_data(plan, 5)).startswith("; dns.enabled is false")
    # and the built-in lab has both, with the usual resolv.conf
    built_in = plan_of(lab())
    assert "kube-dns" in node_ruleset(built_in, "node1").restore_text()
    a = next(p for p in built_in.pods if p.name == "a")
    assert resolv_conf(built_in, a) == (
        "search default.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 172.19.0.10\noptions ndots:5\n")


def test_a_user_kube_dns_only_when_the_built_in_one_is_off():
    errors = errors_of(lab("", KUBE_DNS))
    assert any("Service kube-system/kube-dns is labnet's cluster DNS" in e for e in errors)
    plan = plan_of(lab("dns: {enabled: false}\n", KUBE_DNS))
    svc = plan.service("kube-system/kube-dns")
    assert svc.cluster_ip == "172.19.0.10"
    assert "kube-system/kube-dns:dns" in node_ruleset(plan, "node1").restore_text()
    # a Service holds the cluster DNS address: kubelet has --cluster-dns again
    b = next(p for p in plan.pods if p.name == "b")
    assert resolv_conf(plan, b) == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 172.19.0.10\noptions ndots:5\n")


def test_the_cluster_dns_address_is_free_only_without_the_built_in_dns():
    mine = service("mine", "[{port: 53, protocol: UDP}]", clusterIP="172.19.0.10")
    errors = errors_of(lab("", mine))
    assert any("clusterIP 172.19.0.10 is already taken by the cluster DNS service" in e
               for e in errors), errors
    plan = plan_of(lab("dns: {enabled: false}\n", mine))
    assert plan.service("default/mine").cluster_ip == "172.19.0.10"
    assert resolv_conf(plan, next(p for p in plan.pods if p.name == "a")) is not None
    # two Services of the user's at one address are still one too many
    other = service("other", "[{port: 53, protocol: UDP}]", clusterIP="172.19.0.10")
    errors = errors_of(lab("dns: {enabled: false}\n", mine, other))
    assert any("clusterIP 172.19.0.10 is already taken by Service default/mine" in e
               for e in errors), errors
    # an allocated ClusterIP never lands on the cluster DNS address, DNS or not
    many = [service(f"s{i}", "[{port: 80}]") for i in range(40)]
    plan = plan_of(lab("dns: {enabled: false}\n", *many))
    assert "172.19.0.10" not in {s.cluster_ip for s in plan.services}


def test_the_plan_carries_the_dns_settings():
    plan = plan_of(lab("dns: {enabled: false}\n"))
    again = Plan.from_json(plan.to_json())
    assert again == plan and not again.network.dns_enabled
    verified = plan_of(lab("dns: {pods: verified}\n"))
    assert Plan.from_json(verified.to_json()).network.dns_pods == "verified"
    # a plan written before these fields existed reads as the defaults
    data = json.loads(plan_of(lab()).to_json())
    del data["network"]["dns_enabled"], data["network"]["dns_pods"]
    old = Plan.from_json(json.dumps(data))
    assert old.network.dns_enabled and old.network.dns_pods == "insecure"
    assert asdict(old.network) == asdict(plan_of(lab()).network)


# --- examples/own-dns.yaml -----------------------------------------------------------------

def example_responder():
    """The example's DNS server program, without its serving loop: its `reply` function."""
    spec = load_lab(EXAMPLE)
    (deployment,) = [d for d in spec.deployments if d.name == "my-dns"]
    (container,) = deployment.template.containers
    argv = container.argv
    assert argv[:2] == ("/usr/bin/python3", "-c")
    script, names = argv[2], list(argv[3:])
    program = script.split("\nudp = socket.socket")[0]
    scope: dict = {}
    import sys
    saved = sys.argv
    sys.argv = ["-c", *names]
    try:
        exec(compile(program, str(EXAMPLE), "exec"), scope)  # noqa: S102 - our own example
    finally:
        sys.argv = saved
    return scope["reply"]


def test_the_own_dns_example():
    plan = make_plan(load_lab(EXAMPLE))
    assert not plan.network.dns_enabled
    svc = plan.service("kube-system/kube-dns")
    assert svc.cluster_ip == "172.19.0.10"
    assert [(p.protocol, p.port) for p in svc.ports] == [("UDP", 53), ("TCP", 53)]
    assert not any(p.is_dns for p in plan.pods)  # labnet serves no DNS: the pod's command does
    assert plan.service("default/my-nginx").cluster_ip == "172.19.0.80"
    client = next(p for p in plan.pods if p.name == "client")
    assert "nameserver 172.19.0.10" in resolv_conf(plan, client)


def test_the_own_dns_example_server_answers():
    reply = example_responder()
    query = DNSRecord.question("My-Nginx.default.svc.cluster.local", "A")
    answer_ = DNSRecord.parse(reply(query.pack()))
    assert answer_.header.id == query.header.id and answer_.header.aa and answer_.header.qr
    assert [(str(rr.rname), str(rr.rdata)) for rr in answer_.rr] == [
        ("My-Nginx.default.svc.cluster.local.", "172.19.0.80")]
    nodata = DNSRecord.parse(reply(DNSRecord.question(
        "my-nginx.default.svc.cluster.local", "AAAA").pack()))
    assert nodata.header.rcode == RCODE.NOERROR and not nodata.rr
    # what a pod's resolver asks first for `my-nginx.shop`: must be a fast NXDOMAIN
    nx = DNSRecord.parse(reply(DNSRecord.question(
        "my-nginx.shop.default.svc.cluster.local", "A").pack()))
    assert nx.header.rcode == RCODE.NXDOMAIN
    assert reply(b"\x00\x01") is None
    assert reply(nx.pack()) is None  # a response is not answered
