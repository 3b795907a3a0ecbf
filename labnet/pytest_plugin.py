"""A pytest plugin for testing your own networking tools against a real labnet lab.

Installed with labnet (entry point `pytest11`), so in any project that has labnet:

    def test_my_client_through_a_service(labnet_lab):
        lab = labnet_lab()                         # the default lab, or labnet_lab("lab.yaml")
        vip = lab.service_ip("my-nginx")
        result = lab.exec("client", ["my-tool", f"http://{vip}/"])
        assert result.returncode == 0

Each lab gets a name of its own and is always taken down after the test, pass or fail. Tests
that use it are skipped, with the reason, where labnet cannot run (not root). If the
environment names a ledger file (LABNET_TEST_LEDGER), every lab name is appended to it before
the lab is built, so a CI step can take down exactly what a killed test run left:

    while read -r lab; do labnet down "$lab" || true; done < "$LABNET_TEST_LEDGER"
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from labnet.errors import LabNotFound
from labnet.input.labfile import default_lab_text
from labnet.lab import Lab
from labnet.lab import down as lab_down


class TestLab:
    """A running lab, with the helpers a test wants."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.name = lab.name

    @property
    def plan(self):
        return self.lab.running_plan()

    def exec(self, target: str, argv: Sequence[str], namespace: str = "default",
             timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a command in a pod (`NAME`), a node (`node/NAME`) or `external`."""
        return self.lab.exec(target, argv, namespace, timeout=timeout)

    def curl(self, target: str, url: str, namespace: str = "default") -> str:
        """The body `curl` gets from `url`, run in `target`; fails the test on an error."""
        result = self.exec(target, ["curl", "-sS", "-m", "10", url], namespace)
        assert result.returncode == 0, f"curl {url} from {target}: {result.stderr.strip()}"
        return result.stdout

    def pod_ip(self, name: str, namespace: str = "default") -> str:
        return self.lab.pod(name, namespace).ip

    def service_ip(self, name: str, namespace: str = "default") -> str:
        return self.plan.service(f"{namespace}/{name}").cluster_ip

    def node_ip(self, name: str) -> str:
        return self.plan.node(name).underlay_ip

    def apply(self, manifests: str) -> list[str]:
        """Apply manifests given as YAML text to the running lab."""
        from labnet.input.yamlsrc import load_documents

        return Lab.attach(self.name).apply(load_documents(manifests, "<test>"))[1]


LEDGER_ENV = "LABNET_TEST_LEDGER"


def record_lab(name: str) -> str:
    """Append `name` to the run's ledger (if there is one) before the lab exists."""
    ledger = os.environ.get(LEDGER_ENV)
    if ledger:
        with open(ledger, "a") as f:
            f.write(name + "\n")
    return name


def _lab_name(nodeid: str, index: int) -> str:
    return "pt" + hashlib.sha256(f"{os.getpid()}/{nodeid}/{index}".encode()).hexdigest()[:8]


@pytest.fixture
def labnet_lab(request: pytest.FixtureRequest, tmp_path: Path
               ) -> Iterator[Callable[..., TestLab]]:
    """labnet_lab(path=None) -> TestLab: bring up a lab (a lab file, or the default lab) under a
    unique name; every lab made is taken down after the test."""
    if os.geteuid() != 0:
        pytest.skip("labnet needs root (network namespaces): run the tests with sudo")
    made: list[str] = []

    def factory(path: str | Path | None = None) -> TestLab:
        text = Path(path).read_text() if path else default_lab_text()
        name = record_lab(_lab_name(request.node.nodeid, len(made)))
        lines = [f"name: {name}" if line.startswith("name:") else line
                 for line in text.splitlines()]
        base = Path(path).parent if path else tmp_path
        lab_file = base / f".{name}.yaml" if path else tmp_path / f"{name}.yaml"
        lab_file.write_text("\n".join(lines) + "\n")
        made.append(name)
        try:
            lab = Lab.load(lab_file)
        finally:
            if path:  # written next to the original so its manifestFiles resolve
                lab_file.unlink()
        lab.up()
        return TestLab(lab)

    yield factory
    for name in made:
        with contextlib.suppress(LabNotFound):
            lab_down(name)
