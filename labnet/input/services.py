"""v1 Service and discovery.k8s.io/v1 EndpointSlice manifests into the labnet model.

Checked as the API server checks them (ValidateService, ValidateEndpointSlice): addresses that
are valid and not special, DNS names, port names and numbers, fields that only some types take.
labnet is IPv4 only, so dual-stack settings that need IPv6 are refused.
"""

from __future__ import annotations

from labnet.errors import Problems
from labnet.input.checks import (
    PortList,
    check_dns_label,
    check_dns_subdomain,
    check_fields,
    check_labels,
    get_bool,
    get_int,
    get_list,
    get_map,
    get_str,
    parse_address,
    parse_cidr,
    parse_ipv4,
    port_name_problem,
    qualified_name_problem,
    read_port,
    shown,
    special_ip_problem,
    type_name,
)
from labnet.input.yamlsrc import Located, where_of
from labnet.model import (
    MAX_PORTS,
    MAX_SLICE_ADDRESSES,
    MAX_SLICE_ENDPOINTS,
    MAX_SLICE_PORTS,
    NODE_PORT_RANGE,
    EndpointSliceSpec,
    ServicePortSpec,
    ServiceSpec,
    SliceEndpoint,
)

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
IP_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
DEFAULT_AFFINITY_TIMEOUT = 10800


def parse_cluster_ip(spec: Located, kind: str, what: str, problems: Problems) -> str:
    """clusterIP and clusterIPs (which must agree): "" to allocate, "None" for headless, or an
    IPv4 address (checked against serviceCIDR later)."""
    cluster_ip = get_str(spec, "clusterIP", what, problems, default="") or ""
    listed = get_list(spec, "clusterIPs", what, problems)
    if listed and not all(isinstance(ip, str) for ip in listed):
        problems.add(spec.where("clusterIPs"), f"{what}: clusterIPs must be a list of strings")
        listed = []
    if len(listed) > 1:
        problems.add(spec.where("clusterIPs"), f"{what}: clusterIPs holds {len(listed)} "
                     "addresses", "labnet is IPv4 only: give one")
    elif listed and cluster_ip and listed[0] != cluster_ip:
        problems.add(spec.where("clusterIPs"), f"{what}: clusterIPs[0] {shown(listed[0])} is "
                     f"not clusterIP {shown(cluster_ip)}", "they must agree, or give one")
    elif listed:
        cluster_ip = listed[0]
    key = "clusterIP" if "clusterIP" in spec else "clusterIPs"
    if kind == "ExternalName" and cluster_ip:
        problems.add(spec.where(key), f"{what}: {key} may not be set for ExternalName services")
        return ""
    # legacy forms (leading zeros) are what the API server still takes in these fields
    # (IsValidIPForLegacyField); kube-proxy reads them sloppily and writes the canonical form
    if cluster_ip and cluster_ip != "None" and parse_ipv4(cluster_ip, sloppy=True) is None:
        problems.add(spec.where(key), f"{what}: clusterIP {shown(cluster_ip)} is not an "
                     "IPv4 address", "give an address of serviceCIDR, None, or leave it out")
        return ""
    if cluster_ip == "None" and kind in ("NodePort", "LoadBalancer"):
        problems.add(spec.where(key), f"{what}: a headless service (clusterIP: None) "
                     f"cannot be of type {kind}")
    return (str(parse_ipv4(cluster_ip, sloppy=True)) if cluster_ip not in ("", "None")
            else cluster_ip)


def check_ip_families(spec: Located, what: str, problems: Problems) -> None:
    families = get_list(spec, "ipFamilies", what, problems)
    if any(family != "IPv4" for family in families) or len(families) > 1:
        problems.add(spec.where("ipFamilies"), f"{what}: ipFamilies {shown(list(families))} "
                     "is not [IPv4]", "labnet is IPv4 only")
    policy = get_str(spec, "ipFamilyPolicy", what, problems)
    if policy is not None and policy not in IP_FAMILY_POLICIES:
        problems.add(spec.where("ipFamilyPolicy"), f"{what}: ipFamilyPolicy {shown(policy)} is "
                     f"not one of {', '.join(IP_FAMILY_POLICIES)}")
    elif policy == "RequireDualStack":
        problems.add(spec.where("ipFamilyPolicy"), f"{what}: ipFamilyPolicy RequireDualStack "
                     "needs IPv6", "labnet is IPv4 only: use SingleStack or PreferDualStack")


def parse_service(spec: Located, namespace: str, name: str, where: str, problems: Problems,
                  node_ports: tuple[int, int] = NODE_PORT_RANGE,
                  status: Located | None = None) -> ServiceSpec | None:
    what = f"Service {name}"
    check_fields(spec, SERVICE_SPEC_FIELDS, f"{what} spec", problems)
    kind = get_str(spec, "type", what, problems, default="ClusterIP")
    if kind not in SERVICE_TYPES:
        if kind is not None:
            problems.add(spec.where("type"), f"{what}: unknown type {shown(kind)}",
                         f"use one of {', '.join(SERVICE_TYPES)}")
        return None
    cluster_ip = parse_cluster_ip(spec, kind, what, problems)
    check_ip_families(spec, what, problems)
    selector = None
    if spec.get("selector") is not None:
        selector = check_labels(spec.get("selector"), spec, f"{what} selector", problems)
    ports = parse_service_ports(spec, kind, cluster_ip == "None", what, problems, node_ports)
    if not spec.get("ports") and kind != "ExternalName" and cluster_ip != "None":
        problems.add(spec.where("ports"), f"{what} has no ports",
                     "a ClusterIP service needs ports")
    affinity = get_str(spec, "sessionAffinity", what, problems, default="None")
    timeout = 0
    if affinity == "ClientIP":
        config = get_map(get_map(spec, "sessionAffinityConfig", what, problems), "clientIP",
                         f"{what} sessionAffinityConfig", problems)
        timeout = get_int(config, "timeoutSeconds", f"{what} sessionAffinityConfig.clientIP",
                          problems, DEFAULT_AFFINITY_TIMEOUT, 1, 86400)
    elif affinity != "None":
        problems.add(spec.where("sessionAffinity"), f"{what}: sessionAffinity "
                     f"{shown(affinity)} is not None or ClientIP")
    elif spec.get("sessionAffinityConfig") is not None:
        problems.add(spec.where("sessionAffinityConfig"), f"{what}: sessionAffinityConfig "
                     "needs sessionAffinity ClientIP")
    external_ips = []
    listed = get_list(spec, "externalIPs", what, problems)
    for index, ip in enumerate(listed):
        address = parse_address(ip, where_of(listed, index, spec.where("externalIPs")),
                                f"{what}: externalIPs entry", problems, unicast=True,
                                sloppy=True)
        if address is not None:
            external_ips.append(str(address))
    policies = {}
    for key in ("externalTrafficPolicy", "internalTrafficPolicy"):
        value = get_str(spec, key, what, problems)
        if value not in ("Cluster", "Local", None):
            problems.add(spec.where(key), f"{what}: {key} {shown(value)} is not Cluster or "
                         "Local")
        policies[key] = value == "Local"
    if (spec.get("externalTrafficPolicy") is not None and kind in ("ClusterIP", "ExternalName")
            and not external_ips):
        problems.add(spec.where("externalTrafficPolicy"), f"{what}: externalTrafficPolicy may "
                     "only be set for externally-accessible services",
                     "type NodePort or LoadBalancer, or externalIPs")
    ranges = []
    listed = get_list(spec, "loadBalancerSourceRanges", what, problems)
    if listed and kind != "LoadBalancer":
        problems.add(spec.where("loadBalancerSourceRanges"), f"{what}: "
                     "loadBalancerSourceRanges may only be used with type LoadBalancer")
    for index, cidr in enumerate(listed):
        try:  # the API server trims white space here, and takes host bits (ParseCIDRSloppy)
            ranges.append(str(parse_cidr(cidr.strip() if isinstance(cidr, str) else cidr,
                                         strict=False, sloppy=True)))
        except ValueError as exc:
            problems.add(where_of(listed, index, spec.where("loadBalancerSourceRanges")),
                         f"{what}: loadBalancerSourceRanges entry {shown(cidr)} is not a CIDR: "
                         f"{exc}")
    lb_ip = ""
    if spec.get("loadBalancerIP") not in (None, ""):
        if kind != "LoadBalancer":
            problems.add(spec.where("loadBalancerIP"), f"{what}: loadBalancerIP needs type "
                         "LoadBalancer")
        address = parse_address(spec["loadBalancerIP"], spec.where("loadBalancerIP"),
                                f"{what}: loadBalancerIP", problems, unicast=True, sloppy=True)
        lb_ip = str(address) if address else ""
    if kind == "LoadBalancer":
        get_bool(spec, "allocateLoadBalancerNodePorts", what, problems)
    for key in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
        if spec.get(key) is not None and kind != "LoadBalancer":
            problems.add(spec.where(key), f"{what}: {key} may only be used with type "
                         "LoadBalancer")
    health = get_int(spec, "healthCheckNodePort", what, problems, 0, *node_ports)
    if health and not (kind == "LoadBalancer" and policies["externalTrafficPolicy"]):
        problems.add(spec.where("healthCheckNodePort"), f"{what}: healthCheckNodePort needs type "
                     "LoadBalancer with externalTrafficPolicy Local")
    external_name = get_str(spec, "externalName", what, problems, default="") or ""
    if kind == "ExternalName" and not external_name:
        problems.add(spec.where(), f"{what}: type ExternalName needs externalName")
    elif external_name and not check_dns_subdomain(
            external_name[:-1] if external_name.endswith(".") else external_name,
            spec.where("externalName"), f"{what}: externalName", problems, label_limit=True):
        external_name = ""
    publish = get_bool(spec, "publishNotReadyAddresses", what, problems)
    ingress = parse_load_balancer_status(status, kind, what, problems) if status else ()
    return ServiceSpec(
        namespace=namespace, name=name, type=kind, selector=selector, ports=tuple(ports),
        cluster_ip=cluster_ip, external_ips=tuple(external_ips), load_balancer_ip=lb_ip,
        load_balancer_ingress=ingress,
        load_balancer_source_ranges=tuple(ranges), session_affinity_timeout=timeout,
        external_traffic_local=policies["externalTrafficPolicy"],
        internal_traffic_local=policies["internalTrafficPolicy"],
        health_check_node_port=health or 0, external_name=external_name,
        publish_not_ready=publish, where=where,
    )


INGRESS_FIELDS = {"ip", "hostname", "ipMode", "ports"}
IP_MODES = ("VIP", "Proxy")


def parse_load_balancer_status(status: Located, kind: str, what: str, problems: Problems
                               ) -> tuple[tuple[str, str], ...]:
    """status.loadBalancer.ingress, as a cloud controller or MetalLB writes it: (ip, ipMode)
    of every entry with an ip (legacy forms read sloppily, written canonically); entries with
    only a hostname are valid and ignored, as kube-proxy ignores them. The API server's rules:
    ingress only on a LoadBalancer Service, ipMode VIP or Proxy and only beside an ip (VIP
    when left out)."""
    check_fields(status, {"loadBalancer", "conditions"}, f"{what} status", problems)
    balancer = get_map(status, "loadBalancer", f"{what} status", problems)
    check_fields(balancer, {"ingress"}, f"{what} status.loadBalancer", problems)
    items = get_list(balancer, "ingress", f"{what} status.loadBalancer", problems)
    if items and kind != "LoadBalancer":
        problems.add(balancer.where("ingress"), f"{what}: status.loadBalancer.ingress may only "
                     "be used with type LoadBalancer")
        return ()
    found = []
    for index, item in enumerate(items):
        where = where_of(items, index, balancer.where("ingress"))
        if not isinstance(item, Located):
            problems.add(where, f"{what}: each status.loadBalancer.ingress entry must be a "
                         f"mapping with ip or hostname, not {type_name(item)}")
            continue
        entry = f"{what} status.loadBalancer.ingress entry"
        check_fields(item, INGRESS_FIELDS, entry, problems)
        mode = get_str(item, "ipMode", entry, problems)
        if item.get("ip") in (None, ""):
            if mode is not None:
                problems.add(item.where("ipMode"), f"{entry}: ipMode may not be set without "
                             "an ip")
            hostname = get_str(item, "hostname", entry, problems, default="") or ""
            if hostname:
                check_dns_subdomain(hostname, item.where("hostname"), f"{entry}: hostname",
                                    problems)
            continue
        address = parse_address(item["ip"], item.where("ip"), f"{entry}: ip", problems,
                                unicast=True, sloppy=True)
        if mode is not None and mode not in IP_MODES:
            problems.add(item.where("ipMode"), f"{entry}: ipMode {shown(mode)} is not VIP or "
                         "Proxy")
            continue
        if address is not None:
            found.append((str(address), mode or "VIP"))
    return tuple(found)


def check_app_protocol(item: Located, what: str, problems: Problems) -> None:
    value = item.get("appProtocol")
    if value is not None and (why := qualified_name_problem(value)) is not None:
        problems.add(item.where("appProtocol"), f"{what}: appProtocol {shown(value)} is not a "
                     f"qualified name: it {why}")


def parse_target_port(item: Located, number: int, what: str, problems: Problems
                      ) -> int | str:
    """A number 1..65535 or an IANA port name; a quoted number is a name, and no valid one
    (as the API server's IntOrString sees it)."""
    target = item.get("targetPort", number)
    if isinstance(target, bool) or not isinstance(target, (int, str)):
        problems.add(item.where("targetPort"), f"{what}: targetPort must be a number or a "
                     "port name")
        return number
    if isinstance(target, int) and not 1 <= target <= 65535:
        problems.add(item.where("targetPort"), f"{what}: targetPort {shown(target)} is outside "
                     "1..65535")
        return number
    if isinstance(target, str) and (why := port_name_problem(target)) is not None:
        problems.add(item.where("targetPort"), f"{what}: targetPort {shown(target)} is not a "
                     f"valid port name: it {why}",
                     "give a number without quotes, or a containerPort's name")
        return number
    return target


def parse_service_ports(spec: Located, kind: str, headless: bool, what: str,
                        problems: Problems, node_ports: tuple[int, int] = NODE_PORT_RANGE
                        ) -> list[ServicePortSpec]:
    ports: list[ServicePortSpec] = []
    seen = PortList(what)
    items = get_list(spec, "ports", what, problems)
    if len(items) > MAX_PORTS:
        problems.add(spec.where("ports"), f"{what} has {len(items)} ports, more than "
                     f"{MAX_PORTS}", "labnet's cap")
        return []
    for index, item in enumerate(items):
        where = where_of(items, index, spec.where("ports"))
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
        if name:
            seen.name(name, item.where("name"), problems)
        seen.number(number, protocol, where, problems)
        check_app_protocol(item, what, problems)
        target = parse_target_port(item, number, what, problems)
        node_port = get_int(item, "nodePort", f"{what} port", problems, 0, *node_ports)
        if node_port and (kind not in ("NodePort", "LoadBalancer") or headless):
            problems.add(item.where("nodePort"), f"{what}: nodePort needs type NodePort or "
                         "LoadBalancer")
        ports.append(ServicePortSpec(number, protocol, name, target, node_port or 0))
    return ports


def parse_slice_endpoint(item: Located, where: str, what: str, problems: Problems
                         ) -> SliceEndpoint | None:
    check_fields(item, SLICE_ENDPOINT_FIELDS, f"{what} endpoint", problems)
    addresses = []
    listed = get_list(item, "addresses", f"{what} endpoint", problems)
    if len(listed) > MAX_SLICE_ADDRESSES:
        problems.add(item.where("addresses"), f"{what}: an endpoint holds {len(listed)} "
                     f"addresses, more than {MAX_SLICE_ADDRESSES}")
        return None
    for index, address in enumerate(listed):
        # canonical form, as kube-proxy's ParseIPSloppy reads it (10.0.00.1 is 10.0.0.1)
        ip = parse_ipv4(address, sloppy=True)
        at = where_of(listed, index, item.where("addresses"))
        if ip is None:
            problems.add(at, f"{what}: {shown(address)} is not an IPv4 address")
        elif (why := special_ip_problem(ip)) is not None:
            problems.add(at, f"{what}: endpoint address {ip} {why}")
        else:
            addresses.append(str(ip))
    if not listed:
        problems.add(where, f"{what}: an endpoint needs addresses")
    if not addresses:
        return None
    hostname = get_str(item, "hostname", f"{what} endpoint", problems, default="") or ""
    if hostname and not check_dns_label(hostname, item.where("hostname"),
                                        f"{what}: endpoint hostname", problems):
        hostname = ""
    node = get_str(item, "nodeName", f"{what} endpoint", problems, default="") or ""
    if node:
        check_dns_subdomain(node, item.where("nodeName"), f"{what}: endpoint nodeName",
                            problems)
    get_str(item, "zone", f"{what} endpoint", problems)
    cond = get_map(item, "conditions", f"{what} endpoint", problems)
    check_fields(cond, {"ready", "serving", "terminating"}, f"{what} conditions", problems)
    ready = get_bool(cond, "ready", f"{what} conditions", problems, True)
    serving = get_bool(cond, "serving", f"{what} conditions", problems, ready)
    terminating = get_bool(cond, "terminating", f"{what} conditions", problems)
    return SliceEndpoint(tuple(addresses), node, ready, serving, terminating, hostname)


def parse_endpoint_slice(obj: Located, meta: Located, namespace: str, name: str,
                         labels: dict[str, str], problems: Problems) -> EndpointSliceSpec | None:
    what = f"EndpointSlice {name}"
    check_fields(obj, SLICE_FIELDS, what, problems)
    service = labels.get("kubernetes.io/service-name", "")
    if not service:
        problems.add(meta.where(), f"{what} has no kubernetes.io/service-name label",
                     "label it with the name of its Service")
    family = get_str(obj, "addressType", what, problems, required=True)
    if family is None:
        return None
    if family != "IPv4":
        problems.add(obj.where("addressType"), f"{what}: addressType {shown(family)} is not "
                     "supported", "labnet is IPv4 only")
        return None
    endpoints = []
    items = get_list(obj, "endpoints", what, problems)
    if len(items) > MAX_SLICE_ENDPOINTS:
        problems.add(obj.where("endpoints"), f"{what} holds {len(items)} endpoints, more than "
                     f"{MAX_SLICE_ENDPOINTS}", "the API server's limit: split it")
        items = []
    for index, item in enumerate(items):
        where = where_of(items, index, obj.where("endpoints"))
        if not isinstance(item, Located):
            problems.add(where, f"{what}: each endpoint must be a mapping with addresses")
            continue
        endpoint = parse_slice_endpoint(item, where, what, problems)
        if endpoint is not None:
            endpoints.append(endpoint)
    ports = []
    seen = PortList(what)
    items = get_list(obj, "ports", what, problems)
    if len(items) > MAX_SLICE_PORTS:
        problems.add(obj.where("ports"), f"{what} holds {len(items)} ports, more than "
                     f"{MAX_SLICE_PORTS}", "the API server's limit")
        items = []
    for index, item in enumerate(items):
        where = where_of(items, index, obj.where("ports"))
        if not isinstance(item, Located):
            problems.add(where, f"{what}: each port must be a mapping, not {type_name(item)}")
            continue
        check_fields(item, {"appProtocol", "name", "port", "protocol"}, f"{what} port", problems)
        number = get_int(item, "port", f"{what} port", problems, None, 1, 65535)
        protocol = get_str(item, "protocol", f"{what} port", problems, default="TCP")
        port_name = get_str(item, "name", f"{what} port", problems, default="") or ""
        if port_name:
            check_dns_label(port_name, item.where("name"), f"{what} port name", problems)
        seen.name(port_name, item.where("name") if "name" in item else where, problems)
        check_app_protocol(item, what, problems)
        if protocol not in ("TCP", "UDP"):
            if protocol is not None:
                problems.add(item.where("protocol"), f"{what}: protocol {shown(protocol)} is "
                             "not supported", "labnet carries TCP and UDP")
            continue
        if number is None:
            if "port" not in item:
                problems.add(where, f"{what}: a port needs port")
            continue
        ports.append((port_name, protocol, number))
    return EndpointSliceSpec(namespace, name, service, tuple(endpoints), tuple(ports),
                             obj.where())
