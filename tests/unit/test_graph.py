"""labnet graph: the lab's picture parses and shows every pod and service."""

import json
import shutil
import subprocess

import jsonschema
import pytest

from labnet.graph import GRAPH_SCHEMA, graph, to_dot, to_json, to_mermaid
from labnet.input.labfile import load_default
from labnet.plan import make_plan


@pytest.fixture(scope="module")
def plan():
    return make_plan(load_default())


def test_json_follows_its_schema_and_lists_everything(plan):
    data = json.loads(to_json(graph(plan)))
    jsonschema.validate(data, GRAPH_SCHEMA)
    ids = {v["id"] for v in data["vertices"]}
    assert {f"pod:{p.key}" for p in plan.pods} <= ids
    assert {f"svc:{s.key}" for s in plan.services} <= ids
    endpoints = {(e["from"], e["to"]) for e in data["edges"] if e["kind"] == "endpoint"}
    nginx = [p for p in plan.pods if p.labels.get("app") == "my-nginx"]
    assert {("svc:default/my-nginx", f"pod:{p.key}") for p in nginx} <= endpoints
    assert [e for e in data["edges"] if e["kind"] == "vxlan"] == [
        {"from": "node:node1:vxlan", "to": "node:node2:vxlan", "kind": "vxlan",
         "label": "UDP 8472"}]
    for edge in data["edges"]:
        assert edge["from"] in ids and edge["to"] in ids


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz (dot) is not installed")
def test_dot_is_valid_graphviz(plan):
    text = to_dot(graph(plan))
    result = subprocess.run(["dot", "-Tcanon"], input=text, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    for pod in plan.pods:
        assert f"{pod.key} {pod.ip}" in text
    for svc in plan.services:
        assert f"{svc.key} {svc.cluster_ip}" in text


def test_mermaid_lists_every_pod_and_service(plan):
    text = to_mermaid(graph(plan))
    assert text.startswith("flowchart LR\n")
    for pod in plan.pods:
        assert f"{pod.key} {pod.ip}" in text
    for svc in plan.services:
        assert svc.key in text
