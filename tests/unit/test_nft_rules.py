"""kube-proxy fidelity in nftables mode: names, the whole ruleset and partial syncs, compared with
kube-proxy's own nftables unit tests (kubernetes/kubernetes pkg/proxy/nftables/proxier_test.go
@030880a5dc5449403c6d1f0aa146a7dc21d6c6dc; helpers_test.go @803d40a57714b8d054430fedb25b48c20ba9d52c).

Upstream compares an expected text with its fake's Dump() after `sortNFTablesTransaction`
(blank and "#" lines dropped, lines stably sorted by object type, then object name, then -
except rules, which keep their order within their chain - the whole line): real kube-proxy
visits services in Go map order, so only that normal form is defined. `normal_form` below
does the same to both sides; every line is compared byte for byte.

Upstream's other tests trace packets through the fake's table (helpers_test.go's
nftablesTracer); `Tracer` below follows the same rules over labnet's rendered table, and the
packet-flow cases are upstream's own.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from labnet.kubeproxy import nft_names
from labnet.kubeproxy.nft_rules import (
    NODEPORTS_ALL,
    NftChain,
    NftElement,
    NftRenderCache,
    NftRule,
    NftSet,
    NftState,
    NftTable,
    cleanup_text,
    go_quote,
    render_nft,
    sync_ops,
)
from labnet.kubeproxy.rules import ProxyOptions
from labnet.plan import PlanEndpoint, PlanService, PlanServicePort
from tests.unit.test_kubeproxy import overall_services

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
OVERALL = (GOLDEN / "kube-proxy-nft-overall.nft").read_text()
BASE_RULES = OVERALL.split("\n# svc1\n")[0]  # upstream's baseRules (after the file's header)

# NewFakeProxier's conventions: pod CIDR 10.0.0.0/8, ServiceCIDR 172.30.0.0/16, node
# test-node with IP 192.168.0.2 (--nodeport-addresses 192.168.0.2/32), mark 0x4000
OPTS = ProxyOptions("test-node", ("192.168.0.2",), "10.0.0.0/8")
SERVICE_CIDRS = ("172.30.0.0/16",)
TEST_NODE_IPS = ("192.168.0.2", "192.168.1.2", "192.168.99.11")  # testNodeIPs (IPv4 ones)
EXTERNAL_CLIENT = "203.0.113.2"
EXTERNAL_CLIENT_BLOCKED = "203.0.113.130"


def render(services, opts=OPTS, **kw):
    return render_nft(services, opts, kw.pop("service_cidrs", SERVICE_CIDRS), **kw)


# ---- upstream's comparison: sortNFTablesTransaction ----

OBJECT_ORDER = {"table": 10, "chain": 9, "rule": 8, "set": 7, "map": 6, "element": 5}


def _compare(li: str, lj: str) -> int:
    wi, wj = li.split(" "), lj.split(" ")
    if len(wi) < 5 or len(wj) < 5:
        return 0
    if wi[1] != wj[1]:
        return -1 if OBJECT_ORDER.get(wi[1], 0) >= OBJECT_ORDER.get(wj[1], 0) else 1
    if wi[4] != wj[4]:
        return -1 if wi[4] < wj[4] else 1
    if wi[1] == "rule":
        return 0
    return (li > lj) - (li < lj)


def normal_form(text: str) -> list[str]:
    lines = [line for line in text.split("\n") if line and line[0] != "#"]
    return sorted(lines, key=functools.cmp_to_key(_compare))  # stable, like sort.SliceStable


# ---- the text form read back into objects, to replay transactions on a model table ----

VERB = r"(add|flush|delete)"
CHAIN_RE = re.compile(VERB + r" chain ip kube-proxy (\S+)(?: \{(?: type (\S+) hook (\S+) "
                      r"priority (-?\d+) ;)?(?: comment (\"[^\"]*\") ;)? \})?$")
SET_RE = re.compile(VERB + r" (set|map) ip kube-proxy (\S+)(?: \{ type ([^;]*) ;(?: flags "
                    r"(\S+) ;)?(?: timeout (\d+)s ;)?(?: comment (\"[^\"]*\") ;)? \})?$")
RULE_RE = re.compile(r"add rule ip kube-proxy (\S+) (.*?)(?: comment (\"[^\"]*\"))?$")
ELEMENT_RE = re.compile(r"(add|delete) element ip kube-proxy (\S+) \{ ([^\":]*?)"
                        r"(?: comment (\"[^\"]*\"))?(?: : (.*))? \}$")
TABLE_RE = re.compile(VERB + r" table ip kube-proxy(?: \{ comment (\"[^\"]*\") ; \})?$")


def unquote(text: str | None) -> str:
    return text[1:-1] if text else ""


def parse(text: str) -> list[tuple[str, object]]:
    ops = []
    for line in text.splitlines():
        if m := TABLE_RE.match(line):
            ops.append((m[1], NftTable(unquote(m[2]))))
        elif m := CHAIN_RE.match(line):
            ops.append((m[1], NftChain(m[2], m[3] or "", m[4] or "", int(m[5] or 0),
                                       unquote(m[6]))))
        elif m := SET_RE.match(line):
            flags = tuple(m[5].split(",")) if m[5] else ()
            ops.append((m[1], NftSet(m[3], m[4] or "", m[2], flags, int(m[6] or 0),
                                     unquote(m[7]))))
        elif m := RULE_RE.match(line):
            ops.append(("add", NftRule(m[1], m[2], unquote(m[3]))))
        elif m := ELEMENT_RE.match(line):
            value = tuple(m[5].split(" . ")) if m[5] else ()
            ops.append((m[1], NftElement(m[2], tuple(m[3].split(" . ")), value,
                                         unquote(m[4]))))
        else:
            raise AssertionError(f"not a knftables line: {line!r}")
    return ops


def dump(state: NftState) -> str:
    return "".join(obj.write(verb) + "\n" for verb, obj in state.dump_ops())


# ---- 1. the overall test ----

def test_overall_ruleset_equals_kube_proxy():
    """TestOverallNFTablesRules: the same six services (the iptables overall test's), the same
    node; every line as upstream expects it, compared as upstream compares."""
    ruleset = render(overall_services())
    assert normal_form(ruleset.text()) == normal_form(OVERALL)


def test_every_form_of_the_overall_ruleset_is_the_same_table():
    """The full-sync transaction, the reload and the dump all make the same table, and the
    dump reads back as itself (it is what `nft -f` loads)."""
    ruleset = render(overall_services())
    dumped = ruleset.text()
    assert dump(NftState().apply(parse(dumped))) == dumped
    assert dump(NftState().apply(parse(ruleset.transaction_text()))) == dumped
    other = render([overall_services()[0]])
    kernel = NftState().apply(parse(other.text()))
    assert dump(kernel.apply(parse(ruleset.reload_text()))) == dumped
    assert dump(kernel.apply(parse(cleanup_text()))) == ""
    # the first sync of a process also re-makes the base chains
    text = ruleset.transaction_text(first=True)
    assert text.index("add chain ip kube-proxy nat-output\ndelete chain ip kube-proxy "
                      "nat-output\n") < text.index("add chain ip kube-proxy nat-output {")
    assert "add chain ip kube-proxy nat-output\n" not in ruleset.transaction_text(first=False)


def test_same_services_give_the_same_text_in_any_order():
    assert (render(overall_services()).text()
            == render(list(reversed(overall_services()))).text())


def test_bad_ips_test_output():
    """TestBadIPs' expected text (a LoadBalancer with an external IP, a NodePort and source
    ranges); labnet's input already holds canonical addresses, so only the ranges' spacing
    and host bits are left to normalise."""
    svc = PlanService("ns1", "svc1", "LoadBalancer", "172.30.0.41", (PlanServicePort(
        "p80", "TCP", 80, "80", 3001, (PlanEndpoint("10.180.0.1", 80),)),),
        external_ips=("192.168.99.22",), load_balancer_ips=("1.2.3.4",),
        load_balancer_source_ranges=(" 203.0.113.1/25",))
    expected = BASE_RULES + """
add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }

add chain ip kube-proxy external-ULMVA6XW-ns1/svc1/tcp/p80
add rule ip kube-proxy external-ULMVA6XW-ns1/svc1/tcp/p80 jump mark-for-masquerade
add rule ip kube-proxy external-ULMVA6XW-ns1/svc1/tcp/p80 goto service-ULMVA6XW-ns1/svc1/tcp/p80

add chain ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80
add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 ip saddr 10.180.0.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 meta l4proto tcp dnat to 10.180.0.1:80

add chain ip kube-proxy firewall-ULMVA6XW-ns1/svc1/tcp/p80
add rule ip kube-proxy firewall-ULMVA6XW-ns1/svc1/tcp/p80 ip saddr != { 203.0.113.0/25 } drop

add element ip kube-proxy cluster-ips { 172.30.0.41 }
add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }
add element ip kube-proxy service-ips { 192.168.99.22 . tcp . 80 : goto external-ULMVA6XW-ns1/svc1/tcp/p80 }
add element ip kube-proxy service-ips { 1.2.3.4 . tcp . 80 : goto external-ULMVA6XW-ns1/svc1/tcp/p80 }
add element ip kube-proxy service-nodeports { tcp . 3001 : goto external-ULMVA6XW-ns1/svc1/tcp/p80 }
add element ip kube-proxy firewall-ips { 1.2.3.4 . tcp . 80 : goto firewall-ULMVA6XW-ns1/svc1/tcp/p80 }
"""
    assert normal_form(render([svc]).text()) == normal_form(expected)


# ---- 2. names ----

LONG_NS = "very-long-namespace-name-abcdefghijklmnopqrstuvwxyz0123456789xx"
LONG_SVC = "very-long-service-name-why-would-you-even-do-this-i-mean-really"
LONG_PORT = "port-443-providing-the-hypertext-transmission-protocol-with-tls"
LONG = f"{LONG_NS}/{LONG_SVC}/sctp/{LONG_PORT}"


@pytest.mark.parametrize("args, expected", [  # Test_servicePortChainNameBase
    (("testing", "service", "http", "tcp"), "P4ZYZVCF-testing/service/tcp/http"),
    (("testing", "service", "https", "tcp"), "LZBRENCP-testing/service/tcp/https"),
    ((LONG_NS, LONG_SVC, LONG_PORT, "sctp"), f"KR6NACJP-{LONG}"),
    # from the expected texts of the overall and repeated-sync tests
    (("ns1", "svc1", "p80", "TCP"), "ULMVA6XW-ns1/svc1/tcp/p80"),
    (("ns2", "svc2", "p8080", "TCP"), "MHHHYRWA-ns2/svc2/tcp/p8080"),
    (("ns5", "svc5", "p80", "TCP"), "HVFWP5L3-ns5/svc5/tcp/p80"),
])
def test_service_port_chain_name_base(args, expected):
    assert nft_names.service_port_base(*args) == expected


@pytest.mark.parametrize("args, expected", [  # Test_servicePortEndpointChainNameBase
    (("10.180.0.1", 80), "JO2XBXZR-testing/service/tcp/http__10.180.0.1/80"),
    (("10.180.0.2", 80), "5S6H3H22-testing/service/tcp/http__10.180.0.2/80"),
    (("fd80:abcd:12::a1b2:c3d4:e5f6:9999", 80),
     "U7E2ET36-testing/service/tcp/http__fd80.abcd.12..a1b2.c3d4.e5f6.9999/80"),
])
def test_endpoint_chain_name_base(args, expected):
    assert nft_names.endpoint_base("testing", "service", "http", "tcp", *args) == expected


@pytest.mark.parametrize("ip, expected", [  # the same test: the 240-character limit
    ("1234:5678:9abc:def0::abc:1234", f"5YS7AFEA-{LONG}__1234.5678.9abc.def0..abc.1234/443"),
    ("1234:5678:9abc:def0::abcd:1234:5678",
     f"CI6C53Q3-{LONG}__1234.5678.9abc.def0..abcd.1234..."),
    ("1234:5678:9abc:def0::abcd:1234:8765",  # a different IP, not visible in the name
     f"2FLXFK6X-{LONG}__1234.5678.9abc.def0..abcd.1234..."),
])
def test_endpoint_chain_names_are_truncated_as_kube_proxy_truncates(ip, expected):
    name = nft_names.endpoint_base(LONG_NS, LONG_SVC, LONG_PORT, "sctp", f"[{ip}]", 443)
    assert name == expected
    assert len(name) <= nft_names.BASE_LENGTH_MAX


@pytest.mark.parametrize("ns, port, ip, port_number, expected", [  # the sync tests' texts
    ("ns1", "p80", "10.0.1.1", 80, "5TPGNJF2"), ("ns1", "p80", "10.0.1.2", 80, "ZCZBVNAZ"),
    ("ns2", "p8080", "10.0.2.1", 8080, "7RVP4LUQ"), ("ns3", "p80", "10.0.3.1", 80, "2OCDJSZQ"),
    ("ns3", "p80", "10.0.3.2", 80, "SWWHDC7X"), ("ns3", "p80", "10.0.3.3", 80, "TQ2QKHCZ"),
    ("ns4", "p80", "10.0.4.1", 80, "WAHRBT2B"), ("ns5", "p80", "10.180.0.3", 80, "GTK6MW7G"),
])
def test_endpoint_names_from_the_sync_tests(ns, port, ip, port_number, expected):
    svc = ns.replace("ns", "svc")
    assert nft_names.endpoint_base(ns, svc, port, "tcp", ip, port_number) == (
        f"{expected}-{ns}/{svc}/tcp/{port}__{ip}/{port_number}")


def test_comments_are_quoted_as_go_quotes_them():
    assert go_quote("ns2/svc2:p80") == '"ns2/svc2:p80"'
    assert go_quote('a "b" \\ c\n') == '"a \\"b\\" \\\\ c\\n"'


# ---- 3. features, line by line ----

def ep(ip, port=80, node="", **kw):
    return PlanEndpoint(ip, port, node, **kw)


def one_port(ns, name, cip, eps=(), node_port=0, type="ClusterIP", port_name="p80", port=80,
             protocol="TCP", **kw):
    return PlanService(ns, name, type, cip, (PlanServicePort(
        port_name, protocol, port, str(port), node_port, tuple(eps)),), **kw)


def lines(ruleset) -> set[str]:
    return set(ruleset.text().splitlines())


def test_no_endpoints_rejected_through_the_no_endpoint_maps():
    """A LoadBalancer with an external IP and a NodePort and no endpoints (TestNoEndpointsReject's
    service): no chains at all, every destination in the no-endpoint maps, verdict
    `goto reject-chain`; the ClusterIP is still an active ClusterIP."""
    svc = one_port("ns1", "svc1", "172.30.0.41", node_port=3001, type="LoadBalancer",
                   external_ips=("192.168.99.11",), load_balancer_ips=("1.2.3.4",))
    ruleset = render([svc])
    own = set(ruleset.text().splitlines()) - set(render([]).text().splitlines())
    assert own == {
        'add element ip kube-proxy cluster-ips { 172.30.0.41 }',
        'add element ip kube-proxy no-endpoint-services { 172.30.0.41 . tcp . 80 comment "ns1/svc1:p80" : goto reject-chain }',
        'add element ip kube-proxy no-endpoint-services { 192.168.99.11 . tcp . 80 comment "ns1/svc1:p80" : goto reject-chain }',
        'add element ip kube-proxy no-endpoint-services { 1.2.3.4 . tcp . 80 comment "ns1/svc1:p80" : goto reject-chain }',
        'add element ip kube-proxy no-endpoint-nodeports { tcp . 3001 comment "ns1/svc1:p80" : goto reject-chain }',
    }


def test_external_traffic_policy_local():
    """TestExternalTrafficPolicyLocal's service: the external chain short-circuits pod and
    node traffic to all endpoints and sends the rest to the local- chain, which holds only
    this node's endpoint; nothing is rejected or dropped."""
    svc = one_port("ns1", "svc1", "172.30.0.41", [ep("10.180.0.1"), ep("10.180.2.1", node="test-node")],
                   node_port=3001, type="LoadBalancer", external_traffic_local=True,
                   external_ips=("192.168.99.11",), load_balancer_ips=("1.2.3.4",),
                   health_check_node_port=30000)
    base = nft_names.service_port_base("ns1", "svc1", "p80", "tcp")
    e1 = "endpoint-" + nft_names.endpoint_base("ns1", "svc1", "p80", "tcp", "10.180.0.1", 80)
    e2 = "endpoint-" + nft_names.endpoint_base("ns1", "svc1", "p80", "tcp", "10.180.2.1", 80)
    rules = render([svc]).snapshot().rules()
    assert rules[f"external-{base}"] == (
        f'ip saddr 10.0.0.0/8 goto service-{base} comment "short-circuit pod traffic"',
        'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"',
        f'fib saddr type local goto service-{base} comment "short-circuit local traffic"',
        f"goto local-{base}")
    assert rules[f"local-{base}"] == (f"numgen random mod 1 vmap {{ 0 : goto {e2} }}",)
    assert rules[f"service-{base}"] == (
        "ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
        f"numgen random mod 2 vmap {{ 0 : goto {e1} , 1 : goto {e2} }}")
    assert not any("no-endpoint" in line and "element" in line for line in lines(render([svc])))
    # on a node without a local endpoint the external destinations are dropped, and
    # neither the local- chain nor a `goto local-` exists
    elsewhere = render([svc], ProxyOptions("other", ("192.168.0.3",), "10.0.0.0/8"))
    assert f"local-{base}" not in elsewhere.snapshot().rules()
    assert elsewhere.snapshot().rules()[f"external-{base}"][-1].endswith("short-circuit local traffic\"")
    assert {line for line in lines(elsewhere) if "no-endpoint" in line and "element" in line} == {
        'add element ip kube-proxy no-endpoint-services { 192.168.99.11 . tcp . 80 comment "ns1/svc1:p80" : drop }',
        'add element ip kube-proxy no-endpoint-services { 1.2.3.4 . tcp . 80 comment "ns1/svc1:p80" : drop }',
        'add element ip kube-proxy no-endpoint-nodeports { tcp . 3001 comment "ns1/svc1:p80" : drop }'}


def test_internal_traffic_policy_local():
    """iTP Local: the ClusterIP goes to the local- chain; a node without a local endpoint drops
    traffic to the ClusterIP (not reject: the service has endpoints elsewhere)."""
    svc = one_port("ns3", "svc3", "172.30.0.43", [ep("10.180.0.3", node="test-node"),
                                                   ep("10.180.1.3", node="remote")],
                   internal_traffic_local=True)
    base = nft_names.service_port_base("ns3", "svc3", "p80", "tcp")
    here = render([svc])
    assert (f"add element ip kube-proxy service-ips {{ 172.30.0.43 . tcp . 80 : goto local-{base} }}"
            in lines(here))
    assert here.snapshot().rules()[f"local-{base}"][0] == (
        "ip daddr 172.30.0.43 ip saddr != 10.0.0.0/8 jump mark-for-masquerade")
    assert f"service-{base}" not in here.snapshot().rules()
    elsewhere = render([svc], ProxyOptions("node-2", ("192.168.0.3",), "10.0.0.0/8"))
    own = lines(elsewhere) - lines(render([], ProxyOptions("node-2", ("192.168.0.3",), "10.0.0.0/8")))
    assert own == {
        'add element ip kube-proxy cluster-ips { 172.30.0.43 }',
        'add element ip kube-proxy no-endpoint-services { 172.30.0.43 . tcp . 80 comment "ns3/svc3:p80" : drop }'}


def test_session_affinity_for_every_endpoint():
    svc = one_port("ns5", "svc5", "172.30.0.45", [ep("10.180.0.4"), ep("10.180.0.3")],
                   session_affinity_timeout=600)
    base = nft_names.service_port_base("ns5", "svc5", "p80", "tcp")
    eps = [nft_names.endpoint_base("ns5", "svc5", "p80", "tcp", ip, 80)
           for ip in ("10.180.0.3", "10.180.0.4")]
    ruleset = render([svc])
    for b in eps:
        assert (f"add set ip kube-proxy affinity-{b} {{ type ipv4_addr ; flags dynamic,timeout ; "
                "timeout 600s ; }") in lines(ruleset)
        assert ruleset.snapshot().rules()[f"endpoint-{b}"][1] == f"update @affinity-{b} {{ ip saddr }}"
    assert ruleset.snapshot().rules()[f"service-{base}"] == (
        "ip daddr 172.30.0.45 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
        f"ip saddr @affinity-{eps[0]} goto endpoint-{eps[0]}",
        f"ip saddr @affinity-{eps[1]} goto endpoint-{eps[1]}",
        f"numgen random mod 2 vmap {{ 0 : goto endpoint-{eps[0]} , 1 : goto endpoint-{eps[1]} }}")


def test_source_ranges_that_hold_the_node_let_the_load_balancer_ips_in():
    """TestLoadBalancer's service: the node's IP is in 192.168.0.0/24, so traffic from the node
    to its own VIP (source = the VIP) is allowed too."""
    svc = one_port("ns1", "svc1", "172.30.0.41", [ep("10.180.0.1")], node_port=3001,
                   type="LoadBalancer", load_balancer_ips=("1.2.3.4", "5.6.7.8"),
                   load_balancer_source_ranges=("192.168.0.0/24", " 203.0.113.0/25"))
    base = nft_names.service_port_base("ns1", "svc1", "p80", "tcp")
    ruleset = render([svc])
    assert ruleset.snapshot().rules()[f"firewall-{base}"] == (
        "ip saddr != { 192.168.0.0/24 , 203.0.113.0/25 , 1.2.3.4 , 5.6.7.8 } drop",)
    assert {line for line in lines(ruleset) if line.startswith("add element ip kube-proxy firewall-ips")} == {
        f"add element ip kube-proxy firewall-ips {{ 1.2.3.4 . tcp . 80 : goto firewall-{base} }}",
        f"add element ip kube-proxy firewall-ips {{ 5.6.7.8 . tcp . 80 : goto firewall-{base} }}"}


def test_external_ips_go_to_the_external_chain():
    svc = one_port("ns4", "svc4", "172.30.0.44", [ep("10.180.0.4")], external_ips=("192.168.99.33",))
    base = nft_names.service_port_base("ns4", "svc4", "p80", "tcp")
    ruleset = render([svc])
    assert (f"add element ip kube-proxy service-ips {{ 192.168.99.33 . tcp . 80 : goto external-{base} }}"
            in lines(ruleset))
    assert ruleset.snapshot().rules()[f"external-{base}"] == (
        "jump mark-for-masquerade", f"goto service-{base}")


def test_nodeport_addresses_and_masquerade_options():
    svc = one_port("ns1", "svc1", "172.30.0.41", [ep("10.180.0.1")], node_port=3001, type="NodePort")
    every = render([svc], nodeport_ips=NODEPORTS_ALL)
    assert "nodeport-ips" not in every.snapshot().elements
    assert every.snapshot().rules()["services"][1] == (
        "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports")
    assert every.snapshot().rules()["nodeport-endpoints-check"] == (
        "ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports",)
    assert "add set ip kube-proxy nodeport-ips" in every.transaction_text()  # add, then delete
    assert "delete set ip kube-proxy nodeport-ips" in every.transaction_text()
    two = render([svc], nodeport_ips=("192.168.0.2", "192.168.1.2", "127.0.0.1"))
    assert list(two.snapshot().elements["nodeport-ips"]) == ["192.168.0.2", "192.168.1.2"]
    base = nft_names.service_port_base("ns1", "svc1", "p80", "tcp")
    assert render([svc], masquerade_all=True).snapshot().rules()[f"service-{base}"][0] == (
        "ip daddr 172.30.0.41 jump mark-for-masquerade")
    no_detector = render([svc], ProxyOptions("test-node", ("192.168.0.2",), ""))
    assert no_detector.snapshot().rules()[f"service-{base}"] == (
        f"numgen random mod 1 vmap {{ 0 : goto endpoint-{nft_names.endpoint_base('ns1', 'svc1', 'p80', 'tcp', '10.180.0.1', 80)} }}",)
    assert render([], service_cidrs=()).snapshot().rules()["cluster-ips-check"] == (
        'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"',)
    mark = render([], ProxyOptions("n", ("192.168.0.2",), "10.0.0.0/8", masquerade_mark="0x00004000"))
    assert mark.snapshot().rules()["masquerading"][0] == "mark and 0x00004000 == 0 return"


def test_headless_and_external_name_services_get_nothing():
    empty = render([]).text()
    assert render([one_port("d", "h", "None", [ep("10.0.0.9")]),
                   one_port("d", "x", "", external_name="example.com")]).text() == empty


# ---- 4. upstream's packet-flow tests, traced through the rendered table ----

class Tracer:
    """helpers_test.go's nftablesTracer, over an NftState: rules are consumed piece by piece
    by the same regexps; `jump mark-for-masquerade` marks, a numgen vmap visits every
    endpoint, drop/reject/dnat end the trace."""

    RE = {name: re.compile(pattern) for name, pattern in {
        "dst_ip_lookup": r"^ip6* daddr @(\S+)",
        "dst_src_lookup": r"^ip6* daddr \. meta l4proto \. th dport \. ip6* saddr @(\S+)",
        "dst_lookup": r"^ip6* daddr \. meta l4proto \. th dport @(\S+)",
        "dport_lookup": r"^meta l4proto \. th dport @(\S+)",
        "dst_dispatch": r"^ip6* daddr \. meta l4proto \. th dport vmap @(\S+)$",
        "dport_dispatch": r"^meta l4proto \. th dport vmap @(\S+)$",
        "dst_set": r"^ip6* daddr (!= )?\{([^}]*)\}",
        "dst": r"^ip6* daddr (!= )?(\S+)",
        "dst_local": r"^fib daddr type local",
        "dport": r"^(tcp|udp|sctp) dport (\d+)",
        "src_set": r"^ip6* saddr (!= )?\{([^}]*)\}",
        "src_affinity": r"^ip6* saddr @(\S+)",  # not in upstream's tracer: affinity sets
        "src": r"^ip6* saddr (!= )?(\S+)",
        "src_local": r"^fib saddr type local",
        "masq": r"^jump mark-for-masquerade$",
        "jump": r"^(jump|goto) (\S+)$",
        "verdict": r"^(drop|reject)$",
        "return": r"^return$",
        "dnat": r"^meta l4proto (tcp|udp|sctp) dnat to (\S+)$",
        "vmap": r"^numgen random mod \d+ vmap \{(.*)\}$",
        "update": r"^update @\S+ \{ ip saddr \}",  # not in upstream's tracer: affinity sets
    }.items()}
    IGNORED = re.compile(r' *comment "[^"]*"$|^ct state new')

    def __init__(self, state: NftState, node_ips=TEST_NODE_IPS):
        self.state, self.node_ips = state, set(node_ips)
        self.outputs: list[str] = []
        self.masq = False

    @staticmethod
    def address_matches(ip: str, want: bool, address: str) -> bool:
        import ipaddress
        if "/" in address:
            match = ipaddress.ip_address(ip) in ipaddress.ip_network(address)
        else:
            match = ipaddress.ip_address(ip) == ipaddress.ip_address(address)
        return match == want

    def in_set(self, ip: str, want: bool, addresses: str) -> bool:
        return all(self.address_matches(ip, True, a) == want
                   for a in addresses.replace(" ", "").split(","))

    def run(self, chain: str, src: str, proto: str, dst: str, dport: str) -> bool:
        for r in self.state.rules[chain]:
            rule = self.IGNORED.sub("", r.text)
            while rule:
                rule = rule.lstrip(" ")
                name, m = next(((n, p.match(rule)) for n, p in self.RE.items() if p.match(rule)),
                               (None, None))
                if name is None:
                    raise AssertionError(f"unmatched rule: {r.text}")
                rest = rule[m.end():]
                elements = self.state.elements.get(m[1] if m.groups() else "", {})
                if name == "dst_ip_lookup":
                    rule = rest if dst in elements else ""
                elif name in ("dst_dispatch", "dport_dispatch"):
                    key = " . ".join((dst, proto, dport) if name == "dst_dispatch" else (proto, dport))
                    rule = elements[key].value_text if key in elements else ""
                elif name in ("dst_set", "dst", "src_set", "src"):
                    ip = dst if name.startswith("dst") else src
                    check = self.in_set if name.endswith("set") else self.address_matches
                    rule = rest if check(ip, m[1] != "!= ", m[2]) else ""
                elif name in ("dst_local", "src_local"):
                    rule = rest if (dst if name == "dst_local" else src) in self.node_ips else ""
                elif name == "dport":
                    rule = rest if (m[1], m[2]) == (proto, dport) else ""
                elif name == "src_affinity":
                    rule = rest if src in elements else ""
                elif name in ("masq", "update"):
                    self.masq = self.masq or name == "masq"
                    rule = rest
                elif name == "jump":
                    if self.run(m[2], src, proto, dst, dport):
                        return True
                    if m[1] == "goto":
                        return False
                    rule = rest
                elif name == "verdict":
                    self.outputs.append(m[1].upper())
                    return True
                elif name == "return":
                    return False
                elif name == "dnat":
                    self.outputs.append(m[2])
                    return True
                elif name == "vmap":
                    for target in re.findall(r"\d+ : goto (\S+)", m[1]):
                        self.run(target, src, proto, dst, dport)
                    return True
                else:
                    raise AssertionError(f"unhandled {name}: {r.text}")
        return False

    def trace(self, src: str, dst: str, dport: int, proto: str = "tcp") -> tuple[str, bool]:
        """tracePacket: filter-prerouting-pre-dnat, nat-prerouting, then (after DNAT)
        filter-forward and filter-input."""
        port = str(dport)
        if not self.run("filter-prerouting-pre-dnat", src, proto, dst, port):
            self.run("nat-prerouting", src, proto, dst, port)
            if self.outputs:
                dst = self.outputs[0].rsplit(":", 1)[0]
            if not self.run("filter-forward", src, proto, dst, port):
                self.run("filter-input", src, proto, dst, port)
        return ", ".join(self.outputs), self.masq


def check_flows(ruleset, flows, node_ips=TEST_NODE_IPS):
    state = ruleset.state()
    failures = []
    for name, src, dst, dport, output, masq, *proto in flows:
        got = Tracer(state, node_ips).trace(src, dst, dport, *proto)
        if got != (output, masq):
            failures.append(f"{name}: expected {(output, masq)}, got {got}")
    assert not failures, "\n".join(failures)


def test_flows_no_endpoints_reject():  # TestNoEndpointsReject
    svc = one_port("ns1", "svc1", "172.30.0.41", node_port=3001, type="LoadBalancer",
                   external_ips=("192.168.99.11",), load_balancer_ips=("1.2.3.4",))
    check_flows(render([svc]), [
        ("pod to cluster IP with no endpoints", "10.0.0.2", "172.30.0.41", 80, "REJECT", False),
        ("external to external IP with no endpoints", EXTERNAL_CLIENT, "192.168.99.11", 80, "REJECT", False),
        ("pod to NodePort with no endpoints", "10.0.0.2", "192.168.0.2", 3001, "REJECT", False),
        ("external to NodePort with no endpoints", EXTERNAL_CLIENT, "192.168.0.2", 3001, "REJECT", False),
        ("pod to LoadBalancer IP with no endpoints", "10.0.0.2", "1.2.3.4", 80, "REJECT", False),
        ("external to LoadBalancer IP with no endpoints", EXTERNAL_CLIENT, "1.2.3.4", 80, "REJECT", False),
    ])


def test_flows_cluster_ip_general():  # TestClusterIPGeneral
    svc1 = one_port("ns1", "svc1", "172.30.0.41", [ep("10.180.0.1", node="test-node")], port_name="http")
    eps = (("10.180.0.1", "test-node"), ("10.180.2.1", "node2"))

    def port(name, protocol, number, target):
        return PlanServicePort(name, protocol, number, str(target), 0,
                               tuple(ep(ip, target, node) for ip, node in eps))

    svc2 = PlanService("ns2", "svc2", "ClusterIP", "172.30.0.42", (
        port("http", "TCP", 80, 80), port("https", "TCP", 443, 8443),
        port("dns-udp", "UDP", 53, 53), port("dns-tcp", "TCP", 53, 5353),
        port("dns-sctp", "SCTP", 53, 53)))
    check_flows(render([svc1, svc2]), [
        ("simple clusterIP", "10.180.0.2", "172.30.0.41", 80, "10.180.0.1:80", False),
        ("hairpin to cluster IP", "10.180.0.1", "172.30.0.41", 80, "10.180.0.1:80", True),
        ("clusterIP with multiple endpoints", "10.180.0.2", "172.30.0.42", 80, "10.180.0.1:80, 10.180.2.1:80", False),
        ("clusterIP with TargetPort", "10.180.0.2", "172.30.0.42", 443, "10.180.0.1:8443, 10.180.2.1:8443", False),
        ("TCP on a port shared with UDP and SCTP", "10.180.0.2", "172.30.0.42", 53, "10.180.0.1:5353, 10.180.2.1:5353", False, "tcp"),
        ("UDP on a port shared with TCP and SCTP", "10.180.0.2", "172.30.0.42", 53, "10.180.0.1:53, 10.180.2.1:53", False, "udp"),
        ("SCTP on a port shared with TCP and UDP", "10.180.0.2", "172.30.0.42", 53, "10.180.0.1:53, 10.180.2.1:53", False, "sctp"),
        ("TCP-only port does not match UDP traffic", "10.180.0.2", "172.30.0.42", 80, "REJECT", False, "udp"),
        ("svc1 does not accept svc2's ports", "10.180.0.2", "172.30.0.41", 443, "REJECT", False),
        ("packet to unallocated cluster ip", "10.180.0.2", "172.30.0.50", 80, "DROP", False),
    ])


def test_flows_load_balancer_source_ranges():  # TestLoadBalancer
    svc = one_port("ns1", "svc1", "172.30.0.41", [ep("10.180.0.1")], node_port=3001,
                   type="LoadBalancer", load_balancer_ips=("1.2.3.4", "5.6.7.8"),
                   load_balancer_source_ranges=("192.168.0.0/24", " 203.0.113.0/25"))
    to = "10.180.0.1:80"
    check_flows(render([svc]), [
        ("pod to cluster IP", "10.0.0.2", "172.30.0.41", 80, to, False),
        ("external to nodePort", EXTERNAL_CLIENT, "192.168.0.2", 3001, to, True),
        ("nodePort bypasses LoadBalancerSourceRanges", EXTERNAL_CLIENT_BLOCKED, "192.168.0.2", 3001, to, True),
        ("accepted external to LB1", EXTERNAL_CLIENT, "1.2.3.4", 80, to, True),
        ("accepted external to LB2", EXTERNAL_CLIENT, "5.6.7.8", 80, to, True),
        ("blocked external to LB1", EXTERNAL_CLIENT_BLOCKED, "1.2.3.4", 80, "DROP", False),
        ("blocked external to LB2", EXTERNAL_CLIENT_BLOCKED, "5.6.7.8", 80, "DROP", False),
        ("pod to LB1 (blocked by LoadBalancerSourceRanges)", "10.0.0.2", "1.2.3.4", 80, "DROP", False),
        ("pod to LB2 (blocked by LoadBalancerSourceRanges)", "10.0.0.2", "5.6.7.8", 80, "DROP", False),
        ("node to LB1 (allowed by LoadBalancerSourceRanges)", "192.168.0.2", "1.2.3.4", 80, to, True),
        ("node to LB2 (allowed by LoadBalancerSourceRanges)", "192.168.0.2", "5.6.7.8", 80, to, True),
        ("same node to LB1, SNATted to LB1 (implicitly allowed)", "1.2.3.4", "1.2.3.4", 80, to, True),
        ("same node to LB2, SNATted to LB2 (implicitly allowed)", "5.6.7.8", "5.6.7.8", 80, to, True),
    ])


@pytest.mark.parametrize("nodeport_ips, alt_allowed", [
    (None, False), (("192.168.0.2", "192.168.1.2"), True)])  # TestNodePorts, IPv4 cases
def test_flows_node_ports(nodeport_ips, alt_allowed):
    svc = one_port("ns1", "svc1", "172.30.0.41", [ep("10.180.0.1"), ep("10.180.2.1", node="test-node")],
                   node_port=3001, type="NodePort")
    both = "10.180.0.1:80, 10.180.2.1:80"
    check_flows(render([svc], nodeport_ips=nodeport_ips), [
        ("pod to cluster IP", "10.0.0.2", "172.30.0.41", 80, both, False),
        ("external to nodePort", EXTERNAL_CLIENT, "192.168.0.2", 3001, both, True),
        ("node to nodePort", "192.168.0.2", "192.168.0.2", 3001, both, True),
        ("external to nodePort on secondary IP", EXTERNAL_CLIENT, "192.168.1.2", 3001,
         both if alt_allowed else "", alt_allowed),
    ])


@pytest.mark.parametrize("local", [True, False])  # TestExternalTrafficPolicyLocal / ...Cluster
def test_flows_external_traffic_policy(local):
    svc = one_port("ns1", "svc1", "172.30.0.41", [ep("10.180.0.1"), ep("10.180.2.1", node="test-node")],
                   node_port=3001, type="LoadBalancer", external_traffic_local=local,
                   external_ips=("192.168.99.11",), load_balancer_ips=("1.2.3.4",),
                   health_check_node_port=30000 if local else 0)
    both, mine = "10.180.0.1:80, 10.180.2.1:80", "10.180.2.1:80"
    check_flows(render([svc]), [
        ("pod to cluster IP", "10.0.0.2", "172.30.0.41", 80, both, False),
        ("pod to external IP", "10.0.0.2", "192.168.99.11", 80, both, not local),
        ("external to external IP", EXTERNAL_CLIENT, "192.168.99.11", 80, mine if local else both, not local),
        ("pod to LB IP", "10.0.0.2", "1.2.3.4", 80, both, not local),
        ("external to LB IP", EXTERNAL_CLIENT, "1.2.3.4", 80, mine if local else both, not local),
        ("pod to NodePort", "10.0.0.2", "192.168.0.2", 3001, both, not local),
        ("external to NodePort", EXTERNAL_CLIENT, "192.168.0.2", 3001, mine if local else both, not local),
    ])


INTERNAL_EXTERNAL_FLOWS = [  # TestInternalExternalMasquerade's flows, base case
    ("pod to ClusterIP", "10.0.0.2", "172.30.0.41", 80, "10.180.0.1:80, 10.180.1.1:80", False),
    ("pod to NodePort", "10.0.0.2", "192.168.0.2", 3001, "10.180.0.1:80, 10.180.1.1:80", True),
    ("pod to LB", "10.0.0.2", "1.2.3.4", 80, "10.180.0.1:80, 10.180.1.1:80", True),
    ("node to ClusterIP", "192.168.0.2", "172.30.0.41", 80, "10.180.0.1:80, 10.180.1.1:80", True),
    ("node to NodePort", "192.168.0.2", "192.168.0.2", 3001, "10.180.0.1:80, 10.180.1.1:80", True),
    ("node to LB", "192.168.0.2", "1.2.3.4", 80, "10.180.0.1:80, 10.180.1.1:80", True),
    ("external to ClusterIP", EXTERNAL_CLIENT, "172.30.0.41", 80, "10.180.0.1:80, 10.180.1.1:80", True),
    ("external to NodePort", EXTERNAL_CLIENT, "192.168.0.2", 3001, "10.180.0.1:80, 10.180.1.1:80", True),
    ("external to LB", EXTERNAL_CLIENT, "1.2.3.4", 80, "10.180.0.1:80, 10.180.1.1:80", True),
    ("pod to ClusterIP with eTP:Local", "10.0.0.2", "172.30.0.42", 80, "10.180.0.2:80, 10.180.1.2:80", False),
    ("pod to NodePort with eTP:Local", "10.0.0.2", "192.168.0.2", 3002, "10.180.0.2:80, 10.180.1.2:80", False),
    ("pod to LB with eTP:Local", "10.0.0.2", "5.6.7.8", 80, "10.180.0.2:80, 10.180.1.2:80", False),
    ("node to ClusterIP with eTP:Local", "192.168.0.2", "172.30.0.42", 80, "10.180.0.2:80, 10.180.1.2:80", True),
    ("node to NodePort with eTP:Local", "192.168.0.2", "192.168.0.2", 3001, "10.180.0.1:80, 10.180.1.1:80", True),
    ("node to LB with eTP:Local", "192.168.0.2", "5.6.7.8", 80, "10.180.0.2:80, 10.180.1.2:80", True),
    ("external to ClusterIP with eTP:Local", EXTERNAL_CLIENT, "172.30.0.42", 80, "10.180.0.2:80, 10.180.1.2:80", True),
    ("external to NodePort with eTP:Local", EXTERNAL_CLIENT, "192.168.0.2", 3002, "10.180.0.2:80", False),
    ("external to LB with eTP:Local", EXTERNAL_CLIENT, "5.6.7.8", 80, "10.180.0.2:80", False),
    ("pod to ClusterIP with iTP:Local", "10.0.0.2", "172.30.0.43", 80, "10.180.0.3:80", False),
    ("pod to NodePort with iTP:Local", "10.0.0.2", "192.168.0.2", 3003, "10.180.0.3:80, 10.180.1.3:80", True),
    ("pod to LB with iTP:Local", "10.0.0.2", "9.10.11.12", 80, "10.180.0.3:80, 10.180.1.3:80", True),
    ("node to ClusterIP with iTP:Local", "192.168.0.2", "172.30.0.43", 80, "10.180.0.3:80", True),
    ("node to NodePort with iTP:Local", "192.168.0.2", "192.168.0.2", 3003, "10.180.0.3:80, 10.180.1.3:80", True),
    ("node to LB with iTP:Local", "192.168.0.2", "9.10.11.12", 80, "10.180.0.3:80, 10.180.1.3:80", True),
    ("external to ClusterIP with iTP:Local", EXTERNAL_CLIENT, "172.30.0.43", 80, "10.180.0.3:80", True),
    ("external to NodePort with iTP:Local", EXTERNAL_CLIENT, "192.168.0.2", 3003, "10.180.0.3:80, 10.180.1.3:80", True),
    ("external to LB with iTP:Local", EXTERNAL_CLIENT, "9.10.11.12", 80, "10.180.0.3:80, 10.180.1.3:80", True),
]
INTERNAL_EXTERNAL_OVERRIDES = {  # (masquerade_all, local detector) -> {flow: (output, masq)}
    (False, True): {},
    (False, False): {
        "node to ClusterIP": (None, False), "node to ClusterIP with eTP:Local": (None, False),
        "node to ClusterIP with iTP:Local": (None, False), "external to ClusterIP": (None, False),
        "external to ClusterIP with eTP:Local": (None, False),
        "external to ClusterIP with iTP:Local": (None, False),
        "pod to NodePort with eTP:Local": ("10.180.0.2:80", None),
        "pod to LB with eTP:Local": ("10.180.0.2:80", None)},
    (True, True): {
        "pod to ClusterIP": (None, True), "pod to ClusterIP with eTP:Local": (None, True),
        "pod to ClusterIP with iTP:Local": (None, True)},
    (True, False): {
        "pod to ClusterIP": (None, True), "pod to ClusterIP with eTP:Local": (None, True),
        "pod to ClusterIP with iTP:Local": (None, True),
        "pod to NodePort with eTP:Local": ("10.180.0.2:80", None),
        "pod to LB with eTP:Local": ("10.180.0.2:80", None)},
}


@pytest.mark.parametrize("masquerade_all, detector", list(INTERNAL_EXTERNAL_OVERRIDES))
def test_flows_internal_external_masquerade(masquerade_all, detector):  # TestInternalExternalMasquerade
    def lb(ns, name, cip, n, lb_ip, **kw):
        return one_port(ns, name, cip, [ep(f"10.180.0.{n}", node="test-node"), ep(f"10.180.1.{n}", node="remote")],
                        node_port=3000 + n, type="LoadBalancer", load_balancer_ips=(lb_ip,),
                        health_check_node_port=30000 + n, **kw)

    services = [lb("ns1", "svc1", "172.30.0.41", 1, "1.2.3.4"),
                lb("ns2", "svc2", "172.30.0.42", 2, "5.6.7.8", external_traffic_local=True),
                lb("ns3", "svc3", "172.30.0.43", 3, "9.10.11.12", internal_traffic_local=True)]
    opts = ProxyOptions("test-node", ("192.168.0.2",), "10.0.0.0/8" if detector else "")
    overrides = INTERNAL_EXTERNAL_OVERRIDES[(masquerade_all, detector)]
    flows = []
    for name, src, dst, port, output, masq in INTERNAL_EXTERNAL_FLOWS:
        new_output, new_masq = overrides.get(name, (None, None))
        flows.append((name, src, dst, port, output if new_output is None else new_output,
                      masq if new_masq is None else new_masq))
    check_flows(render(services, opts, masquerade_all=masquerade_all), flows)


def test_flows_terminating_endpoints():  # TestTerminatingEndpointsTrafficPolicyCluster
    def svc(*eps):
        return one_port("ns1", "svc1", "172.30.1.1", eps, type="LoadBalancer", load_balancer_ips=("1.2.3.4",))

    ready = {"ready": True, "serving": True, "terminating": False}
    serving_terminating = {"ready": False, "serving": True, "terminating": True}
    gone = {"ready": False, "serving": False, "terminating": True}
    check_flows(render([svc(ep("10.0.1.1", node="test-node", **ready), ep("10.0.1.2", node="test-node", **ready),
                            ep("10.0.1.3", node="another-node", **serving_terminating),
                            ep("10.0.1.4", node="another-node", **gone), ep("10.0.1.5", node="another-node", **ready))]), [
        ("pod to clusterIP", "10.0.0.2", "172.30.1.1", 80, "10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80", False),
        ("external to LB", EXTERNAL_CLIENT, "1.2.3.4", 80, "10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80", True)])
    check_flows(render([svc(ep("10.0.1.2", node="test-node", **serving_terminating),
                            ep("10.0.1.3", node="test-node", **serving_terminating),
                            ep("10.0.1.4", node="another-node", **gone),
                            ep("10.0.1.5", node="another-node", **serving_terminating))]), [
        ("pod to clusterIP", "10.0.0.2", "172.30.1.1", 80, "10.0.1.2:80, 10.0.1.3:80, 10.0.1.5:80", False),
        ("external to LB", EXTERNAL_CLIENT, "1.2.3.4", 80, "10.0.1.2:80, 10.0.1.3:80, 10.0.1.5:80", True)])
    check_flows(render([svc(ep("10.0.1.5", node="test-node", **gone), ep("10.0.1.6", node="node-1", **gone))]), [
        ("pod to clusterIP", "10.0.0.2", "172.30.1.1", 80, "REJECT", False),
        ("external to LB", EXTERNAL_CLIENT, "1.2.3.4", 80, "REJECT", False)])


# ---- 5. partial syncs: TestSyncProxyRulesRepeated, step by step ----

class Node:
    """A node's table as kube-proxy's syncs leave it: each sync's transaction replayed on a
    model of the kernel's table; stale chains deleted at the start of a later sync."""

    def __init__(self):
        self.kernel = NftState()
        self.before = None
        self.stale: set[str] = set()
        self.ops = 0

    def sync(self, services, aged=False):
        if aged and self.stale:  # a separate transaction, before the sync's own
            text = sync_ops(self.before, render(services)).delete_text(sorted(self.stale))
            self.kernel.apply(parse(text))
            self.stale = set()
        ruleset = render(services)
        change = sync_ops(self.before, ruleset)
        self.kernel.apply(parse(change.text()))
        self.ops = len(change.ops)
        self.stale = (self.stale | set(change.stale)) - set(ruleset.snapshot().rules())
        self.before = ruleset.snapshot()
        return self

    def matches(self, expected: str) -> bool:
        got, want = normal_form(dump(self.kernel)), normal_form(BASE_RULES + expected)
        assert got == want
        return True


def svc_n(n, eps, port=80):
    return one_port(f"ns{n}", f"svc{n}", f"172.30.0.4{n}", [ep(ip, port) for ip in eps],
                    port_name=f"p{port}", port=port)


SVC1 = """
add element ip kube-proxy cluster-ips { 172.30.0.41 }
add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }
add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80 }
add chain ip kube-proxy endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80
add rule ip kube-proxy endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80 ip saddr 10.0.1.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80 meta l4proto tcp dnat to 10.0.1.1:80
"""
SVC2 = """
add element ip kube-proxy cluster-ips { 172.30.0.42 }
add element ip kube-proxy service-ips { 172.30.0.42 . tcp . 8080 : goto service-MHHHYRWA-ns2/svc2/tcp/p8080 }
add chain ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080
add rule ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080 ip daddr 172.30.0.42 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080 numgen random mod 1 vmap { 0 : goto endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080 }
add chain ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080
add rule ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080 ip saddr 10.0.2.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080 meta l4proto tcp dnat to 10.0.2.1:8080
"""
SVC3 = """
add element ip kube-proxy cluster-ips { 172.30.0.43 }
add element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 : goto service-4AT6LBPK-ns3/svc3/tcp/p80 }
add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 ip daddr 172.30.0.43 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80 }
add chain ip kube-proxy endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80
add rule ip kube-proxy endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80 ip saddr 10.0.3.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80 meta l4proto tcp dnat to 10.0.3.1:80
"""
SVC4 = """
add element ip kube-proxy cluster-ips { 172.30.0.44 }
add element ip kube-proxy service-ips { 172.30.0.44 . tcp . 80 : goto service-LAUZTJTB-ns4/svc4/tcp/p80 }
add chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80
add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 ip daddr 172.30.0.44 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80 }
add chain ip kube-proxy endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80
add rule ip kube-proxy endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80 ip saddr 10.0.4.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80 meta l4proto tcp dnat to 10.0.4.1:80
"""
SVC3_TWO = """
add element ip kube-proxy cluster-ips { 172.30.0.43 }
add element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 : goto service-4AT6LBPK-ns3/svc3/tcp/p80 }
add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 ip daddr 172.30.0.43 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 numgen random mod 2 vmap { 0 : goto endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 , 1 : goto endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80 }
add chain ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80
add rule ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 ip saddr 10.0.3.2 jump mark-for-masquerade
add rule ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 meta l4proto tcp dnat to 10.0.3.2:80
add chain ip kube-proxy endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80
add rule ip kube-proxy endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80 ip saddr 10.0.3.3 jump mark-for-masquerade
add rule ip kube-proxy endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80 meta l4proto tcp dnat to 10.0.3.3:80
"""


def test_repeated_syncs_as_kube_proxy_makes_them():
    """TestSyncProxyRulesRepeated: after each step the node holds exactly upstream's expected
    table (stale chains flushed but not yet deleted included), with upstream's operation
    counts - except adding an endpoint, where kube-proxy re-writes the service's unchanged
    endpoint chain too (12 operations) and labnet's chain-by-chain diff does not (8)."""
    node = Node()
    svc1, svc2 = svc_n(1, ["10.0.1.1"]), svc_n(2, ["10.0.2.1"], 8080)
    assert node.sync([svc1, svc2]).matches(SVC1 + SVC2)
    svc3 = svc_n(3, ["10.0.3.1"])
    assert node.sync([svc1, svc2, svc3]).matches(SVC1 + SVC2 + SVC3) and node.ops == 10
    # a service deleted: its chains are flushed, not yet deleted
    node.sync([svc1, svc3])
    assert node.matches(SVC1 + SVC3 + """
add chain ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080
add chain ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080
""") and node.ops == 4
    assert node.stale == {"service-MHHHYRWA-ns2/svc2/tcp/p8080",
                          "endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080"}
    # a later sync deletes them first, in a transaction of its own; nothing else to do
    assert node.sync([svc1, svc3], aged=True).matches(SVC1 + SVC3) and node.ops == 0
    # a service without endpoints, then with one
    assert node.sync([svc1, svc3, svc_n(4, [])]).matches(SVC1 + SVC3 + """
add element ip kube-proxy cluster-ips { 172.30.0.44 }
add element ip kube-proxy no-endpoint-services { 172.30.0.44 . tcp . 80 comment "ns4/svc4:p80" : goto reject-chain }
""") and node.ops == 2
    svc4 = svc_n(4, ["10.0.4.1"])
    assert node.sync([svc1, svc3, svc4]).matches(SVC1 + SVC3 + SVC4) and node.ops == 10
    # one endpoint changes: service chain + new endpoint chain rewritten, old one flushed
    node.sync([svc1, svc_n(3, ["10.0.3.2"]), svc4])
    assert node.matches(SVC1 + SVC4 + """
add element ip kube-proxy cluster-ips { 172.30.0.43 }
add element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 : goto service-4AT6LBPK-ns3/svc3/tcp/p80 }
add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 ip daddr 172.30.0.43 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 }
add chain ip kube-proxy endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80
add chain ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80
add rule ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 ip saddr 10.0.3.2 jump mark-for-masquerade
add rule ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 meta l4proto tcp dnat to 10.0.3.2:80
""") and node.ops == 9
    # an endpoint added (the old chain deleted first: it has aged)
    two = svc_n(3, ["10.0.3.2", "10.0.3.3"])
    assert node.sync([svc1, two, svc4], aged=True).matches(SVC1 + SVC3_TWO + SVC4)
    assert node.ops == 8  # kube-proxy: 12
    # endpoints emptied: chains flushed, the ClusterIP rejected; then restored at once
    node.sync([svc1, svc_n(3, []), svc4])
    assert node.matches(SVC1 + SVC4 + """
add element ip kube-proxy cluster-ips { 172.30.0.43 }
add element ip kube-proxy no-endpoint-services { 172.30.0.43 . tcp . 80 comment "ns3/svc3:p80" : goto reject-chain }
add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
add chain ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80
add chain ip kube-proxy endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80
""") and node.ops == 5
    assert node.sync([svc1, two, svc4]).matches(SVC1 + SVC3_TWO + SVC4) and node.ops == 14
    assert not node.stale
    # emptied, aged, restored: the chains are deleted, then made again
    node.sync([svc1, svc_n(3, []), svc4])
    assert node.sync([svc1, two, svc4], aged=True).matches(SVC1 + SVC3_TWO + SVC4)
    # nothing changed: no operations
    assert node.sync([svc1, two, svc4]).matches(SVC1 + SVC3_TWO + SVC4) and node.ops == 0


def test_a_partial_sync_equals_a_full_sync_for_every_feature():
    """From each overall service set to another (services added, removed, changed in every
    feature), the partial transaction leaves the table the full render describes."""
    services = overall_services()
    variants = [services, services[:3], services[2:], list(reversed(services[1:])), [],
                [s for s in services if s.name != "svc4"] + [svc_n(4, ["10.180.0.9"])]]
    for start in variants:
        for end in variants:
            node = Node()
            node.sync(start)
            node.sync(end, aged=True)
            full = render(end)
            stale = node.stale
            kernel = {c: r for c, r in node.kernel.snapshot().rules().items() if c not in stale}
            assert kernel == full.snapshot().rules()
            assert node.kernel.snapshot().elements == full.snapshot().elements
            assert {k: v for k, v in node.kernel.snapshot().objects.items()
                    if k[1] not in stale} == full.snapshot().objects


def test_a_render_cache_reuses_unchanged_service_ports_and_the_sync_skips_them():
    """Through a cache, an unchanged service port is the same fragment (and snapshot part), on
    every node when it does not depend on the node; the partial sync then looks only at the
    changed service, and says the same as a sync between uncached renders."""
    cache = NftRenderCache()
    local = one_port("d", "local", "172.30.0.9", [ep("10.0.1.2", node="test-node")],
                     node_port=30009, type="NodePort", external_traffic_local=True)
    services = [svc_n(1, ["10.0.1.1"]), svc_n(2, ["10.0.2.1"], 8080), local]
    first = render(services, cache=cache)
    other_node = render(services, ProxyOptions("n2", ("192.168.0.3",), "10.0.0.0/8"), cache=cache)
    cache.sweep()

    def fragment(ruleset, service):
        return next(f for f in ruleset.fragments if f.service == service)

    assert fragment(other_node, "ns1/svc1") is fragment(first, "ns1/svc1")  # shared
    assert fragment(other_node, "d/local") is not fragment(first, "d/local")  # eTP Local: per node
    moved = [svc_n(1, ["10.0.1.9"]), *services[1:]]
    second = render(moved, cache=cache)
    cache.sweep()
    assert fragment(second, "ns2/svc2") is fragment(first, "ns2/svc2")
    assert fragment(second, "ns1/svc1") is not fragment(first, "ns1/svc1")
    cached = sync_ops(first.snapshot(), second)
    uncached = sync_ops(render(services).snapshot(), render(moved))
    assert cached.ops == uncached.ops and len(cached.ops) == 9
    assert cached.stale == ["endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80"]
    assert sync_ops(second.snapshot(), render(moved, cache=cache)).ops == []
