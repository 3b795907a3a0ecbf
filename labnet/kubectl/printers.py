"""kubectl's printers for Kubernetes object dicts: the table (server-side printing's columns
and cells, client-side alignment), `-o name|json|yaml|jsonpath=|jsonpath-as-json=|
custom-columns=`, behaving as kubernetes' pkg/printers/internalversion/printers.go (the cells),
cli-runtime's pkg/printers (name, json, yaml, jsonpath, the tabwriter settings) and kubectl's
pkg/cmd/get/customcolumn.go do.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from labnet.gotext import go_quote
from labnet.kubectl.jsonpath import JSONPath, JSONPathError, go_json, go_sprint, go_text
from labnet.kubectl.resources import KubectlError, Resource

__all__ = ["OutputFormat", "align", "human_duration", "parse_output", "print_custom_columns",
           "print_json", "print_jsonpath", "print_names", "print_table", "print_yaml"]

FORMATS = ("custom-columns", "json", "jsonpath", "jsonpath-as-json", "name", "wide", "yaml")


@dataclass(frozen=True)
class OutputFormat:
    kind: str  # table, wide, json, yaml, name, jsonpath, jsonpath-as-json, custom-columns
    template: str = ""

    @property
    def human(self) -> bool:
        return self.kind in ("table", "wide")


def parse_output(text: str | None) -> OutputFormat:
    """`-o`'s value, or kubectl's error for one it does not know."""
    if not text:
        return OutputFormat("table")
    if text in ("wide", "json", "yaml", "name"):
        return OutputFormat(text)
    name, eq, template = text.partition("=")
    if name in ("jsonpath", "jsonpath-as-json", "custom-columns"):
        if name == "custom-columns":
            if not template:
                raise KubectlError("error: custom-columns format specified but no custom "
                                   "columns given")
            return OutputFormat(name, template)
        if not template:
            raise KubectlError("error: template format specified but no template given")
        return OutputFormat(name, template)
    raise KubectlError(f'error: unable to match a printer suitable for the output format '
                       f'"{text}", allowed formats are: {",".join(FORMATS)}')


# --- alignment: cli-runtime's tabwriter (minwidth 6, padding 3, padchar ' ') -----------------

MIN_WIDTH, PADDING = 6, 3


def align(rows: Sequence[Sequence[str]]) -> str:
    """Cells joined by tabs and aligned as text/tabwriter does for kubectl: every column but
    the last padded to max(6, its widest cell + 3), whatever the cells hold."""
    if not rows:
        return ""
    columns = max(len(r) for r in rows)
    widths = []
    for c in range(columns - 1):
        cells = [len(r[c]) for r in rows if c < len(r) - 1]
        widths.append(max([MIN_WIDTH] + [n + PADDING for n in cells]))
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[c]) if c < len(row) - 1 else cell
                 for c, cell in enumerate(row)]
        lines.append("".join(cells) + "\n")
    return "".join(lines)


# --- AGE: apimachinery's duration.HumanDuration -------------------------------------------------


def human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(obj: dict, now: dt.datetime) -> str:
    """translateTimestampSince(metadata.creationTimestamp)."""
    created = parse_time(obj.get("metadata", {}).get("creationTimestamp"))
    if created is None:
        return "<unknown>"
    return human_duration((now - created).total_seconds())


# --- cells, per kind (printers.go) ------------------------------------------------------------


def get(obj: Any, *path: str, default: Any = None) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return default
        obj = obj[key]
    return obj


def format_labels(labels: dict | None) -> str:
    """labels.FormatLabels: k=v sorted by key, or <none>."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def pod_cells(pod: dict, now: dt.datetime) -> tuple[list[str], list[str]]:
    spec, status = pod.get("spec", {}), pod.get("status", {})
    total = len(spec.get("containers") or [])
    ready = restarts = 0
    reason = status.get("reason") or status.get("phase") or ""
    has_running = False
    for cs in reversed(status.get("containerStatuses") or []):
        restarts += int(cs.get("restartCount", 0))
        state = cs.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting is not None and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated is not None and terminated.get("reason"):
            reason = terminated["reason"]
        elif terminated is not None:
            signal = terminated.get("signal", 0)
            reason = (f"Signal:{signal}" if signal
                      else f"ExitCode:{terminated.get('exitCode', 0)}")
        elif cs.get("ready") and state.get("running") is not None:
            has_running = True
            ready += 1
    if reason == "Completed" and has_running:
        ready_condition = any(c.get("type") == "Ready" and c.get("status") == "True"
                              for c in status.get("conditions") or [])
        reason = "Running" if ready_condition else "NotReady"
    ips = status.get("podIPs") or []
    ip = ips[0].get("ip", "") if ips else ""
    gates = spec.get("readinessGates") or []
    gate_cell = "<none>"
    if gates:
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        gate_cell = (f"{sum(conditions.get(g.get('conditionType')) == 'True' for g in gates)}"
                     f"/{len(gates)}")
    return ([pod["metadata"]["name"], f"{ready}/{total}", reason, str(restarts), age(pod, now)],
            [ip or "<none>", spec.get("nodeName") or "<none>",
             status.get("nominatedNodeName") or "<none>", gate_cell])


def service_external_ip(svc: dict) -> str:
    spec = svc.get("spec", {})
    external = spec.get("externalIPs") or []
    kind = spec.get("type", "ClusterIP")
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        seen = []
        for ingress in get(svc, "status", "loadBalancer", "ingress", default=None) or []:
            value = ingress.get("ip") or ingress.get("hostname")
            if value and value not in seen:
                seen.append(value)
        if external:
            return ",".join(seen + list(external))
        return ",".join(seen) or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def service_cells(svc: dict, now: dt.datetime) -> tuple[list[str], list[str]]:
    spec = svc.get("spec", {})
    ips = spec.get("clusterIPs") or []
    ports = ",".join(
        f"{p.get('port')}:{p['nodePort']}/{p.get('protocol', '')}" if p.get("nodePort")
        else f"{p.get('port')}/{p.get('protocol', '')}" for p in spec.get("ports") or [])
    return ([svc["metadata"]["name"], spec.get("type", ""), ips[0] if ips else "<none>",
             service_external_ip(svc), ports or "<none>", age(svc, now)],
            [format_labels(spec.get("selector"))])


def format_endpoints(endpoints: dict) -> str:
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    maximum, more, count = 3, False, 0
    for subset in subsets:
        addresses = subset.get("addresses") or []
        ports = subset.get("ports") or []
        if not ports:
            count += len(addresses)
            for a in addresses:
                if len(shown) == maximum:
                    more = True
                    break
                shown.append(a["ip"])
            continue
        for port in ports:
            count += len(addresses)
            for a in addresses:
                if len(shown) == maximum:
                    more = True
                    break
                host = f"[{a['ip']}]" if ":" in a["ip"] else a["ip"]
                shown.append(f"{host}:{port.get('port')}")
    text = ",".join(shown)
    return f"{text} + {count - maximum} more..." if more else text


def endpoints_cells(obj: dict, now: dt.datetime) -> tuple[list[str], list[str]]:
    return [obj["metadata"]["name"], format_endpoints(obj), age(obj, now)], []


def list_with_more(shown: list[str], more: bool, count: int, maximum: int) -> str:
    text = ",".join(shown)
    if more:
        return f"{text} + {count - maximum} more..."
    return text or "<unset>"


def slice_cells(obj: dict, now: dt.datetime) -> tuple[list[str], list[str]]:
    ports, more, count = [], False, 0
    for port in obj.get("ports") or []:
        if len(ports) < 3:
            ports.append(str(port["port"]) if port.get("port") is not None
                         else port.get("name") or "*")
        elif len(ports) == 3:
            more = True
        count += 1
    port_cell = list_with_more(ports, more, count, 3)
    addresses, more, count = [], False, 0
    for endpoint in obj.get("endpoints") or []:
        for address in endpoint.get("addresses") or []:
            if len(addresses) < 3:
                addresses.append(address)
            elif len(addresses) == 3:
                more = True
            count += 1
    return ([obj["metadata"]["name"], obj.get("addressType", ""), port_cell,
             list_with_more(addresses, more, count, 3), age(obj, now)], [])


def node_cells(node: dict, now: dt.datetime) -> tuple[list[str], list[str]]:
    status = node.get("status", {})
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    states = []
    if "Ready" in conditions:
        states.append("Ready" if conditions["Ready"].get("status") == "True" else "NotReady")
    if not states:
        states.append("Unknown")
    if get(node, "spec", "unschedulable"):
        states.append("SchedulingDisabled")
    roles = set()
    for key, value in (node["metadata"].get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key != "node-role.kubernetes.io/":
            roles.add(key.removeprefix("node-role.kubernetes.io/"))
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    info = status.get("nodeInfo") or {}
    addresses = status.get("addresses") or []
    internal = next((a["address"] for a in addresses if a.get("type") == "InternalIP"),
                    "<none>")
    external = next((a["address"] for a in addresses if a.get("type") == "ExternalIP"),
                    "<none>")
    return ([node["metadata"]["name"], ",".join(states), ",".join(sorted(roles)) or "<none>",
             age(node, now), info.get("kubeletVersion", "")],
            [internal, external, info.get("osImage") or "<unknown>",
             info.get("kernelVersion") or "<unknown>",
             info.get("containerRuntimeVersion") or "<unknown>"])


def namespace_cells(ns: dict, now: dt.datetime) -> tuple[list[str], list[str]]:
    return [ns["metadata"]["name"], get(ns, "status", "phase", default=""), age(ns, now)], []


CellsFn = Callable[[dict, dt.datetime], tuple[list[str], list[str]]]
# kind -> (columns, wide columns, cells)
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...], CellsFn]] = {
    "Pod": (("Name", "Ready", "Status", "Restarts", "Age"),
            ("IP", "Node", "Nominated Node", "Readiness Gates"), pod_cells),
    "Service": (("Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"),
                ("Selector",), service_cells),
    "Endpoints": (("Name", "Endpoints", "Age"), (), endpoints_cells),
    "EndpointSlice": (("Name", "AddressType", "Ports", "Endpoints", "Age"), (), slice_cells),
    "Node": (("Name", "Status", "Roles", "Age", "Version"),
             ("Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"),
             node_cells),
    "Namespace": (("Name", "Status", "Age"), (), namespace_cells),
}


def table_rows(resource: Resource, objects: Sequence[dict], now: dt.datetime, wide: bool,
               with_namespace: bool, show_labels: bool, with_kind: bool = False
               ) -> list[list[str]]:
    """The header and one row per object, as kubectl's table printer lays them out before
    aligning: NAMESPACE first with -A, wide columns with -o wide, LABELS with --show-labels,
    `kind/NAME` when several resource types are listed."""
    columns, wide_columns, cells = TABLES[resource.kind]
    header = [c.upper() for c in columns + (wide_columns if wide else ())]
    with_namespace = with_namespace and resource.namespaced
    if with_namespace:
        header.insert(0, "NAMESPACE")
    if show_labels:
        header.append("LABELS")
    rows = [header]
    for obj in objects:
        row, extra = cells(obj, now)
        if with_kind:
            row[0] = resource.name_of(row[0])
        row = row + (extra if wide else [])
        if with_namespace:
            row.insert(0, obj["metadata"].get("namespace", ""))
        if show_labels:
            row.append(format_labels(obj["metadata"].get("labels")))
        rows.append(row)
    return rows


def print_table(resource: Resource, objects: Sequence[dict], now: dt.datetime,
                wide: bool = False, with_namespace: bool = False, show_labels: bool = False,
                no_headers: bool = False, with_kind: bool = False) -> str:
    if not objects:
        return ""
    rows = table_rows(resource, objects, now, wide, with_namespace, show_labels, with_kind)
    return align(rows[1:] if no_headers else rows)


# --- -o name, json, yaml ----------------------------------------------------------------------


def print_names(items: Sequence[tuple[Resource, dict]]) -> str:
    return "".join(res.name_of(obj["metadata"]["name"]) + "\n" for res, obj in items)


def print_json(obj: Any) -> str:
    """json.MarshalIndent(obj, "", "    ") of unstructured data, as kubectl prints it."""
    return go_json(obj, indent="    ") + "\n"


class GoYAMLDumper(yaml.SafeDumper):
    pass


# YAML 1.1 booleans that go-yaml resolves and PyYAML's resolver does not
GO_YAML_BOOLS = {"y", "Y", "n", "N"}


def represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    """go-yaml's choice of style: a string that would read back as something else (a number,
    a bool, null, a timestamp) in double quotes; a multi-line one as a literal block; else
    plain, or single-quoted where plain cannot hold it — as PyYAML decides too."""
    tag = "tag:yaml.org,2002:str"
    if "\n" in text:
        return dumper.represent_scalar(tag, text, style="|")
    resolved = dumper.resolve(yaml.ScalarNode, text, (True, False))
    if resolved != tag or text in GO_YAML_BOOLS:
        return dumper.represent_scalar(tag, text, style='"')
    return dumper.represent_scalar(tag, text)


GoYAMLDumper.add_representer(str, represent_str)


def print_yaml(obj: Any) -> str:
    """sigs.k8s.io/yaml's output: keys sorted, lists not indented under their key, strings
    quoted only where they would read as something else."""
    return yaml.dump(obj, Dumper=GoYAMLDumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True)


# --- -o jsonpath= and custom-columns= ---------------------------------------------------------


def print_jsonpath(template: str, obj: Any, as_json: bool = False) -> str:
    try:
        path = JSONPath(template, allow_missing_keys=True, output_json=as_json)
    except JSONPathError as exc:
        raise KubectlError(f"error: error parsing jsonpath {template}, {exc}") from None
    try:
        return path.execute(obj)
    except JSONPathError as exc:
        raise KubectlError(
            f"error: error executing jsonpath {go_quote(template)}: Error executing template: "
            f"{exc}. Printing more information for debugging the template:\n"
            f"\ttemplate was:\n\t\t{template}\n"
            f"\tobject given to jsonpath engine was:\n\t\t{go_value(obj)}\n\n") from None


def go_value(value: Any) -> str:
    """Go's %#v of unstructured data (what kubectl shows of the object a template failed on)."""
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, dict):
        return ("map[string]interface {}{" + ", ".join(
            f"{go_quote(str(k))}:{go_value(v)}" for k, v in sorted(value.items())) + "}")
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(go_value(v) for v in value) + "}"
    if isinstance(value, str):
        return go_quote(value)
    return go_text(value)


def relaxed(expression: str) -> str:
    """kubectl's RelaxedJSONPathExpression: `metadata.name`, `.metadata.name`,
    `{metadata.name}` and `{.metadata.name}` all mean `{.metadata.name}`."""
    if not expression:
        return expression
    found = re.fullmatch(r"\{\.?([^{}]+)\}|\.?([^{}]+)", expression)
    if found is None:
        raise KubectlError("error: unexpected path string, expected a 'name1.name2' or "
                           "'.name1.name2' or '{name1.name2}' or '{.name1.name2}'")
    return "{." + (found.group(1) or found.group(2)) + "}"


def print_custom_columns(spec: str, objects: Sequence[dict], no_headers: bool = False) -> str:
    columns = []
    for part in spec.split(","):
        header, colon, expression = part.partition(":")
        if not colon:
            raise KubectlError(f"error: unexpected custom-columns spec: {part}, expected "
                               "<header>:<json-path-expr>")
        columns.append((header, relaxed(expression)))
    parsers = []
    for _, expression in columns:
        try:
            parsers.append(JSONPath(expression, allow_missing_keys=True))
        except JSONPathError as exc:
            raise KubectlError(f"error: {exc}") from None
    rows = [] if no_headers else [[h for h, _ in columns]]
    for obj in objects:
        row = []
        for parser in parsers:
            try:
                found = parser.find_results(obj)
            except JSONPathError as exc:
                raise KubectlError(f"error: {exc}") from None
            values = [go_sprint(v) for result in found for v in result]
            if not found or not found[0]:
                values.insert(0, "<none>")
            row.append(",".join(values))
        rows.append(row)
    return align(rows)
