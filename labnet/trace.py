"""`labnet trace`: one real request from a pod, explained hop by hop with what the kernel and
the servers report — DNS answer and the DNS pod that gave it, the pod's route, the node's
chain path from nat counters, the DNAT from conntrack, the VXLAN hop, and who answered."""

from __future__ import annotations

import ipaddress
import random
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from labnet.dns.client import resolve
from labnet.kernel import conntrack, nsexec
from labnet.kernel.netlink import NetnsLink
from labnet.kubeproxy.backend import ProxyBackend
from labnet.kubeproxy.modes import backend_for
from labnet.names import VXLAN_DEVICE
from labnet.plan import Plan, PlanPod


@dataclass
class Step:
    what: str
    detail: str
    evidence: str = ""


@dataclass
class Trace:
    steps: list[Step] = field(default_factory=list)
    ok: bool = False
    verdict: str = ""

    def add(self, what: str, detail: str, evidence: str = "") -> None:
        self.steps.append(Step(what, detail, evidence))

    def as_dict(self) -> dict:
        return {"ok": self.ok, "verdict": self.verdict,
                "steps": [s.__dict__ for s in self.steps]}

    def text(self) -> str:
        lines = []
        for i, step in enumerate(self.steps, 1):
            lines.append(f"{i:>2}. {step.what}: {step.detail}")
            if step.evidence:
                lines += [f"      {line}" for line in step.evidence.splitlines()]
        lines.append(f"=> {self.verdict}")
        return "\n".join(lines) + "\n"


def parse_target(target: str) -> tuple[str, int, str]:
    if "://" not in target:
        target = "http://" + target
    parts = urlsplit(target)
    return parts.hostname or "", parts.port or 80, parts.path or "/"


def owner_of_ip(plan: Plan, ip: str) -> str:
    for pod in plan.pods:
        if pod.ip == ip:
            return f"pod {pod.key} on {pod.node}"
    for node in plan.nodes:
        if ip in (node.underlay_ip, node.gateway, node.vtep_ip):
            return f"node {node.name}"
    return ""


def trace(plan: Plan, pod: PlanPod, target: str, icmp: bool = False,
          backend: ProxyBackend | None = None) -> Trace:
    """Follow one connection (or ping) from `pod` to `target`, with the kernel's evidence at
    each step: DNS answer, route, the proxy rules whose counters moved, conntrack's DNAT."""
    backend = backend or backend_for()
    result = Trace()
    host, port, path = parse_target(target)
    node = plan.node(pod.node)
    zone = str(plan.network.cluster_domain)
    dns_ip = str(plan.network.cluster_dns)
    # 1. DNS
    try:
        ip = str(ipaddress.IPv4Address(host))
        result.add("address", f"{host} is an address: no DNS")
    except ValueError:
        lookup = resolve(pod.netns, dns_ip, host, "A", pod.namespace, zone)
        tries = "\n".join(f"{name} -> {rcode}" for name, rcode in lookup.tries)
        answers = [str(rr.rdata) for rr in (lookup.reply.rr if lookup.reply else [])
                   if rr.rtype == 1]
        if not answers:
            result.verdict = f"{host} does not resolve (tried the search list of {pod.key})"
            result.add("DNS", f"no address for {host}", tries)
            return result
        ip = answers[-1]
        dns_pod = dns_endpoint(plan, node.netns, pod.ip, dns_ip)
        result.add("DNS", f"{host} -> {ip}, answered by {dns_ip} (kube-dns ClusterIP)"
                   + (f", DNATed to the DNS pod {dns_pod}" if dns_pod else ""), tries)
    service = next((s for s in plan.services if s.cluster_ip == ip), None)
    # 2. the pod's route, and who owns the address
    with NetnsLink(pod.netns) as link:
        gateway = link.route_gateway(ip) or "(on link)"
    owner = owner_of_ip(plan, ip)
    result.add("route in the pod", f"{ip} via {gateway} dev eth0 (the node's cni0)",
               f"owner of {ip}: " + (owner or "no interface in the lab: a virtual IP, only "
                                              "iptables rules know it"))
    before = backend.counters(node.netns)
    stats_before = vxlan_tx(node.netns)
    if icmp:
        ping = nsexec.run(pod.netns, ["ping", "-c", "1", "-W", "2", ip])
        after = backend.counters(node.netns)
        moved = changed_rules(before, after, ip)
        answered = ping.returncode == 0
        result.add("ping", f"{'reply' if answered else 'no reply'} from {ip}",
                   ping.stdout.strip().splitlines()[-1] if ping.stdout.strip() else "")
        result.add("node " + node.name + " nat rules matched",
                   ", ".join(f"{c}" for c, _ in moved) or
                   f"none for {ip}: every KUBE-SERVICES rule needs -p tcp/udp and --dport")
        result.ok = answered
        if service is not None and not answered:
            result.verdict = (f"ping {ip} gets no answer: kube-proxy's rules for "
                              f"{service.key} match only {protocols(service)} to its ports, so "
                              f"the ICMP echo is never DNATed, and no interface owns {ip}: "
                              f"{node.name} routes it to its default gateway "
                              f"({plan.external_ip}), which drops it.")
        else:
            result.verdict = f"ping {ip}: {'answered' if answered else 'no answer'}"
        return result
    # a source port of our own, to find this very connection in conntrack (earlier ones to
    # the same address may still be there, in TIME_WAIT)
    local_port = random.randint(20000, 59999)
    curl = nsexec.run(pod.netns, ["curl", "-s", "-m", "5", "--local-port", str(local_port),
                                f"http://{ip}:{port}{path}"])
    after = backend.counters(node.netns)
    moved = changed_rules(before, after, ip, port)
    if moved:
        result.add(f"{node.name} nat chains (packet counters that moved)",
                   " -> ".join(["PREROUTING", *[chain for chain, _ in moved]]),
                   "\n".join(f"{chain}: {rule}" for chain, rule in moved))
    dnat = conntrack_reply(node.netns, pod.ip, local_port, ip, port)
    if dnat:
        result.add("conntrack on " + node.name, f"{pod.ip} -> {ip}:{port} DNATed to "
                   f"{dnat[0]}:{dnat[1]}", f"the reply comes from {dnat[0]}:{dnat[1]}")
    target_ip = dnat[0] if dnat else ip
    target_pod = next((p for p in plan.pods if p.ip == target_ip), None)
    if target_pod is not None and target_pod.node != pod.node:
        remote = plan.node(target_pod.node)
        sent = vxlan_tx(node.netns) - stats_before
        result.add("VXLAN", f"{node.name} {VXLAN_DEVICE} -> {remote.name}: outer "
                   f"{node.underlay_ip} -> {remote.underlay_ip} UDP "
                   f"{plan.network.vxlan_port}, VNI {plan.network.vxlan_vni}",
                   f"route {remote.pod_cidr} via {remote.vtep_ip} dev {VXLAN_DEVICE}; "
                   f"FDB {remote.vtep_mac} dst {remote.underlay_ip}; {sent} packets sent on "
                   f"{VXLAN_DEVICE} meanwhile")
        result.add("arrival", f"{remote.name} decapsulates on {VXLAN_DEVICE}, routes to cni0 "
                   f"({remote.gateway}), then to {target_pod.key}'s eth0")
    if curl.returncode != 0:
        result.verdict = f"the request failed (curl exit {curl.returncode})"
        return result
    seen = dict(line.split(": ", 1) for line in curl.stdout.splitlines() if ": " in line)
    client = seen.get("client", "").split(":")[0]
    nat = "not masqueraded" if client == pod.ip else f"masqueraded to {client}"
    result.add("answer", f"{seen.get('namespace')}/{seen.get('pod')} on {seen.get('node')} "
               f"({seen.get('ip')}) answered; it saw the client as {seen.get('client')} "
               f"({nat})")
    result.ok = True
    result.verdict = (f"{pod.key} -> {host}:{port} reached {seen.get('pod')} "
                      + (f"through {service.key}'s ClusterIP" if service else "directly"))
    return result


def protocols(service) -> str:
    return "/".join(sorted({p.protocol for p in service.ports}))


def changed_rules(before: dict, after: dict, ip: str, port: int | None = None
                  ) -> list[tuple[str, str]]:
    """The nat rules on the path to `ip` whose packet counters moved, in path order."""
    moved = {key for key, count in after.items() if count > before.get(key, 0)}
    path: list[tuple[str, str]] = []
    entry = next(((c, r) for c, r in moved if c == "KUBE-SERVICES" and f"-d {ip}/32" in r
                  and (port is None or f"--dport {port} " in r)), None)
    if entry is None:
        return path
    path.append(entry)
    chain = entry[1].rsplit("-j ", 1)[-1]
    for _ in range(4):  # KUBE-SVC -> KUBE-SEP (or EXT/FW/SVL) -> DNAT
        step = next(((c, r) for c, r in sorted(moved) if c == chain
                     and "KUBE-MARK-MASQ" not in r), None)
        if step is None:
            break
        path.append(step)
        target = step[1].rsplit("-j ", 1)[-1].split()[0]
        if not target.startswith("KUBE-"):
            break
        chain = target
    return path


def conntrack_reply(netns: str, src: str, sport: int, dst: str, port: int
                    ) -> tuple[str, int] | None:
    """Where the node's conntrack sent this very connection (the DNAT), by its reply tuple."""
    with conntrack.table(netns) as (_ct, entries):
        for entry in entries:
            o, r = entry.tuple_orig, entry.tuple_reply
            if (o.saddr == src and o.sport == sport and o.daddr == dst
                    and o.dport == port and o.proto == socket.IPPROTO_TCP):
                return r.saddr, r.sport
    return None


def dns_endpoint(plan: Plan, node_netns: str, pod_ip: str, dns_ip: str) -> str:
    """The DNS pod that the pod's query to the kube-dns ClusterIP was DNATed to."""
    with conntrack.table(node_netns) as (_ct, entries):
        for entry in entries:
            o, r = entry.tuple_orig, entry.tuple_reply
            if o.saddr == pod_ip and o.daddr == dns_ip and o.dport == 53:
                owner = next((p.key for p in plan.pods if p.ip == r.saddr), r.saddr)
                return f"{owner} ({r.saddr})"
    return ""


def vxlan_tx(netns: str) -> int:
    with NetnsLink(netns) as link:
        return link.tx_packets(VXLAN_DEVICE)
