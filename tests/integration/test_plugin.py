"""The pytest plugin, used as a user would (`labnet_lab` comes from the installed plugin)."""

from __future__ import annotations

from pathlib import Path

LAB = """
name: mine
nodes: 1
manifestFiles: [apps/]
"""
APP = """
apiVersion: v1
kind: Pod
metadata: {name: api, labels: {app: api}}
spec: {containers: [{name: c, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: tester}
spec: {containers: [{name: c}]}
"""


def test_a_lab_file_with_manifest_files(labnet_lab, tmp_path: Path):
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "api.yaml").write_text(APP)
    (tmp_path / "lab.yaml").write_text(LAB)
    lab = labnet_lab(tmp_path / "lab.yaml")
    assert lab.name.startswith("pt") and lab.name != "mine"  # unique per test
    body = lab.curl("tester", f"http://{lab.service_ip('api')}/")
    assert f"ip: {lab.pod_ip('api')}" in body
    assert "pod: api" in lab.curl("tester", "http://api/")
    assert lab.exec("node/node1", ["ping", "-c1", "-W2", lab.pod_ip("api")]).returncode == 0
    assert not list(tmp_path.glob(".pt*.yaml"))  # the renamed copy is gone


def test_labs_are_taken_down_after_each_test(labnet_lab):
    first = labnet_lab()
    second = labnet_lab()
    assert first.name != second.name
    assert first.pod_ip("client") == second.pod_ip("client")  # same plan, separate labs
    assert Path(f"/run/labnet/{first.name}").is_dir()
