"""What CI can check of the Vagrant lab here: the provisioning script, and the Vagrantfile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import take_down

ROOT = Path(__file__).resolve().parents[2]


def test_provisioning_script_runs_here_and_is_idempotent(tmp_path):
    if Path("/run/labnet/demo").exists():
        pytest.skip("a lab named demo is up on this machine: not touching it")
    try:
        first = subprocess.run([str(ROOT / "scripts" / "provision.sh")], capture_output=True,
                               text=True, timeout=600)
        assert first.returncode == 0, first.stderr[-2000:]
        assert "lab demo: healthy" in first.stdout
        second = subprocess.run([str(ROOT / "scripts" / "provision.sh")], capture_output=True,
                                text=True, timeout=600)
        assert second.returncode == 0, second.stderr[-2000:]
        assert "lab demo is up; nothing to change" in second.stdout
    finally:
        take_down("demo")


@pytest.mark.skipif(shutil.which("vagrant") is None,
                    reason="vagrant is not installed here (no box can be downloaded anyway)")
@pytest.mark.parametrize("lab", ["single", "multi"])
def test_vagrantfile_validates(lab):
    result = subprocess.run(["vagrant", "validate"], cwd=ROOT / "vagrant" / lab,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_multi_vm_lab_file_is_valid():
    from labnet.plan import make_plan
    from labnet.spec import load_lab

    plan = make_plan(load_lab(ROOT / "vagrant" / "multi" / "lab.yaml"))
    assert {n.name: n.host for n in plan.nodes} == {"node1": "hosta", "node2": "hostb"}
    assert plan.hosts["hosta"]["interface"] == "eth1"
