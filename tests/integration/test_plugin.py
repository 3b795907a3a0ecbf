"""The pytest plugin, used as a user would (`labnet_lab` comes from the installed plugin)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labnet.names import lab_name_problem
from tests.manifests import PORT_80, bare_pod, lab_text

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


ONE = lab_text(bare_pod("a", containers=PORT_80), bare_pod("tester"), nodes=1)


def test_a_lab_from_text_built_when_asked_changed_and_taken_down_by_the_test(labnet_lab):
    lab = labnet_lab(text=ONE, up=False)
    assert not Path(f"/run/labnet/{lab.name}").exists()  # named and loaded, not built
    assert lab.path.read_text().startswith(f"\nname: {lab.name}\n")
    lab.up()
    assert "pod: a" in lab.curl("tester", f"http://{lab.pod_ip('a')}/")
    lab.up(ONE + bare_pod("b", containers=PORT_80))  # the lab file changed, as `labnet up`
    assert "pod: b" in lab.curl("tester", f"http://{lab.pod_ip('b')}/")
    assert lab.lab.running_plan() == lab.running_plan()  # the labnet.Lab underneath
    lab.down()  # the fixture finds nothing to take down at the end, and does not mind
    assert not Path(f"/run/labnet/{lab.name}").exists()
    other = labnet_lab.unique_name()
    assert other not in (lab.name, "") and lab_name_problem(other) is None


@pytest.fixture(scope="module")
def shared(labnet_module_lab):
    return labnet_module_lab(text=ONE)


SEEN: list[str] = []


@pytest.mark.parametrize("run", [1, 2])
def test_a_module_lab_is_shared_by_the_tests_of_its_module(shared, run):
    SEEN.append(shared.name)
    assert len(SEEN) == run and set(SEEN) == {shared.name}
    assert shared.exec("tester", ["true"]).returncode == 0
