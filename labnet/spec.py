"""The lab file: parse, fill in defaults, validate everything, and return a LabSpec.

Every problem is collected and reported together, each as `file:line: what is wrong (what to do)`,
before anything is built.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from importlib import resources
from pathlib import Path

from labnet.checks import (
    Problems,
    check_dns_label,
    check_fields,
    check_labels,
    get_int,
    get_list,
    get_map,
    get_str,
    parse_address,
    parse_network,
)
from labnet.errors import SpecError
from labnet.manifests import Workloads, parse_manifest
from labnet.model import (
    DEFAULT_NAMESPACES,
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
)
from labnet.names import lab_name_problem
from labnet.yamlsrc import Located, load_documents, load_file, where_of

LAB_FIELDS = {"name", "network", "nodes", "manifests", "manifestFiles", "dns", "hosts"}
HOST_FIELDS = {"name", "nodes", "interface", "address"}
DNS_FIELDS = {"ttl", "upstream"}
BUILTIN_DNS = "<built-in cluster DNS>"
NETWORK_FIELDS = {
    "underlayCIDR", "podCIDR", "nodeCIDRMaskSize", "serviceCIDR", "clusterDNS", "clusterDomain",
    "vxlan", "mtu",
}
VXLAN_FIELDS = {"vni", "port"}
NODE_FIELDS = {"name", "labels", "address"}
RESERVED_NODE_NAMES = {"underlay", "external"}
FIRST_NODE_HOST = 11  # nodes are .11, .12, … on the underlay, as in the article


def default_lab_text() -> str:
    return resources.files("labnet").joinpath("data/seed.yaml").read_text(encoding="utf-8")


def load_default() -> LabSpec:
    return parse_lab_text(default_lab_text(), "<default lab: examples/seed.yaml>", Path.cwd())


def load_lab(path: str | Path | None) -> LabSpec:
    """The lab file at `path`, or the built-in default lab when `path` is None."""
    if path is None:
        return load_default()
    path = Path(path)
    if path.is_dir():
        raise SpecError(str(path), "is a directory, not a lab file", "give the lab's YAML file")
    text_docs = load_file(path, "lab file")
    return parse_lab_docs(text_docs, str(path), path.parent)


def parse_lab_text(text: str, source: str, base: Path) -> LabSpec:
    return parse_lab_docs(load_documents(text, source), source, base)


def parse_lab_docs(docs: list, source: str, base: Path) -> LabSpec:
    doc = lab_root(docs, source)
    problems = Problems()
    objects = lab_objects(doc, base, problems)
    return parse_lab(doc, objects, source, problems)


def lab_root(docs: list, source: str) -> Located:
    if len(docs) != 1 or not isinstance(docs[0], Located):
        raise SpecError(source, "a lab file must hold exactly one YAML mapping",
                        "see examples/seed.yaml")
    return docs[0]


def lab_objects(doc: Located, base: Path, problems: Problems) -> list:
    """Every manifest the lab file gives, inline and from manifestFiles, in order."""
    objects = list(get_list(doc, "manifests", "the lab", problems))
    for index, item in enumerate(get_list(doc, "manifestFiles", "the lab", problems)):
        where = doc["manifestFiles"].where(index)
        if not isinstance(item, str):
            problems.add(where, "manifestFiles entries must be paths (strings)")
            continue
        try:
            for path in manifest_paths(base / item, where):
                objects += load_file(path, "manifest file")
        except SpecError as exc:
            problems.extend(exc)
    return objects


def parse_lab(doc: Located, objects: list, source: str, problems: Problems | None = None,
              generations: dict[str, int] | None = None) -> LabSpec:
    """The lab's settings (`doc`: name, network, nodes, dns) with these manifests."""
    problems = problems or Problems()
    check_fields(doc, LAB_FIELDS, "the lab file", problems)
    name = get_str(doc, "name", "the lab", problems, required=True) or "lab"
    if (problem := lab_name_problem(name)) is not None:
        problems.add(doc.where("name"), problem)
    network = parse_network_section(get_map(doc, "network", "the lab", problems), problems)
    network = parse_dns_section(get_map(doc, "dns", "the lab", problems), network, problems)
    nodes = parse_nodes(doc, network, problems)
    hosts = parse_hosts(doc, nodes, problems)
    workloads = Workloads()
    for item in objects:
        parse_manifest(item, where_of(item, fallback=source), workloads, problems)
    add_cluster_dns(workloads, network)
    namespaces = check_workloads(workloads, nodes, problems)
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
    for index, item in enumerate(get_list(doc, "hosts", "the lab", problems)):
        where = doc["hosts"].where(index)
        if not isinstance(item, Located):
            problems.add(where, "each host must be a mapping with name and nodes")
            continue
        check_fields(item, HOST_FIELDS, "host", problems)
        name = get_str(item, "name", "host", problems, required=True) or "?"
        check_dns_label(name, item.where("name"), "host name", problems)
        carried = [str(n) for n in get_list(item, "nodes", f"host {name}", problems)]
        for node in carried:
            if node in owner:
                problems.add(item.where("nodes"), f"node {node} is on hosts {owner[node]} and "
                             f"{name}", "a node lives on one host")
            owner[node] = name
        address = ""
        if "address" in item:
            ip = parse_address(item["address"], item.where("address"), f"host {name} address",
                               problems)
            address = str(ip) if ip else ""
        hosts.append(HostSpec(name, tuple(carried),
                              get_str(item, "interface", f"host {name}", problems,
                                      default="eth0") or "eth0", address))
    if hosts:
        known = {n.name for n in nodes}
        for node in sorted(set(owner) - known):
            problems.add(doc.where("hosts"), f"hosts name node {node!r}, which is not a node of "
                         "this lab", f"nodes are {', '.join(sorted(known))}")
        for node in sorted(known - set(owner)):
            problems.add(doc.where("hosts"), f"node {node} is on no host",
                         "list every node under one of the hosts")
    return hosts


def parse_dns_section(dns: Located, network: NetworkSpec, problems: Problems) -> NetworkSpec:
    check_fields(dns, DNS_FIELDS, "dns", problems)
    ttl = get_int(dns, "ttl", "dns", problems, network.dns_ttl, 0, 3600)
    upstream = []
    for index, ip in enumerate(get_list(dns, "upstream", "dns", problems)):
        address = parse_address(ip, dns["upstream"].where(index), "dns.upstream entry",
                                problems)
        if address is not None:
            upstream.append(str(address))
    return replace(network, dns_ttl=ttl, dns_upstream=tuple(upstream))


def add_cluster_dns(work: Workloads, network: NetworkSpec) -> None:
    """Every lab has kube-system/kube-dns at the cluster DNS IP, in front of a DNS pod labelled
    as CoreDNS's is (k8s-app: kube-dns), with CoreDNS's ports (reference §8, kubeadm)."""
    labels = {"k8s-app": "kube-dns"}
    ports = (ContainerPort(53, "UDP", "dns"), ContainerPort(53, "TCP", "dns-tcp"),
             ContainerPort(9153, "TCP", "metrics"))
    container = ContainerSpec("coredns", "labnet/dns (dnslib)", ports=ports, server="dns")
    work.deployments.append(DeploymentSpec(
        "kube-system", "coredns", 1, LabelSelector(dict(labels)),
        PodTemplate(dict(labels), (container,)), where=BUILTIN_DNS))
    work.services.append(ServiceSpec(
        "kube-system", "kube-dns", selector=dict(labels),
        ports=(ServicePortSpec(53, "UDP", "dns", 53), ServicePortSpec(53, "TCP", "dns-tcp", 53),
               ServicePortSpec(9153, "TCP", "metrics", 9153)),
        cluster_ip=str(network.cluster_dns), where=BUILTIN_DNS))


def manifest_paths(path: Path, where: str) -> list[Path]:
    """A manifest file, or every *.yaml/*.yml of a directory in name order."""
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        if not found:
            raise SpecError(where, f"directory {path} holds no .yaml or .yml files")
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
    mask = get_int(net, "nodeCIDRMaskSize", "network", problems, default.node_cidr_mask, 8, 28)
    if mask < pods.prefixlen:
        problems.add(net.where("nodeCIDRMaskSize"), f"network.nodeCIDRMaskSize /{mask} is larger "
                     f"than podCIDR {pods}", "each node gets a slice of podCIDR: use a longer mask")
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
    if not domain or not all(check_dns_label(x, net.where("clusterDomain"),
                                             "clusterDomain part", problems) for x in labels):
        domain = default.cluster_domain
    vxlan = get_map(net, "vxlan", "network", problems)
    check_fields(vxlan, VXLAN_FIELDS, "network.vxlan", problems)
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
    )


def load_balancer_pool(underlay: ipaddress.IPv4Network) -> tuple[int, int]:
    """LoadBalancer addresses (as ints, inclusive): the top quarter of the underlay, below the
    external host (the broadcast address - 1)."""
    base = int(underlay.network_address)
    return base + underlay.num_addresses * 3 // 4, int(underlay.broadcast_address) - 2


def max_nodes(network: NetworkSpec) -> int:
    """Node i (1-based) gets the i-th node-sized slice of podCIDR and host .10+i on the underlay,
    below the LoadBalancer pool."""
    by_pods = 2 ** (network.node_cidr_mask - network.pod_cidr.prefixlen) - 1
    pool_start, _ = load_balancer_pool(network.underlay_cidr)
    by_underlay = pool_start - int(network.underlay_cidr.network_address) - FIRST_NODE_HOST
    return max(0, min(by_pods, by_underlay))


def parse_nodes(doc: Located, network: NetworkSpec, problems: Problems) -> list[NodeSpec]:
    raw = doc.get("nodes", 2)
    limit = max_nodes(network)
    nodes: list[NodeSpec] = []
    if isinstance(raw, int) and not isinstance(raw, bool):
        if not 1 <= raw <= limit:
            problems.add(doc.where("nodes"), f"nodes: {raw} is not between 1 and {limit}",
                         "the pod CIDR and underlay fit that many nodes")
            return []
        return [NodeSpec(f"node{i}", where=doc.where("nodes")) for i in range(1, raw + 1)]
    if not isinstance(raw, list) or not raw:
        problems.add(doc.where("nodes"), "nodes must be a count or a non-empty list of names")
        return []
    seen: dict[str, str] = {}
    for index, item in enumerate(raw):
        where = raw.where(index)
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
        if not isinstance(name, str) or not check_dns_label(name, where, "node name", problems):
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
    if len(nodes) > limit:
        problems.add(doc.where("nodes"), f"{len(nodes)} nodes do not fit: podCIDR "
                     f"{network.pod_cidr} split into /{network.node_cidr_mask} slices and "
                     f"underlayCIDR {network.underlay_cidr} allow {limit}",
                     "widen podCIDR or underlayCIDR, or use fewer nodes")
    return nodes


def check_workloads(work: Workloads, nodes: list[NodeSpec], problems: Problems) -> tuple[str, ...]:
    """Cross-object checks: duplicates, namespaces that exist, nodes that exist."""
    namespaces = list(DEFAULT_NAMESPACES)
    for name, where in work.namespaces:
        if name in namespaces:
            if name not in DEFAULT_NAMESPACES:
                problems.add(where, f"duplicate Namespace {name!r}")
            continue
        namespaces.append(name)
    node_names = {n.name for n in nodes}
    seen: dict[str, str] = {}
    objects = [("Pod", p) for p in work.pods] + [("Deployment", d) for d in work.deployments]
    for kind, obj in objects:
        key = f"{kind} {obj.namespace}/{obj.name}"
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
                all(n.labels.get(k) == v for k, v in template.node_selector.items())
                for n in nodes):
            problems.add(obj.where, f"{key}: no node matches nodeSelector "
                         f"{template.node_selector}", "label a node in the lab file's nodes list")
    return tuple(namespaces)


def check_services(work: Workloads, network: NetworkSpec, namespaces: tuple[str, ...],
                   problems: Problems) -> None:
    """Services against each other, the network and the pods they select."""
    cluster_ips: dict[str, str] = {str(network.cluster_dns): "the cluster DNS service"}
    node_ports: dict[tuple[int, str], str] = {}
    seen: dict[str, str] = {}
    templates = [(p.namespace, p.template) for p in work.pods]
    templates += [(d.namespace, d.template) for d in work.deployments]
    by_key = {}
    for svc in work.services:
        key = svc.key
        by_key[key] = svc
        if key in seen:
            problems.add(svc.where, f"duplicate Service {key}", f"first at {seen[key]}")
        if key == "kube-system/kube-dns" and svc.where != BUILTIN_DNS:
            problems.add(svc.where, "Service kube-system/kube-dns is labnet's cluster DNS",
                         "every lab has it: give your Service another name")
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
            elif svc.cluster_ip in cluster_ips and svc.where != BUILTIN_DNS:
                problems.add(svc.where, f"Service {key}: clusterIP {ip} is already taken by "
                             f"{cluster_ips[svc.cluster_ip]}", "pick another, or leave it out")
            cluster_ips[svc.cluster_ip] = f"Service {key}"
        for port in svc.ports:
            if port.node_port:
                taken = node_ports.get((port.node_port, port.protocol))
                if taken:
                    problems.add(svc.where, f"Service {key}: nodePort {port.node_port}/"
                                 f"{port.protocol} is already taken by {taken}",
                                 "pick another, or leave it out")
                node_ports[(port.node_port, port.protocol)] = f"Service {key}"
            if isinstance(port.target_port, str) and svc.selector:
                selected = [t for ns, t in templates if ns == svc.namespace
                            and all(t.labels.get(k) == v for k, v in svc.selector.items())]
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
