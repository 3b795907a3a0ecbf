"""The plan's types: what the lab must be, as every later stage reads it (typed, no dict keys).

The plan is also the lab's record of ownership: it is written to the state directory before any
kernel object is made, so `down` knows every name even after a crashed `up`. `to_json` and
`from_json` are its only serialisation; the golden file tests/golden/seed.plan.json pins it.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field

from labnet.model import DEFAULT_DNS_PODS, DEFAULT_PROXY_MODE, Probe, Security


@dataclass(frozen=True)
class PlanEndpoint:
    ip: str
    port: int
    node: str = ""
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    pod: str = ""  # namespace/name of the pod behind it, when labnet knows it
    hostname: str = ""

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class PlanServicePort:
    name: str
    protocol: str
    port: int
    target_port: str
    node_port: int = 0
    endpoints: tuple[PlanEndpoint, ...] = ()


@dataclass(frozen=True)
class PlanService:
    namespace: str
    name: str
    type: str
    cluster_ip: str  # "None" for headless, "" for ExternalName
    ports: tuple[PlanServicePort, ...] = ()
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()  # status.loadBalancer.ingress, ipMode VIP
    # ingress IPs with ipMode Proxy: shown, but neither captured by kube-proxy nor routed
    load_balancer_proxy_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    session_affinity_timeout: int = 0
    external_traffic_local: bool = False
    internal_traffic_local: bool = False
    health_check_node_port: int = 0
    external_name: str = ""
    selector: dict[str, str] | None = field(default=None)
    publish_not_ready: bool = False  # endpoints count as ready whatever their pods say

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"



PLAN_VERSION = 1


@dataclass(frozen=True)
class PlanPort:
    port: int
    protocol: str
    name: str = ""


@dataclass(frozen=True)
class PlanContainer:
    name: str
    argv: tuple[str, ...] = ()
    ports: tuple[PlanPort, ...] = ()
    server: str = ""
    readiness: Probe | None = None
    security: Security | None = None  # a command's user and capabilities


@dataclass(frozen=True)
class PlanNode:
    name: str
    index: int
    netns: str
    underlay_ip: str
    underlay_port: str
    pod_cidr: str
    gateway: str
    vtep_ip: str
    vtep_mac: str
    labels: dict[str, str] = field(default_factory=dict)
    host: str = ""  # multi-host labs: the machine that carries this node


@dataclass(frozen=True)
class PlanHost:
    """A machine of a lab that spans hosts: the NIC its nodes' eth0 are macvlans of."""

    interface: str
    address: str = ""


@dataclass(frozen=True)
class PlanNetwork:
    """The lab's addressing as built: what every stage after the plan reads (typed, no keys)."""

    underlay_cidr: str
    pod_cidr: str
    node_cidr_mask: int
    service_cidr: str
    cluster_dns: str
    cluster_domain: str
    vxlan_vni: int
    vxlan_port: int
    mtu: int
    dns_ttl: int
    dns_upstream: list[str] = field(default_factory=list)
    dns_enabled: bool = True  # the built-in kube-dns Service and DNS pod are in the plan
    dns_pods: str = DEFAULT_DNS_PODS  # pod A records: insecure, verified or disabled (CoreDNS)
    proxy_mode: str = DEFAULT_PROXY_MODE  # kube-proxy --proxy-mode (older plans: iptables)


@dataclass(frozen=True)
class PlanPod:
    namespace: str
    name: str
    netns: str
    node: str
    ip: str
    host_veth: str
    labels: dict[str, str] = field(default_factory=dict)
    owner: str = ""
    containers: tuple[PlanContainer, ...] = ()
    hostname: str = ""
    subdomain: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ports(self) -> list[PlanPort]:
        """The ports the pod agent serves (containers without a command)."""
        return [p for c in self.containers if not c.argv for p in c.ports]

    @property
    def declared_ports(self) -> list[PlanPort]:
        """Every containerPort the pod declares, a command's too (what kubectl shows)."""
        return [p for c in self.containers for p in c.ports]

    @property
    def is_dns(self) -> bool:
        """The cluster DNS pod: the agent serves DNS from its netns."""
        return any(c.server == "dns" for c in self.containers)


@dataclass(frozen=True)
class Plan:
    lab: str
    network: PlanNetwork
    underlay_netns: str
    external_netns: str
    external_ip: str
    nodes: tuple[PlanNode, ...]
    pods: tuple[PlanPod, ...]
    namespaces: tuple[str, ...] = ()
    services: tuple[PlanService, ...] = ()
    # node -> the pod IP allocated last: new pods take the next free one after it, as CNI's
    # host-local IPAM does, so a recreated pod gets a new address
    ip_cursor: dict[str, str] = field(default_factory=dict)
    # multi-host labs: each host and the NIC its nodes use
    hosts: dict[str, PlanHost] = field(default_factory=dict)
    version: int = PLAN_VERSION

    def local_nodes(self, host: str) -> list[PlanNode]:
        """The nodes this machine builds: all of them, unless the lab spans hosts."""
        return [n for n in self.nodes if not self.hosts or n.host == host]

    @property
    def underlay_prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.network.underlay_cidr).prefixlen

    @property
    def pod_mtu(self) -> int:
        return int(self.network.mtu) - 50

    def node(self, name: str) -> PlanNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def pods_on(self, node: str) -> list[PlanPod]:
        return [p for p in self.pods if p.node == node]

    def all_netns(self) -> list[str]:
        return [self.underlay_netns, self.external_netns, *(n.netns for n in self.nodes),
                *(p.netns for p in self.pods)]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        if data.get("version") != PLAN_VERSION:
            raise ValueError(f"plan version {data.get('version')} is not {PLAN_VERSION}")
        nodes = tuple(PlanNode(**n) for n in data.pop("nodes"))
        network = PlanNetwork(**data.pop("network"))
        hosts = {name: PlanHost(**h) for name, h in data.pop("hosts", {}).items()}
        pods = tuple(
            PlanPod(**{**p, "containers": tuple(
                PlanContainer(c["name"], tuple(c["argv"]),
                              tuple(PlanPort(**port) for port in c["ports"]), c.get("server", ""),
                              Probe(**c["readiness"]) if c.get("readiness") else None,
                              Security.from_dict(c["security"]) if c.get("security") else None)
                for c in p["containers"])})
            for p in data.pop("pods")
        )
        services = tuple(
            PlanService(**{**s, "ports": tuple(
                PlanServicePort(**{**p, "endpoints": tuple(PlanEndpoint(**e)
                                                           for e in p["endpoints"])})
                for p in s["ports"]),
                **{k: tuple(s.get(k, ())) for k in ("external_ips", "load_balancer_ips",
                                                    "load_balancer_proxy_ips",
                                                    "load_balancer_source_ranges")}})
            for s in data.pop("services", []))
        return cls(nodes=nodes, network=network, hosts=hosts, pods=pods,
                   namespaces=tuple(data.pop("namespaces")), services=services, **data)

    def service(self, key: str) -> PlanService:
        for svc in self.services:
            if svc.key == key:
                return svc
        raise KeyError(key)


