"""Service fields as Kubernetes takes them, on a real lab: nodePorts from the lab's own range,
a legacy leading-zero ClusterIP that answers at its canonical address, and several
status.loadBalancer.ingress IPs, each routed from `external` and captured by kube-proxy
(ipMode Proxy ones neither)."""

from __future__ import annotations

from tests.integration.conftest import parse_whoami
from tests.manifests import bare_pod, deployment, lab_text, service

INGRESS = ("[{ip: 203.0.113.10}, {ip: 203.0.113.011, ipMode: VIP}, {hostname: lb.example.com},"
           " {ip: 203.0.113.12, ipMode: Proxy}]")
LAB = lab_text(
    deployment("web", replicas=2),
    bare_pod("client", node="node1"),
    service("lb", type="LoadBalancer", app="web")
    + f"    status: {{loadBalancer: {{ingress: {INGRESS}}}}}\n",
    service("np", type="NodePort", app="web"),
    service("legacy", app="web", clusterIP="172.19.0.041"),
    settings='network: {serviceNodePortRange: "20000-20009"}\n')


def answered_by(t, target: str, url: str) -> str:
    result = t.exec(target, ["curl", "-sS", "-m", "3", url], timeout=10)
    assert result.returncode == 0, f"{url} from {target}: {result.stderr.strip()}"
    return parse_whoami(result.stdout)["pod"]


def test_ranges_legacy_addresses_and_ingress_ips_work_end_to_end(labnet_lab):
    t = labnet_lab(text=LAB)
    plan = t.plan
    web = {p.name for p in plan.pods if p.name.startswith("web-")}
    # every VIP-mode ingress IP, routed from the lab's external host to the nodes
    for ip in ("203.0.113.10", "203.0.113.11"):
        assert answered_by(t, "external", f"http://{ip}/") in web
    # an ipMode Proxy address is the load balancer's own: nothing routes or captures it
    proxied = t.exec("external", ["curl", "-sS", "-m", "2", "http://203.0.113.12/"], timeout=10)
    assert proxied.returncode != 0
    # a nodePort from the lab's range, on every node
    node_port = plan.service("default/np").ports[0].node_port
    assert 20000 <= node_port <= 20009
    for node in plan.nodes:
        assert answered_by(t, "external", f"http://{node.underlay_ip}:{node_port}/") in web
    # the legacy ClusterIP answers at its canonical address
    assert plan.service("default/legacy").cluster_ip == "172.19.0.41"
    assert answered_by(t, "client", "http://172.19.0.41/") in web
    rules = t.lab.installed_rules("node1")
    assert "-d 172.19.0.41/32" in rules and "-d 203.0.113.11/32" in rules
    assert "203.0.113.12" not in rules and "172.19.0.041" not in rules
