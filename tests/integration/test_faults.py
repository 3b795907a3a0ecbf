"""The fault campaign (tests/integration/faults.py), beside a bystander lab that must come out
of it byte for byte unchanged and still serving curl by name."""

from __future__ import annotations

import glob
import os
import random
import tempfile

import pytest

from tests.fingerprint import fingerprint
from tests.integration.conftest import parse_whoami
from tests.integration.faults import campaign
from tests.integration.sealed import run_sealed

RUNS = 20


@pytest.fixture(scope="module")
def bystander(labnet_module_lab):
    """Somebody else's lab, up before the campaign and after it."""
    return labnet_module_lab()


def snapshot(lab) -> dict:
    return {**fingerprint(lab.name),
            # nothing of the campaign's stays: namespaces, nor the fork servers' temp dirs
            "all netns": sorted(os.listdir("/run/netns")),
            "temp dirs": sorted(glob.glob(os.path.join(tempfile.gettempdir(), "pymp-*")))}


def still_serves(lab) -> None:
    answer = lab.exec("client", ["curl", "-s", "-m", "5", "http://my-nginx/"])
    assert answer.returncode == 0, answer.stderr
    assert parse_whoami(answer.stdout)["pod"].startswith("my-nginx-")


def judge(result: dict) -> None:
    seed = result["seed"]
    bad = [r for r in result["runs"] if r["errors"] or r["leftovers"]]
    assert not bad, f"seed {seed}: {bad}"
    killed = [r for r in result["runs"] if r["killed"]]
    # the moments are random, but most kills must land while the command runs
    assert len(killed) >= len(result["runs"]) // 2, f"seed {seed}: {result['runs']}"
    assert any(r["netns_at_kill"] for r in killed if r["kind"] == "up"), result["runs"]


def test_sigkilled_commands_leave_nothing_after_down(bystander):
    before = snapshot(bystander)
    seed = random.randrange(2**32)
    result = campaign(RUNS, seed)
    judge(result)
    for run in result["runs"]:
        print(f"seed {seed} run {run['run']}: {run['kind']} killed at {run['delay']} s "
              f"({'while running' if run['killed'] else 'after it finished'}), "
              f"{run['netns_at_kill']} netns then, 0 left")
    after = snapshot(bystander)
    assert after == before
    still_serves(bystander)


def test_the_same_beside_ip_netns_from_a_plain_run_netns(bystander):
    """Another tool's `ip netns add / exec / del` all the while, /run/netns a plain directory
    at the start (a sealed mount namespace: the bystander is not even visible there)."""
    before = snapshot(bystander)
    seed = random.randrange(2**32)
    result = run_sealed("import json\nfrom tests.integration.faults import campaign\n"
                        f"print(json.dumps(campaign({RUNS}, {seed}, interleave=True)))")
    judge(result)
    assert all(r["other_tool_rounds"] > 0 for r in result["runs"])
    assert snapshot(bystander) == before
    still_serves(bystander)

