"""Services for real: kube-proxy's rules in every node answer curl, not ping."""

from __future__ import annotations

import sys
import time

import pytest

from labnet.kernel import nsfs
from labnet.kubeproxy import chains
from labnet.model import PROXY_MODES
from tests.integration.conftest import (
    answered_by,
    kernel_rules,
    labnet_cli,
    parse_whoami,
    wait_for,
)
from tests.manifests import bare_pod, deployment, lab_text, service

SERVICES_LAB = lab_text(
    deployment(replicas=2, containers="[{name: web, ports: [{name: http, containerPort: 8080}, "
                                      "{name: echo, containerPort: 9000, protocol: UDP}]}]"),
    deployment("solo", replicas=1, node="node2",
               containers="[{name: solo, ports: [{containerPort: 80}]}]"),
    bare_pod("client", node="node1"),
    bare_pod("client2", node="node2"),
    service(ports=["{name: http, port: 80, targetPort: http}",
                   "{name: echo, port: 53, targetPort: echo, protocol: UDP}"]),
    service("sticky", "[{port: 80, targetPort: 8080}]", app="web", sessionAffinity="ClientIP"),
    service("empty", app="nothing"),
    service("web-np", "[{port: 80, targetPort: 8080, nodePort: 30080}]", app="web",
            type="NodePort"),
    service("solo-local", "[{port: 80, nodePort: 30090}]", app="solo", type="NodePort",
            externalTrafficPolicy="Local"),
    service("web-ext", "[{port: 8000, targetPort: 8080}]", app="web",
            externalIPs="[192.168.255.150]"),
    service("web-lb", "[{port: 80, targetPort: 8080}]", app="web", type="LoadBalancer"),
)


def in_mode(text: str, mode: str) -> str:
    """The lab file with kube-proxy in `mode` (iptables: the file as it is, the default)."""
    if mode == "iptables":
        return text
    return text.replace("\nnodes: 2\n", f"\nnodes: 2\nproxyMode: {mode}\n", 1)


@pytest.fixture(scope="module", params=PROXY_MODES)
def svc_lab(request, labnet_module_lab):
    """The Service behaviour tests run in every kube-proxy mode, one lab each."""
    lab = labnet_module_lab(text=in_mode(SERVICES_LAB, request.param))
    assert lab.running_plan().network.proxy_mode == request.param
    return lab


def curl(lab, target: str, url: str, timeout: int = 3):
    return lab.exec(target, ["curl", "-s", "-m", str(timeout), url])


def who(lab, target: str, url: str) -> dict[str, str]:
    result = curl(lab, target, url)
    assert result.returncode == 0, (target, url, result.returncode, result.stderr)
    return parse_whoami(result.stdout)


def web_pods(lab) -> set[str]:
    return {p.name for p in lab.running_plan().pods if p.labels.get("app") == "web"}


@pytest.mark.parametrize("client", ["client", "client2"])
def test_cluster_ip_balances_over_both_pods_from_either_node(svc_lab, client):
    seen = answered_by(svc_lab, client, f"http://{svc_lab.service_ip('web')}/")
    assert set(seen) == web_pods(svc_lab)
    assert sum(seen.values()) == 40


def test_ping_cluster_ip_gets_nothing_but_pod_ip_answers(svc_lab):
    ping = svc_lab.exec("client", ["ping", "-c", "2", "-W", "1", svc_lab.service_ip("web")])
    assert ping.returncode != 0 and "100% packet loss" in ping.stdout
    pod_ip = next(p.ip for p in svc_lab.running_plan().pods if p.labels.get("app") == "web")
    ping = svc_lab.exec("client", ["ping", "-c", "1", "-W", "2", pod_ip])
    assert ping.returncode == 0


def test_node_itself_reaches_a_cluster_ip_through_output(svc_lab):
    assert who(svc_lab, "node/node1", f"http://{svc_lab.service_ip('web')}/")["pod"] in web_pods(
        svc_lab)


def test_pod_calling_its_own_service_hairpins(svc_lab):
    plan = svc_lab.running_plan()
    me = next(p for p in plan.pods if p.labels.get("app") == "web")
    seen = answered_by(svc_lab, me.name, f"http://{svc_lab.service_ip('web')}/")
    assert me.name in seen  # DNATed back to itself, out of the bridge port it came in on
    # ... and masqueraded on the way (KUBE-SEP's hairpin rule), or the reply would not return
    answers = [who(svc_lab, me.name, f"http://{svc_lab.service_ip('sticky')}/") for _ in range(3)]
    for answer in answers:
        if answer["pod"] == me.name:
            assert answer["client"].split(":")[0] == plan.node(me.node).gateway


def test_node_port_from_the_external_host_on_every_node(svc_lab):
    plan = svc_lab.running_plan()
    for node in plan.nodes:
        answer = who(svc_lab, "external", f"http://{node.underlay_ip}:30080/")
        assert answer["pod"] in web_pods(svc_lab)


def test_external_traffic_policy_local(svc_lab):
    plan = svc_lab.running_plan()
    solo = next(p for p in plan.pods if p.labels.get("app") == "solo")
    assert solo.node == "node2"
    answer = who(svc_lab, "external", f"http://{plan.node('node2').underlay_ip}:30090/")
    assert answer["pod"] == solo.name
    assert answer["client"].split(":")[0] == plan.external_ip  # the client's real address
    # node1 has no local endpoint: it drops (no answer), it does not forward
    result = curl(svc_lab, "external", f"http://{plan.node('node1').underlay_ip}:30090/", 2)
    assert result.returncode == 28  # curl: timed out


def test_service_without_endpoints_refuses_at_once(svc_lab):
    start = time.monotonic()
    result = curl(svc_lab, "client", f"http://{svc_lab.service_ip('empty')}/", 5)
    assert result.returncode == 7  # connection refused: the filter table's REJECT
    assert time.monotonic() - start < 2


def test_client_ip_affinity_sticks_to_one_pod(svc_lab):
    for client in ("client", "client2"):
        seen = answered_by(svc_lab, client, f"http://{svc_lab.service_ip('sticky')}/", 20)
        assert len(seen) == 1 and sum(seen.values()) == 20


def test_udp_service_answers_through_the_echo(svc_lab):
    script = ("import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              "s.settimeout(3); s.sendto(b'labnet udp', (sys.argv[1], 53)); "
              "print(s.recvfrom(100)[0].decode())")
    result = svc_lab.exec("client", [sys.executable, "-c", script, svc_lab.service_ip("web")])
    assert result.stdout.strip() == "labnet udp", result.stderr


def test_load_balancer_ip_from_the_external_host(svc_lab):
    svc = svc_lab.running_plan().service("default/web-lb")
    (lb_ip,) = svc.load_balancer_ips
    assert who(svc_lab, "external", f"http://{lb_ip}/")["pod"] in web_pods(svc_lab)
    ping = svc_lab.exec("external", ["ping", "-c", "1", "-W", "1", lb_ip])
    assert ping.returncode != 0


def test_external_ip_from_the_external_host(svc_lab):
    assert who(svc_lab, "external", "http://192.168.255.150:8000/")["pod"] in web_pods(svc_lab)
    # the ClusterIP of the same service works from pods, on its own port
    assert who(svc_lab, "client", f"http://{svc_lab.service_ip('web-ext')}:8000/")["pod"] in web_pods(
        svc_lab)


def test_rules_read_back_from_the_kernel(svc_lab):
    if svc_lab.running_plan().network.proxy_mode != "iptables":
        pytest.skip("iptables-save text: nftables mode's listing is in test_nftables.py")
    result = labnet_cli("rules", "--lab", svc_lab.name, "node1")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    plan = svc_lab.running_plan()
    web = plan.service("default/web")
    svc_chain = chains.svc_chain("default/web:http", "tcp")
    assert f"-A KUBE-SERVICES -d {web.cluster_ip}/32 -p tcp -m comment --comment " \
           f'"default/web:http cluster IP" -m tcp --dport 80 -j {svc_chain}' in text
    for ep in web.ports[0].endpoints:
        sep = chains.sep_chain("default/web:http", "tcp", ep.ip, ep.port)
        assert f"-A {sep} -p tcp -m comment --comment \"default/web:http\" -m tcp " \
               f"-j DNAT --to-destination {ep.ip}:8080" in text
    assert "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000" in text
    assert "-j MASQUERADE" in text
    # rules never land in the root namespace
    assert nsfs.inode(plan.node("node1").netns) != nsfs.ROOT_INODE


def test_resync_after_a_change(labnet_lab):
    lab = labnet_lab(text=SERVICES_LAB)
    plan = lab.running_plan()
    old = {e.ip for e in plan.service("default/web").ports[0].endpoints}
    old_rules = labnet_cli("rules", "--lab", lab.name, "node1").stdout
    # one replica fewer: the removed pod's KUBE-SEP chains leave every node
    report = lab.up(SERVICES_LAB.replace("replicas: 2", "replicas: 1", 1))
    assert report.rules and report.removed_netns
    plan = lab.running_plan()
    (kept,) = plan.service("default/web").ports[0].endpoints
    gone = (old - {kept.ip}).pop()
    for node in ("node1", "node2"):
        text = labnet_cli("rules", "--lab", lab.name, node).stdout
        assert gone not in text and kept.ip in text
    assert gone in old_rules
    seen = answered_by(lab, "client", f"http://{lab.service_ip('web')}/", 10)
    assert set(seen) == {kept.pod.split("/")[1]}
    assert lab.up().rules == {}  # and a second up rewrites nothing
    # what partial syncs left is exactly what a full sync writes (a new agent syncs fully)
    partial = {n: kernel_rules(lab, n) for n in ("node1", "node2")}
    import os
    import signal

    from labnet.agent import control

    old_agent = lab.state.agent_pid()
    os.kill(old_agent, signal.SIGKILL)  # its supervisor starts a new one, which syncs fully
    assert wait_for(lambda: control.agent_alive(lab.state) not in (None, old_agent)
                    and control.status(lab.state) is not None)
    assert lab.up().rules == {}  # the restarted agent's full sync left nothing to do
    assert {n: kernel_rules(lab, n) for n in ("node1", "node2")} == partial


def test_down_leaves_no_rule_anywhere(labnet_lab):
    lab = labnet_lab(text=SERVICES_LAB)
    netns = [n.netns for n in lab.running_plan().nodes]
    labnet_cli("down", lab.name)
    assert not any(nsfs.exists(n) for n in netns)


def test_removed_udp_endpoint_loses_its_conntrack_entries(labnet_lab):
    """A UDP 'connection' pinned to a pod that goes away is cleared, so the next packet of the
    same flow is balanced again instead of vanishing (kube-proxy's conntrack cleanup)."""
    lab = labnet_lab(text=SERVICES_LAB)
    plan = lab.running_plan()
    web = plan.service("default/web")
    victim = [p for p in plan.pods if p.labels.get("app") == "web"][1]  # replica 1 goes
    send = ("import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            "s.bind(('', int(sys.argv[2]))); s.settimeout(2); "
            "s.sendto(b'ping', (sys.argv[1], 53)); print(s.recvfrom(100)[0].decode())")
    port = None
    for candidate in range(40000, 40040):  # find a flow that went to the victim
        assert lab.exec("client2", [sys.executable, "-c", send, web.cluster_ip,
                                    str(candidate)]).stdout.strip() == "ping"
        table = lab.exec("node/node2", ["conntrack", "-L", "-p", "udp", "--sport",
                                        str(candidate)]).stdout
        if f"src={victim.ip}" in table:
            port = candidate
            break
    assert port, "no flow went to the victim pod"
    report = lab.up(SERVICES_LAB.replace("replicas: 2", "replicas: 1", 1))
    assert report.conntrack_cleared >= 1
    table = lab.exec("node/node2", ["conntrack", "-L", "-p", "udp", "--sport", str(port)]).stdout
    assert victim.ip not in table
    again = lab.exec("client2", [sys.executable, "-c", send, web.cluster_ip, str(port)])
    assert again.stdout.strip() == "ping", again.stderr
