"""A running lab's fingerprint: what must not change while other things run beside it.

    python -m tests.fingerprint LAB      # one line per item, for diff

Its plan and desired state (hashes of the bytes), the pids of its agent, kube-proxy workers and
pod commands, its namespaces and their inodes, and every node's iptables rules without packet
counters."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

from labnet.agent import control
from labnet.kernel import mounts
from labnet.state import StateDir


def fingerprint(lab: str) -> dict[str, object]:
    state = StateDir(lab)
    plan = state.read_plan()
    if plan is None:
        raise SystemExit(f"fingerprint: lab {lab} is not up")
    prefix = f"/run/netns/{lab}-"
    found: dict[str, object] = {
        "plan": hashlib.sha256(state.plan_path.read_bytes()).hexdigest(),
        "desired": hashlib.sha256((state.root / "desired.json").read_bytes()).hexdigest(),
        "agent": state.agent_pid(),
        "processes": processes(state),
        "netns": sorted((m.mount_point, m.root) for m in mounts.mountinfo()
                        if m.mount_point.startswith(prefix)),
    }
    for node in plan.nodes:
        text = subprocess.run([sys.executable, "-m", "labnet", "rules", "--lab", lab, node.name],
                              capture_output=True, text=True, timeout=60).stdout
        found[f"rules {node.name}"] = re.sub(r"\[\d+:\d+\]", "[0:0]", text)
    return found


def processes(state: StateDir) -> dict[str, object]:
    """Every process the agent runs for the lab, as it reports them (pid, or dead)."""
    report = control.status(state) or {}
    found: dict[str, object] = {f"kube-proxy {netns}": (p.get("pid"), p.get("alive"))
                                for netns, p in sorted(report.get("proxy", {}).items())}
    for key, pod in sorted(report.get("pods", {}).items()):
        for proc in pod.get("processes", []):
            found[f"{key} {proc['container']}"] = (proc.get("pid"), proc.get("running"))
    return found


def main() -> None:
    for key, value in fingerprint(sys.argv[1]).items():
        print(f"{key}: {json.dumps(value)}")


if __name__ == "__main__":
    main()
