"""The validated model of a lab: what the user asked for, with every default filled in.

Plain frozen dataclasses, no behaviour that touches the machine. labnet.input builds them from
YAML; labnet.plan turns them into a Plan. Constants more than one stage reads live here too.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


NOBODY = 65534  # what a pod command runs as unless its securityContext says otherwise
SYNC_TIMEOUT = 120.0  # one node's kube-proxy sync; the CLI's wait for a reload is derived from it
DEFAULT_DNS_TTL = 5  # CoreDNS kubernetes plugin's defaultTTL: the one default, used everywhere
# CoreDNS kubernetes plugin `pods` option: kubeadm's Corefile says `pods insecure`
DNS_POD_MODES = ("insecure", "verified", "disabled")
DEFAULT_DNS_PODS = "insecure"
PROXY_MODES = ("iptables", "nftables")  # kube-proxy's --proxy-mode values labnet has
DEFAULT_PROXY_MODE = "iptables"

# labnet's caps on one lab: bigger would exhaust the machine before it told the user why
MAX_NODES = 100
MAX_PODS = 2000  # explicit pods and every Deployment's replicas together
MAX_SERVICES = 10_000  # kube-proxy is benchmarked up to here and beyond
MAX_OBJECTS = 20_000  # manifests in one lab, v1 List items counted one by one
MAX_PORTS = 100  # per Service and per pod (all its containers)
MAX_CONTAINERS = 20  # per pod
MAX_PLAN_POD_BYTES = 32 * 1024 * 1024  # the pods' share of the plan: templates x replicas
MAX_ENDPOINTS = 100_000  # service endpoints over every port of every Service in the plan
MAX_SLICE_ENDPOINTS, MAX_SLICE_ADDRESSES, MAX_SLICE_PORTS = 1000, 100, 100  # the API server's
NODE_PORT_RANGE = (30000, 32767)

# names as Kubernetes writes them (without CAP_), numbers from linux/capability.h
CAPABILITIES = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
    "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
    "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20,
    "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
    "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
    "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """An equality selector (a Service's selector, a nodeSelector, matchLabels): every pair
    it names is among the labels. The one place this is decided."""
    return all(labels.get(key) == value for key, value in selector.items())

@dataclass(frozen=True)
class NetworkSpec:
    underlay_cidr: IPv4Network = IPv4Network("192.168.255.0/24")
    pod_cidr: IPv4Network = IPv4Network("172.16.0.0/16")
    node_cidr_mask: int = 24
    service_cidr: IPv4Network = IPv4Network("172.19.0.0/16")
    cluster_dns: IPv4Address = IPv4Address("172.19.0.10")
    cluster_domain: str = "cluster.local"
    vxlan_vni: int = 1
    vxlan_port: int = 8472
    mtu: int = 1500
    dns_ttl: int = DEFAULT_DNS_TTL
    dns_upstream: tuple[str, ...] = ()  # resolvers for names outside the cluster (opt-in)
    dns_enabled: bool = True  # False: no built-in kube-dns Service, DNS pod or DNS server
    dns_pods: str = DEFAULT_DNS_PODS  # pod A records: insecure, verified or disabled
    node_port_range: tuple[int, int] = NODE_PORT_RANGE  # kube-apiserver --service-node-port-range
    proxy_mode: str = DEFAULT_PROXY_MODE  # kube-proxy --proxy-mode: iptables or nftables

    @property
    def pod_mtu(self) -> int:
        """Pods and flannel.1 leave room for the VXLAN header (50 bytes), as flannel does."""
        return self.mtu - 50


@dataclass(frozen=True)
class NodeSpec:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    address: IPv4Address | None = None
    where: str = field(default="", compare=False)


@dataclass(frozen=True)
class ContainerPort:
    port: int
    protocol: str = "TCP"
    name: str = ""


@dataclass(frozen=True)
class Probe:
    """A readinessProbe: httpGet (path) or tcpSocket, on a port number."""

    kind: str  # "http" or "tcp"
    port: int
    path: str = "/"
    period: int = 10
    initial_delay: int = 0
    failure_threshold: int = 3
    success_threshold: int = 1


@dataclass(frozen=True)
class Security:
    """What a pod command runs as (labnet.input.security turns a securityContext into this)."""

    uid: int = NOBODY
    gid: int = NOBODY
    caps: tuple[str, ...] = ()
    privileged: bool = False

    @classmethod
    def from_dict(cls, data: dict | None) -> Security:
        if not data:
            return cls()
        return cls(int(data["uid"]), int(data["gid"]), tuple(data["caps"]),
                   bool(data["privileged"]))


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    server: str = ""  # labnet's built-in server for this container: "" (who-am-I), "dns"
    readiness: Probe | None = None
    security: Security | None = None  # a command's user and capabilities (None: no command)

    @property
    def argv(self) -> tuple[str, ...]:
        """What runs in the pod: `command` + `args`; empty means labnet's built-in servers."""
        return self.command + self.args if self.command else ()


@dataclass(frozen=True)
class PodTemplate:
    labels: dict[str, str]
    containers: tuple[ContainerSpec, ...]
    node_name: str = ""
    node_selector: dict[str, str] = field(default_factory=dict)
    hostname: str = ""
    subdomain: str = ""

    def runs_on(self, node_name: str, node_labels: dict[str, str]) -> bool:
        """Whether the scheduler may put this pod on that node (nodeName, else nodeSelector)."""
        if self.node_name:
            return self.node_name == node_name
        return selects(self.node_selector, node_labels)


@dataclass(frozen=True)
class PodSpec:
    namespace: str
    name: str
    template: PodTemplate
    owner: str = ""  # "Deployment/<name>" for pods a Deployment made
    where: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class LabelSelector:
    match_labels: dict[str, str] = field(default_factory=dict)
    # (key, operator, values) with operator In, NotIn, Exists, DoesNotExist
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if not selects(self.match_labels, labels):
            return False
        for key, op, values in self.match_expressions:
            present = key in labels
            if op == "In" and not (present and labels[key] in values):
                return False
            if op == "NotIn" and present and labels[key] in values:
                return False
            if op == "Exists" and not present:
                return False
            if op == "DoesNotExist" and present:
                return False
        return True


@dataclass(frozen=True)
class DeploymentSpec:
    namespace: str
    name: str
    replicas: int
    selector: LabelSelector
    template: PodTemplate
    where: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ServicePortSpec:
    port: int
    protocol: str = "TCP"
    name: str = ""
    target_port: int | str = 0  # a number, or the name of a containerPort; 0: same as port
    node_port: int = 0


@dataclass(frozen=True)
class ServiceSpec:
    namespace: str
    name: str
    type: str = "ClusterIP"  # ClusterIP, NodePort, LoadBalancer, ExternalName
    selector: dict[str, str] | None = None  # None: endpoints come from EndpointSlices
    ports: tuple[ServicePortSpec, ...] = ()
    cluster_ip: str = ""  # "" allocate, "None" headless
    external_ips: tuple[str, ...] = ()
    load_balancer_ip: str = ""
    # status.loadBalancer.ingress: (ip, ipMode) of each entry with an ip, canonical form
    load_balancer_ingress: tuple[tuple[str, str], ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    session_affinity_timeout: int = 0  # > 0: sessionAffinity ClientIP
    external_traffic_local: bool = False
    internal_traffic_local: bool = False
    health_check_node_port: int = 0
    external_name: str = ""
    publish_not_ready: bool = False
    where: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"


@dataclass(frozen=True)
class SliceEndpoint:
    addresses: tuple[str, ...]
    node_name: str = ""
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    hostname: str = ""


@dataclass(frozen=True)
class EndpointSliceSpec:
    namespace: str
    name: str
    service: str  # the kubernetes.io/service-name label
    endpoints: tuple[SliceEndpoint, ...] = ()
    ports: tuple[tuple[str, str, int], ...] = ()  # (name, protocol, port)
    where: str = field(default="", compare=False)


@dataclass(frozen=True)
class HostSpec:
    """A machine that carries some of the lab's nodes (multi-host labs)."""

    name: str
    nodes: tuple[str, ...]
    interface: str = "eth0"  # the NIC the nodes' eth0 (macvlan) hang off
    address: str = ""  # the machine's own address, for humans and status


@dataclass(frozen=True)
class LabSpec:
    name: str
    network: NetworkSpec
    nodes: tuple[NodeSpec, ...]
    namespaces: tuple[str, ...]
    pods: tuple[PodSpec, ...] = ()
    deployments: tuple[DeploymentSpec, ...] = ()
    services: tuple[ServiceSpec, ...] = ()
    endpoint_slices: tuple[EndpointSliceSpec, ...] = ()
    source: str = ""
    warnings: tuple[str, ...] = ()
    # "<namespace>/<deployment>/<replica index>" -> how many times that replica was replaced
    generations: dict[str, int] = field(default_factory=dict)
    hosts: tuple[HostSpec, ...] = ()
