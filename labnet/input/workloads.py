"""Kubernetes manifests (v1 Namespace, v1 Pod, apps/v1 Deployment) into the labnet model.

Real manifests carry many fields labnet does not act on (image, resources, volumes…); those are
accepted so users can reuse their YAML. A field Kubernetes itself does not know is an error,
with the nearest known name as a hint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labnet.errors import Problems, one_line
from labnet.input.checks import (
    HTTP_HEADER_NAME,
    MAX_ARG_BYTES,
    PortList,
    check_annotations,
    check_dns1035_label,
    check_dns_label,
    check_dns_subdomain,
    check_fields,
    check_label_value,
    check_labels,
    check_text,
    get_bool,
    get_int,
    get_list,
    get_map,
    get_str,
    parse_address,
    port_name_problem,
    qualified_name_problem,
    read_port,
    shown,
    type_name,
)
from labnet.input.security import parse_security
from labnet.input.services import parse_endpoint_slice, parse_service
from labnet.input.yamlsrc import Located, where_of
from labnet.model import (
    MAX_CONTAINERS,
    MAX_PODS,
    MAX_PORTS,
    NODE_PORT_RANGE,
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
ENV_FIELDS = {"name", "value", "valueFrom"}
PROBE_FIELDS = {"httpGet", "tcpSocket", "exec", "grpc", "initialDelaySeconds", "periodSeconds",
                "timeoutSeconds", "successThreshold", "failureThreshold",
                "terminationGracePeriodSeconds"}
PROBE_HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc")
HTTP_GET_FIELDS = {"port", "path", "host", "scheme", "httpHeaders"}
# What a command line may hold besides printable characters: a script given with `sh -c` or
# `python -c` has tabs and newlines (a NUL cannot pass execve at all).
ARGV_WHITESPACE = "\t\n\r"

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
    builtin: tuple = ()  # (Deployment, Service) of the cluster DNS, which every lab has
    node_port_range: tuple[int, int] = NODE_PORT_RANGE  # the lab's, for nodePorts


def object_name(obj: Located) -> str:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    kind = obj.get("kind", "object")
    return one_line(f"{kind} {name}" if name else str(kind), 200)


def parse_manifest(obj: Any, where: str, out: Workloads, problems: Problems) -> None:
    if not isinstance(obj, Located):
        problems.add(where, "a manifest must be a mapping with apiVersion, kind and metadata")
        return
    kind = obj.get("kind")
    api = obj.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api, str):
        problems.add(obj.where(), "a manifest needs apiVersion and kind (strings)")
        return
    if kind == "List" and api == "v1":
        items = get_list(obj, "items", "List", problems)
        for index, item in enumerate(items):
            parse_manifest(item, where_of(items, index, obj.where("items")), out, problems)
        return
    if kind in IGNORED_KINDS:
        out.warnings.append(f"{obj.where()}: {object_name(obj)} skipped: labnet does not act on "
                            f"kind {kind}")
        return
    if (api, kind) not in SUPPORTED:
        known = ", ".join(f"{a} {k}" for a, k in sorted(SUPPORTED))
        problems.add(obj.where("kind"), f"unsupported manifest kind {shown(kind)} (apiVersion "
                     f"{shown(api)})", f"labnet understands {known}")
        return
    if kind != "EndpointSlice":
        check_fields(obj, TOP_FIELDS, kind, problems)
    meta = get_map(obj, "metadata", kind, problems, required=True)
    check_fields(meta, META_FIELDS, f"{kind} metadata", problems)
    name = get_str(meta, "name", f"{kind} metadata", problems, required=True)
    if name is None:
        return
    what = f"{kind} {name}"
    check_annotations(meta.get("annotations"), meta, f"{what} annotations", problems)
    labels = check_labels(meta.get("labels"), meta, f"{what} labels", problems)
    if kind == "Namespace":
        if check_dns_label(name, meta.where("name"), "Namespace name", problems):
            out.namespaces.append((name, meta.where("name")))
        return
    namespace = get_str(meta, "namespace", what, problems, default="default") or "default"
    check_dns_label(namespace, meta.where("namespace"), f"{what}: namespace", problems)
    if kind == "Service":  # the API server's DNS-1035 label: a Service name starts with a letter
        check_dns1035_label(name, meta.where("name"), "Service name", problems)
    else:
        check_dns_subdomain(name, meta.where("name"), f"{kind} name", problems)
    if kind == "EndpointSlice":
        eps = parse_endpoint_slice(obj, meta, namespace, name, labels, problems)
        if eps:
            out.endpoint_slices.append(eps)
        return
    spec = get_map(obj, "spec", what, problems, required=True)
    if kind == "Service":
        service = parse_service(spec, namespace, name, obj.where(), problems,
                                out.node_port_range, get_map(obj, "status", what, problems))
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
    if get_bool(spec, "hostNetwork", f"{what} spec", problems):
        problems.add(spec.where("hostNetwork"), f"{what}: hostNetwork pods are not supported",
                     "remove hostNetwork: the pod gets its own network namespace")
    containers = []
    seen = PortList(what)
    items = get_list(spec, "containers", f"{what} spec", problems)
    if not items:
        problems.add(spec.where("containers"), f"{what} has no containers",
                     "a pod needs at least one")
    if len(items) > MAX_CONTAINERS:
        problems.add(spec.where("containers"), f"{what} has {len(items)} containers, more than "
                     f"{MAX_CONTAINERS}", "labnet's cap")
        items = []
    container_names: set[str] = set()
    for index, item in enumerate(items):
        where = where_of(items, index, spec.where("containers"))
        if not isinstance(item, Located):
            problems.add(where, f"{what}: each container must be a mapping")
            continue
        container = parse_container(item, what, seen, problems, spec)
        if container.name in container_names:
            problems.add(where, f"{what}: duplicate container name {container.name!r}")
        container_names.add(container.name)
        containers.append(container)
    if len(seen.numbers) > MAX_PORTS:
        problems.add(spec.where("containers"), f"{what} declares {len(seen.numbers)} ports, more "
                     f"than {MAX_PORTS}", "labnet's cap: each is a listening socket")
    node_selector = check_labels(spec.get("nodeSelector"), spec, f"{what} nodeSelector", problems)
    node_name = get_str(spec, "nodeName", f"{what} spec", problems, default="") or ""
    hostname = get_str(spec, "hostname", f"{what} spec", problems, default="") or ""
    subdomain = get_str(spec, "subdomain", f"{what} spec", problems, default="") or ""
    if hostname:
        check_dns_label(hostname, spec.where("hostname"), f"{what} hostname", problems)
    if subdomain:
        check_dns_label(subdomain, spec.where("subdomain"), f"{what} subdomain", problems)
    return PodTemplate(labels, tuple(containers), node_name, node_selector, hostname, subdomain)


def parse_argv(item: Located, key: str, what: str, problems: Problems) -> tuple[str, ...]:
    """`command` or `args`: strings, each one execve can take (no NUL or other control
    characters but tabs and newlines, at most MAX_ARG_BYTES)."""
    value = item.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
            isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        problems.add(item.where(key), f"{what}: {key} must be a list of strings")
        return ()
    argv = tuple(str(v) for v in value)
    for index, arg in enumerate(argv):
        where = where_of(value, index, item.where(key))
        if not check_text(arg, where, f"{what}: {key}[{index}]", problems, ARGV_WHITESPACE,
                          "a command line cannot carry it: remove it"):
            continue
        size = len(arg.encode("utf-8", "surrogatepass"))
        if size > MAX_ARG_BYTES:
            problems.add(where, f"{what}: {key}[{index}] is {size} bytes, more than "
                         f"{MAX_ARG_BYTES}", "Linux refuses longer command-line arguments")
    return argv


def check_env(item: Located, what: str, problems: Problems) -> None:
    """`env`: names as the API server takes them (printable ASCII but '='), values that
    execve can pass (no NUL or other control characters but tabs and newlines)."""
    entries = get_list(item, "env", what, problems)
    for index, entry in enumerate(entries):
        where = where_of(entries, index, item.where("env"))
        if not isinstance(entry, Located):
            problems.add(where, f"{what}: each env entry must be a mapping with name and value")
            continue
        check_fields(entry, ENV_FIELDS, f"{what} env", problems)
        name = get_str(entry, "name", f"{what} env", problems, required=True)
        if name is not None and (not name or not all(" " <= c <= "~" for c in name)
                                 or "=" in name):
            problems.add(entry.where("name"), f"{what}: env name {shown(name)} is not valid",
                         "use printable ASCII characters other than '='")
        value = get_str(entry, "value", f"{what} env", problems)
        if value is not None:
            check_text(value, entry.where("value"), f"{what}: env {shown(name)} value",
                       problems, ARGV_WHITESPACE, "a process environment cannot carry it")
            if entry.get("valueFrom") is not None:
                problems.add(entry.where("valueFrom"), f"{what}: env {shown(name)} has value "
                             "and valueFrom", "give one of them")
        if entry.get("valueFrom") is not None:
            get_map(entry, "valueFrom", f"{what} env", problems)


def parse_container(item: Located, pod: str, seen: PortList,
                    problems: Problems, spec: Located | None = None) -> ContainerSpec:
    name = get_str(item, "name", f"{pod} container", problems, required=True)
    if name is not None:
        check_dns_label(name, item.where("name"), "container name", problems)
    name = name or "?"
    what = f"{pod} container {name}"
    check_fields(item, CONTAINER_FIELDS, what, problems)
    command = parse_argv(item, "command", what, problems)
    args = parse_argv(item, "args", what, problems)
    check_env(item, what, problems)
    ports = []
    items = get_list(item, "ports", what, problems)
    for index, port in enumerate(items):
        where = where_of(items, index, item.where("ports"))
        read = read_port(port, where, "containerPort", PORT_FIELDS, what, problems,
                         "labnet serves TCP (HTTP) and UDP (echo)")
        if isinstance(port, Located):
            get_int(port, "hostPort", f"{what} port", problems, 0, 0, 65535)
            if "hostIP" in port:
                parse_address(port["hostIP"], port.where("hostIP"), f"{what}: hostIP", problems)
        if read is None:
            continue
        number, protocol = read
        port_name = get_str(port, "name", f"{what} port", problems, default="") or ""
        if port_name:
            if (why := port_name_problem(port_name)) is not None:
                problems.add(port.where("name"), f"{what}: port name {shown(port_name)} is not "
                             f"an IANA service name: it {why}")
            seen.name(port_name, port.where("name"), problems)
        seen.number(number, protocol, where, problems)
        ports.append(ContainerPort(number, protocol, port_name))
    if args and not command:
        problems.add(item.where("args"), f"{what}: args without command",
                     "labnet has no image entrypoint to pass them to: give command too")
    image = get_str(item, "image", what, problems, default="") or ""
    readiness = None
    if item.get("readinessProbe") is not None:
        readiness = parse_probe(get_map(item, "readinessProbe", what, problems), ports, what,
                                problems)
    for key in ("livenessProbe", "startupProbe"):  # not acted on, but checked as the API does
        if item.get(key) is not None:
            check_probe(get_map(item, key, what, problems), key, ports, what, problems)
    security = parse_security(spec if spec is not None else Located(), item, what, problems)
    return ContainerSpec(name, image, command, args, tuple(ports), readiness=readiness,
                         security=security if command else None)


def probe_port(action: Located, ports: list[ContainerPort], what: str,
               problems: Problems) -> int | None:
    """A probe's port: a number 1..65535 or the name of one of the container's ports."""
    port = action.get("port")
    where = action.where("port") if "port" in action else action.where()
    if isinstance(port, str):
        if (why := port_name_problem(port)) is not None:
            problems.add(where, f"{what} port {shown(port)} is not a port name: it {why}",
                         "give a number without quotes, or a containerPort's name")
            return None
        named = [p.port for p in ports if p.name == port]
        if not named:
            problems.add(where, f"{what} port {port!r} is not a containerPort name of this "
                         "container")
            return None
        return named[0]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        problems.add(where, f"{what} needs a port (1..65535 or a port name)")
        return None
    return port


def check_http_get(action: Located, what: str, problems: Problems) -> str:
    """httpGet's path, host, scheme and headers, which go into an HTTP request: no control
    characters or white space that would end or split its lines. Returns the path."""
    path = get_str(action, "path", what, problems, default="/") or "/"
    if check_text(path, action.where("path"), f"{what} path", problems,
                  why="it would break the probe's HTTP request line") and any(
                      c.isspace() for c in path):
        problems.add(action.where("path"), f"{what} path {shown(path)} holds white space",
                     "percent-encode it (%20)")
    host = get_str(action, "host", what, problems, default="") or ""
    if check_text(host, action.where("host"), f"{what} host", problems,
                  why="it would break the probe's HTTP request") and any(
                      c.isspace() for c in host):
        problems.add(action.where("host"), f"{what} host {shown(host)} holds white space")
    scheme = get_str(action, "scheme", what, problems, default="HTTP")
    if scheme not in ("HTTP", "HTTPS", None):
        problems.add(action.where("scheme"), f"{what} scheme {shown(scheme)} is not HTTP or "
                     "HTTPS")
    headers = get_list(action, "httpHeaders", what, problems)
    for index, header in enumerate(headers):
        where = where_of(headers, index, action.where("httpHeaders"))
        if not isinstance(header, Located):
            problems.add(where, f"{what}: each httpHeader must be a mapping with name and value")
            continue
        check_fields(header, {"name", "value"}, f"{what} httpHeader", problems)
        name = get_str(header, "name", f"{what} httpHeader", problems, required=True)
        if name is not None and not HTTP_HEADER_NAME.fullmatch(name):
            problems.add(header.where("name"), f"{what} httpHeader name {shown(name)} is not "
                         "a valid HTTP header name", "use letters, digits and '-'")
        value = get_str(header, "value", f"{what} httpHeader", problems, default="") or ""
        check_text(value, header.where("value"), f"{what} httpHeader value", problems, "\t",
                   "it would break the probe's HTTP request")
    return path


def check_probe(probe: Located, key: str, ports: list[ContainerPort], what: str,
                problems: Problems) -> tuple[str, int | None, str]:
    """A probe as the API server checks it: exactly one handler, its fields, counts that
    are not negative. Returns (handler, port, path)."""
    check_fields(probe, PROBE_FIELDS, f"{what} {key}", problems)
    number = f"{what} {key}"
    handlers = [h for h in PROBE_HANDLERS if probe.get(h) is not None]
    if len(handlers) != 1:
        problems.add(probe.where(), f"{number} " + (
            "needs a handler (httpGet, tcpSocket, exec or grpc)" if not handlers else
            f"may not have more than one handler ({', '.join(handlers)})"))
        return "", None, "/"
    counts = ["timeoutSeconds", "terminationGracePeriodSeconds"]
    if key != "readinessProbe":  # parse_probe reads (and bounds) these of a readinessProbe
        counts += ["initialDelaySeconds", "periodSeconds", "failureThreshold"]
        get_int(probe, "successThreshold", number, problems, None, 1, 1)  # the API: must be 1
    for field_name in counts:
        get_int(probe, field_name, number, problems, None, 0, 2**31 - 1)
    if key == "readinessProbe" and probe.get("terminationGracePeriodSeconds") is not None:
        problems.add(probe.where("terminationGracePeriodSeconds"), f"{number}: "
                     "terminationGracePeriodSeconds must not be set for readiness probes")
    handler = handlers[0]
    action = get_map(probe, handler, what, problems)
    if handler == "httpGet":
        check_fields(action, HTTP_GET_FIELDS, f"{number} httpGet", problems)
        path = check_http_get(action, f"{number} httpGet", problems)
        return handler, probe_port(action, ports, number, problems), path
    if handler == "tcpSocket":
        check_fields(action, {"port", "host"}, f"{number} tcpSocket", problems)
        host = get_str(action, "host", f"{number} tcpSocket", problems, default="") or ""
        check_text(host, action.where("host"), f"{number} tcpSocket host", problems)
        return handler, probe_port(action, ports, number, problems), "/"
    return handler, None, "/"


def parse_probe(probe: Located, ports: list[ContainerPort], what: str,
                problems: Problems) -> Probe | None:
    """readinessProbe with httpGet or tcpSocket (port by number or containerPort name)."""
    handler, port, path = check_probe(probe, "readinessProbe", ports, what, problems)
    if handler and handler not in ("httpGet", "tcpSocket"):
        problems.add(probe.where(handler), f"{what}: readinessProbe needs httpGet or tcpSocket",
                     "labnet probes HTTP and TCP")
        return None
    if port is None:
        return None
    number = f"{what} readinessProbe"
    return Probe("http" if handler == "httpGet" else "tcp", port, path,
                 get_int(probe, "periodSeconds", number, problems, 10, 1, 3600),
                 get_int(probe, "initialDelaySeconds", number, problems, 0, 0, 3600),
                 get_int(probe, "failureThreshold", number, problems, 3, 1, 100),
                 get_int(probe, "successThreshold", number, problems, 1, 1, 100))


def parse_selector(sel: Located, what: str, problems: Problems) -> LabelSelector:
    check_fields(sel, SELECTOR_FIELDS, f"{what} selector", problems)
    labels = check_labels(sel.get("matchLabels"), sel, f"{what} selector.matchLabels", problems)
    expressions = []
    exprs = get_list(sel, "matchExpressions", f"{what} selector", problems)
    for index, expr in enumerate(exprs):
        where = where_of(exprs, index, sel.where("matchExpressions"))
        if not isinstance(expr, Located):
            problems.add(where, f"{what}: each matchExpression must be a mapping")
            continue
        check_fields(expr, {"key", "operator", "values"}, f"{what} matchExpression", problems)
        key = get_str(expr, "key", f"{what} matchExpression", problems, required=True)
        op = get_str(expr, "operator", f"{what} matchExpression", problems, required=True)
        if key is not None and (why := qualified_name_problem(key)) is not None:
            problems.add(expr.where("key"), f"{what}: matchExpression key {shown(key)} is not "
                         f"a valid label name: {why}")
            key = None
        listed = get_list(expr, "values", "matchExpression", problems)
        values = []
        for position, value in enumerate(listed):
            if not isinstance(value, str):
                problems.add(where_of(listed, position, expr.where("values")), f"{what}: "
                             f"matchExpression values must be strings, not {type_name(value)}",
                             "quote it")
            elif check_label_value(value, where_of(listed, position, expr.where("values")),
                                   f"{what} matchExpression values", problems):
                values.append(value)
        if op is None:
            continue
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            problems.add(expr.where("operator"), f"{what}: unknown selector operator {shown(op)}",
                         "use In, NotIn, Exists or DoesNotExist")
        elif (op in ("In", "NotIn")) != bool(listed):
            problems.add(where, f"{what}: operator {op} " +
                         ("needs values" if op in ("In", "NotIn") else "takes no values"))
        elif key:
            expressions.append((key, op, tuple(values)))
    if not labels and not expressions:
        problems.add(sel.where(), f"{what}: the selector is empty",
                     "give matchLabels that match the pod template's labels")
    return LabelSelector(labels, tuple(expressions))


def parse_deployment(spec: Located, namespace: str, name: str, what: str, where: str,
                     problems: Problems) -> DeploymentSpec | None:
    check_fields(spec, DEPLOYMENT_SPEC_FIELDS, f"{what} spec", problems)
    replicas = get_int(spec, "replicas", f"{what} spec", problems, 1, 0, MAX_PODS)
    selector = parse_selector(get_map(spec, "selector", what, problems, required=True), what,
                              problems)
    template = get_map(spec, "template", what, problems, required=True)
    check_fields(template, TEMPLATE_FIELDS, f"{what} template", problems)
    tmeta = get_map(template, "metadata", f"{what} template", problems)
    check_fields(tmeta, META_FIELDS, f"{what} template metadata", problems)
    check_annotations(tmeta.get("annotations"), tmeta, f"{what} template annotations", problems)
    labels = check_labels(tmeta.get("labels"), tmeta, f"{what} template labels", problems)
    pod = parse_pod_spec(get_map(template, "spec", f"{what} template", problems, required=True),
                         labels, what, problems)
    if (selector.match_labels or selector.match_expressions) and not selector.matches(labels):
        problems.add(spec.where("selector"), f"{what}: selector does not match the template labels "
                     f"{labels}", "make spec.template.metadata.labels satisfy spec.selector")
        return None
    return DeploymentSpec(namespace, name, replicas if replicas is not None else 1, selector,
                          pod, where)
