"""Services in the plan: ClusterIP, NodePort and LoadBalancer allocation, and endpoints.

Allocation is deterministic: an address or port not given in the manifest is the first free
one probing from a hash of the service's name, so it does not depend on the order of other
services; the running plan's choice is kept while the service exists.
"""

from __future__ import annotations

import hashlib
import ipaddress

from labnet.addressing import load_balancer_pool
from labnet.errors import Problems
from labnet.model import (
    MAX_ENDPOINTS,
    EndpointSliceSpec,
    LabSpec,
    ServiceSpec,
    selects,
)
from labnet.plan.types import PlanEndpoint, PlanService, PlanServicePort


def _probe(key: str, size: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % size


def _allocate(key: str, first: int, last: int, taken: set[int]) -> int | None:
    """The first free value of first..last probing from a hash of `key`: at most
    len(taken) + 1 probes, whatever the size of the range."""
    size = last - first + 1
    if size <= 0:
        return None
    start = _probe(key, size)
    for step in range(min(size, len(taken) + 1)):
        candidate = first + (start + step) % size
        if candidate not in taken:
            return candidate
    return None


def plan_services(spec: LabSpec, pods: list, node_ips: dict[str, str],
                  previous: list[PlanService]) -> list[PlanService]:
    """Every Service with its addresses allocated and its endpoints resolved."""
    problems = Problems()
    net = spec.network
    before = {s.key: s for s in previous}
    cidr = net.service_cidr
    taken_ips = {int(net.cluster_dns)}
    taken_ips |= {int(ipaddress.IPv4Address(s.cluster_ip)) for s in spec.services
                  if s.cluster_ip and not s.headless}
    taken_ports = {(p.node_port, p.protocol) for s in spec.services for p in s.ports if p.node_port}
    taken_ports |= {(s.health_check_node_port, "TCP") for s in spec.services}
    pool_first, pool_last = load_balancer_pool(net.underlay_cidr)

    def in_range(node_port: int) -> bool:  # a kept port stays only while the range holds it
        return net.node_port_range[0] <= node_port <= net.node_port_range[1]

    taken_lb = {int(ipaddress.IPv4Address(ip)) for ip in node_ips.values()}
    taken_lb |= {int(ipaddress.IPv4Address(s.load_balancer_ip)) for s in spec.services
                 if s.load_balancer_ip}
    taken_lb |= {int(ipaddress.IPv4Address(ip)) for s in spec.services
                 for ip, _mode in s.load_balancer_ingress}
    owners = {int(ipaddress.IPv4Address(ip)): ("the external host" if name == "external" else
                                               f"node {name}") for name, ip in node_ips.items()}
    slices: dict[tuple[str, str], list[EndpointSliceSpec]] = {}
    for eps in spec.endpoint_slices:
        slices.setdefault((eps.namespace, eps.service), []).append(eps)
    budget = [MAX_ENDPOINTS]  # endpoints the plan may still hold, over every service port
    result = []
    for svc in spec.services:
        old = before.get(svc.key)
        cluster_ip = svc.cluster_ip
        if svc.type == "ExternalName":
            cluster_ip = ""
        elif not cluster_ip:
            kept = old.cluster_ip if old and old.cluster_ip not in ("", "None") else ""
            if (kept and ipaddress.IPv4Address(kept) in cidr
                    and int(ipaddress.IPv4Address(kept)) not in taken_ips):
                value = int(ipaddress.IPv4Address(kept))
            else:
                value = _allocate(svc.key, int(cidr.network_address) + 1,
                                  int(cidr.broadcast_address) - 1, taken_ips)
            if value is None:
                problems.add(svc.where, f"Service {svc.key}: serviceCIDR {cidr} is full")
                continue
            taken_ips.add(value)
            cluster_ip = str(ipaddress.IPv4Address(value))
        claimed = [("loadBalancerIP", svc.load_balancer_ip)] if svc.load_balancer_ip else []
        claimed += [("status.loadBalancer.ingress ip", ip) for ip, _ in svc.load_balancer_ingress]
        clash = next(((field, ip) for field, ip in claimed
                      if int(ipaddress.IPv4Address(ip)) in owners), None)
        if clash:
            owner = owners[int(ipaddress.IPv4Address(clash[1]))]
            problems.add(svc.where, f"Service {svc.key}: {clash[0]} {clash[1]} is the underlay "
                         f"address of {owner}", "pick another, or leave it out")
            continue
        selected = selected_pods(svc, pods)
        ports = []
        old_ports = {(p.name, p.protocol): p for p in old.ports} if old else {}
        for port in svc.ports:
            node_port = port.node_port
            if not node_port and svc.type in ("NodePort", "LoadBalancer"):
                kept = old_ports.get((port.name, port.protocol))
                if (kept and in_range(kept.node_port)
                        and (kept.node_port, port.protocol) not in taken_ports):
                    node_port = kept.node_port
                else:
                    taken = {n for n, proto in taken_ports if proto == port.protocol}
                    node_port = _allocate(f"{svc.key}:{port.name}/{port.protocol}",
                                          *net.node_port_range, taken) or 0
                taken_ports.add((node_port, port.protocol))
            endpoints = endpoints_of(spec, svc, port, selected,
                                     slices.get((svc.namespace, svc.name), []), budget)
            if endpoints is None:
                problems.add(svc.where, f"Service {svc.key}: the lab's services reach more than "
                             f"{MAX_ENDPOINTS} endpoints (pods x ports)",
                             "labnet's cap: that many would exhaust the machine")
                problems.raise_if_any()
            ports.append(PlanServicePort(port.name, port.protocol, port.port,
                                         str(port.target_port or port.port), node_port,
                                         endpoints))
        health = svc.health_check_node_port
        if not health and svc.type == "LoadBalancer" and svc.external_traffic_local:
            health = (old.health_check_node_port if old and in_range(old.health_check_node_port)
                      else
                      _allocate(f"{svc.key}:healthz", *net.node_port_range,
                                {n for n, proto in taken_ports if proto == "TCP"}) or 0)
            taken_ports.add((health, "TCP"))
        lb_ips: tuple[str, ...] = ()
        proxy_ips: tuple[str, ...] = ()
        if svc.type == "LoadBalancer" and svc.load_balancer_ingress:
            # what a cloud controller (or MetalLB) wrote wins over the pool, as it does for
            # kube-proxy; ipMode Proxy addresses are the load balancer's own business
            lb_ips = tuple(dict.fromkeys(ip for ip, mode in svc.load_balancer_ingress
                                         if mode == "VIP"))
            proxy_ips = tuple(dict.fromkeys(ip for ip, mode in svc.load_balancer_ingress
                                            if mode == "Proxy"))
        elif svc.type == "LoadBalancer":
            if svc.load_balancer_ip:
                lb_ips = (svc.load_balancer_ip,)
            else:
                kept = old.load_balancer_ips if old else ()
                kept_value = int(ipaddress.IPv4Address(kept[0])) if kept else None
                value = (kept_value if kept_value is not None
                         and pool_first <= kept_value <= pool_last
                         and kept_value not in taken_lb else
                         _allocate(svc.key, pool_first, pool_last, taken_lb))
                if value is None:
                    problems.add(svc.where, f"Service {svc.key}: the LoadBalancer pool is full")
                    continue
                taken_lb.add(value)
                lb_ips = (str(ipaddress.IPv4Address(value)),)
        result.append(PlanService(
            namespace=svc.namespace, name=svc.name, type=svc.type, cluster_ip=cluster_ip,
            ports=tuple(ports), external_ips=svc.external_ips, load_balancer_ips=lb_ips,
            load_balancer_proxy_ips=proxy_ips,
            load_balancer_source_ranges=svc.load_balancer_source_ranges,
            session_affinity_timeout=svc.session_affinity_timeout,
            external_traffic_local=svc.external_traffic_local,
            internal_traffic_local=svc.internal_traffic_local, health_check_node_port=health,
            external_name=svc.external_name, selector=svc.selector,
            publish_not_ready=svc.publish_not_ready,
        ))
    problems.raise_if_any()
    return result


def selected_pods(svc: ServiceSpec, pods: list) -> list:
    """The pods a Service's selector picks (none for an empty or absent selector)."""
    if not svc.selector:  # an empty selector selects nothing for a Service
        return []
    return [pod for pod in pods
            if pod.namespace == svc.namespace and selects(svc.selector, pod.labels)]


def endpoints_of(spec: LabSpec, svc: ServiceSpec, port, selected: list,
                 slices: list[EndpointSliceSpec], budget: list[int]
                 ) -> tuple[PlanEndpoint, ...] | None:
    """The endpoints EndpointSlices would list for one service port, sorted as kube-proxy sorts
    them (by the "ip:port" string). `selected`: the pods the Service selects; `slices`: its
    EndpointSlices. None when the plan's budget of endpoints (budget[0]) runs out."""
    found: dict[str, PlanEndpoint] = {}
    if svc.selector is not None:
        for pod in selected:
            number = resolve_target_port(pod, port)
            if number:
                # EndpointSlices carry a hostname only for pods that ask for this service as
                # their subdomain (spec.hostname + spec.subdomain == the service's name)
                hostname = pod.hostname if pod.hostname and pod.subdomain == svc.name else ""
                ep = PlanEndpoint(pod.ip, number, pod.node, pod=pod.key, hostname=hostname)
                found[ep.address] = ep
    else:
        for eps in slices:
            numbers = [n for name, proto, n in eps.ports
                       if name == port.name and proto == port.protocol]
            for number in numbers:
                for endpoint in eps.endpoints:
                    if len(found) > budget[0]:
                        return None
                    for ip in endpoint.addresses:
                        ep = PlanEndpoint(ip, number, endpoint.node_name, endpoint.ready,
                                          endpoint.serving, endpoint.terminating,
                                          hostname=endpoint.hostname)
                        current = found.get(ep.address)
                        if current is None or (current.terminating and not ep.terminating):
                            found[ep.address] = ep
    budget[0] -= len(found)
    if budget[0] < 0:
        return None
    return tuple(found[k] for k in sorted(found))


def resolve_target_port(pod, port) -> int:
    target = port.target_port or port.port
    if isinstance(target, int):
        return target
    for container in pod.containers:
        for cport in container.ports:
            if cport.name == target and cport.protocol == port.protocol:
                return cport.port
    return 0
