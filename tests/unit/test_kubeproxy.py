"""kube-proxy fidelity: chain names and the whole ruleset, compared with kube-proxy's own."""

from pathlib import Path

import pytest

from labnet.kubeproxy import chains
from labnet.kubeproxy.rules import ProxyOptions, probability, render
from labnet.plan import PlanEndpoint, PlanService, PlanServicePort

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.mark.parametrize("made, expected", [
    (chains.svc_chain("ns1/svc1:p80", "TCP"), "KUBE-SVC-XPGD46QRK7WJZT7O"),
    (chains.fw_chain("ns5/svc5:p80", "TCP"), "KUBE-FW-NUKIZ6OKUXPJNT4C"),
    (chains.svc_chain("ns2/svc2:p8080", "TCP"), "KUBE-SVC-2VJB64SDSIJUP5T6"),
    (chains.sep_chain("ns1/svc1:p80", "TCP", "10.180.0.1", 80), "KUBE-SEP-SXIVWICOYRO3J4NJ"),
    (chains.sep_chain("ns4/svc4:p80", "TCP", "10.180.0.5", 80), "KUBE-SEP-C6EBXVWJJZMIWKLZ"),
    (chains.sep_chain("ns3/svc3:p8081", "TCP", "203.0.113.4", 8081), "KUBE-SEP-RUVVH7YV3PHQBDOS"),
    (chains.ext_chain("ns2/svc2:p80", "tcp"), "KUBE-EXT-GNZBNJ2PO5MGZ6GT"),
])
def test_chain_names_match_kube_proxy(made, expected):
    assert made == expected


@pytest.mark.parametrize("n, text", [(1, "1.0000000000"), (2, "0.5000000000"),
                                     (10, "0.1000000000"), (100000, "0.0000100000"),
                                     (100001, "0.0000099999")])
def test_probabilities_are_written_as_kube_proxy_writes_them(n, text):
    assert probability(n) == text


def svc(ns, name, ip, port=80, node_port=0, eps=(), **kw):
    endpoints = tuple(PlanEndpoint(e[0], 80, e[1] if len(e) > 1 else "") for e in eps)
    return PlanService(ns, name, kw.pop("type", "ClusterIP"), ip,
                       (PlanServicePort("p80", "TCP", port, "80", node_port, endpoints),), **kw)


def overall_services():
    """The services of kube-proxy's TestOverallIPTablesRules (proxier_test.go)."""
    return [
        svc("ns1", "svc1", "172.30.0.41", eps=[("10.180.0.1",)]),
        svc("ns2", "svc2", "172.30.0.42", node_port=3001, eps=[("10.180.0.2",)],
            type="LoadBalancer", external_traffic_local=True, load_balancer_ips=("1.2.3.4",),
            external_ips=("192.168.99.22",), health_check_node_port=30000),
        svc("ns3", "svc3", "172.30.0.43", node_port=3003, eps=[("10.180.0.3",)], type="NodePort"),
        svc("ns4", "svc4", "172.30.0.44", eps=[("10.180.0.4",), ("10.180.0.5", "test-node")],
            type="NodePort", external_ips=("192.168.99.33",)),
        svc("ns5", "svc5", "172.30.0.45", node_port=3002, eps=[("10.180.0.3",)],
            type="LoadBalancer", load_balancer_ips=("5.6.7.8",), health_check_node_port=30000,
            load_balancer_source_ranges=("203.0.113.0/25",), session_affinity_timeout=10800),
        svc("ns6", "svc6", "172.30.0.46"),
    ]


def test_overall_ruleset_equals_kube_proxy_byte_for_byte():
    opts = ProxyOptions("test-node", ("192.168.0.2",), "10.0.0.0/8", nfacct=True)
    text = render(overall_services(), opts).sync_text()
    assert text == (GOLDEN / "kube-proxy-overall.rules").read_text()


def test_same_services_give_the_same_text_in_any_order():
    opts = ProxyOptions("test-node", ("192.168.0.2",), "10.0.0.0/8")
    assert (render(overall_services(), opts).sync_text()
            == render(list(reversed(overall_services())), opts).sync_text())


def test_three_endpoints_and_internal_traffic_policy_local():
    eps = [("10.0.1.2", "a"), ("10.0.1.10", "b"), ("10.0.2.2", "a")]
    text = render([svc("d", "web", "172.19.0.5", eps=eps)],
                  ProxyOptions("a", ("192.168.255.11",), "10.0.0.0/8")).sync_text()
    svc_chain = chains.svc_chain("d/web:p80", "tcp")
    lines = [x for x in text.splitlines() if x.startswith(f"-A {svc_chain}") and "->" in x]
    # sorted by the "ip:port" string, as kube-proxy sorts: 10.0.1.10 before 10.0.1.2
    assert [x.split("-> ")[1].split('"')[0] for x in lines] == [
        "10.0.1.10:80", "10.0.1.2:80", "10.0.2.2:80"]
    assert "--probability 0.3333333333" in lines[0] and "--probability 0.5000000000" in lines[1]
    assert "statistic" not in lines[2]
    local = render([svc("d", "web", "172.19.0.5", eps=eps, internal_traffic_local=True)],
                   ProxyOptions("b", ("192.168.255.12",), "10.0.0.0/8")).sync_text()
    svl = chains.svl_chain("d/web:p80", "tcp")
    assert f'-d 172.19.0.5 --dport 80 -j {svl}' in local and svc_chain not in local
    none_local = render([svc("d", "web", "172.19.0.5", eps=eps, internal_traffic_local=True)],
                        ProxyOptions("c", ("192.168.255.13",), "10.0.0.0/8")).sync_text()
    assert '"d/web:p80 has no local endpoints" -m tcp -p tcp -d 172.19.0.5 --dport 80 -j DROP' \
        in none_local


def test_large_cluster_mode_drops_endpoint_comments():
    eps = [(f"10.1.{i // 250}.{i % 250 + 1}",) for i in range(1001)]
    text = render([svc("d", "big", "172.19.0.7", eps=eps)],
                  ProxyOptions("n", ("192.168.255.11",), "10.0.0.0/8")).sync_text()
    sep_lines = [x for x in text.splitlines() if x.startswith("-A KUBE-SEP-")]
    assert sep_lines and all("--comment" not in x for x in sep_lines)
    assert '"d/big:p80 cluster IP"' in text


def test_partial_sync_plans_only_what_changed():
    from labnet.kubeproxy.rules import RenderCache
    from labnet.kubeproxy.sync import decide, snapshot

    opts = ProxyOptions("n1", ("192.168.255.11",), "10.0.0.0/8")
    cache = RenderCache()
    a = svc("d", "a", "172.19.0.5", eps=[("10.0.1.2",), ("10.0.1.3",)])
    b = svc("d", "b", "172.19.0.6", eps=[("10.0.1.4",)])
    first = render([a, b], opts, cache)
    cache.sweep()
    installed = snapshot(first)
    # one endpoint of a moves: a's SVC chain and the new SEP are written, the old SEP goes,
    moved = svc("d", "a", "172.19.0.5", eps=[("10.0.1.2",), ("10.0.1.9",)])
    second = render([moved, b], opts, cache)
    changes = decide(snapshot(second), installed, [])
    (nat,) = [c for c in changes if c.table == "nat"]
    spn = "d/a:p80"
    # a chain is rewritten only when its rules differ: the SEP of 10.0.1.2 is left as it is
    assert set(nat.rewrite) == {chains.svc_chain(spn, "tcp"),
                                chains.sep_chain(spn, "tcp", "10.0.1.9", 80)}
    assert nat.delete == [chains.sep_chain(spn, "tcp", "10.0.1.3", 80)]
    assert not nat.full and not nat.jumps
    # nothing of b, and no shared chain, is touched; the filter table is left alone
    assert "KUBE-SERVICES" not in nat.rewrite
    assert all(c.table == "nat" for c in changes)
    # b goes away: its chains are deleted and KUBE-SERVICES is rewritten
    installed = snapshot(second)
    third = render([moved], opts, cache)
    (nat,) = [c for c in decide(snapshot(third), installed, []) if c.table == "nat"]
    assert "KUBE-SERVICES" in nat.rewrite
    assert chains.svc_chain("d/b:p80", "tcp") in nat.delete
    # nothing changed: nothing to do, not even a read of the kernel
    assert decide(snapshot(third), snapshot(third), []) == []


def test_the_decision_is_keyed_on_chains_not_on_render_identity():
    """Rules rendered again from scratch (no cache: new objects) are the same chains: a sync
    after an agent restart that kept its record would rewrite nothing."""
    from labnet.kubeproxy.sync import decide, snapshot

    opts = ProxyOptions("n1", ("192.168.255.11",), "10.0.0.0/8")
    services = [svc("d", "a", "172.19.0.5", eps=[("10.0.1.2",)])]
    assert decide(snapshot(render(services, opts)), snapshot(render(services, opts)), []) == []


def test_a_full_sync_writes_every_chain_and_the_jumps():
    from labnet.kubeproxy.iptables_backend import IptablesBackend
    from labnet.kubeproxy.sync import decide, snapshot

    backend = IptablesBackend()
    ruleset = render([svc("d", "a", "172.19.0.5", eps=[("10.0.1.2",)])],
                     ProxyOptions("n1", ("192.168.255.11",), "10.0.0.0/8"))
    changes = {c.table: c for c in decide(snapshot(ruleset), None, backend.jumps())}
    assert set(changes) == {"filter", "nat"} and all(c.full for c in changes.values())
    # every chain of the restore text, with the same rules in the same order
    for table in ruleset.tables():
        ordered = table.chain_rules()
        assert set(changes[table.name].rewrite) == set(ordered)
        for chain, rules in ordered.items():
            assert changes[table.name].rewrite[chain] == [r.args for r in rules]
    assert ("PREROUTING", ("-m", "comment", "--comment", "kubernetes service portals", "-j",
                           "KUBE-SERVICES")) in changes["nat"].jumps


def test_rule_producers_own_disjoint_chains_and_kube_proxy_owns_what_it_writes():
    from labnet.producers import KUBE_PROXY, PRODUCERS, owner_of

    ruleset = render([svc("d", "a", "172.19.0.5", eps=[("10.0.1.2",)], node_port=30080)],
                     ProxyOptions("n1", ("192.168.255.11",), "10.0.0.0/8"))
    for table in ruleset.tables():
        for chain in table.chains:
            assert owner_of(chain) is KUBE_PROXY, chain
    # what kube-proxy's full sync must leave alone: kubelet's canary, another producer's chain
    for chain in ("KUBE-KUBELET-CANARY", "KUBE-NWPLCY-ABC", "KUBE-POD-FW-XYZ", "CALI-INPUT"):
        assert not KUBE_PROXY.owns(chain)
    for i, p in enumerate(PRODUCERS):
        for q in PRODUCERS[i + 1:]:
            assert not (p.chains & q.chains) and not any(
                a.startswith(b) or b.startswith(a) for a in p.prefixes for b in q.prefixes)
