"""The manifests and lab texts the tests share: one copy of each, as YAML text.

A manifest here is an item of a lab file's `manifests:` list as the tests write it (indented
two spaces, a dash; it ends in a newline). `lab_text(...)` makes a lab file's text of them, and
`document(...)` makes one a YAML document of its own (for `labnet apply -f`). The text is the
point: unit tests patch it (`.replace(...)`) and check the line numbers of errors in it, so a
helper's output only changes together with the tests that read it.

Imports nothing of pytest: code run in sealed mount namespaces uses it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the default lab (examples/seed.yaml is a link to labnet/data/seed.yaml)
SEED = (ROOT / "examples" / "seed.yaml").read_text()

# containers lists: one container `c`, and the ports it declares
NO_PORTS = "[{name: c}]"
PORT_80 = "[{name: c, ports: [{containerPort: 80}]}]"
PORT_8080 = "[{name: c, ports: [{containerPort: 8080}]}]"
HTTP_80 = "[{name: c, ports: [{name: http, containerPort: 80}]}]"
HTTP_8080 = "[{name: c, ports: [{name: http, containerPort: 8080}]}]"
SQL_3306 = "[{name: c, ports: [{name: sql, containerPort: 3306}]}]"


def lab_text(*manifests: str, name: str = "x", nodes: int | str = 2, settings: str = "") -> str:
    """A lab file's text: its name, nodes, any other `settings` lines, then the manifests."""
    return f"\nname: {name}\nnodes: {nodes}\n{settings}manifests:\n" + "".join(manifests)


def _meta(name: str, namespace: str | None) -> str:
    return f"{{name: {name}, namespace: {namespace}}}" if namespace else f"{{name: {name}}}"


def namespace(name: str) -> str:
    return f"  - {{apiVersion: v1, kind: Namespace, metadata: {{name: {name}}}}}\n"


def deployment(name: str = "web", *, replicas: int | None = None, containers: str = PORT_80,
               app: str | None = None, namespace: str | None = None,
               node: str | None = None) -> str:
    """A Deployment whose pods carry (and whose selector matches) `app` (its name unless
    given); `replicas` left out unless given (Kubernetes' default, 1), `node` its nodeName."""
    app = app or name
    return ("  - apiVersion: apps/v1\n"
            "    kind: Deployment\n"
            f"    metadata: {_meta(name, namespace)}\n"
            "    spec:\n"
            + (f"      replicas: {replicas}\n" if replicas is not None else "")
            + f"      selector: {{matchLabels: {{app: {app}}}}}\n"
            "      template:\n"
            f"        metadata: {{labels: {{app: {app}}}}}\n"
            "        spec:\n"
            + (f"          nodeName: {node}\n" if node else "")
            + f"          containers: {containers}\n")


def service(name: str = "web", ports: str | Sequence[str] = "[{port: 80}]", *,
            app: str | None = None, selector: bool = True, namespace: str | None = None,
            **fields: str) -> str:
    """A Service selecting `app` (its name unless given; none with `selector=False`), its
    other spec `fields` first, in order; `ports` a flow list, or its items (a block list)."""
    lines = ["  - apiVersion: v1", "    kind: Service", f"    metadata: {_meta(name, namespace)}",
             "    spec:", *(f"      {key}: {value}" for key, value in fields.items())]
    if selector:
        lines.append(f"      selector: {{app: {app or name}}}")
    if isinstance(ports, str):
        lines.append(f"      ports: {ports}")
    else:
        lines += ["      ports:", *(f"        - {port}" for port in ports)]
    return "\n".join(lines) + "\n"


def external_name(name: str, target: str) -> str:
    return (f"  - {{apiVersion: v1, kind: Service, metadata: {{name: {name}}}, spec: "
            f"{{type: ExternalName, externalName: {target}}}}}\n")


def bare_pod(name: str, *, app: str | None = None, node: str | None = None,
        containers: str = NO_PORTS, **spec: str) -> str:
    """A bare Pod on one line, labelled `app` if given, on `node` if given; other `spec`
    fields (hostname, subdomain, ...) before its containers."""
    labels = f", labels: {{app: {app}}}" if app else ""
    items = [*([f"nodeName: {node}"] if node else []),
             *(f"{key}: {value}" for key, value in spec.items()), f"containers: {containers}"]
    return (f"  - {{apiVersion: v1, kind: Pod, metadata: {{name: {name}{labels}}}, "
            f"spec: {{{', '.join(items)}}}}}\n")


def bare_pods(count: int, *, prefix: str = "p", app: str | None = None,
              node: str | None = None, containers: str = PORT_80) -> str:
    """Pods `{prefix}0` .. `{prefix}{count - 1}`, one line each."""
    return "".join(bare_pod(f"{prefix}{i}", app=app, node=node, containers=containers)
                   for i in range(count))


def document(manifest: str) -> str:
    """A manifest of a `manifests:` list as a YAML document of its own."""
    first, *rest = manifest.splitlines()
    return "\n".join([first.removeprefix("  - "), *(line[4:] for line in rest)]) + "\n"


# --- the same objects in several labs --------------------------------------------------------

def db_pod(index: int) -> str:
    """Pod db-N with its own DNS name (hostname and subdomain) under the headless `db`."""
    return bare_pod(f"db-{index}", app="db", hostname=f"db-{index}", subdomain="db",
               containers=SQL_3306)


DB_SERVICE = service("db", "[{name: sql, port: 3306}]", clusterIP="None")
ALIAS = external_name("alias", "web.default.svc.cluster.local")
EXTERNAL = external_name("ext", "www.example.com")
