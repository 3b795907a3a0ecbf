"""Kubernetes manifests (v1 Namespace, v1 Pod, apps/v1 Deployment) into the labnet model.

Real manifests carry many fields labnet does not act on (image, resources, volumes…); those are
accepted so users can reuse their YAML. A field Kubernetes itself does not know is an error,
with the nearest known name as a hint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labnet.checks import (
    Problems,
    check_dns_label,
    check_dns_subdomain,
    check_fields,
    check_labels,
    get_int,
    get_list,
    get_map,
    get_str,
    read_port,
)
from labnet.model import (
    ContainerPort,
    ContainerSpec,
    DeploymentSpec,
    EndpointSliceSpec,
    LabelSelector,
    PodSpec,
    PodTemplate,
    Probe,
    ServiceSpec,
)
from labnet.service_manifests import parse_endpoint_slice, parse_service
from labnet.yamlsrc import Located

TOP_FIELDS = {"apiVersion", "kind", "metadata", "spec", "status"}
META_FIELDS = {
    "name", "namespace", "labels", "annotations", "generateName", "uid", "resourceVersion",
    "creationTimestamp", "ownerReferences", "finalizers", "managedFields", "generation",
    "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink",
}
POD_SPEC_FIELDS = {
    "activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "containers",
    "dnsConfig", "dnsPolicy", "enableServiceLinks", "ephemeralContainers", "hostAliases",
    "hostIPC", "hostNetwork", "hostPID", "hostUsers", "hostname", "imagePullSecrets",
    "initContainers", "nodeName", "nodeSelector", "os", "overhead", "preemptionPolicy",
    "priority", "priorityClassName", "readinessGates", "resourceClaims", "resources",
    "restartPolicy", "runtimeClassName", "schedulerName", "schedulingGates", "securityContext",
    "serviceAccount", "serviceAccountName", "setHostnameAsFQDN", "shareProcessNamespace",
    "subdomain", "terminationGracePeriodSeconds", "tolerations", "topologySpreadConstraints",
    "volumes",
}
CONTAINER_FIELDS = {
    "args", "command", "env", "envFrom", "image", "imagePullPolicy", "lifecycle",
    "livenessProbe", "name", "ports", "readinessProbe", "resizePolicy", "resources",
    "restartPolicy", "securityContext", "startupProbe", "stdin", "stdinOnce",
    "terminationMessagePath", "terminationMessagePolicy", "tty", "volumeDevices",
    "volumeMounts", "workingDir",
}
PORT_FIELDS = {"containerPort", "hostIP", "hostPort", "name", "protocol"}
DEPLOYMENT_SPEC_FIELDS = {
    "replicas", "selector", "template", "strategy", "minReadySeconds", "revisionHistoryLimit",
    "paused", "progressDeadlineSeconds",
}
SELECTOR_FIELDS = {"matchLabels", "matchExpressions"}
TEMPLATE_FIELDS = {"metadata", "spec"}

# Kinds that carry no networking labnet acts on: skipped with a warning, not an error.
IGNORED_KINDS = {
    "ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding", "ClusterRole",
    "ClusterRoleBinding", "PersistentVolumeClaim", "PodDisruptionBudget",
    "HorizontalPodAutoscaler", "NetworkPolicy", "Ingress",
}
SUPPORTED = {("v1", "Namespace"), ("v1", "Pod"), ("apps/v1", "Deployment"), ("v1", "Service"),
             ("discovery.k8s.io/v1", "EndpointSlice")}


@dataclass
class Workloads:
    """Everything the manifests declared, in the order they were given."""

    namespaces: list[tuple[str, str]] = field(default_factory=list)  # (name, where)
    pods: list[PodSpec] = field(default_factory=list)
    deployments: list[DeploymentSpec] = field(default_factory=list)
    services: list[ServiceSpec] = field(default_factory=list)
    endpoint_slices: list[EndpointSliceSpec] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def object_name(obj: Located) -> str:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"{obj.get('kind', 'object')} {name}" if name else str(obj.get("kind", "object"))


def parse_manifest(obj: Any, where: str, out: Workloads, problems: Problems) -> None:
    if not isinstance(obj, Located):
        problems.add(where, "a manifest must be a mapping with apiVersion, kind and metadata")
        return
    kind = obj.get("kind")
    api = obj.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api, str):
        problems.add(obj.where(), "a manifest needs apiVersion and kind")
        return
    if kind == "List" and api == "v1":
        for index, item in enumerate(get_list(obj, "items", "List", problems)):
            parse_manifest(item, obj["items"].where(index), out, problems)
        return
    if kind in IGNORED_KINDS:
        out.warnings.append(f"{obj.where()}: {object_name(obj)} skipped: labnet does not act on "
                            f"kind {kind}")
        return
    if (api, kind) not in SUPPORTED:
        known = ", ".join(f"{a} {k}" for a, k in sorted(SUPPORTED))
        problems.add(obj.where("kind"), f"unsupported manifest kind {kind!r} (apiVersion {api})",
                     f"labnet understands {known}")
        return
    if kind != "EndpointSlice":
        check_fields(obj, TOP_FIELDS, kind, problems)
    meta = get_map(obj, "metadata", kind, problems, required=True)
    check_fields(meta, META_FIELDS, f"{kind} metadata", problems)
    name = get_str(meta, "name", f"{kind} metadata", problems, required=True)
    if name is None:
        return
    what = f"{kind} {name}"
    if kind == "Namespace":
        if check_dns_label(name, meta.where("name"), "Namespace name", problems):
            out.namespaces.append((name, meta.where("name")))
        return
    namespace = get_str(meta, "namespace", what, problems, default="default")
    check_dns_label(namespace, meta.where("namespace"), f"{what}: namespace", problems)
    check_dns_subdomain(name, meta.where("name"), f"{kind} name", problems)
    labels = check_labels(meta.get("labels"), meta, f"{what} labels", problems)
    if kind == "EndpointSlice":
        eps = parse_endpoint_slice(obj, meta, namespace, name, labels, problems)
        if eps:
            out.endpoint_slices.append(eps)
        return
    spec = get_map(obj, "spec", what, problems, required=True)
    if kind == "Service":
        check_dns_label(name, meta.where("name"), "Service name", problems)
        service = parse_service(spec, namespace, name, obj.where(), problems)
        if service:
            out.services.append(service)
        return
    if kind == "Pod":
        template = parse_pod_spec(spec, labels, what, problems)
        out.pods.append(PodSpec(namespace, name, template, where=obj.where()))
    else:
        deployment = parse_deployment(spec, namespace, name, what, obj.where(), problems)
        if deployment:
            out.deployments.append(deployment)


def parse_pod_spec(spec: Located, labels: dict[str, str], what: str,
                   problems: Problems) -> PodTemplate:
    check_fields(spec, POD_SPEC_FIELDS, f"{what} spec", problems)
    if spec.get("hostNetwork"):
        problems.add(spec.where("hostNetwork"), f"{what}: hostNetwork pods are not supported",
                     "remove hostNetwork: the pod gets its own network namespace")
    containers = []
    seen_ports: dict[tuple[int, str], str] = {}
    port_names: set[str] = set()
    items = get_list(spec, "containers", f"{what} spec", problems)
    if not items:
        problems.add(spec.where(), f"{what} has no containers", "a pod needs at least one")
    container_names: set[str] = set()
    for index, item in enumerate(items):
        where = spec["containers"].where(index)
        if not isinstance(item, Located):
            problems.add(where, f"{what}: each container must be a mapping")
            continue
        container = parse_container(item, what, seen_ports, port_names, problems)
        if container.name in container_names:
            problems.add(where, f"{what}: duplicate container name {container.name!r}")
        container_names.add(container.name)
        containers.append(container)
    node_selector = check_labels(spec.get("nodeSelector"), spec, f"{what} nodeSelector", problems)
    node_name = get_str(spec, "nodeName", f"{what} spec", problems, default="") or ""
    hostname = get_str(spec, "hostname", f"{what} spec", problems, default="") or ""
    subdomain = get_str(spec, "subdomain", f"{what} spec", problems, default="") or ""
    if hostname:
        check_dns_label(hostname, spec.where("hostname"), f"{what} hostname", problems)
    if subdomain:
        check_dns_label(subdomain, spec.where("subdomain"), f"{what} subdomain", problems)
    return PodTemplate(labels, tuple(containers), node_name, node_selector, hostname, subdomain)


def parse_container(item: Located, pod: str, seen_ports: dict, port_names: set,
                    problems: Problems) -> ContainerSpec:
    name = get_str(item, "name", f"{pod} container", problems, required=True) or "?"
    what = f"{pod} container {name}"
    check_fields(item, CONTAINER_FIELDS, what, problems)
    if name != "?":
        check_dns_label(name, item.where("name"), "container name", problems)
    argv = {}
    for key in ("command", "args"):
        value = item.get(key)
        if value is not None and (not isinstance(value, list)
                                  or not all(isinstance(v, (str, int, float)) for v in value)):
            problems.add(item.where(key), f"{what}: {key} must be a list of strings")
            value = None
        argv[key] = tuple(str(v) for v in value or ())
    ports = []
    for index, port in enumerate(get_list(item, "ports", what, problems)):
        where = item["ports"].where(index)
        read = read_port(port, where, "containerPort", PORT_FIELDS, what, problems,
                         "labnet serves TCP (HTTP) and UDP (echo)")
        if read is None:
            continue
        number, protocol = read
        port_name = get_str(port, "name", f"{what} port", problems, default="") or ""
        if port_name:
            if (len(port_name) > 15 or not any(c.isalpha() for c in port_name)
                    or not check_dns_label(port_name, port.where("name"), "port name", problems)):
                problems.add(port.where("name"), f"{what}: port name {port_name!r} must be an "
                             "IANA service name (at most 15 characters, with a letter)")
            if port_name in port_names:
                problems.add(port.where("name"), f"{pod}: duplicate port name {port_name!r}")
            port_names.add(port_name)
        if (number, protocol) in seen_ports:
            problems.add(where, f"{pod}: port {number}/{protocol} is declared twice",
                         f"first at {seen_ports[(number, protocol)]}")
        seen_ports[(number, protocol)] = where
        ports.append(ContainerPort(number, protocol, port_name))
    if argv["args"] and not argv["command"]:
        problems.add(item.where("args"), f"{what}: args without command",
                     "labnet has no image entrypoint to pass them to: give command too")
    image = get_str(item, "image", what, problems, default="") or ""
    readiness = None
    if item.get("readinessProbe") is not None:
        readiness = parse_probe(get_map(item, "readinessProbe", what, problems), ports, what,
                                problems)
    return ContainerSpec(name, image, argv["command"], argv["args"], tuple(ports),
                         readiness=readiness)


PROBE_FIELDS = {"httpGet", "tcpSocket", "exec", "grpc", "initialDelaySeconds", "periodSeconds",
                "timeoutSeconds", "successThreshold", "failureThreshold",
                "terminationGracePeriodSeconds"}


def parse_probe(probe: Located, ports: list[ContainerPort], what: str,
                problems: Problems) -> Probe | None:
    """readinessProbe with httpGet or tcpSocket (port by number or containerPort name)."""
    check_fields(probe, PROBE_FIELDS, f"{what} readinessProbe", problems)
    kind = "http" if "httpGet" in probe else "tcp" if "tcpSocket" in probe else None
    if kind is None:
        problems.add(probe.where(), f"{what}: readinessProbe needs httpGet or tcpSocket",
                     "labnet probes HTTP and TCP")
        return None
    action = get_map(probe, "httpGet" if kind == "http" else "tcpSocket", what, problems)
    check_fields(action, {"port", "path", "host", "scheme", "httpHeaders"},
                 f"{what} readinessProbe", problems)
    port = action.get("port")
    if isinstance(port, str) and not port.isdigit():
        named = [p.port for p in ports if p.name == port]
        if not named:
            problems.add(action.where("port"), f"{what}: readinessProbe port {port!r} is not a "
                         "containerPort name of this container")
            return None
        port = named[0]
    if isinstance(port, bool) or not str(port).isdigit() or not 1 <= int(port) <= 65535:
        problems.add(action.where("port") if "port" in action else action.where(),
                     f"{what}: readinessProbe needs a port (1..65535 or a port name)")
        return None
    number = f"{what} readinessProbe"
    return Probe(kind, int(port), get_str(action, "path", number, problems, default="/") or "/",
                 get_int(probe, "periodSeconds", number, problems, 10, 1, 3600),
                 get_int(probe, "initialDelaySeconds", number, problems, 0, 0, 3600),
                 get_int(probe, "failureThreshold", number, problems, 3, 1, 100),
                 get_int(probe, "successThreshold", number, problems, 1, 1, 100))


def parse_selector(sel: Located, what: str, problems: Problems) -> LabelSelector:
    check_fields(sel, SELECTOR_FIELDS, f"{what} selector", problems)
    labels = check_labels(sel.get("matchLabels"), sel, f"{what} selector.matchLabels", problems)
    expressions = []
    for index, expr in enumerate(get_list(sel, "matchExpressions", f"{what} selector", problems)):
        where = sel["matchExpressions"].where(index)
        if not isinstance(expr, Located):
            problems.add(where, f"{what}: each matchExpression must be a mapping")
            continue
        check_fields(expr, {"key", "operator", "values"}, f"{what} matchExpression", problems)
        key = get_str(expr, "key", f"{what} matchExpression", problems, required=True)
        op = get_str(expr, "operator", f"{what} matchExpression", problems, required=True)
        values = tuple(str(v) for v in get_list(expr, "values", "matchExpression", problems))
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            problems.add(expr.where("operator"), f"{what}: unknown selector operator {op!r}",
                         "use In, NotIn, Exists or DoesNotExist")
        elif (op in ("In", "NotIn")) != bool(values):
            problems.add(where, f"{what}: operator {op} " +
                         ("needs values" if op in ("In", "NotIn") else "takes no values"))
        if key:
            expressions.append((key, op, values))
    if not labels and not expressions:
        problems.add(sel.where(), f"{what}: the selector is empty",
                     "give matchLabels that match the pod template's labels")
    return LabelSelector(labels, tuple(expressions))


def parse_deployment(spec: Located, namespace: str, name: str, what: str, where: str,
                     problems: Problems) -> DeploymentSpec | None:
    check_fields(spec, DEPLOYMENT_SPEC_FIELDS, f"{what} spec", problems)
    replicas = get_int(spec, "replicas", f"{what} spec", problems, 1, 0, 10000)
    selector = parse_selector(get_map(spec, "selector", what, problems, required=True), what,
                              problems)
    template = get_map(spec, "template", what, problems, required=True)
    check_fields(template, TEMPLATE_FIELDS, f"{what} template", problems)
    tmeta = get_map(template, "metadata", f"{what} template", problems)
    labels = check_labels(tmeta.get("labels"), tmeta, f"{what} template labels", problems)
    pod = parse_pod_spec(get_map(template, "spec", f"{what} template", problems, required=True),
                         labels, what, problems)
    if (selector.match_labels or selector.match_expressions) and not selector.matches(labels):
        problems.add(spec.where("selector"), f"{what}: selector does not match the template labels "
                     f"{labels}", "make spec.template.metadata.labels satisfy spec.selector")
        return None
    return DeploymentSpec(namespace, name, replicas if replicas is not None else 1, selector,
                          pod, where)
