"""Service fields as Kubernetes takes them: the nodePort range of the lab
(kube-apiserver --service-node-port-range), legacy IP forms (leading zeros) read sloppily and
rendered canonically as kube-proxy does, and status.loadBalancer.ingress."""

from pathlib import Path

import pytest

from labnet.errors import SpecError, SpecErrors
from labnet.input.labfile import parse_lab_text
from labnet.kubeproxy import chains
from labnet.kubeproxy.for_plan import node_ruleset
from labnet.plan import make_plan
from tests.manifests import deployment, lab_text, service


def plan_of(text: str):
    return make_plan(parse_lab_text(text, "lab.yaml", Path(".")))


def errors_of(text: str) -> list[str]:
    with pytest.raises((SpecError, SpecErrors)) as info:
        parse_lab_text(text, "lab.yaml", Path("."))
    exc = info.value
    return [e.line() for e in exc.errors] if isinstance(exc, SpecErrors) else [exc.line()]


def rules(plan, node: str = "node1") -> list[str]:
    return node_ruleset(plan, node).sync_text().splitlines()


RANGE = "network: {serviceNodePortRange: \"20000-20009\"}\n"


# --- the nodePort range ------------------------------------------------------------------------

def test_node_ports_are_allocated_from_the_labs_range():
    text = lab_text(deployment(), service(type="NodePort"),
                    service("lb", type="LoadBalancer", externalTrafficPolicy="Local", app="web"),
                    settings=RANGE)
    plan = plan_of(text)
    web, lb = plan.service("default/web"), plan.service("default/lb")
    ports = [web.ports[0].node_port, lb.ports[0].node_port, lb.health_check_node_port]
    assert all(20000 <= p <= 20009 for p in ports) and len(set(ports)) == 3
    assert f"--dport {web.ports[0].node_port} -j" in node_ruleset(plan, "node1").sync_text()


def test_the_default_range_is_kube_apiservers():
    plan = plan_of(lab_text(deployment(), service(type="NodePort")))
    assert 30000 <= plan.service("default/web").ports[0].node_port <= 32767


def test_a_node_port_outside_the_labs_range_is_refused_where_it_is():
    text = lab_text(deployment(), service(ports="[{port: 80, nodePort: 30080}]", type="NodePort"),
                    settings=RANGE)
    (line,) = [x for x in errors_of(text) if "nodePort" in x]
    assert line.startswith("lab.yaml:") and "30080, outside 20000..20009" in line
    ok = lab_text(deployment(), service(ports="[{port: 80, nodePort: 20005}]", type="NodePort"),
                  settings=RANGE)
    assert plan_of(ok).service("default/web").ports[0].node_port == 20005


def test_health_check_node_ports_follow_the_range_too():
    text = lab_text(deployment(), service(type="LoadBalancer", externalTrafficPolicy="Local",
                                          healthCheckNodePort="30000"), settings=RANGE)
    assert any("healthCheckNodePort is 30000, outside 20000..20009" in x
               for x in errors_of(text))


@pytest.mark.parametrize("value, first, last", [
    ('"30000-32767"', 30000, 32767), ('"8000+10"', 8000, 8010), ("31000", 31000, 31000),
    ('" 1-65535 "', 1, 65535)])
def test_range_forms_as_kube_apiserver_reads_them(value, first, last):
    spec = parse_lab_text(lab_text(settings=f"network: {{serviceNodePortRange: {value}}}\n"),
                          "lab.yaml", Path("."))
    assert spec.network.node_port_range == (first, last)


@pytest.mark.parametrize("value", ['"32767-30000"', '"0-100"', '"30000-70000"', '"a-b"',
                                   '"30000:32767"', "true", "[1, 2]", '"60000+6000"'])
def test_bad_ranges_are_one_clear_line(value):
    (line,) = errors_of(lab_text(settings=f"network: {{serviceNodePortRange: {value}}}\n"))
    assert line.startswith("lab.yaml:4: network.serviceNodePortRange"), line


def test_too_many_node_ports_for_the_range_is_said_before_planning():
    many = "".join(service(f"s{i}", type="NodePort", app="web") for i in range(11))
    lines = errors_of(lab_text(deployment(), many, settings=RANGE))
    assert any("no TCP node port is left in 20000..20009" in x for x in lines)


# --- legacy IP forms ---------------------------------------------------------------------------

LEGACY = service("legacy", "[{name: p80, port: 80}]", app="web", type="LoadBalancer",
                 clusterIP="172.19.0.041", externalIPs="[192.168.099.022]",
                 loadBalancerIP="192.168.255.0200",
                 loadBalancerSourceRanges='["203.0.113.000/025", " 198.051.100.0/24 "]')


def test_legacy_ip_forms_are_taken_and_rendered_canonically_as_kube_proxy_does():
    plan = plan_of(lab_text(deployment(), LEGACY))
    svc = plan.service("default/legacy")
    assert svc.cluster_ip == "172.19.0.41"
    assert svc.external_ips == ("192.168.99.22",)
    assert svc.load_balancer_ips == ("192.168.255.200",)
    assert svc.load_balancer_source_ranges == ("203.0.113.0/25", "198.51.100.0/24")
    spn = "default/legacy:p80"
    fw = chains.fw_chain(spn, "tcp")
    text = rules(plan)
    for line in (
        f'-A KUBE-SERVICES -m comment --comment "{spn} cluster IP" -m tcp -p tcp '
        f"-d 172.19.0.41 --dport 80 -j {chains.svc_chain(spn, 'tcp')}",
        f'-A KUBE-SERVICES -m comment --comment "{spn} external IP" -m tcp -p tcp '
        f"-d 192.168.99.22 --dport 80 -j {chains.ext_chain(spn, 'tcp')}",
        f'-A KUBE-SERVICES -m comment --comment "{spn} loadbalancer IP" -m tcp -p tcp '
        f"-d 192.168.255.200 --dport 80 -j {fw}",
        f'-A {fw} -m comment --comment "{spn} loadbalancer IP" -s 203.0.113.0/25 '
        f"-j {chains.ext_chain(spn, 'tcp')}",
    ):
        assert line in text, line
    assert not any("041" in x or "099" in x or "000/025" in x for x in text)


@pytest.mark.parametrize("field, value", [
    ("clusterIP", "172.19.0.256"), ("clusterIP", "172.19.0"), ("clusterIP", "0x7f.0.0.1"),
    ("externalIPs", "[192.168.1.0001x]"), ("loadBalancerSourceRanges", '["10.0.0.0/33"]'),
    ("loadBalancerIP", "1.2.3.4.5"), ("externalIPs", "[127.000.0.1]")])
def test_what_the_api_server_refuses_is_still_refused(field, value):
    text = lab_text(deployment(), service(app="web", type="LoadBalancer", **{field: value}))
    assert any(field in x for x in errors_of(text)), errors_of(text)


# --- status.loadBalancer.ingress ---------------------------------------------------------------

def with_status(manifest: str, ingress: str) -> str:
    return manifest + f"    status: {{loadBalancer: {{ingress: {ingress}}}}}\n"


INGRESS = ("[{ip: 203.0.113.10}, {ip: 203.0.113.011, ipMode: VIP}, {hostname: lb.example.com},"
           " {ip: 203.0.113.12, ipMode: Proxy}]")


def test_ingress_ips_win_over_the_pool_one_rule_set_each_proxy_mode_and_hostnames_left_out():
    lb = with_status(service("lb", "[{name: p80, port: 80}]", app="web", type="LoadBalancer",
                             loadBalancerIP="192.168.255.200"), INGRESS)
    plan = plan_of(lab_text(deployment(), lb))
    svc = plan.service("default/lb")
    assert svc.load_balancer_ips == ("203.0.113.10", "203.0.113.11")
    assert svc.load_balancer_proxy_ips == ("203.0.113.12",)
    spn = "default/lb:p80"
    text = rules(plan)
    captures = [x for x in text if f'"{spn} loadbalancer IP"' in x]
    assert captures == [
        f'-A KUBE-SERVICES -m comment --comment "{spn} loadbalancer IP" -m tcp -p tcp '
        f"-d {ip} --dport 80 -j {chains.ext_chain(spn, 'tcp')}"
        for ip in ("203.0.113.10", "203.0.113.11")]
    assert not any("203.0.113.12" in x or "192.168.255.200" in x for x in text)


def test_without_ingress_the_pool_or_load_balancer_ip_is_the_status():
    lb = service("lb", app="web", type="LoadBalancer", loadBalancerIP="192.168.255.200")
    assert plan_of(lab_text(deployment(), lb)).service("default/lb").load_balancer_ips == (
        "192.168.255.200",)


@pytest.mark.parametrize("manifest, ingress, expected", [
    (service(app="web"), "[{ip: 203.0.113.10}]", "may only be used with type LoadBalancer"),
    (service(app="web", type="LoadBalancer"), "[{hostname: a.example, ipMode: VIP}]",
     "ipMode may not be set without an ip"),
    (service(app="web", type="LoadBalancer"), "[{ip: 203.0.113.10, ipMode: Direct}]",
     "ipMode 'Direct' is not VIP or Proxy"),
    (service(app="web", type="LoadBalancer"), "[{ip: 127.0.0.1}]", "may not be in"),
    (service(app="web", type="LoadBalancer"), "[{ip: 203.0.113.10, color: red}]", "color"),
    (service(app="web", type="LoadBalancer"), "[{ip: 192.168.255.11}]",
     "is the underlay address of node node1"),
])
def test_ingress_is_validated_as_the_api_server_does(manifest, ingress, expected):
    text = lab_text(deployment(), with_status(manifest, ingress))
    try:
        lines = errors_of(text)
    except pytest.fail.Exception:  # an address clash is found by the planner
        with pytest.raises(SpecError) as info:
            plan_of(text)
        lines = [info.value.line()]
    assert any(expected in x for x in lines), lines
