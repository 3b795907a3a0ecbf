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

More than that, for tests that change a lab or share one:

    lab = labnet_lab(text=LAB_YAML)                # a lab file's text instead of its path
    lab = labnet_lab(text=LAB_YAML, up=False)      # named and loaded, not built: lab.up() builds
    lab.up(LAB_YAML.replace("replicas: 2", "replicas: 1"))   # the lab, changed, as `labnet up`
    lab.lab.scale("default", "web", 3)             # the labnet.Lab itself, for all it can do
    name = labnet_lab.unique_name()                # a name of the test's own, for a lab built
                                                   # some other way (in the ledger, taken down)

    @pytest.fixture(scope="module")                # one lab for the tests of a module
    def shared(labnet_module_lab):
        return labnet_module_lab()

Whatever name line the lab file has, the lab is built under its own name. A lab the test takes
down itself (`lab.down()`, `labnet down`) is simply not there any more at the end.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from labnet.errors import LabNotFound
from labnet.input.labfile import default_lab_text
from labnet.lab import Lab, UpReport
from labnet.lab import down as lab_down
from labnet.plan import Plan, PlanPod
from labnet.state import StateDir


class TestLab:
    """A lab a test made, with the helpers a test wants. `lab` is the labnet.Lab itself
    (apply, scale, delete_pod, ...); the methods tests use most are here as well."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, lab: Lab, file: Path | None = None, keep_file: bool = True) -> None:
        self.lab = lab
        self.name = lab.name
        self._file, self._keep_file = file, keep_file

    @property
    def path(self) -> Path | None:
        """The lab file the lab was loaded from, under the lab's own name (None for a lab from
        a file of yours: its renamed copy sits beside yours only while it loads)."""
        return self._file if self._keep_file else None

    @property
    def plan(self) -> Plan:
        return self.lab.running_plan()

    @property
    def state(self) -> StateDir:
        return self.lab.state

    def running_plan(self) -> Plan:
        return self.lab.running_plan()

    def status(self):
        """The lab's status report, as `labnet status` has it (labnet.Lab.status)."""
        return self.lab.status()

    def up(self, text: str | None = None) -> UpReport:
        """Build or converge the lab; with `text`, from that lab file text first (its name
        line made the lab's), as `labnet up` of an edited lab file."""
        if text is not None:
            if self._file is None:
                raise ValueError(f"lab {self.name} was not made by labnet_lab: it has no file")
            self.lab = _load(self.name, text, self._file, self._keep_file)
        return self.lab.up()

    def down(self, missing_ok: bool = False) -> list[str]:
        """Take the lab down; `missing_ok`: a lab not there (never built, or already down) is
        fine."""
        try:
            return self.lab.down()
        except LabNotFound:
            if not missing_ok:
                raise
            return []

    def exec(self, target: str, argv: Sequence[str], namespace: str = "default",
             timeout: float | None = 30, check: bool = False) -> subprocess.CompletedProcess:
        """Run a command in a pod (`NAME`), a node (`node/NAME`) or `external`."""
        return self.lab.exec(target, argv, namespace, timeout=timeout, check=check)

    def curl(self, target: str, url: str, namespace: str = "default") -> str:
        """The body `curl` gets from `url`, run in `target`; fails the test on an error."""
        result = self.exec(target, ["curl", "-sS", "-m", "10", url], namespace)
        assert result.returncode == 0, f"curl {url} from {target}: {result.stderr.strip()}"
        return result.stdout

    def pod(self, name: str, namespace: str = "default") -> PlanPod:
        return self.lab.pod(name, namespace)

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


def _named(text: str, name: str) -> str:
    """`text` with its top-level name line (added if it has none) naming lab `name`."""
    lines = text.splitlines()
    if not any(line.startswith("name:") for line in lines):
        lines.insert(0, "name:")
    return "\n".join(f"name: {name}" if line.startswith("name:") else line
                     for line in lines) + "\n"


def _load(name: str, text: str, file: Path, keep_file: bool) -> Lab:
    file.write_text(_named(text, name))
    try:
        lab = Lab.load(file)
    finally:
        if not keep_file:
            file.unlink()
    assert lab.name == name, (lab.name, name)
    return lab


class LabFactory:
    """What `labnet_lab` gives a test: call it for a lab; every lab it made is taken down when
    the test (for `labnet_module_lab`, the module) ends."""

    def __init__(self, nodeid: str, directory: Path) -> None:
        self._nodeid, self._directory = nodeid, directory
        self.names: list[str] = []

    def unique_name(self) -> str:
        """A lab name of this test's own (short, a DNS label), written to the ledger; a lab of
        that name still there at the end is taken down."""
        name = record_lab(_lab_name(self._nodeid, len(self.names)))
        self.names.append(name)
        return name

    def __call__(self, path: str | Path | None = None, *, text: str | None = None,
                 up: bool = True) -> TestLab:
        """A lab from the lab file at `path`, from a lab file's `text`, or the default lab;
        built unless `up=False` (then `lab.up()` builds it)."""
        if path is not None and text is not None:
            raise TypeError("labnet_lab: give a lab file's path or its text, not both")
        if path is not None:
            text = Path(path).read_text()
        name = self.unique_name()
        if path is not None:  # written next to the original so its manifestFiles resolve
            file, keep = Path(path).parent / f".{name}.yaml", False
        else:
            file, keep = self._directory / f"{name}.yaml", True
        lab = TestLab(_load(name, default_lab_text() if text is None else text, file, keep),
                      file, keep)
        if up:
            lab.up()
        return lab

    def take_down(self) -> None:
        """Take down every lab of the names given out (one not there is fine), all of them
        even when one fails; then raise the first failure."""
        failures = []
        for name in self.names:
            try:
                lab_down(name)
            except LabNotFound:
                pass  # never built, or already taken down by the test
            except Exception as exc:  # the others go down all the same
                failures.append(exc)
        if failures:
            raise failures[0]


def _labs(nodeid: str, directory: Path) -> Iterator[LabFactory]:
    if os.geteuid() != 0:
        pytest.skip("labnet needs root (network namespaces): run the tests with sudo")
    factory = LabFactory(nodeid, directory)
    try:
        yield factory
    finally:
        factory.take_down()


@pytest.fixture
def labnet_lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LabFactory]:
    """labnet_lab(path=None, *, text=None, up=True) -> TestLab: bring up a lab (a lab file, a
    lab file's text, or the default lab) under a unique name; every lab made is taken down
    after the test."""
    yield from _labs(request.node.nodeid, tmp_path)


@pytest.fixture(scope="module")
def labnet_module_lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                      ) -> Iterator[LabFactory]:
    """As `labnet_lab`, for labs shared by the tests of a module: taken down after its last
    test."""
    yield from _labs(request.node.nodeid, tmp_path_factory.mktemp("labnet"))
