"""The lab file: parse, fill in defaults, validate everything, and return a LabSpec.

Every problem is collected and reported together, each as `file:line: what is wrong (what to do)`,
before anything is built.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

from labnet.addressing import (
    external_address,
    load_balancer_pool,
    max_nodes,
    node_address,
    node_pod_cidr,
    pods_per_node,
)
from labnet.errors import Problems, SpecError, one_line
from labnet.input.checks import (
    MAX_NODE_CIDR_BITS,
    MIN_SERVICE_PREFIX,
    NODE_CIDR_MASK,
    check_dns_label,
    check_fields,
    check_labels,
    get_bool,
    get_int,
    get_list,
    get_map,
    get_str,
    interface_name_problem,
    parse_address,
    parse_network,
    shown,
    type_name,
)
from labnet.input.workloads import Workloads, parse_manifest
from labnet.input.yamlsrc import Located, load_documents, load_file, where_of
from labnet.model import (
    DEFAULT_NAMESPACES,
    DNS_POD_MODES,
    MAX_ENDPOINTS,
    MAX_NODES,
    MAX_OBJECTS,
    MAX_PLAN_POD_BYTES,
    MAX_PODS,
    MAX_SERVICES,
    PROXY_MODES,
    ContainerPort,
    ContainerSpec,
    DeploymentSpec,
    HostSpec,
    LabelSelector,
    LabSpec,
    NetworkSpec,
    NodeSpec,
    PodTemplate,
    ServicePortSpec,
    ServiceSpec,
    selects,
)
from labnet.names import lab_name_problem

LAB_FIELDS = {"name", "network", "nodes", "manifests", "manifestFiles", "dns", "hosts",
              "proxyMode"}
HOST_FIELDS = {"name", "nodes", "interface", "address"}
DNS_FIELDS = {"enabled", "pods", "ttl", "upstream"}
BUILTIN_DNS = "<built-in cluster DNS>"
NETWORK_FIELDS = {
    "underlayCIDR", "podCIDR", "nodeCIDRMaskSize", "serviceCIDR", "clusterDNS", "clusterDomain",
    "vxlan", "mtu", "serviceNodePortRange",
}
VXLAN_FIELDS = {"vni", "port"}
NODE_FIELDS = {"name", "labels", "address"}
RESERVED_NODE_NAMES = {"underlay", "external"}
PORT_RANGE = re.compile(r"([0-9]{1,5})(?:([-+])([0-9]{1,5}))?")
MAX_UPSTREAMS = 15  # CoreDNS's forward plugin: at most 15 upstreams


def default_lab_text() -> str:
    return resources.files("labnet").joinpath("data/seed.yaml").read_text(encoding="utf-8")


DEFAULT_SOURCE = "<default lab: examples/seed.yaml>"


@dataclass
class LabFile:
    """A lab file as read, before validation: its settings mapping (with locations), every
    manifest it gives (inline and from manifestFiles, in order), and the problems met reading
    them. The one loader: `load_lab` validates it into a LabSpec, and the running lab's desired
    state (labnet.desired) starts from it."""

    root: Located
    objects: list
    source: str
    problems: Problems

    def settings(self) -> Located:
        """The lab's own settings: the root mapping without its manifests."""
        settings = Located(source=self.root.source, line=self.root.line)
        settings.key_lines = self.root.key_lines
        for key, value in self.root.items():
            if key not in ("manifests", "manifestFiles"):
                settings[key] = value
        return settings

    def spec(self) -> LabSpec:
        return parse_lab(self.root, self.objects, self.source, self.problems)


def read_lab_file(path: str | Path | None) -> LabFile:
    """The lab file at `path`, or the built-in default lab when `path` is None."""
    lines: list[int] = []
    if path is None:
        source, base = DEFAULT_SOURCE, Path.cwd()
        docs = load_documents(default_lab_text(), source, lines)
    else:
        path = Path(path)
        if path.is_dir():
            raise SpecError(str(path), "is a directory, not a lab file", "give the lab's YAML file")
        source, base = str(path), path.parent
        docs = load_file(path, "lab file", lines)
    return read_lab_docs(docs, source, base, lines)


def read_lab_docs(docs: list, source: str, base: Path, lines: list[int] | None = None
                  ) -> LabFile:
    root = lab_root(docs, source, lines)
    problems = Problems()
    return LabFile(root, lab_objects(root, base, problems), source, problems)


def load_default() -> LabSpec:
    return read_lab_file(None).spec()


def load_lab(path: str | Path | None) -> LabSpec:
    """The lab file at `path` validated, or the built-in default lab when `path` is None."""
    return read_lab_file(path).spec()


def parse_lab_text(text: str, source: str, base: Path) -> LabSpec:
    lines: list[int] = []
    return read_lab_docs(load_documents(text, source, lines), source, base, lines).spec()


def lab_root(docs: list, source: str, lines: list[int] | None = None) -> Located:
    if len(docs) != 1 or not isinstance(docs[0], Located):
        # the line of the second document, or of the one that is not a mapping
        index = 1 if len(docs) > 1 else 0
        line = lines[index] if lines and index < len(lines) else 1
        what = (f"{len(docs)} YAML documents" if len(docs) > 1 else
                "nothing" if not docs else type_name(docs[0]))
        raise SpecError(f"{source}:{line}", "a lab file must hold exactly one YAML mapping, "
                        f"not {what}", "see examples/seed.yaml")
    return docs[0]


def lab_objects(doc: Located, base: Path, problems: Problems) -> list:
    """Every manifest the lab file gives, inline and from manifestFiles, in order. An entry
    that cannot be a manifest is reported here, where its file and line are known."""
    objects = []
    inline = get_list(doc, "manifests", "the lab", problems)
    for index, item in enumerate(inline):
        if isinstance(item, Located):
            objects.append(item)
        else:
            problems.add(where_of(inline, index, doc.where("manifests")), "a manifest must be "
                         f"a mapping with apiVersion, kind and metadata, not {type_name(item)}")
    for index, item in enumerate(get_list(doc, "manifestFiles", "the lab", problems)):
        where = where_of(doc["manifestFiles"], index, doc.where("manifestFiles"))
        if not isinstance(item, str) or not item:
            problems.add(where, "manifestFiles entries must be paths (non-empty strings)")
            continue
        try:
            paths = manifest_paths(base / item, where)
        except SpecError as exc:
            problems.extend(exc)
            continue
        except (OSError, ValueError) as exc:  # a path the OS refuses (too long, a NUL…)
            problems.add(where, f"manifestFiles entry {shown(item)} cannot be read: "
                         f"{one_line(str(exc), 200)}")
            continue
        for path in paths:
            lines: list[int] = []
            try:
                docs = load_file(path, "manifest file", lines)
            except SpecError as exc:
                if exc.where == str(path):  # the file itself: say where the lab names it
                    problems.add(where, f"{exc.where}: {exc.problem}", exc.hint)
                else:  # a problem inside it, at its own file:line
                    problems.extend(exc)
                continue
            for doc_item, line in zip(docs, lines, strict=True):
                if isinstance(doc_item, Located):
                    objects.append(doc_item)
                else:
                    problems.add(f"{path}:{line}", "a manifest must be a mapping with "
                                 f"apiVersion, kind and metadata, not {type_name(doc_item)}")
        if len(objects) > MAX_OBJECTS:
            break
    if len(objects) > MAX_OBJECTS:
        problems.add(doc.where("manifestFiles" if "manifestFiles" in doc else "manifests"),
                     f"more than {MAX_OBJECTS} manifests in one lab",
                     "labnet's cap: a lab that big would exhaust the machine")
        return objects[:MAX_OBJECTS]
    return objects


def parse_lab(doc: Located, objects: list, source: str, problems: Problems | None = None,
              generations: dict[str, int] | None = None) -> LabSpec:
    """The lab's settings (`doc`: name, network, nodes, dns) with these manifests."""
    problems = problems or Problems()
    check_fields(doc, LAB_FIELDS, "the lab file", problems)
    name = get_str(doc, "name", "the lab", problems, required=True)
    if name is not None and (problem := lab_name_problem(name)) is not None:
        problems.add(doc.where("name"), problem)
    name = name or "lab"
    network = parse_network_section(get_map(doc, "network", "the lab", problems), problems)
    network = parse_dns_section(get_map(doc, "dns", "the lab", problems), network, problems)
    network = parse_proxy_mode(doc, network, problems)
    nodes = parse_nodes(doc, network, problems)
    hosts = parse_hosts(doc, nodes, problems)
    workloads = Workloads(node_port_range=network.node_port_range)
    for item in objects:
        parse_manifest(item, where_of(item, fallback=source), workloads, problems)
    count = (len(workloads.namespaces) + len(workloads.pods) + len(workloads.deployments)
             + len(workloads.services) + len(workloads.endpoint_slices))
    if count > MAX_OBJECTS:
        problems.add(doc.where(), f"the lab holds {count} objects, more than {MAX_OBJECTS}",
                     "labnet's cap: a lab that big would exhaust the machine")
    # problems of the built-in cluster DNS (a node too full for its pod…) point at the lab
    # file's dns section, or its top
    add_cluster_dns(workloads, network, doc.where("dns") if "dns" in doc else doc.where())
    namespaces = check_workloads(workloads, nodes, problems)
    if not problems:  # what the planner needs room for, once every object is sound
        check_capacity(workloads, nodes, network, problems)
        check_service_capacity(workloads, nodes, network, problems)
    check_services(workloads, network, namespaces, problems)
    problems.raise_if_any()
    return LabSpec(
        name=name, network=network, nodes=tuple(nodes), namespaces=namespaces,
        pods=tuple(workloads.pods), deployments=tuple(workloads.deployments),
        services=tuple(workloads.services), endpoint_slices=tuple(workloads.endpoint_slices),
        source=source, warnings=tuple(workloads.warnings),
        generations=dict(generations or {}), hosts=tuple(hosts),
    )


def parse_hosts(doc: Located, nodes: list[NodeSpec], problems: Problems) -> list[HostSpec]:
    """`hosts:` spreads the nodes over machines; every node on exactly one host."""
    hosts: list[HostSpec] = []
    owner: dict[str, str] = {}
    names: dict[str, str] = {}
    for index, item in enumerate(get_list(doc, "hosts", "the lab", problems)):
        where = where_of(doc["hosts"], index, doc.where("hosts"))
        if not isinstance(item, Located):
            problems.add(where, "each host must be a mapping with name and nodes")
            continue
        check_fields(item, HOST_FIELDS, "host", problems)
        name = get_str(item, "name", "host", problems, required=True) or "?"
        check_dns_label(name, item.where("name"), "host name", problems)
        if name in names:
            problems.add(item.where("name"), f"duplicate host name {shown(name)}",
                         f"first at {names[name]}")
        names[name] = item.where("name")
        carried = []
        listed = get_list(item, "nodes", f"host {name}", problems)
        for position, node in enumerate(listed):
            if not isinstance(node, str):
                problems.add(where_of(listed, position, item.where("nodes")), f"host {name}: "
                             f"nodes must be node names, not {type_name(node)}")
                continue
            if node in owner:
                problems.add(item.where("nodes"), f"node {node} is on hosts {owner[node]} and "
                             f"{name}", "a node lives on one host")
            owner[node] = name
            carried.append(node)
        address = ""
        if "address" in item:
            ip = parse_address(item["address"], item.where("address"), f"host {name} address",
                               problems, unicast=True)
            address = str(ip) if ip else ""
        interface = get_str(item, "interface", f"host {name}", problems, default="eth0")
        if interface is not None and (why := interface_name_problem(interface)) is not None:
            problems.add(item.where("interface"), f"host {name}: interface {shown(interface)} "
                         f"{why}", "give the name of the host's network interface (ip link)")
        hosts.append(HostSpec(name, tuple(carried), interface or "eth0", address))
    if hosts:
        known = {n.name for n in nodes}
        for node in sorted(set(owner) - known):
            problems.add(doc.where("hosts"), f"hosts name node {shown(node)}, which is not a "
                         "node of this lab", f"nodes are {', '.join(sorted(known))}")
        for node in sorted(known - set(owner)):
            problems.add(doc.where("hosts"), f"node {node} is on no host",
                         "list every node under one of the hosts")
    return hosts


def parse_proxy_mode(doc: Located, network: NetworkSpec, problems: Problems) -> NetworkSpec:
    """`proxyMode:` kube-proxy's --proxy-mode for every node of the lab (default iptables)."""
    mode = get_str(doc, "proxyMode", "the lab", problems, default=network.proxy_mode)
    if mode not in PROXY_MODES:
        problems.add(doc.where("proxyMode"), f"proxyMode {shown(mode)} is not one of "
                     f"{', '.join(PROXY_MODES)}", "kube-proxy's --proxy-mode: iptables (the "
                     "default) or nftables")
        return network
    return replace(network, proxy_mode=mode)


def parse_dns_section(dns: Located, network: NetworkSpec, problems: Problems) -> NetworkSpec:
    """`dns:` configures the built-in cluster DNS (CoreDNS's kubernetes plugin, as kubeadm
    runs it): `enabled` (default true), `pods` (CoreDNS's `pods` option: `insecure`, the default
    as in kubeadm's Corefile, `verified` or `disabled`), `ttl` and `upstream`. With
    `enabled: false` the lab has no kube-dns Service, no DNS pod and no DNS server, so the
    other three would configure nothing: they are errors then."""
    check_fields(dns, DNS_FIELDS, "dns", problems)
    enabled = get_bool(dns, "enabled", "dns", problems, network.dns_enabled)
    pods = get_str(dns, "pods", "dns", problems, default=network.dns_pods)
    if pods not in DNS_POD_MODES:
        problems.add(dns.where("pods"), f"dns.pods {shown(pods)} is not one of "
                     f"{', '.join(DNS_POD_MODES)}", "CoreDNS's pods option: insecure answers any "
                     "dashed IP, verified only the IPs of pods, disabled none")
        pods = network.dns_pods
    if not enabled:
        for key in ("pods", "ttl", "upstream"):
            if key in dns:
                problems.add(dns.where(key), f"dns.{key} has no effect with dns.enabled: false",
                             "the lab runs no cluster DNS of its own: remove it, or enable it")
    ttl = get_int(dns, "ttl", "dns", problems, network.dns_ttl, 0, 3600)
    upstream = []
    servers = get_list(dns, "upstream", "dns", problems)
    if len(servers) > MAX_UPSTREAMS:
        problems.add(dns.where("upstream"), f"dns.upstream lists {len(servers)} resolvers, "
                     f"more than {MAX_UPSTREAMS}", "CoreDNS's forward plugin takes at most 15")
        servers = []
    for index, ip in enumerate(servers):
        where = where_of(servers, index, dns.where("upstream"))
        address = parse_address(ip, where, "dns.upstream entry", problems, unicast=True)
        if address is not None and address == network.cluster_dns:
            problems.add(where, f"dns.upstream {address} is the cluster DNS itself",
                         "it would forward to itself: give a resolver outside the cluster DNS")
        elif address is not None:
            upstream.append(str(address))
    return replace(network, dns_ttl=ttl, dns_upstream=tuple(upstream), dns_enabled=enabled,
                   dns_pods=pods)


def add_cluster_dns(work: Workloads, network: NetworkSpec, where: str = BUILTIN_DNS) -> None:
    """A lab has kube-system/kube-dns at the cluster DNS IP, in front of a DNS pod labelled
    as CoreDNS's is (k8s-app: kube-dns), with CoreDNS's ports (reference §8, kubeadm) — unless
    its lab file says `dns: {enabled: false}` (kubeadm without its CoreDNS addon): then it has
    neither, and the user may define kube-system/kube-dns (their own DNS server) themselves."""
    if not network.dns_enabled:
        return
    labels = {"k8s-app": "kube-dns"}
    ports = (ContainerPort(53, "UDP", "dns"), ContainerPort(53, "TCP", "dns-tcp"),
             ContainerPort(9153, "TCP", "metrics"))
    container = ContainerSpec("coredns", "labnet/dns (dnslib)", ports=ports, server="dns")
    deployment = DeploymentSpec(
        "kube-system", "coredns", 1, LabelSelector(dict(labels)),
        PodTemplate(dict(labels), (container,)), where=where)
    service = ServiceSpec(
        "kube-system", "kube-dns", selector=dict(labels),
        ports=(ServicePortSpec(53, "UDP", "dns", 53), ServicePortSpec(53, "TCP", "dns-tcp", 53),
               ServicePortSpec(9153, "TCP", "metrics", 9153)),
        cluster_ip=str(network.cluster_dns), where=where)
    work.deployments.append(deployment)
    work.services.append(service)
    work.builtin = (deployment, service)


def manifest_paths(path: Path, where: str) -> list[Path]:
    """A manifest file, or every *.yaml/*.yml of a directory in name order."""
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        if not found:
            raise SpecError(where, one_line(f"directory {path} holds no .yaml or .yml files"))
        return found
    return [path]


def parse_network_section(net: Located, problems: Problems) -> NetworkSpec:
    default = NetworkSpec()
    check_fields(net, NETWORK_FIELDS, "network", problems)

    def cidr(key: str, fallback: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        return parse_network(net.get(key), net.where(key), f"network.{key}", problems, fallback)

    underlay = cidr("underlayCIDR", default.underlay_cidr)
    pods = cidr("podCIDR", default.pod_cidr)
    services = cidr("serviceCIDR", default.service_cidr)
    mask = get_int(net, "nodeCIDRMaskSize", "network", problems, default.node_cidr_mask,
                   *NODE_CIDR_MASK)
    if mask <= pods.prefixlen:
        problems.add(net.where("nodeCIDRMaskSize"), f"network.nodeCIDRMaskSize /{mask} is not "
                     f"smaller than podCIDR {pods}",
                     "each node gets a slice of podCIDR: use a longer mask")
    elif mask - pods.prefixlen > MAX_NODE_CIDR_BITS:
        problems.add(net.where("nodeCIDRMaskSize"), f"network.nodeCIDRMaskSize /{mask} splits "
                     f"podCIDR {pods} into 2^{mask - pods.prefixlen} slices, more than "
                     f"2^{MAX_NODE_CIDR_BITS}", "kube-controller-manager's limit: use a "
                     "smaller podCIDR or a shorter mask")
    if services.prefixlen < MIN_SERVICE_PREFIX:
        problems.add(net.where("serviceCIDR"), f"network.serviceCIDR {services} is larger than "
                     f"a /{MIN_SERVICE_PREFIX}", "the API server's limit: use a /12 or smaller")
    named = {"underlayCIDR": underlay, "podCIDR": pods, "serviceCIDR": services}
    keys = list(named)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if named[a].overlaps(named[b]):
                problems.add(net.where(b) if b in net else net.where(a),
                             f"network.{a} {named[a]} overlaps network.{b} {named[b]}",
                             "the three kinds of address must not overlap")
    if underlay.prefixlen > 27:
        problems.add(net.where("underlayCIDR"), f"network.underlayCIDR {underlay} is too small",
                     "use a /27 or larger: nodes start at host .11")
    dns_default = services.network_address + 10
    dns = parse_address(net.get("clusterDNS", str(dns_default)), net.where("clusterDNS"),
                        "network.clusterDNS", problems) or dns_default
    if dns not in services or dns in (services.network_address, services.broadcast_address):
        problems.add(net.where("clusterDNS"), f"network.clusterDNS {dns} is not a usable address "
                     f"of serviceCIDR {services}", "pick an address inside serviceCIDR")
    domain = get_str(net, "clusterDomain", "network", problems, default=default.cluster_domain)
    labels = (domain or "").rstrip(".").split(".")
    if domain is not None and len(domain.rstrip(".")) > 200:
        problems.add(net.where("clusterDomain"), f"network.clusterDomain {shown(domain)} is "
                     "longer than 200 characters", "names under it must fit in 253")
        domain = default.cluster_domain
    elif not domain or not all(check_dns_label(x, net.where("clusterDomain"),
                                               "clusterDomain part", problems) for x in labels):
        domain = default.cluster_domain
    vxlan = get_map(net, "vxlan", "network", problems)
    check_fields(vxlan, VXLAN_FIELDS, "network.vxlan", problems)
    node_ports = parse_port_range(net, "serviceNodePortRange", problems,
                                  default.node_port_range)
    return NetworkSpec(
        underlay_cidr=underlay,
        pod_cidr=pods,
        node_cidr_mask=mask,
        service_cidr=services,
        cluster_dns=dns,
        cluster_domain=domain.rstrip("."),
        vxlan_vni=get_int(vxlan, "vni", "network.vxlan", problems, 1, 1, 2**24 - 1),
        vxlan_port=get_int(vxlan, "port", "network.vxlan", problems, 8472, 1, 65535),
        mtu=get_int(net, "mtu", "network", problems, 1500, 1280, 9000),
        node_port_range=node_ports,
    )


def parse_port_range(net: Located, key: str, problems: Problems,
                     default: tuple[int, int]) -> tuple[int, int]:
    """kube-apiserver's --service-node-port-range: "A-B" (inclusive), "A+N" (A..A+N) or a
    single port "A" (utilnet.ParsePortRange); both ends in 1..65535."""
    value = net.get(key)
    if value is None:
        return default
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(
        value, bool) else ""
    match = PORT_RANGE.fullmatch(text)
    if match is None:
        problems.add(net.where(key), f"network.{key} {shown(value)} is not a port range",
                     'write it as kube-apiserver takes it: "30000-32767"')
        return default
    first = int(match.group(1))
    last = (first if match.group(2) is None else int(match.group(3)) if match.group(2) == "-"
            else first + int(match.group(3)))
    if not 1 <= first <= last <= 65535:
        problems.add(net.where(key), f"network.{key} {shown(value)} is not a range of ports "
                     "within 1-65535", "the first port must not be above the last")
        return default
    return first, last


def nodes_hint(network: NetworkSpec) -> str:
    if max_nodes(network) == MAX_NODES:
        return f"labnet's cap is {MAX_NODES} nodes: more would exhaust the machine"
    return "the pod CIDR and underlay fit that many nodes"


def parse_nodes(doc: Located, network: NetworkSpec, problems: Problems) -> list[NodeSpec]:
    raw = doc.get("nodes", 2)
    limit = max_nodes(network)
    nodes: list[NodeSpec] = []
    if isinstance(raw, int) and not isinstance(raw, bool):
        if not 1 <= raw <= limit:
            problems.add(doc.where("nodes"), f"nodes: {raw} is not between 1 and {limit}",
                         nodes_hint(network))
            return []
        return [NodeSpec(f"node{i}", where=doc.where("nodes")) for i in range(1, raw + 1)]
    if not isinstance(raw, list) or not raw:
        problems.add(doc.where("nodes"), "nodes must be a count or a non-empty list of names")
        return []
    if len(raw) > limit:
        problems.add(doc.where("nodes"), f"{len(raw)} nodes do not fit: podCIDR "
                     f"{network.pod_cidr} split into /{network.node_cidr_mask} slices and "
                     f"underlayCIDR {network.underlay_cidr} allow {limit}",
                     nodes_hint(network) if limit == MAX_NODES else
                     "widen podCIDR or underlayCIDR, or use fewer nodes")
        return []
    seen: dict[str, str] = {}
    for index, item in enumerate(raw):
        where = where_of(raw, index, doc.where("nodes"))
        if isinstance(item, Located):
            check_fields(item, NODE_FIELDS, "node", problems)
            name = get_str(item, "name", "node", problems, required=True)
            labels = check_labels(item.get("labels"), item, f"node {name} labels", problems)
            address = None
            if "address" in item:
                address = parse_address(item["address"], item.where("address"),
                                        f"node {name} address", problems)
                if address and (address not in network.underlay_cidr
                                or address in (network.underlay_cidr.network_address,
                                               network.underlay_cidr.broadcast_address)):
                    problems.add(item.where("address"), f"node {name} address {address} is not a "
                                 f"host of underlayCIDR {network.underlay_cidr}")
        else:
            name, labels, address = item, {}, None
        if not isinstance(name, str):
            if not isinstance(item, Located):
                problems.add(where, "each node must be a name or a mapping with name, not "
                             f"{type_name(item)}")
            continue
        if not check_dns_label(name, where, "node name", problems):
            continue
        if name in RESERVED_NODE_NAMES:
            problems.add(where, f"node name {name!r} is reserved for the lab's own namespaces",
                         "choose another name")
        if name in seen:
            problems.add(where, f"duplicate node name {name!r}", f"first at {seen[name]}")
            continue
        seen[name] = where
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **labels}
        nodes.append(NodeSpec(name, labels, address, where))
    used = {external_address(network): "the external host"}
    for index, node in enumerate(nodes, start=1):
        address = node_address(network, node, index)
        if address in used:
            problems.add(node.where, f"node {node.name}: underlay address {address} is already "
                         f"used by {used[address]}", "pick another address")
        used[address] = f"node {node.name}"
    return nodes


def check_workloads(work: Workloads, nodes: list[NodeSpec], problems: Problems) -> tuple[str, ...]:
    """Cross-object checks: duplicates, namespaces that exist, nodes that exist, and the caps on
    how many pods (and how much of them) a lab may hold."""
    namespaces = list(DEFAULT_NAMESPACES)
    for name, where in work.namespaces:
        if name in namespaces:
            if name not in DEFAULT_NAMESPACES:
                problems.add(where, f"duplicate Namespace {name!r}")
            continue
        namespaces.append(name)
    node_names = {n.name for n in nodes}
    builtin = work.builtin[0] if work.builtin else None
    seen: dict[str, str] = {}
    objects = [("Pod", p) for p in work.pods] + [("Deployment", d) for d in work.deployments]
    pods = plan_bytes = 0
    capped = False
    for kind, obj in objects:
        key = f"{kind} {obj.namespace}/{obj.name}"
        if obj is builtin:
            if key in seen:
                problems.add(seen[key], f"{key} is labnet's cluster DNS",
                             "give your Deployment another name, or say dns: {enabled: false}")
            continue
        if key in seen:
            problems.add(obj.where, f"duplicate {key}", f"first at {seen[key]}")
        seen[key] = obj.where
        if obj.namespace not in namespaces:
            problems.add(obj.where, f"{key}: namespace {obj.namespace!r} does not exist",
                         "add a v1 Namespace manifest for it")
        template = obj.template
        if template.node_name and template.node_name not in node_names:
            problems.add(obj.where, f"{key}: nodeName {template.node_name!r} is not a node of this "
                         f"lab", f"nodes are {', '.join(sorted(node_names))}")
        if template.node_selector and not template.node_name and not any(
                selects(template.node_selector, n.labels) for n in nodes):
            problems.add(obj.where, f"{key}: no node matches nodeSelector "
                         f"{template.node_selector}", "label a node in the lab file's nodes list")
        count = obj.replicas if kind == "Deployment" else 1
        pods += count
        plan_bytes += count * len(json.dumps(asdict(template), default=str))
        if capped:
            continue
        if pods > MAX_PODS:
            capped = True
            problems.add(obj.where, f"{key}: the lab's pods (bare pods and replicas) reach "
                         f"{pods}, more than {MAX_PODS}",
                         "labnet's cap: that many pods would exhaust the machine")
        elif plan_bytes > MAX_PLAN_POD_BYTES:
            capped = True
            problems.add(obj.where, f"{key}: the lab's pods (templates x replicas) reach "
                         f"{plan_bytes // (1024 * 1024)} MiB of plan, more than "
                         f"{MAX_PLAN_POD_BYTES // (1024 * 1024)} MiB",
                         "labnet's cap: shorten commands, labels or env, or use fewer replicas")
    return tuple(namespaces)


def check_capacity(work: Workloads, nodes: list[NodeSpec], network: NetworkSpec,
                   problems: Problems) -> None:
    """Whether every pod finds room, placed as the planner places them on a new lab: pods with
    a nodeName first, then in order, each on the eligible node with the fewest pods."""
    if not nodes:
        return
    room = pods_per_node(network)
    load = {n.name: 0 for n in nodes}
    index = {n.name: i for i, n in enumerate(nodes, start=1)}
    groups = [(p, 1, "Pod") for p in work.pods]
    groups += [(d, d.replicas, "Deployment") for d in work.deployments]
    groups.sort(key=lambda g: not g[0].template.node_name)  # stable: in order otherwise
    for obj, count, kind in groups:
        candidates = [n.name for n in nodes if obj.template.runs_on(n.name, n.labels)]
        for _ in range(count if candidates else 0):
            node = min(candidates, key=lambda n: load[n])
            if load[node] >= room:
                problems.add(obj.where, f"{kind} {obj.namespace}/{obj.name}: node {node} is "
                             f"full: its pod CIDR {node_pod_cidr(network, index[node])} holds "
                             f"{room} pods",
                             "use fewer pods, more nodes, or a shorter nodeCIDRMaskSize")
                break
            load[node] += 1


def check_service_capacity(work: Workloads, nodes: list[NodeSpec], network: NetworkSpec,
                           problems: Problems) -> None:
    """Whether the planner finds a ClusterIP, a LoadBalancer IP and node ports for every
    Service that needs one, and the endpoints stay under MAX_ENDPOINTS (counted from above:
    every selected pod on every port)."""
    cidr = network.service_cidr
    taken_ips = {network.cluster_dns} | {ipaddress.IPv4Address(s.cluster_ip)
                                         for s in work.services
                                         if s.cluster_ip not in ("", "None")}
    free_ips = cidr.num_addresses - 2 - len(taken_ips)
    node_ips = {node_address(network, n, i) for i, n in enumerate(nodes, start=1)}
    owners = {node_address(network, n, i): f"node {n.name}" for i, n in enumerate(nodes, 1)}
    owners[external_address(network)] = "the external host"
    first, last = load_balancer_pool(network.underlay_cidr)
    taken_lb = node_ips | {ipaddress.IPv4Address(s.load_balancer_ip) for s in work.services
                           if s.load_balancer_ip}
    taken_lb |= {ipaddress.IPv4Address(ip) for s in work.services
                 for ip, _mode in s.load_balancer_ingress}
    free_lb = last - first + 1 - sum(1 for ip in taken_lb if first <= int(ip) <= last)
    first_port, last_port = network.node_port_range
    ports_room = last_port - first_port + 1
    explicit: dict[str, set[int]] = {"TCP": set(), "UDP": set()}
    for svc in work.services:
        for port in svc.ports:
            if port.node_port:
                explicit[port.protocol].add(port.node_port)
        if svc.health_check_node_port:
            explicit["TCP"].add(svc.health_check_node_port)
    free_ports = {proto: ports_room - len(used) for proto, used in explicit.items()}
    weights: dict[str, list[tuple[dict[str, str], int]]] = {}
    for obj in [*work.pods, *work.deployments]:
        count = obj.replicas if isinstance(obj, DeploymentSpec) else 1
        weights.setdefault(obj.namespace, []).append((obj.template.labels, count))
    slices: dict[tuple[str, str], int] = {}
    for eps in work.endpoint_slices:
        size = sum(len(e.addresses) for e in eps.endpoints) * len(eps.ports)
        slices[(eps.namespace, eps.service)] = slices.get((eps.namespace, eps.service), 0) + size
    endpoints = 0
    for svc in work.services:
        key = f"Service {svc.key}"
        if svc.type != "ExternalName" and not svc.cluster_ip:
            free_ips -= 1
            if free_ips == -1:
                problems.add(svc.where, f"{key}: serviceCIDR {cidr} is full",
                             "widen serviceCIDR, or use fewer Services")
        lb_ip = ipaddress.IPv4Address(svc.load_balancer_ip) if svc.load_balancer_ip else None
        if lb_ip in owners:
            problems.add(svc.where, f"{key}: loadBalancerIP {lb_ip} is the underlay address of "
                         f"{owners[lb_ip]}", "pick another, or leave it out")
        elif (svc.type == "LoadBalancer" and not svc.load_balancer_ip
              and not svc.load_balancer_ingress):
            free_lb -= 1
            if free_lb == -1:
                problems.add(svc.where, f"{key}: the LoadBalancer pool (the top quarter of "
                             f"underlayCIDR {network.underlay_cidr}) is full",
                             "widen underlayCIDR, or use fewer LoadBalancer Services")
        wanted = [p.protocol for p in svc.ports if not p.node_port
                  and svc.type in ("NodePort", "LoadBalancer")]
        if (svc.type == "LoadBalancer" and svc.external_traffic_local
                and not svc.health_check_node_port):
            wanted.append("TCP")
        for protocol in wanted:
            free_ports[protocol] -= 1
            if free_ports[protocol] == -1:
                problems.add(svc.where, f"{key}: no {protocol} node port is left in "
                             f"{first_port}..{last_port}",
                             "use fewer NodePort and LoadBalancer ports")
        if svc.selector:
            selected = sum(count for labels, count in weights.get(svc.namespace, ())
                           if selects(svc.selector, labels))
            endpoints += selected * len(svc.ports)
        elif svc.selector is None:
            endpoints += slices.get((svc.namespace, svc.name), 0)
        if endpoints > MAX_ENDPOINTS:
            problems.add(svc.where, f"{key}: the lab's services reach up to {endpoints} "
                         f"endpoints (selected pods x ports), more than {MAX_ENDPOINTS}",
                         "labnet's cap: that many would exhaust the machine")
            endpoints = -(10**9)  # once


def check_services(work: Workloads, network: NetworkSpec, namespaces: tuple[str, ...],
                   problems: Problems) -> None:
    """Services against each other, the network and the pods they select."""
    # the built-in DNS holds the cluster DNS address; without it, any one Service may
    cluster_ips: dict[str, str] = ({str(network.cluster_dns): "the cluster DNS service"}
                                   if work.builtin else {})
    node_ports: dict[tuple[int, str], str] = {}
    seen: dict[str, str] = {}
    templates: dict[str, list[PodTemplate]] = {}
    for obj in [*work.pods, *work.deployments]:
        templates.setdefault(obj.namespace, []).append(obj.template)
    builtin = work.builtin[1] if work.builtin else None
    user_services = [svc for svc in work.services if svc is not builtin]
    if len(user_services) > MAX_SERVICES:
        problems.add(user_services[MAX_SERVICES].where, f"the lab holds {len(user_services)} "
                     f"Services, more than {MAX_SERVICES}",
                     "labnet's cap: that many would exhaust the machine")
    by_key = {}
    for svc in work.services:
        key = svc.key
        by_key[key] = svc
        if key in seen and svc is not builtin:
            problems.add(svc.where, f"duplicate Service {key}", f"first at {seen[key]}")
        if key == "kube-system/kube-dns" and builtin is not None and svc is not builtin:
            problems.add(svc.where, "Service kube-system/kube-dns is labnet's cluster DNS",
                         "give your Service another name, or say dns: {enabled: false}")
        seen[key] = svc.where
        if svc.namespace not in namespaces:
            problems.add(svc.where, f"Service {key}: namespace {svc.namespace!r} does not exist",
                         "add a v1 Namespace manifest for it")
        if svc.cluster_ip and not svc.headless:
            ip = ipaddress.IPv4Address(svc.cluster_ip)
            cidr = network.service_cidr
            if ip not in cidr or ip in (cidr.network_address, cidr.broadcast_address):
                problems.add(svc.where, f"Service {key}: clusterIP {ip} is not a usable address "
                             f"of serviceCIDR {cidr}", "pick one inside it, or leave it out")
            elif svc.cluster_ip in cluster_ips and svc is not builtin:
                problems.add(svc.where, f"Service {key}: clusterIP {ip} is already taken by "
                             f"{cluster_ips[svc.cluster_ip]}", "pick another, or leave it out")
            cluster_ips[svc.cluster_ip] = f"Service {key}"
        selected = None
        for port in svc.ports:
            if port.node_port:
                taken = node_ports.get((port.node_port, port.protocol))
                if taken:
                    problems.add(svc.where, f"Service {key}: nodePort {port.node_port}/"
                                 f"{port.protocol} is already taken by {taken}",
                                 "pick another, or leave it out")
                node_ports[(port.node_port, port.protocol)] = f"Service {key}"
            if isinstance(port.target_port, str) and svc.selector:
                if selected is None:  # once per Service, not per port
                    selected = [t for t in templates.get(svc.namespace, ())
                                if selects(svc.selector, t.labels)]
                declared = {p.name for t in selected for c in t.containers for p in c.ports
                            if p.protocol == port.protocol}
                if selected and port.target_port not in declared:
                    problems.add(svc.where, f"Service {key}: targetPort {port.target_port!r} is "
                                 "not a containerPort name of any pod it selects",
                                 "name the port in the pod's containers, or use a number")
    for eps in work.endpoint_slices:
        target = by_key.get(f"{eps.namespace}/{eps.service}")
        if eps.service and target is None:
            problems.add(eps.where, f"EndpointSlice {eps.namespace}/{eps.name}: no Service "
                         f"{eps.service!r} in namespace {eps.namespace}")
        elif target is not None and target.selector is not None:
            problems.add(eps.where, f"EndpointSlice {eps.namespace}/{eps.name}: Service "
                         f"{eps.service} has a selector, so its endpoints come from its pods",
                         "remove the selector to give endpoints by hand")
