"""`kubectl get` over a lab's objects, pure: the request in, (stdout, stderr, exit code) out.

This is kubectl's get command (k8s.io/kubectl pkg/cmd/get) with the API server's list
semantics folded in: arguments `TYPE[,TYPE...] [NAME...]` or `TYPE/NAME...`, the namespace
(`-n`, default `default`; `-A` all), label and field selectors as the server applies them, one
object printed as itself when one name was asked for and as a `v1 List` otherwise, tables per
resource type, `No resources found ...` on stderr, and kubectl's errors word for word.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from labnet.kubectl import printers
from labnet.kubectl.resources import KubectlError, Resource, resource_for
from labnet.kubectl.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)

__all__ = ["GetRequest", "GetResult", "check_request", "field_value", "run_get"]


@dataclass(frozen=True)
class GetRequest:
    args: tuple[str, ...]
    namespace: str = "default"
    all_namespaces: bool = False
    selector: str | None = None        # -l
    field_selector: str | None = None  # --field-selector
    output: str | None = None          # -o
    show_labels: bool = False
    no_headers: bool = False
    ignore_not_found: bool = False


@dataclass
class GetResult:
    stdout: str = ""
    errors: list[str] = field(default_factory=list)
    notice: str = ""  # "No resources found ..." (stderr, not an error)

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    @property
    def stderr(self) -> str:
        lines = ([self.notice] if self.notice else []) + self.errors
        return "".join(line + "\n" for line in lines)


# what the API server's defaulting puts in fields labnet's objects leave out
FIELD_DEFAULTS = {"spec.unschedulable": "false", "spec.hostNetwork": "false",
                  "spec.schedulerName": "default-scheduler", "spec.serviceAccountName": "default"}


def field_value(obj: dict, path: str) -> str:
    """A field selector's value of an object: the string the API server compares."""
    value: object = obj
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return FIELD_DEFAULTS.get(path, "") if value is None else str(value)


@dataclass(frozen=True)
class Wanted:
    resource: Resource
    names: tuple[str, ...] = ()  # empty: every object (of the namespace)


def parse_args(args: Sequence[str]) -> tuple[list[Wanted], bool]:
    """(what to get, whether names were given as TYPE/NAME)."""
    if not args:
        raise KubectlError("error: You must specify the type of resource to get. Use "
                           "\"labnet get pods\", \"services\", \"endpoints\", "
                           "\"endpointslices\", \"namespaces\" or \"nodes\".")
    if any("/" in a for a in args):
        wanted: list[Wanted] = []
        for arg in args:
            if "/" not in arg:
                raise KubectlError(
                    "error: there is no need to specify a resource type as a separate argument "
                    "when passing arguments in resource/name form (e.g. 'labnet get "
                    "resource/<resource_name>' instead of 'labnet get resource "
                    "resource/<resource_name>'")
            kind, _, name = arg.partition("/")
            if not kind or not name or "," in kind:
                raise KubectlError("error: arguments in resource/name form must have a single "
                                   "resource and name")
            wanted.append(Wanted(resource_for(kind), (name,)))
        return wanted, True
    kinds = [k for k in args[0].split(",") if k]
    if not kinds:
        raise KubectlError(f'error: the server doesn\'t have a resource type "{args[0]}"')
    resources = list(dict.fromkeys(resource_for(k) for k in kinds))
    return [Wanted(r, tuple(args[1:])) for r in resources], False


def selector_given(text: str | None) -> bool:
    """kubectl ignores an empty (or blank) selector."""
    return bool(text and text.strip())


def check_request(request: GetRequest) -> tuple[printers.OutputFormat, list[Wanted]]:
    """The output format and what to get, or kubectl's error for a request it refuses before
    asking the API server anything."""
    output = printers.parse_output(request.output)
    wanted, tuples = parse_args(request.args)
    named = any(w.names for w in wanted)
    if named and (selector_given(request.selector) or selector_given(request.field_selector)):
        raise KubectlError(
            "error: selectors and the all flag cannot be used when passing resource/name "
            "arguments" if tuples else
            "error: name cannot be provided when a selector is specified")
    if named and request.all_namespaces and any(w.resource.namespaced for w in wanted):
        raise KubectlError("error: a resource cannot be retrieved by name across all "
                           "namespaces")
    return output, wanted


def run_get(request: GetRequest, objects_of: Callable[[Resource], list[dict]],
            now: dt.datetime | None = None) -> GetResult:
    """What `kubectl get` prints for `request`; `objects_of(resource)` lists every object of a
    type (all namespaces), sorted as the API server lists them."""
    now = now or dt.datetime.now(dt.UTC)
    result = GetResult()
    try:
        output, wanted = check_request(request)
    except KubectlError as exc:
        result.errors.append(str(exc))
        return result

    found: list[tuple[Resource, dict]] = []
    for want in wanted:
        try:
            found += [(want.resource, o) for o in select(request, want, objects_of, result)]
        except KubectlError as exc:
            result.errors.append(str(exc))
            return result
    single = len(wanted) == 1 and len(wanted[0].names) == 1

    if output.human:
        tables = []
        kinds = list(dict.fromkeys(r for r, _ in found))
        for res in kinds:
            tables.append(printers.print_table(
                res, [o for r, o in found if r is res], now, wide=output.kind == "wide",
                with_namespace=request.all_namespaces, show_labels=request.show_labels,
                no_headers=request.no_headers, with_kind=len(kinds) > 1))
        result.stdout = "\n".join(t for t in tables if t)
        if not result.stdout and not result.errors and not request.ignore_not_found:
            result.notice = ("No resources found" if request.all_namespaces else
                             f"No resources found in {request.namespace} namespace.")
        return result
    if single and not found:
        return result  # the NotFound error alone, as kubectl prints it
    objects = [o for _, o in found]
    target: dict = (objects[0] if single else
                    {"apiVersion": "v1", "items": objects, "kind": "List",
                     "metadata": {"resourceVersion": ""}})
    try:
        if output.kind == "json":
            result.stdout = printers.print_json(target)
        elif output.kind == "yaml":
            result.stdout = printers.print_yaml(target)
        elif output.kind == "name":
            result.stdout = printers.print_names(found)
        elif output.kind in ("jsonpath", "jsonpath-as-json"):
            result.stdout = printers.print_jsonpath(output.template, target,
                                                    output.kind == "jsonpath-as-json")
        else:  # custom-columns
            result.stdout = printers.print_custom_columns(output.template, objects,
                                                          request.no_headers)
    except KubectlError as exc:
        result.errors.append(str(exc))
    return result


def select(request: GetRequest, want: Wanted, objects_of: Callable[[Resource], list[dict]],
           result: GetResult) -> list[dict]:
    res = want.resource
    everything = objects_of(res)
    if res.namespaced and not request.all_namespaces:
        everything = [o for o in everything
                      if o["metadata"].get("namespace") == request.namespace]
    if want.names:
        chosen = []
        for name in want.names:
            match = [o for o in everything if o["metadata"]["name"] == name]
            if match:
                chosen += match
            elif not request.ignore_not_found:
                result.errors.append(str(res.not_found(name)))
        return chosen
    labels, fields = selectors(request, res)
    return [o for o in everything
            if labels.matches(o["metadata"].get("labels"))
            and fields.matches({f.field: field_value(o, f.field) for f in fields.terms})]


def selectors(request: GetRequest, res: Resource) -> tuple[LabelSelector, FieldSelector]:
    """Both selectors, or the BadRequest the API server answers for either."""
    label_text = (request.selector or "").strip()
    field_text = (request.field_selector or "").strip()
    try:
        labels = parse_label_selector(label_text)
        fields = parse_field_selector(field_text)
    except SelectorError as exc:
        raise res.bad_request(label_text, field_text, str(exc)) from None
    known = {"metadata.name", "metadata.namespace", *res.fields}
    for term in fields.terms:
        if term.field not in known:
            raise res.bad_request(label_text, field_text,
                                  f"field label not supported: {term.field}")
    return labels, fields
