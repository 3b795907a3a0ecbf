"""Cluster DNS answers, per the Kubernetes DNS spec 1.1.0 and CoreDNS's behaviour."""

from pathlib import Path

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, DNSRecord

from labnet.dns.answer import answer
from labnet.dns.server import DnsServer
from labnet.dns.zone import cluster_data
from labnet.input.labfile import parse_lab_text
from labnet.plan import make_plan
from tests.manifests import (
    ALIAS,
    DB_SERVICE,
    EXTERNAL,
    bare_pods,
    db_pod,
    deployment,
    lab_text,
    namespace,
    service,
)

LAB = lab_text(
    namespace("other"),
    deployment(replicas=2, containers="[{name: c, ports: [{name: http, containerPort: 80}, "
                                      "{name: metrics, containerPort: 9000}]}]"),
    service(ports="[{name: http, port: 80}, {name: metrics, port: 9000}]",
            clusterIP="172.19.0.80"),
    db_pod(0), db_pod(1), DB_SERVICE,
    "  - {apiVersion: v1, kind: Service, metadata: {name: nobody}, spec: {clusterIP: None, selector: {app: none}, ports: [{port: 1}]}}\n",
    EXTERNAL, ALIAS,
    "  - {apiVersion: v1, kind: Service, metadata: {name: api, namespace: other}, spec: {clusterIP: 172.19.0.90, ports: [{port: 443}]}}\n",
    name="t", settings="dns: {ttl: 30}\n")


@pytest.fixture(scope="module")
def plan():
    return make_plan(parse_lab_text(LAB, "lab.yaml", Path(".")))


@pytest.fixture(scope="module")
def data(plan):
    return cluster_data(plan, ttl=30, serial=42)


def ask(data, name, qtype="A", forward=None):
    return answer(DNSRecord.question(name, qtype), data, forward)


def records(reply, qtype=None):
    return [(str(rr.rname), QTYPE[rr.rtype], str(rr.rdata)) for rr in reply.rr
            if qtype is None or QTYPE[rr.rtype] == qtype]


def pod_ips(plan, app):
    return sorted(p.ip for p in plan.pods if p.labels.get("app") == app)


def test_cluster_ip_service(data):
    reply = ask(data, "web.default.svc.cluster.local")
    assert reply.header.rcode == RCODE.NOERROR and reply.header.aa and not reply.header.ra
    assert records(reply) == [("web.default.svc.cluster.local.", "A", "172.19.0.80")]
    assert reply.rr[0].ttl == 30 and not reply.auth


def test_case_is_ignored_and_echoed(data):
    reply = ask(data, "WeB.DeFaUlT.sVc.ClUsTeR.lOcAl")
    assert records(reply) == [("WeB.DeFaUlT.sVc.ClUsTeR.lOcAl.", "A", "172.19.0.80")]
    nx = ask(data, "nope.default.svc.ClUsTeR.lOcAl")
    assert str(nx.auth[0].rname) == "ClUsTeR.lOcAl."


def test_srv_for_named_ports(data):
    reply = ask(data, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert records(reply) == [("_http._tcp.web.default.svc.cluster.local.", "SRV",
                               "0 100 80 web.default.svc.cluster.local.")]
    assert [str(rr.rdata) for rr in reply.ar] == ["172.19.0.80"]
    both = ask(data, "web.default.svc.cluster.local", "SRV")  # bare name: every port
    assert sorted(r[2] for r in records(both)) == ["0 50 80 web.default.svc.cluster.local.",
                                                    "0 50 9000 web.default.svc.cluster.local."]
    assert ask(data, "_http._udp.web.default.svc.cluster.local", "SRV").header.rcode == \
        RCODE.NXDOMAIN


def test_headless_service(data, plan):
    reply = ask(data, "db.default.svc.cluster.local")
    assert sorted(r[2] for r in records(reply)) == pod_ips(plan, "db")
    srv = ask(data, "_sql._tcp.db.default.svc.cluster.local", "SRV")
    assert sorted(r[2] for r in records(srv)) == [
        "0 50 3306 db-0.db.default.svc.cluster.local.",
        "0 50 3306 db-1.db.default.svc.cluster.local."]
    db0 = next(p for p in plan.pods if p.name == "db-0")
    assert records(ask(data, "db-0.db.default.svc.cluster.local")) == [
        ("db-0.db.default.svc.cluster.local.", "A", db0.ip)]
    none = ask(data, "nobody.default.svc.cluster.local")
    assert none.header.rcode == RCODE.NXDOMAIN and QTYPE[none.auth[0].rtype] == "SOA"


def test_endpoint_names_under_a_cluster_ip_service(data, plan):
    ip = pod_ips(plan, "web")[0]
    name = f"{ip.replace('.', '-')}.web.default.svc.cluster.local"
    assert records(ask(data, name)) == [(name + ".", "A", ip)]


def test_ptr_for_cluster_ips_and_endpoints(data, plan):
    reply = ask(data, "80.0.19.172.in-addr.arpa", "PTR")
    assert records(reply) == [("80.0.19.172.in-addr.arpa.", "PTR",
                               "web.default.svc.cluster.local.")]
    db0 = next(p for p in plan.pods if p.name == "db-0")
    rev = ".".join(reversed(db0.ip.split("."))) + ".in-addr.arpa"
    assert records(ask(data, rev, "PTR"))[0][2] == "db-0.db.default.svc.cluster.local."
    unknown = ask(data, "200.200.19.172.in-addr.arpa", "PTR")
    assert unknown.header.rcode == RCODE.NXDOMAIN


def test_external_name(data):
    cname = ask(data, "ext.default.svc.cluster.local", "CNAME")
    assert records(cname) == [("ext.default.svc.cluster.local.", "CNAME", "www.example.com.")]
    a = ask(data, "ext.default.svc.cluster.local")  # no upstream: the CNAME alone
    assert records(a) == [("ext.default.svc.cluster.local.", "CNAME", "www.example.com.")]
    chained = ask(data, "alias.default.svc.cluster.local")  # in the zone: chased here
    assert records(chained) == [
        ("alias.default.svc.cluster.local.", "CNAME", "web.default.svc.cluster.local."),
        ("web.default.svc.cluster.local.", "A", "172.19.0.80")]
    assert ask(data, "x.ext.default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN


def test_other_namespace_and_search_list_misses(data):
    assert records(ask(data, "api.other.svc.cluster.local"))[0][2] == "172.19.0.90"
    # what a pod in default tries first for `api.other`: must be a fast NXDOMAIN
    assert ask(data, "api.other.default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN
    assert ask(data, "x.nosuchns.svc.cluster.local").header.rcode == RCODE.NXDOMAIN


@pytest.mark.parametrize("name, qtype, rcode, answered", [
    ("web.default.svc.cluster.local", "AAAA", RCODE.NOERROR, False),  # NODATA
    ("web.default.svc.cluster.local", "TXT", RCODE.NOERROR, False),
    ("default.svc.cluster.local", "A", RCODE.NOERROR, False),  # existing namespace
    ("svc.cluster.local", "A", RCODE.NOERROR, False),
    ("cluster.local", "A", RCODE.NOERROR, False),
    ("foo.cluster.local", "A", RCODE.NXDOMAIN, False),
    ("a.b.c.web.default.svc.cluster.local", "A", RCODE.NXDOMAIN, False),
    ("*.default.svc.cluster.local", "A", RCODE.NXDOMAIN, False),  # no wildcards
    ("10-0-0-1.default.pod.cluster.local", "A", RCODE.NOERROR, True),  # pods insecure
    ("10-0-0-1.nosuchns.pod.cluster.local", "A", RCODE.NXDOMAIN, False),
    ("dns-version.cluster.local", "TXT", RCODE.NOERROR, True),
    ("dns-version.cluster.local", "A", RCODE.NXDOMAIN, False),
    ("cluster.local", "SOA", RCODE.NOERROR, True),
])
def test_nxdomain_versus_nodata(data, name, qtype, rcode, answered):
    reply = ask(data, name, qtype)
    assert reply.header.rcode == rcode
    assert bool(reply.rr) == answered
    if not answered:  # every negative answer: authoritative, with the zone's SOA
        assert reply.header.aa and QTYPE[reply.auth[0].rtype] == "SOA"
        soa = reply.auth[0]
        assert soa.ttl == 30 and soa.rdata.times == (42, 7200, 1800, 86400, 30)
        assert str(soa.rdata.mname) == "ns.dns.cluster.local."


def test_schema_version_and_apex(data):
    txt = ask(data, "dns-version.cluster.local", "TXT")
    assert records(txt) == [("dns-version.cluster.local.", "TXT", '"1.1.0"')]
    assert txt.rr[0].ttl == 28800
    ns = ask(data, "cluster.local", "NS")
    assert records(ns)[0][2] == "kube-dns.kube-system.svc.cluster.local."
    assert str(ns.ar[0].rdata) == "172.19.0.10"


def test_outside_the_zone_is_refused_or_forwarded(data):
    reply = ask(data, "www.example.com")
    assert reply.header.rcode == RCODE.REFUSED and not reply.auth
    assert ask(data, "web.default.svc.cluster.local.example").header.rcode == RCODE.REFUSED
    def forward(q):  # what an upstream resolver would say
        reply = q.reply()
        reply.add_answer(*RR.fromZone("www.example.com. 60 A 192.0.2.1"))
        return reply

    forwarded = ask(data, "www.example.com", "A", forward)
    assert records(forwarded) == [("www.example.com.", "A", "192.0.2.1")]


def test_kube_dns_service_is_in_every_lab(plan, data):
    svc = plan.service("kube-system/kube-dns")
    assert svc.cluster_ip == "172.19.0.10"
    assert [(p.name, p.protocol, p.port) for p in svc.ports] == [
        ("dns", "UDP", 53), ("dns-tcp", "TCP", 53), ("metrics", "TCP", 9153)]
    (pod,) = [p for p in plan.pods if p.namespace == "kube-system"]
    assert pod.labels["k8s-app"] == "kube-dns" and pod.name.startswith("coredns-")
    assert records(ask(data, "kube-dns.kube-system.svc.cluster.local"))[0][2] == "172.19.0.10"


def test_server_wire_handling(plan):
    server = DnsServer()
    server.reload(plan, "unused")
    query = DNSRecord.question("web.default.svc.cluster.local")
    first = DNSRecord.parse(server.respond(query.pack(), udp=True))
    assert first.header.id == query.header.id and records(first)[0][2] == "172.19.0.80"
    again = DNSRecord.question("web.default.svc.cluster.local")  # another id, same question
    cached = server.respond(again.pack(), udp=True)
    assert DNSRecord.parse(cached).header.id == again.header.id
    assert server.hits == 1 and "labnet_dns_cache_hits_total 1" in server.metrics().decode()
    # garbage: FORMERR with the same id when the header is readable, else dropped
    bad = query.pack()[:14] + b"\xff\xff\xff"
    reply = server.respond(bad, udp=True)
    assert reply[:2] == bad[:2] and DNSRecord.parse(reply).header.rcode == RCODE.FORMERR
    assert server.respond(b"\x01\x02", udp=True) is None
    # EDNS0 is answered with EDNS0; a big answer is truncated over UDP, whole over TCP
    edns = DNSRecord.question("kube-dns.kube-system.svc.cluster.local", "SRV")
    edns.add_ar(EDNS0(udp_len=4096))
    assert any(rr.rtype == QTYPE.OPT for rr in DNSRecord.parse(
        server.respond(edns.pack(), udp=True)).ar)


def test_large_answers_truncate_over_udp():
    text = ("name: t\nnodes: 2\nmanifests:\n" + bare_pods(60, app="many") +
            "  - {apiVersion: v1, kind: Service, metadata: {name: many}, spec: "
            "{clusterIP: None, selector: {app: many}, ports: [{port: 80}]}}\n")
    plan = make_plan(parse_lab_text(text, "lab.yaml", Path(".")))
    server = DnsServer()
    server.reload(plan, "unused")
    q = DNSRecord.question("many.default.svc.cluster.local")
    udp = DNSRecord.parse(server.respond(q.pack(), udp=True))
    assert udp.header.tc and not udp.rr
    tcp = DNSRecord.parse(server.respond(q.pack(), udp=False))
    assert not tcp.header.tc and len(tcp.rr) == 60
