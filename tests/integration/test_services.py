"""Services for real: kube-proxy's rules in every node answer curl, not ping."""

from __future__ import annotations

import sys
import time

import pytest

from labnet.kernel import nsfs
from labnet.kubeproxy import chains
from tests.integration.conftest import (
    answered_by,
    kernel_rules,
    lab_text,
    labnet_cli,
    parse_whoami,
    running_lab,
    unique_name,
)

SERVICES_LAB = """
name: x
nodes: 2
manifests:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      replicas: 2
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          containers:
            - name: web
              ports:
                - {name: http, containerPort: 8080}
                - {name: echo, containerPort: 9000, protocol: UDP}
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: solo}
    spec:
      replicas: 1
      selector: {matchLabels: {app: solo}}
      template:
        metadata: {labels: {app: solo}}
        spec:
          nodeName: node2
          containers: [{name: solo, ports: [{containerPort: 80}]}]
  - {apiVersion: v1, kind: Pod, metadata: {name: client}, spec: {nodeName: node1, containers: [{name: c}]}}
  - {apiVersion: v1, kind: Pod, metadata: {name: client2}, spec: {nodeName: node2, containers: [{name: c}]}}
  - apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec:
      selector: {app: web}
      ports:
        - {name: http, port: 80, targetPort: http}
        - {name: echo, port: 53, targetPort: echo, protocol: UDP}
  - apiVersion: v1
    kind: Service
    metadata: {name: sticky}
    spec:
      selector: {app: web}
      sessionAffinity: ClientIP
      ports: [{port: 80, targetPort: 8080}]
  - apiVersion: v1
    kind: Service
    metadata: {name: empty}
    spec:
      selector: {app: nothing}
      ports: [{port: 80}]
  - apiVersion: v1
    kind: Service
    metadata: {name: web-np}
    spec:
      type: NodePort
      selector: {app: web}
      ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
  - apiVersion: v1
    kind: Service
    metadata: {name: solo-local}
    spec:
      type: NodePort
      externalTrafficPolicy: Local
      selector: {app: solo}
      ports: [{port: 80, nodePort: 30090}]
  - apiVersion: v1
    kind: Service
    metadata: {name: web-ext}
    spec:
      selector: {app: web}
      externalIPs: [192.168.255.150]
      ports: [{port: 8000, targetPort: 8080}]
  - apiVersion: v1
    kind: Service
    metadata: {name: web-lb}
    spec:
      type: LoadBalancer
      selector: {app: web}
      ports: [{port: 80, targetPort: 8080}]
"""


@pytest.fixture(scope="module")
def svc_lab(tmp_path_factory):
    with running_lab(SERVICES_LAB, tmp_path_factory.mktemp("svc")) as lab:
        yield lab


def vip(lab, name: str) -> str:
    return lab.running_plan().service(f"default/{name}").cluster_ip


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
    seen = answered_by(svc_lab, client, f"http://{vip(svc_lab, 'web')}/")
    assert set(seen) == web_pods(svc_lab)
    assert sum(seen.values()) == 40


def test_ping_cluster_ip_gets_nothing_but_pod_ip_answers(svc_lab):
    ping = svc_lab.exec("client", ["ping", "-c", "2", "-W", "1", vip(svc_lab, "web")])
    assert ping.returncode != 0 and "100% packet loss" in ping.stdout
    pod_ip = next(p.ip for p in svc_lab.running_plan().pods if p.labels.get("app") == "web")
    ping = svc_lab.exec("client", ["ping", "-c", "1", "-W", "2", pod_ip])
    assert ping.returncode == 0


def test_node_itself_reaches_a_cluster_ip_through_output(svc_lab):
    assert who(svc_lab, "node/node1", f"http://{vip(svc_lab, 'web')}/")["pod"] in web_pods(
        svc_lab)


def test_pod_calling_its_own_service_hairpins(svc_lab):
    plan = svc_lab.running_plan()
    me = next(p for p in plan.pods if p.labels.get("app") == "web")
    seen = answered_by(svc_lab, me.name, f"http://{vip(svc_lab, 'web')}/")
    assert me.name in seen  # DNATed back to itself, out of the bridge port it came in on
    # ... and masqueraded on the way (KUBE-SEP's hairpin rule), or the reply would not return
    answers = [who(svc_lab, me.name, f"http://{vip(svc_lab, 'sticky')}/") for _ in range(3)]
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
    result = curl(svc_lab, "client", f"http://{vip(svc_lab, 'empty')}/", 5)
    assert result.returncode == 7  # connection refused: the filter table's REJECT
    assert time.monotonic() - start < 2


def test_client_ip_affinity_sticks_to_one_pod(svc_lab):
    for client in ("client", "client2"):
        seen = answered_by(svc_lab, client, f"http://{vip(svc_lab, 'sticky')}/", 20)
        assert len(seen) == 1 and sum(seen.values()) == 20


def test_udp_service_answers_through_the_echo(svc_lab):
    script = ("import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              "s.settimeout(3); s.sendto(b'labnet udp', (sys.argv[1], 53)); "
              "print(s.recvfrom(100)[0].decode())")
    result = svc_lab.exec("client", [sys.executable, "-c", script, vip(svc_lab, "web")])
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
    assert who(svc_lab, "client", f"http://{vip(svc_lab, 'web-ext')}:8000/")["pod"] in web_pods(
        svc_lab)


def test_rules_read_back_from_the_kernel(svc_lab):
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


def test_resync_after_a_change(tmp_path, make_lab):
    lab = make_lab(SERVICES_LAB)
    plan = lab.running_plan()
    old = {e.ip for e in plan.service("default/web").ports[0].endpoints}
    old_rules = labnet_cli("rules", "--lab", lab.name, "node1").stdout
    # one replica fewer: the removed pod's KUBE-SEP chains leave every node
    lab.path.write_text(lab.path.read_text().replace("replicas: 2", "replicas: 1", 1))
    from labnet.lab import Lab

    changed = Lab.load(lab.path)
    report = changed.up()
    assert report.rules and report.removed_netns
    plan = changed.running_plan()
    (kept,) = plan.service("default/web").ports[0].endpoints
    gone = (old - {kept.ip}).pop()
    for node in ("node1", "node2"):
        text = labnet_cli("rules", "--lab", lab.name, node).stdout
        assert gone not in text and kept.ip in text
    assert gone in old_rules
    seen = answered_by(changed, "client", f"http://{vip(changed, 'web')}/", 10)
    assert set(seen) == {kept.pod.split("/")[1]}
    assert changed.up().rules == {}  # and a second up rewrites nothing
    # what partial syncs left is exactly what a full sync writes (a new agent syncs fully)
    partial = {n: kernel_rules(lab, n) for n in ("node1", "node2")}
    import os
    import signal

    from labnet.agent import control
    from tests.integration.conftest import wait_for

    old_agent = changed.state.agent_pid()
    os.kill(old_agent, signal.SIGKILL)  # its supervisor starts a new one, which syncs fully
    assert wait_for(lambda: control.agent_alive(changed.state) not in (None, old_agent)
                    and control.status(changed.state) is not None)
    assert changed.up().rules == {}  # the restarted agent's full sync left nothing to do
    assert {n: kernel_rules(lab, n) for n in ("node1", "node2")} == partial



def test_down_leaves_no_rule_anywhere(tmp_path):
    from labnet.lab import Lab

    name = unique_name()
    path = tmp_path / "lab.yaml"
    path.write_text(lab_text(SERVICES_LAB, name))
    lab = Lab.load(path)
    lab.up()
    netns = [n.netns for n in lab.running_plan().nodes]
    labnet_cli("down", name)
    assert not any(nsfs.exists(n) for n in netns)


def test_removed_udp_endpoint_loses_its_conntrack_entries(make_lab):
    """A UDP 'connection' pinned to a pod that goes away is cleared, so the next packet of the
    same flow is balanced again instead of vanishing (kube-proxy's conntrack cleanup)."""
    from labnet.lab import Lab

    lab = make_lab(SERVICES_LAB)
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
    lab.path.write_text(lab.path.read_text().replace("replicas: 2", "replicas: 1", 1))
    report = Lab.load(lab.path).up()
    assert report.conntrack_cleared >= 1
    table = lab.exec("node/node2", ["conntrack", "-L", "-p", "udp", "--sport", str(port)]).stdout
    assert victim.ip not in table
    again = lab.exec("client2", [sys.executable, "-c", send, web.cluster_ip, str(port)])
    assert again.stdout.strip() == "ping", again.stderr
