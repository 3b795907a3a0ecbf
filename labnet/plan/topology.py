"""The plan: what the lab must be, computed from the spec alone (pure, deterministic).

`make_plan(spec, previous)` schedules pods onto nodes, allocates every address and names every
namespace and interface. Given the plan that is running now as `previous`, pods that still exist
keep their node and IP, so a change to the lab moves only what changed.

The plan is also the lab's record of ownership: it is written to the state directory before any
kernel object is made, so `down` knows every name even after a crashed `up`.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import asdict

from labnet.addressing import node_address, node_pod_cidr
from labnet.errors import Problems, SpecError
from labnet.model import LabSpec, PodSpec, PodTemplate
from labnet.names import (
    disambiguate,
    host_veth_name,
    mac_address,
    netns_name,
    pod_template_hash,
    replica_pod_name,
    underlay_port_name,
)
from labnet.plan.services import plan_services
from labnet.plan.types import (
    Plan,
    PlanContainer,
    PlanHost,
    PlanNetwork,
    PlanNode,
    PlanPod,
    PlanPort,
)


def expand_deployments(spec: LabSpec) -> list[PodSpec]:
    """Explicit pods, then each Deployment's replicas with ReplicaSet-style names."""
    return [pod for pod, _ in _expand(spec)]


def _expand(spec: LabSpec) -> list[tuple[PodSpec, tuple[str, int] | None]]:
    """Every pod with the (Deployment key, replica index) it belongs to, or None.

    A replica's name is drawn from its identity (deployment, template hash, index, generation);
    when the name is taken already (a pod of the lab, or an earlier replica that drew the same
    suffix: with 27^5 suffixes that happens among a few thousand replicas), it draws again, as
    the ReplicaSet controller does. Deterministic: the same spec gives the same names."""
    pods: list[tuple[PodSpec, tuple[str, int] | None]] = [(p, None) for p in spec.pods]
    taken = {p.key for p in spec.pods}
    for dep in spec.deployments:
        template_hash = pod_template_hash(hashed_template(dep.template))
        labels = {**dep.template.labels, "pod-template-hash": template_hash}
        template = PodTemplate(labels, dep.template.containers, dep.template.node_name,
                               dep.template.node_selector, dep.template.hostname,
                               dep.template.subdomain)
        for index in range(dep.replicas):
            generation = spec.generations.get(f"{dep.namespace}/{dep.name}/{index}", 0)
            attempt = 0
            while True:
                name = replica_pod_name(dep.name, template_hash, index, generation, attempt)
                if f"{dep.namespace}/{name}" not in taken:
                    break
                attempt += 1
            taken.add(f"{dep.namespace}/{name}")
            pods.append((PodSpec(dep.namespace, name, template, f"Deployment/{dep.name}",
                                 dep.where), (f"{dep.namespace}/{dep.name}", index)))
    return pods


def replica_of(spec: LabSpec, namespace: str, pod: str) -> tuple[str, int] | None:
    """("<namespace>/<deployment>", replica index) of a Deployment's pod, or None."""
    for planned, replica in _expand(spec):
        if replica is not None and planned.namespace == namespace and planned.name == pod:
            return replica
    return None


def node_networks(spec: LabSpec) -> list[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]]:
    """(pod CIDR, underlay IP) of each node: node i gets slice i of podCIDR and host .10+i."""
    net = spec.network
    return [(node_pod_cidr(net, index), node_address(net, node, index))
            for index, node in enumerate(spec.nodes, start=1)]


def hashed_template(template) -> dict:
    """A Deployment's template as its pod-template-hash sees it: what the user wrote, not what
    labnet derives from it (a command's effective securityContext), so names stay stable."""
    data = asdict(template)
    for container in data["containers"]:
        container.pop("security", None)
    return data


def make_plan(spec: LabSpec, previous: Plan | None = None) -> Plan:
    problems = Problems()
    net = spec.network
    external_ip = net.underlay_cidr.broadcast_address - 1
    host_of = {node: h.name for h in spec.hosts for node in h.nodes}
    nodes = []
    used_underlay: dict[ipaddress.IPv4Address, str] = {external_ip: "the external host"}
    for index, (node, (cidr, address)) in enumerate(zip(spec.nodes, node_networks(spec),
                                                        strict=True), start=1):
        if address in used_underlay:
            problems.add(node.where, f"node {node.name}: underlay address {address} is already "
                         f"used by {used_underlay[address]}", "pick another address")
        used_underlay[address] = f"node {node.name}"
        nodes.append(PlanNode(
            name=node.name, index=index, netns=netns_name(spec.name, node.name),
            underlay_ip=str(address), underlay_port=underlay_port_name(node.name),
            pod_cidr=str(cidr), gateway=str(cidr.network_address + 1),
            vtep_ip=str(cidr.network_address), vtep_mac=mac_address(f"{spec.name}/{node.name}"),
            labels=dict(node.labels), host=host_of.get(node.name, ""),
        ))
    problems.raise_if_any()
    cursor: dict[str, str] = dict(previous.ip_cursor) if previous else {}
    placed = schedule(spec, expand_deployments(spec), previous, cursor)
    pods = name_pods(spec, placed, nodes)
    hosts = {n.name: n.underlay_ip for n in nodes} | {"external": str(external_ip)}
    services = plan_services(spec, pods, hosts, list(previous.services) if previous else [])
    network = PlanNetwork(
        underlay_cidr=str(net.underlay_cidr), pod_cidr=str(net.pod_cidr),
        node_cidr_mask=net.node_cidr_mask, service_cidr=str(net.service_cidr),
        cluster_dns=str(net.cluster_dns), cluster_domain=net.cluster_domain,
        vxlan_vni=net.vxlan_vni, vxlan_port=net.vxlan_port, mtu=net.mtu,
        dns_ttl=net.dns_ttl, dns_upstream=list(net.dns_upstream),
        dns_enabled=net.dns_enabled, dns_pods=net.dns_pods, proxy_mode=net.proxy_mode,
    )
    return Plan(
        lab=spec.name, network=network, underlay_netns=netns_name(spec.name, "underlay"),
        external_netns=netns_name(spec.name, "external"), external_ip=str(external_ip),
        nodes=tuple(nodes), pods=tuple(pods), namespaces=spec.namespaces,
        services=tuple(services), ip_cursor=cursor,
        hosts={h.name: PlanHost(h.interface, h.address) for h in spec.hosts},
    )


def eligible(template: PodTemplate, node_labels: dict[str, str], node_name: str) -> bool:
    return template.runs_on(node_name, node_labels)


def schedule(spec: LabSpec, pods: list[PodSpec], previous: Plan | None,
             cursor: dict[str, str] | None = None
             ) -> list[tuple[PodSpec, str, ipaddress.IPv4Address]]:
    """Place each pod on a node and give it an IP.

    Pods of the previous plan keep node and IP while they still fit; pinned pods go to their
    node; the rest go to the eligible node with the fewest pods (ties: the first node).
    """
    cidrs = {n.name: cidr for n, (cidr, _) in zip(spec.nodes, node_networks(spec), strict=True)}
    labels = {n.name: n.labels for n in spec.nodes}
    before = {p.key: p for p in previous.pods} if previous else {}
    # each node's pool: .2 up to the address below broadcast, as ints (never listed: a /16
    # per node would be 65,534 addresses per node)
    pools = {name: (int(c.network_address) + 2, int(c.broadcast_address) - 1)
             for name, c in cidrs.items()}
    taken: dict[str, set[int]] = {name: set() for name in cidrs}
    load: Counter = Counter()
    node_of: dict[str, str] = {}
    ip_of: dict[str, ipaddress.IPv4Address] = {}
    for pod in pods:  # first pass: keep what the running lab already has
        old = before.get(pod.key)
        if old and old.node in cidrs and eligible(pod.template, labels[old.node], old.node):
            ip = int(ipaddress.IPv4Address(old.ip))
            first, last = pools[old.node]
            if first <= ip <= last and ip not in taken[old.node]:
                node_of[pod.key], ip_of[pod.key] = old.node, ipaddress.IPv4Address(ip)
                taken[old.node].add(ip)
                load[old.node] += 1
    order = sorted(range(len(pods)), key=lambda i: (not pods[i].template.node_name, i))
    problems = Problems()
    for i in order:
        pod = pods[i]
        if pod.key in node_of:
            continue
        candidates = [n.name for n in spec.nodes if eligible(pod.template, labels[n.name], n.name)]
        if not candidates:
            problems.add(pod.where, f"pod {pod.key}: no node can run it")
            continue
        node = min(candidates, key=lambda n: load[n])
        last = (int(ipaddress.IPv4Address(cursor[node])) if cursor and node in cursor
                else None)
        ip = next_free(*pools[node], last, taken[node])
        if ip is not None and cursor is not None:
            cursor[node] = str(ipaddress.IPv4Address(ip))
        if ip is None:
            first, end = pools[node]
            problems.add(pod.where, f"pod {pod.key}: node {node} is full: its pod CIDR "
                         f"{cidrs[node]} holds {max(0, end - first + 1)} pods",
                         "use fewer pods, more nodes, or a shorter nodeCIDRMaskSize")
            continue
        node_of[pod.key], ip_of[pod.key] = node, ipaddress.IPv4Address(ip)
        taken[node].add(ip)
        load[node] += 1
    problems.raise_if_any()
    return [(pod, node_of[pod.key], ip_of[pod.key]) for pod in pods]


def next_free(first: int, last: int, after: int | None, taken: set[int]) -> int | None:
    """The first address of first..last after `after` (wrapping round) that is not taken, as
    CNI's host-local IPAM hands them out. Probes at most len(taken) + 1 addresses."""
    size = last - first + 1
    if size <= 0:
        return None
    start = 0 if after is None or after >= last else max(0, after - first + 1)
    for step in range(min(size, len(taken) + 1)):
        candidate = first + (start + step) % size
        if candidate not in taken:
            return candidate
    return None


def name_pods(spec: LabSpec, placed: list, nodes: list[PlanNode]) -> list[PlanPod]:
    """Netns and host-side veth names, made unique where readable names would collide."""
    reserved = {netns_name(spec.name, x) for x in ("underlay", "external")}
    reserved |= {n.netns for n in nodes}
    wanted = [netns_name(spec.name, pod.namespace, pod.name) for pod, _, _ in placed]
    counts = Counter(wanted)
    seen_keys: set[str] = set()
    result = []
    veths: dict[str, set[str]] = {n.name: set() for n in nodes}
    for (pod, node, ip), name in zip(placed, wanted, strict=True):
        if pod.key in seen_keys:
            raise SpecError(pod.where, f"pod {pod.key} is declared twice (a Deployment's replica "
                            "name matches another pod)", "rename one of them")
        seen_keys.add(pod.key)
        if counts[name] > 1 or name in reserved:
            name = disambiguate(name, f"pod:{pod.key}")
        salt = 0
        while (veth := host_veth_name(pod.namespace, pod.name, salt)) in veths[node]:
            salt += 1
        veths[node].add(veth)
        containers = tuple(
            PlanContainer(c.name, c.argv, tuple(PlanPort(p.port, p.protocol, p.name)
                                                for p in c.ports), c.server,
                          c.readiness, c.security)
            for c in pod.template.containers
        )
        result.append(PlanPod(
            namespace=pod.namespace, name=pod.name, netns=name, node=node, ip=str(ip),
            host_veth=veth, labels=dict(pod.template.labels), owner=pod.owner,
            containers=containers, hostname=pod.template.hostname,
            subdomain=pod.template.subdomain,
        ))
    return result
