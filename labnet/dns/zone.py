"""What the cluster DNS knows, computed from the plan: namespaces, services, their ports and
ready endpoints (with the hostnames EndpointSlices would give them), and the pods' IPs with the
lab's `pods` mode (CoreDNS's option: insecure, verified or disabled)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from labnet.model import DEFAULT_DNS_PODS, DEFAULT_DNS_TTL
from labnet.plan import Plan

DEFAULT_TTL = DEFAULT_DNS_TTL
SCHEMA_VERSION = "1.1.0"


@dataclass(frozen=True)
class Port:
    name: str
    protocol: str  # lower case: tcp, udp
    port: int


@dataclass(frozen=True)
class Endpoint:
    ip: str
    hostname: str  # the EndpointSlice hostname, or the dashed IP (CoreDNS's fallback)
    ports: tuple[Port, ...]  # the endpoint's (target) ports, named as the service's ports


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    kind: str  # ClusterIP, NodePort, LoadBalancer, ExternalName
    cluster_ip: str  # "None" for headless, "" for ExternalName
    ports: tuple[Port, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()  # ready endpoints only
    external_name: str = ""

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"


@dataclass(frozen=True)
class ClusterData:
    domain: str  # "cluster.local", lower case, no trailing dot
    namespaces: frozenset[str]
    services: dict[tuple[str, str], Service]
    dns_ip: str
    ttl: int = DEFAULT_TTL
    serial: int = 0
    reverse_networks: tuple[ipaddress.IPv4Network, ...] = ()
    ptr: dict[str, list[str]] = field(default_factory=dict)  # ip -> FQDNs (no trailing dot)
    pod_mode: str = DEFAULT_DNS_PODS  # CoreDNS's `pods` option: insecure, verified, disabled
    pods: frozenset[tuple[str, str]] = frozenset()  # (namespace, IP) of every pod (verified)
    served: bool = True  # False: dns.enabled is false, labnet runs no cluster DNS for the lab


def dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def cluster_data(plan: Plan, ttl: int = DEFAULT_TTL, serial: int = 0) -> ClusterData:
    domain = str(plan.network.cluster_domain).lower().rstrip(".")
    services: dict[tuple[str, str], Service] = {}
    ptr: dict[str, list[str]] = {}
    for svc in plan.services:
        ports = tuple(Port(p.name, p.protocol.lower(), p.port) for p in svc.ports)
        by_ip: dict[str, dict] = {}
        for port in svc.ports:
            for ep in port.endpoints:
                if not ep.ready:
                    continue
                entry = by_ip.setdefault(ep.ip, {"hostname": ep.hostname, "ports": []})
                entry["ports"].append(Port(port.name, port.protocol.lower(), ep.port))
        endpoints = tuple(
            Endpoint(ip, (entry["hostname"] if entry["hostname"] else dashed(ip)).lower(),
                     tuple(entry["ports"]))
            for ip, entry in sorted(by_ip.items()))
        service = Service(svc.namespace, svc.name, svc.type, svc.cluster_ip, ports, endpoints,
                          svc.external_name.rstrip("."))
        services[(svc.namespace, svc.name)] = service
        fqdn = f"{svc.name}.{svc.namespace}.svc.{domain}"
        if svc.cluster_ip not in ("", "None"):
            ptr.setdefault(svc.cluster_ip, []).insert(0, fqdn)  # a ClusterIP wins
        if svc.type != "ExternalName":
            for ep in endpoints:
                names = ptr.setdefault(ep.ip, [])
                if f"{ep.hostname}.{fqdn}" not in names:
                    names.append(f"{ep.hostname}.{fqdn}")
    reverse = (ipaddress.IPv4Network(plan.network.service_cidr),
               ipaddress.IPv4Network(plan.network.pod_cidr))
    # CoreDNS's pod index holds every pod with an IP that is not terminating, ready or not
    pods = frozenset((pod.namespace, pod.ip) for pod in plan.pods if pod.ip)
    return ClusterData(domain, frozenset(plan.namespaces), services,
                       str(plan.network.cluster_dns), ttl, serial, reverse, ptr,
                       plan.network.dns_pods, pods, plan.network.dns_enabled)
