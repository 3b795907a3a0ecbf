"""What CI can check of the Vagrant lab here: the provisioning script, and the Vagrantfile."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.sealed import sealed

ROOT = Path(__file__).resolve().parents[2]


PROVISION_TWICE = """
set -u
scripts/provision.sh > "$OUT/first.out" 2> "$OUT/first.err"; echo $? > "$OUT/first.rc"
scripts/provision.sh > "$OUT/second.out" 2> "$OUT/second.err"; echo $? > "$OUT/second.rc"
.venv/bin/labnet down demo > "$OUT/down.out" 2>&1; echo $? > "$OUT/down.rc"
ls /run/netns > "$OUT/netns.left"
"""


def test_provisioning_script_runs_here_and_is_idempotent(tmp_path):
    """Sealed (its own /run/netns, /etc/netns and state directory), so the `demo` lab it
    brings up is never the user's `demo`, running or not."""
    made_etc = not Path("/etc/netns").exists()
    if made_etc:
        Path("/etc/netns").mkdir(mode=0o755)
    try:
        result = sealed(["sh", "-c", PROVISION_TWICE],
                        fresh_run=False, env={"LABNET_RUN_DIR": str(tmp_path / "run"),
                                              "OUT": str(tmp_path)})
    finally:
        if made_etc:
            with contextlib.suppress(OSError):  # another lab may have put files there since
                Path("/etc/netns").rmdir()
    assert result.returncode == 0, result.stderr
    out = {p.name: p.read_text() for p in tmp_path.iterdir() if p.is_file()}
    assert out["first.rc"].strip() == "0", out["first.err"][-2000:]
    assert "lab demo: healthy" in out["first.out"]
    assert out["second.rc"].strip() == "0", out["second.err"][-2000:]
    assert "lab demo is up; nothing to change" in out["second.out"]
    assert out["down.rc"].strip() == "0", out["down.out"]
    assert out["netns.left"] == ""
    assert not (tmp_path / "run" / "demo").exists()


@pytest.mark.skipif(shutil.which("vagrant") is None,
                    reason="vagrant is not installed here (no box can be downloaded anyway)")
@pytest.mark.parametrize("lab", ["single", "multi"])
def test_vagrantfile_validates(lab):
    result = subprocess.run(["vagrant", "validate"], cwd=ROOT / "vagrant" / lab,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_multi_vm_lab_file_is_valid():
    from labnet.input.labfile import load_lab
    from labnet.plan import make_plan

    plan = make_plan(load_lab(ROOT / "vagrant" / "multi" / "lab.yaml"))
    assert {n.name: n.host for n in plan.nodes} == {"node1": "hosta", "node2": "hostb"}
    assert plan.hosts["hosta"].interface == "eth1"
