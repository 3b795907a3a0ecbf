"""v1 Service and discovery.k8s.io/v1 EndpointSlice manifests into the labnet model."""

from __future__ import annotations

import ipaddress

from labnet.checks import (
    IANA_SVC_NAME,
    Problems,
    check_dns_label,
    check_fields,
    check_labels,
    get_int,
    get_list,
    get_map,
    get_str,
    read_port,
)
from labnet.model import EndpointSliceSpec, ServicePortSpec, ServiceSpec, SliceEndpoint
from labnet.yamlsrc import Located

SERVICE_SPEC_FIELDS = {
    "allocateLoadBalancerNodePorts", "clusterIP", "clusterIPs", "externalIPs", "externalName",
    "externalTrafficPolicy", "healthCheckNodePort", "internalTrafficPolicy", "ipFamilies",
    "ipFamilyPolicy", "loadBalancerClass", "loadBalancerIP", "loadBalancerSourceRanges", "ports",
    "publishNotReadyAddresses", "selector", "sessionAffinity", "sessionAffinityConfig",
    "trafficDistribution", "type",
}
SERVICE_PORT_FIELDS = {"appProtocol", "name", "nodePort", "port", "protocol", "targetPort"}
SLICE_FIELDS = {"apiVersion", "kind", "metadata", "addressType", "endpoints", "ports"}
SLICE_ENDPOINT_FIELDS = {"addresses", "conditions", "deprecatedTopology", "hints", "hostname",
                         "nodeName", "targetRef", "zone"}
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
NODE_PORT_RANGE = (30000, 32767)
DEFAULT_AFFINITY_TIMEOUT = 10800


def parse_service(spec: Located, namespace: str, name: str, where: str,
                  problems: Problems) -> ServiceSpec | None:
    what = f"Service {name}"
    check_fields(spec, SERVICE_SPEC_FIELDS, f"{what} spec", problems)
    kind = get_str(spec, "type", what, problems, default="ClusterIP")
    if kind not in SERVICE_TYPES:
        problems.add(spec.where("type"), f"{what}: unknown type {kind!r}",
                     f"use one of {', '.join(SERVICE_TYPES)}")
        return None
    cluster_ip = get_str(spec, "clusterIP", what, problems, default="") or ""
    if cluster_ip and cluster_ip != "None":
        try:
            ipaddress.IPv4Address(cluster_ip)
        except ValueError:
            problems.add(spec.where("clusterIP"), f"{what}: clusterIP {cluster_ip!r} is not an "
                         "IPv4 address", "give an address of serviceCIDR, None, or leave it out")
            cluster_ip = ""
    if cluster_ip == "None" and kind in ("NodePort", "LoadBalancer"):
        problems.add(spec.where("clusterIP"), f"{what}: a headless service (clusterIP: None) "
                     f"cannot be of type {kind}")
    selector = None
    if spec.get("selector") is not None:
        selector = check_labels(spec.get("selector"), spec, f"{what} selector", problems)
    ports = parse_service_ports(spec, kind, what, problems)
    if not ports and kind != "ExternalName" and cluster_ip != "None":
        problems.add(spec.where(), f"{what} has no ports", "a ClusterIP service needs ports")
    affinity = get_str(spec, "sessionAffinity", what, problems, default="None")
    timeout = 0
    if affinity == "ClientIP":
        config = get_map(get_map(spec, "sessionAffinityConfig", what, problems), "clientIP",
                         f"{what} sessionAffinityConfig", problems)
        timeout = get_int(config, "timeoutSeconds", f"{what} sessionAffinityConfig.clientIP",
                          problems, DEFAULT_AFFINITY_TIMEOUT, 1, 86400)
    elif affinity != "None":
        problems.add(spec.where("sessionAffinity"), f"{what}: sessionAffinity {affinity!r} is "
                     "not None or ClientIP")
    policies = {}
    for key in ("externalTrafficPolicy", "internalTrafficPolicy"):
        value = get_str(spec, key, what, problems, default="Cluster")
        if value not in ("Cluster", "Local"):
            problems.add(spec.where(key), f"{what}: {key} {value!r} is not Cluster or Local")
        policies[key] = value == "Local"
    external_ips = []
    for index, ip in enumerate(get_list(spec, "externalIPs", what, problems)):
        try:
            external_ips.append(str(ipaddress.IPv4Address(str(ip).strip())))
        except ValueError:
            problems.add(spec["externalIPs"].where(index),
                         f"{what}: externalIPs entry {ip!r} is not an IPv4 address")
    ranges = []
    for index, cidr in enumerate(get_list(spec, "loadBalancerSourceRanges", what, problems)):
        try:  # Kubernetes trims whitespace here, for backward compatibility
            ranges.append(str(ipaddress.IPv4Network(str(cidr).strip(), strict=False)))
        except ValueError:
            problems.add(spec["loadBalancerSourceRanges"].where(index),
                         f"{what}: loadBalancerSourceRanges entry {cidr!r} is not a CIDR")
    lb_ip = get_str(spec, "loadBalancerIP", what, problems, default="") or ""
    if lb_ip and kind != "LoadBalancer":
        problems.add(spec.where("loadBalancerIP"), f"{what}: loadBalancerIP needs type "
                     "LoadBalancer")
    health = get_int(spec, "healthCheckNodePort", what, problems, 0, *NODE_PORT_RANGE)
    if health and not (kind == "LoadBalancer" and policies["externalTrafficPolicy"]):
        problems.add(spec.where("healthCheckNodePort"), f"{what}: healthCheckNodePort needs type "
                     "LoadBalancer with externalTrafficPolicy Local")
    external_name = get_str(spec, "externalName", what, problems, default="") or ""
    if kind == "ExternalName" and not external_name:
        problems.add(spec.where(), f"{what}: type ExternalName needs externalName")
    publish = spec.get("publishNotReadyAddresses") is True
    return ServiceSpec(
        namespace=namespace, name=name, type=kind, selector=selector, ports=tuple(ports),
        cluster_ip=cluster_ip, external_ips=tuple(external_ips), load_balancer_ip=lb_ip,
        load_balancer_source_ranges=tuple(ranges), session_affinity_timeout=timeout,
        external_traffic_local=policies["externalTrafficPolicy"],
        internal_traffic_local=policies["internalTrafficPolicy"],
        health_check_node_port=health or 0, external_name=external_name,
        publish_not_ready=publish, where=where,
    )


def parse_service_ports(spec: Located, kind: str, what: str,
                        problems: Problems) -> list[ServicePortSpec]:
    ports: list[ServicePortSpec] = []
    seen: dict[tuple[int, str], str] = {}
    names: set[str] = set()
    items = get_list(spec, "ports", what, problems)
    for index, item in enumerate(items):
        where = spec["ports"].where(index)
        read = read_port(item, where, "port", SERVICE_PORT_FIELDS, what, problems,
                         "labnet services carry TCP and UDP")
        if read is None:
            continue
        number, protocol = read
        name = get_str(item, "name", f"{what} port", problems, default="") or ""
        if name:
            check_dns_label(name, item.where("name"), f"{what} port name", problems)
        elif len(items) > 1:
            problems.add(where, f"{what}: every port needs a name when there are several")
        if name in names and name:
            problems.add(item.where("name"), f"{what}: duplicate port name {name!r}")
        names.add(name)
        if (number, protocol) in seen:
            problems.add(where, f"{what}: duplicate port {number}/{protocol}",
                         f"first at {seen[(number, protocol)]}")
        seen[(number, protocol)] = where
        target = item.get("targetPort", number)
        if isinstance(target, bool) or not isinstance(target, (int, str)):
            problems.add(item.where("targetPort"), f"{what}: targetPort must be a number or a "
                         "port name")
            target = number
        elif isinstance(target, str) and target.isdigit():
            target = int(target)
        if isinstance(target, int) and not 1 <= target <= 65535:
            problems.add(item.where("targetPort"), f"{what}: targetPort {target} is outside "
                         "1..65535")
        if isinstance(target, str) and (len(target) > 15 or not IANA_SVC_NAME.match(target)):
            problems.add(item.where("targetPort"), f"{what}: targetPort {target!r} is not a "
                         "valid port name")
        node_port = get_int(item, "nodePort", f"{what} port", problems, 0, *NODE_PORT_RANGE)
        if node_port and kind not in ("NodePort", "LoadBalancer"):
            problems.add(item.where("nodePort"), f"{what}: nodePort needs type NodePort or "
                         "LoadBalancer")
        ports.append(ServicePortSpec(number, protocol, name, target, node_port or 0))
    return ports


def parse_endpoint_slice(obj: Located, meta: Located, namespace: str, name: str,
                         labels: dict[str, str], problems: Problems) -> EndpointSliceSpec | None:
    what = f"EndpointSlice {name}"
    check_fields(obj, SLICE_FIELDS, what, problems)
    service = labels.get("kubernetes.io/service-name", "")
    if not service:
        problems.add(meta.where(), f"{what} has no kubernetes.io/service-name label",
                     "label it with the name of its Service")
    family = get_str(obj, "addressType", what, problems, default="IPv4")
    if family != "IPv4":
        problems.add(obj.where("addressType"), f"{what}: addressType {family!r} is not "
                     "supported", "labnet is IPv4 only")
        return None
    endpoints = []
    for index, item in enumerate(get_list(obj, "endpoints", what, problems)):
        where = obj["endpoints"].where(index)
        if not isinstance(item, Located):
            problems.add(where, f"{what}: each endpoint must be a mapping with addresses")
            continue
        check_fields(item, SLICE_ENDPOINT_FIELDS, f"{what} endpoint", problems)
        addresses = []
        for address in get_list(item, "addresses", f"{what} endpoint", problems):
            try:  # canonical form, as kube-proxy's ParseIPSloppy gives (10.0.00.1 is 10.0.0.1)
                addresses.append(str(ipaddress.IPv4Address(
                    ".".join(str(int(x)) for x in str(address).split(".")))))
            except ValueError:
                problems.add(where, f"{what}: {address!r} is not an IPv4 address")
        if not addresses:
            problems.add(where, f"{what}: an endpoint needs addresses")
            continue
        cond = get_map(item, "conditions", f"{what} endpoint", problems)
        check_fields(cond, {"ready", "serving", "terminating"}, f"{what} conditions", problems)
        ready = cond.get("ready") is not False
        serving = cond.get("serving", ready) is not False
        endpoints.append(SliceEndpoint(
            tuple(addresses), get_str(item, "nodeName", what, problems, default="") or "",
            ready, serving, cond.get("terminating") is True,
            get_str(item, "hostname", what, problems, default="") or "",
        ))
    ports = []
    for index, item in enumerate(get_list(obj, "ports", what, problems)):
        if not isinstance(item, Located):
            problems.add(obj["ports"].where(index), f"{what}: each port must be a mapping")
            continue
        check_fields(item, {"appProtocol", "name", "port", "protocol"}, f"{what} port", problems)
        number = get_int(item, "port", f"{what} port", problems, None, 1, 65535)
        protocol = get_str(item, "protocol", f"{what} port", problems, default="TCP")
        if number is None:
            problems.add(obj["ports"].where(index), f"{what}: a port needs port")
            continue
        ports.append((get_str(item, "name", what, problems, default="") or "", protocol, number))
    return EndpointSliceSpec(namespace, name, service, tuple(endpoints), tuple(ports),
                             obj.where())
