"""Fixtures for tests that build real labs: each test's lab has its own name and is always
taken down, pass or fail. Skipped unless root on Linux."""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from labnet import lab as labmod
from labnet.errors import LabNotFound
from labnet.lab import Lab
from labnet.pytest_plugin import record_lab

ROOT = Path(__file__).resolve().parents[2]
# pod commands run as nobody: a Python that user can execute (the virtualenv's may live under
# /root, which nobody cannot enter)
POD_PYTHON = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3")
                   if os.access(p, os.X_OK)), sys.executable)
SEED = (ROOT / "examples" / "seed.yaml").read_text()
_counter = itertools.count(1)

if os.geteuid() != 0:
    pytest.skip("integration tests need root (real network namespaces)", allow_module_level=True)


def unique_name() -> str:
    """A lab name no one else uses, recorded in the run's ledger (scripts/test.sh takes down
    exactly those afterwards, never anything else)."""
    return record_lab(f"t{os.getpid() % 100000}n{next(_counter)}")


def lab_text(text: str, name: str) -> str:
    lines = text.splitlines()
    return "\n".join(f"name: {name}" if line.startswith("name:") else line for line in lines) + "\n"


def take_down(name: str) -> None:
    with contextlib.suppress(LabNotFound):
        labmod.down(name)


@pytest.fixture
def make_lab(tmp_path):
    """make_lab(yaml_text, up=True) -> Lab with a unique name, removed after the test."""
    names: list[str] = []

    def factory(text: str = SEED, up: bool = True) -> Lab:
        name = unique_name()
        path = tmp_path / f"{name}.yaml"
        path.write_text(lab_text(text, name))
        names.append(name)
        lab = Lab.load(path)
        lab.path = path  # type: ignore[attr-defined]
        if up:
            lab.up()
        return lab

    yield factory
    for name in names:
        take_down(name)


@contextlib.contextmanager
def running_lab(text: str, directory: Path):
    """A lab from `text` under a unique name, up for the block and always taken down."""
    name = unique_name()
    path = directory / f"{name}.yaml"
    path.write_text(lab_text(text, name))
    lab = Lab.load(path)
    lab.path = path  # type: ignore[attr-defined]
    try:
        lab.up()
        yield lab
    finally:
        take_down(name)


@pytest.fixture(scope="module")
def seed_lab(tmp_path_factory):
    """The default lab under a unique name, shared by the read-only tests of a module."""
    with running_lab(SEED, tmp_path_factory.mktemp("seed")) as lab:
        yield lab


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
