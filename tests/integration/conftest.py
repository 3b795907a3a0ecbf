"""Helpers for tests that build real labs. The labs themselves come from labnet's pytest
plugin (labnet/pytest_plugin.py): `labnet_lab`, and `labnet_module_lab` for a lab the tests of
a module share; each lab has its own name, is in the run's ledger, and is always taken down.
Skipped unless root on Linux."""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys

import pytest

# pod commands run as nobody: a Python that user can execute (the virtualenv's may live under
# /root, which nobody cannot enter)
POD_PYTHON = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3")
                   if os.access(p, os.X_OK)), sys.executable)

if os.geteuid() != 0:
    pytest.skip("integration tests need root (real network namespaces)", allow_module_level=True)


def labnet_cli(*args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labnet", *args], capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def parse_whoami(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.strip().splitlines() if ": " in line)


REQUESTS = ("import sys,urllib.request as u\n"
            "for _ in range(int(sys.argv[2])):\n"
            "    print(u.urlopen(sys.argv[1], timeout=3).read().decode().splitlines()[0])\n")


def answered_by(lab, target: str, url: str, n: int = 40) -> collections.Counter:
    """Which pods answered n requests from `target` (each a new connection, as kube-proxy
    balances connections)."""
    result = lab.exec(target, [sys.executable, "-c", REQUESTS, url, str(n)], timeout=120)
    assert result.returncode == 0, result.stderr
    return collections.Counter(line.split(": ")[1] for line in result.stdout.splitlines())


def kernel_rules(lab, node: str) -> str:
    """A node's rules as iptables-legacy-save prints them, without packet counters (probes
    and requests move those)."""
    text = labnet_cli("rules", "--lab", lab.name, node).stdout
    return re.sub(r"\[\d+:\d+\]", "[0:0]", text)


def wait_for(predicate, seconds: float = 10, step: float = 0.05) -> bool:
    """Poll `predicate` until it holds (True) or `seconds` pass (False)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False
