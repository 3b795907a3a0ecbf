"""Validation of lab files and manifests: every error is one line naming where and what."""

from pathlib import Path

import pytest

from labnet.errors import SpecError, SpecErrors
from labnet.input.labfile import load_default, load_lab, parse_lab_text
from tests.manifests import HTTP_8080, deployment, lab_text, service

ROOT = Path(__file__).resolve().parents[2]


def parse(text: str, base: Path = ROOT):
    return parse_lab_text(text, "lab.yaml", base)


def errors_of(text: str, base: Path = ROOT) -> list[str]:
    with pytest.raises((SpecError, SpecErrors)) as info:
        parse(text, base)
    exc = info.value
    lines = [e.line() for e in exc.errors] if isinstance(exc, SpecErrors) else [exc.line()]
    assert all("\n" not in line for line in lines)
    return lines


DEPLOY = "\nmanifests:\n" + deployment(replicas=2)


def test_default_lab_is_the_article_cluster():
    spec = load_default()
    assert spec.name == "demo"
    assert [n.name for n in spec.nodes] == ["node1", "node2"]
    assert str(spec.network.underlay_cidr) == "192.168.255.0/24"
    assert str(spec.network.service_cidr) == "172.19.0.0/16"
    assert str(spec.network.cluster_dns) == "172.19.0.10"
    assert spec.deployments[0].name == "my-nginx" and spec.deployments[0].replicas == 2
    assert spec.pods[0].name == "client" and spec.pods[0].template.node_name == "node1"


def test_shipped_seed_is_the_built_in_default():
    """One file: examples/seed.yaml is a link to the packaged default, not a copy to keep equal."""
    example = ROOT / "examples" / "seed.yaml"
    assert example.is_symlink()
    assert example.resolve() == (ROOT / "labnet" / "data" / "seed.yaml").resolve()
    assert load_lab(ROOT / "examples" / "seed.yaml").deployments == load_default().deployments


def test_yaml_syntax_error_names_line():
    (line,) = errors_of("name: x\nnodes: [a, b\nnetwork: {}\n")
    assert line.startswith("lab.yaml:3:") and "YAML syntax error" in line


@pytest.mark.parametrize("text, expected", [
    ("name: x\nnodse: 2\n", "lab.yaml:2: unknown field 'nodse' in the lab file (did you mean 'nodes'?)"),
    ("name: x\nnetwork:\n  podCIDR: 10.0.0.0/8\n  sevriceCIDR: 10.96.0.0/12\n",
     "lab.yaml:4: unknown field 'sevriceCIDR' in network (did you mean 'serviceCIDR'?)"),
    ("name: Bad_Name\n", "lab.yaml:1: lab name 'Bad_Name' is not a valid DNS-1123 label"),
    ("name: x\nnetwork: {podCIDR: 172.16.0.0/33}\n", "network.podCIDR '172.16.0.0/33' is not a valid"),
    ("name: x\nnetwork: {podCIDR: 172.16.0.1/16}\n", "has host bits set"),
    ("name: x\nnetwork: {serviceCIDR: 172.16.128.0/17}\n",
     "network.podCIDR 172.16.0.0/16 overlaps network.serviceCIDR 172.16.128.0/17"),
    ("name: x\nnetwork: {underlayCIDR: 172.19.1.0/24}\n", "overlaps network.serviceCIDR"),
    ("name: x\nnetwork: {clusterDNS: 10.0.0.10}\n", "is not a usable address of serviceCIDR"),
    ("name: x\nnetwork: {podCIDR: 172.16.0.0/22}\nnodes: 4\n", "nodes: 4 is not between 1 and 3"),
    ("name: x\nnodes: [a, b, a]\n", "lab.yaml:2: duplicate node name 'a'"),
    ("name: x\nnodes: [external]\n", "reserved"),
    ("name: x\nnodes: [Node_1]\n", "node name 'Node_1' is not a valid DNS-1123 label"),
    ("name: x\nnetwork: {mtu: 100}\n", "network.mtu is 100, outside 1280..9000"),
    ("name: x\nnetwork: {vxlan: {vni: 0}}\n", "network.vxlan.vni is 0"),
])
def test_lab_file_errors(text, expected):
    lines = errors_of(text)
    assert any(expected in line for line in lines), lines


@pytest.mark.parametrize("patch, expected", [
    (("replicas: 2", "replcas: 2"), "unknown field 'replcas' in Deployment web spec (did you mean 'replicas'?)"),
    (("selector: {matchLabels: {app: web}}", "selector: {matchLabels: {app: other}}"),
     "Deployment web: selector does not match the template labels"),
    (("name: web}", "name: Web}"), "Deployment name 'Web' is not a valid DNS-1123 subdomain"),
    (("containerPort: 80", "containerPort: 70000"), "containerPort is 70000, outside 1..65535"),
    (("containerPort: 80}", "containerPort: 80, protocol: SCTP}"), "protocol 'SCTP' is not supported"),
    (("{name: c,", "{name: c, imgae: x,"), "unknown field 'imgae' in Deployment web container c (did you mean 'image'?)"),
    (("metadata: {name: web}", "metadata: {name: web, namespace: shop}"),
     "namespace 'shop' does not exist (add a v1 Namespace manifest for it)"),
    (("spec:\n          containers", "spec:\n          nodeName: node9\n          containers"),
     "nodeName 'node9' is not a node of this lab"),
    (("spec:\n          containers", "spec:\n          nodeSelector: {zone: moon}\n          containers"),
     "no node matches nodeSelector"),
])
def test_manifest_errors(patch, expected):
    text = "name: x\nnodes: [node1, node2]\n" + DEPLOY.replace(*patch)
    assert text != "name: x\nnodes: [node1, node2]\n" + DEPLOY
    lines = errors_of(text)
    assert any(expected in line for line in lines), lines
    assert all(line.startswith("lab.yaml:") for line in lines), lines


def test_error_points_at_the_line_of_the_field():
    text = "name: x\n" + DEPLOY.replace("replicas: 2", "replcas: 2")
    (line,) = errors_of(text)
    lineno = int(line.split(":")[1])
    assert text.splitlines()[lineno - 1].strip().startswith("replcas")


def test_every_error_is_reported_at_once():
    lines = errors_of("name: x\nnodse: 2\nnetwork: {mtu: 1}\n")
    assert len(lines) == 2


def test_duplicates_and_unknown_kinds():
    dup = DEPLOY + DEPLOY.split("manifests:\n", 1)[1]
    assert any("duplicate Deployment default/web" in x for x in errors_of("name: x\n" + dup))
    unknown = "name: x\nmanifests:\n  - {apiVersion: v1, kind: Gadget, metadata: {name: g}}\n"
    (line,) = errors_of(unknown)
    assert "unsupported manifest kind 'Gadget'" in line and line.startswith("lab.yaml:3")


def test_ignored_kinds_warn_instead_of_failing():
    text = "name: x\nmanifests:\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n"
    spec = parse(text)
    assert spec.warnings and "ConfigMap c skipped" in spec.warnings[0]


def test_duplicate_yaml_key():
    (line,) = errors_of("name: x\nname: y\n")
    assert line == "lab.yaml:2: duplicate key 'name' (each key may appear once in a mapping)"


def test_manifest_files_and_directories(tmp_path):
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "a.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p1, namespace: shop}\n"
        "spec: {containers: [{name: c}]}\n")
    (tmp_path / "b.yml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p2, namespace: shop}\n"
        "spec: {containers: [{name: c, ports: [{containerPort: 53, protocol: UDP}]}]}\n")
    spec = parse("name: x\nmanifestFiles: [apps, b.yml]\n", tmp_path)
    assert [p.key for p in spec.pods] == ["shop/p1", "shop/p2"]
    assert spec.pods[1].template.containers[0].ports[0].protocol == "UDP"
    (line,) = errors_of("name: x\nmanifestFiles: [missing.yaml]\n", tmp_path)
    assert "missing.yaml: manifest file not found" in line
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p3}\n"
                                       "spec: {containers: [{name: c, portz: []}]}\n")
    (line,) = errors_of("name: x\nmanifestFiles: [bad.yaml]\n", tmp_path)
    assert line.startswith(f"{tmp_path}/bad.yaml:4") and "'portz'" in line


def test_nodes_as_count_and_as_objects():
    assert [n.name for n in parse("name: x\nnodes: 3\n").nodes] == ["node1", "node2", "node3"]
    spec = parse("name: x\nnodes:\n  - {name: a, labels: {zone: z1}, address: 192.168.255.50}\n")
    assert spec.nodes[0].labels["zone"] == "z1" and str(spec.nodes[0].address) == "192.168.255.50"


SERVICE = lab_text(
    deployment(containers=HTTP_8080),
    service(ports=["{name: http, port: 80, targetPort: http, nodePort: 30080}"],
            type="NodePort", clusterIP="172.19.0.20"))


@pytest.mark.parametrize("patch, expected", [
    (("clusterIP: 172.19.0.20", "clusterIP: 10.0.0.1"),
     "clusterIP 10.0.0.1 is not a usable address of serviceCIDR 172.19.0.0/16"),
    (("clusterIP: 172.19.0.20", "clusterIP: 172.19.0.10"),
     "clusterIP 172.19.0.10 is already taken by the cluster DNS service"),
    (("nodePort: 30080", "nodePort: 80"), "nodePort is 80, outside 30000..32767"),
    (("targetPort: http", "targetPort: htp"),
     "targetPort 'htp' is not a containerPort name of any pod it selects"),
    (("type: NodePort", "type: Gateway"), "unknown type 'Gateway'"),
    (("- {name: http, port: 80, targetPort: http, nodePort: 30080}",
      "- {name: http, port: 80, targetPort: http, nodePort: 30080}\n        - {name: h2, port: 80}"),
     "duplicate port 80/TCP"),
    (("type: NodePort", "type: NodePort\n      sessionAffinity: Sticky"),
     "sessionAffinity 'Sticky' is not None or ClientIP"),
    (("type: NodePort", "type: NodePort\n      externalTrafficPolicy: Nearby"),
     "externalTrafficPolicy 'Nearby' is not Cluster or Local"),
    (("type: NodePort", "type: NodePort\n      clustrIP: 1.2.3.4"),
     "unknown field 'clustrIP' in Service web spec (did you mean 'clusterIP'?)"),
])
def test_service_errors(patch, expected):
    text = SERVICE.replace(*patch)
    assert text != SERVICE
    lines = errors_of(text)
    assert any(expected in line for line in lines), lines


def test_service_conflicts_between_services():
    second = SERVICE.split("  - apiVersion: v1\n    kind: Service")[1].replace(
        "name: web}", "name: web2}", 1)
    lines = errors_of(SERVICE + "  - apiVersion: v1\n    kind: Service" + second)
    assert any("clusterIP 172.19.0.20 is already taken by Service default/web" in x
               for x in lines)
    assert any("nodePort 30080/TCP is already taken by Service default/web" in x for x in lines)


def test_endpoint_slice_needs_a_selectorless_service():
    text = SERVICE + """  - apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
    addressType: IPv4
    endpoints: [{addresses: [10.9.0.1]}]
    ports: [{name: http, port: 8080}]
"""
    (line,) = errors_of(text)
    assert "Service web has a selector, so its endpoints come from its pods" in line


@pytest.mark.parametrize("hosts, expected", [
    ("[{name: a, nodes: [node1, node2]}, {name: b, nodes: [node2]}]", "node node2 is on hosts a and b"),
    ("[{name: a, nodes: [node1, node9]}, {name: b, nodes: [node2]}]", "hosts name node 'node9'"),
    ("[{name: a, nodes: [node1]}]", "node node2 is on no host"),
    ("[{name: A_1, nodes: [node1, node2]}]", "host name 'A_1' is not a valid DNS-1123 label"),
    ("[{name: a, nodes: [node1, node2], iface: eth1}]", "unknown field 'iface' in host (did you mean 'interface'?)"),
])
def test_hosts_errors(hosts, expected):
    lines = errors_of(f"name: x\nnodes: [node1, node2]\nhosts: {hosts}\n")
    assert any(expected in line for line in lines), lines


def test_hosts_assign_nodes():
    spec = parse("name: x\nnodes: [node1, node2]\nhosts:\n  - {name: a, nodes: [node1]}\n"
                 "  - {name: b, nodes: [node2], interface: ens4, address: 10.0.0.2}\n")
    assert [(h.name, h.nodes, h.interface) for h in spec.hosts] == [
        ("a", ("node1",), "eth0"), ("b", ("node2",), "ens4")]
