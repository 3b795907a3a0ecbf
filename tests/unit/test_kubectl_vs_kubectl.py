"""labnet's printers against the real kubectl, where one is installed (skipped otherwise).

A tiny API server on 127.0.0.1 serves a lab's objects (discovery, lists, single objects, and
server-side Tables built from labnet's cells); the real `kubectl get` prints them, and
`labnet.kubectl.run_get` must print the same bytes for the same request. What this checks is
everything kubectl does on its side: the List it makes (`-o json|yaml`), `-o name`, JSONPath and
custom-columns evaluation, the table's alignment (tabwriter), the wide/NAMESPACE/LABELS columns,
`No resources found`, and its client-side errors. The cells themselves (printers.go's logic) are
pinned by literal expectations in test_kubectl_printers.py.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from labnet.kubectl import RESOURCES, GetRequest, run_get
from labnet.kubectl.printers import TABLES
from labnet.kubectl.selectors import parse_field_selector, parse_label_selector
from tests.unit.test_kubectl_objects import hand_cluster

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

NOW = dt.datetime(2024, 5, 1, 13, 0, 0, tzinfo=dt.UTC)


def discovery(group: str) -> dict:
    resources = []
    for res in RESOURCES:
        if res.group != group:
            continue
        resources.append({"name": res.plural, "singularName": res.singular,
                          "namespaced": res.namespaced, "kind": res.kind,
                          "verbs": ["get", "list"], "shortNames": list(res.short)})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/v1" if group else "v1", "resources": resources}


class FakeAPI(BaseHTTPRequestHandler):
    cluster = None

    def log_message(self, *args) -> None:
        pass

    def send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlparse(self.path)
        query = parse_qs(url.query)
        parts = [p for p in url.path.split("/") if p]
        if url.path == "/version":
            return self.send(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.4"})
        if url.path == "/api":
            return self.send(200, {"kind": "APIVersions", "versions": ["v1"]})
        if url.path == "/apis":
            gv = {"groupVersion": "discovery.k8s.io/v1", "version": "v1"}
            return self.send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": "discovery.k8s.io", "versions": [gv], "preferredVersion": gv}]})
        if url.path == "/api/v1":
            return self.send(200, discovery(""))
        if url.path == "/apis/discovery.k8s.io/v1":
            return self.send(200, discovery("discovery.k8s.io"))
        parts = parts[2:] if parts[0] == "api" else parts[3:]
        namespace = None
        if len(parts) >= 3 and parts[0] == "namespaces":
            namespace, parts = parts[1], parts[2:]
        plural, name = parts[0], (parts[1] if len(parts) > 1 else None)
        res = next(r for r in RESOURCES if r.plural == plural)
        objects = [o for o in self.cluster.objects(res.kind)
                   if namespace is None or o["metadata"].get("namespace") == namespace]
        labels = parse_label_selector(query.get("labelSelector", [""])[0])
        fields = parse_field_selector(query.get("fieldSelector", [""])[0])
        objects = [o for o in objects if labels.matches(o["metadata"].get("labels"))
                   and all((o["metadata"].get(t.field.split(".")[1]) == t.value) == t.equal
                           for t in fields.terms)]
        if name is not None:
            objects = [o for o in objects if o["metadata"]["name"] == name]
            if not objects:
                return self.send(404, {
                    "kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "NotFound", "code": 404,
                    "message": f'{res.qualified} "{name}" not found',
                    "details": {"name": name, "kind": res.plural}})
        if "as=Table" in self.headers.get("Accept", ""):
            return self.send(200, table(res, objects))
        if name is not None:
            return self.send(200, objects[0])
        return self.send(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                               "metadata": {"resourceVersion": "1"}, "items": objects})


def table(res, objects: list[dict]) -> dict:
    columns, wide, cells = TABLES[res.kind]
    definitions = ([{"name": c, "type": "string", "format": "name" if c == "Name" else "",
                     "description": "", "priority": 0} for c in columns]
                   + [{"name": c, "type": "string", "format": "", "description": "",
                       "priority": 1} for c in wide])
    rows = []
    for obj in objects:
        row, extra = cells(obj, NOW)
        rows.append({"cells": row + extra, "object": {
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"]}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
            "columnDefinitions": definitions, "rows": rows}


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory):
    cluster = hand_cluster()
    FakeAPI.cluster = cluster
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    home = tmp_path_factory.mktemp("kube")
    config = home / "config"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {
            "server": f"http://127.0.0.1:{server.server_address[1]}"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        "users": [{"name": "fake", "user": {}}]}))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([KUBECTL, "--kubeconfig", str(config), "--cache-dir",
                               str(home / "cache"), "get", *args], capture_output=True,
                              text=True, timeout=60, env={"HOME": str(home), "PATH": "/usr/bin"})

    yield cluster, run
    server.shutdown()


def labnet(cluster, args: list[str], **kw) -> tuple[str, str, int]:
    result = run_get(GetRequest(tuple(args), **kw), lambda r: cluster.objects(r.kind), NOW)
    return result.stdout, result.stderr, result.exit_code


CASES = [
    (["pods"], {}),
    (["pods", "-o", "wide"], {"output": "wide"}),
    (["pods", "-A", "-o", "wide"], {"all_namespaces": True, "output": "wide"}),
    (["pods", "--show-labels"], {"show_labels": True}),
    (["pods", "--no-headers"], {"no_headers": True}),
    (["svc", "-A", "-o", "wide"], {"all_namespaces": True, "output": "wide"}),
    (["ep", "-A"], {"all_namespaces": True}),
    (["endpointslices", "-A", "--show-labels"], {"all_namespaces": True, "show_labels": True}),
    (["nodes", "-o", "wide"], {"output": "wide"}),
    (["ns"], {}),
    (["pods,svc"], {}),
    (["pods", "-n", "nowhere"], {"namespace": "nowhere"}),
    (["pods", "-l", "app=nothing", "-A"], {"selector": "app=nothing", "all_namespaces": True}),
    (["pods", "-o", "json"], {"output": "json"}),
    (["pods", "-A", "-o", "yaml"], {"all_namespaces": True, "output": "yaml"}),
    (["pod", "client", "-o", "json"], {"output": "json"}),
    (["svc", "my-nginx", "-o", "yaml"], {"output": "yaml"}),
    (["endpointslices", "-A", "-o", "json"], {"all_namespaces": True, "output": "json"}),
    (["nodes", "-o", "yaml"], {"output": "yaml"}),
    (["ns", "-o", "json"], {"output": "json"}),
    (["pods,svc,ep", "-A", "-o", "name"], {"all_namespaces": True, "output": "name"}),
    (["endpointslices", "-A", "-o", "name"], {"all_namespaces": True, "output": "name"}),
    (["pods", "-l", "app=my-nginx", "-o", "jsonpath={.items[*].status.podIP}"],
     {"selector": "app=my-nginx", "output": "jsonpath={.items[*].status.podIP}"}),
    (["svc", "my-nginx", "-o", "jsonpath={.spec.clusterIP}"],
     {"output": "jsonpath={.spec.clusterIP}"}),
    (["pods", "-A", "-o", 'jsonpath={range .items[*]}{.metadata.name}{"\\t"}'
      '{.spec.nodeName}{"\\n"}{end}'],
     {"all_namespaces": True, "output": 'jsonpath={range .items[*]}{.metadata.name}{"\\t"}'
      '{.spec.nodeName}{"\\n"}{end}'}),
    (["pods", "-o", "jsonpath={.items[-1:].metadata.name}"],
     {"output": "jsonpath={.items[-1:].metadata.name}"}),
    (["pods", "-o", 'jsonpath={.items[?(@.spec.nodeName=="node1")].metadata.name}'],
     {"output": 'jsonpath={.items[?(@.spec.nodeName=="node1")].metadata.name}'}),
    (["nodes", "-o", 'jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}'],
     {"output": 'jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}'}),
    (["svc", "-A", "-o", "jsonpath={..port}"], {"all_namespaces": True,
                                                "output": "jsonpath={..port}"}),
    (["pods", "-o", "jsonpath={.items[0].metadata.labels}"],
     {"output": "jsonpath={.items[0].metadata.labels}"}),
    (["pods", "-o", "jsonpath-as-json={.items[*].spec.containers[*].name}"],
     {"output": "jsonpath-as-json={.items[*].spec.containers[*].name}"}),
    (["pods", "-o", "jsonpath={.items[7]}"], {"output": "jsonpath={.items[7]}"}),
    (["pods", "-o", "custom-columns=NAME:.metadata.name,IP:.status.podIP,NODE:spec.nodeName,"
      "PORTS:.spec.containers[*].ports[*].containerPort,LABELS:.metadata.labels,X:{.nope}"],
     {"output": "custom-columns=NAME:.metadata.name,IP:.status.podIP,NODE:spec.nodeName,"
      "PORTS:.spec.containers[*].ports[*].containerPort,LABELS:.metadata.labels,X:{.nope}"}),
    (["svc", "-A", "--no-headers", "-o", "custom-columns=N:.metadata.name,P:.spec.ports"],
     {"all_namespaces": True, "no_headers": True,
      "output": "custom-columns=N:.metadata.name,P:.spec.ports"}),
    (["pods,svc", "-n", "kube-system"], {"namespace": "kube-system"}),
    (["svc", "-o", "wide"], {"output": "wide"}),
    (["ns", "team-a", "default", "--show-labels"], {"show_labels": True}),
    (["ep", "web"], {}),
    (["endpointslices"], {}),
    (["svc", "web-lb", "-o", "json"], {"output": "json"}),
    (["pods", "worker", "-o", "yaml"], {"output": "yaml"}),
    (["pods", "client", "nosuch", "-o", "name"], {"output": "name"}),
    (["pods", "-l", "app in (web, client)", "-o",
      "custom-columns=NAME:.metadata.name,READY:.status.conditions[?(@.type==\"Ready\")].status"],
     {"selector": "app in (web, client)", "output": "custom-columns=NAME:.metadata.name,"
      "READY:.status.conditions[?(@.type==\"Ready\")].status"}),
    (["po", "-o", "jsonpath={.items[1].spec.containers[0].readinessProbe}"],
     {"output": "jsonpath={.items[1].spec.containers[0].readinessProbe}"}),
    (["endpointslices", "-o", "jsonpath={range .items[*]}{.metadata.labels.kubernetes\\.io/"
      "service-name}{\": \"}{.endpoints[*].addresses[0]}{\"\\n\"}{end}"],
     {"output": "jsonpath={range .items[*]}{.metadata.labels.kubernetes\\.io/service-name}"
      "{\": \"}{.endpoints[*].addresses[0]}{\"\\n\"}{end}"}),
    (["foo"], {}),
    (["pods", "client", "-l", "app=client"], {"selector": "app=client"}),
    (["pods", "client", "-A"], {"all_namespaces": True}),
    (["pod/client", "svc"], {}),
]


@pytest.mark.parametrize(("args", "request_kw"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_labnet_prints_what_kubectl_prints(kubectl, args, request_kw):
    cluster, run = kubectl
    real = run(*args)
    out, err, code = labnet(cluster, [a for a in args if not a.startswith("-")
                                      and a not in _flag_values(args)], **request_kw)
    assert out == real.stdout
    assert err == real.stderr.replace("'kubectl get ", "'labnet get ")
    assert code == real.returncode


def _flag_values(args: list[str]) -> set[str]:
    """The values of flags that take one (`-o json`): not positional arguments."""
    return {args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-o", "-l", "-n")}
