"""The lab's state directory, /run/labnet/<lab>/ (gone at reboot, like the namespaces).

    plan.json     the plan being applied or running, written atomically before any change
    desired.json  lab settings + every object (manifests may hold secrets in env values)
    lock          flock'd by every command that changes or reads the lab
    agent.pid     the pod agent;  agent.sock  its control socket;  logs/  pod command output

Only root may read any of it: directories are 0700 and files are created 0600 (never chmod'ed
afterwards, so there is no moment when they are readable). The lab name is validated before it
becomes a path.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from labnet.errors import LabnetError, SpecError
from labnet.names import lab_name_problem
from labnet.plan import Plan
from labnet.safepath import child

RUN_DIR = Path(os.environ.get("LABNET_RUN_DIR", "/run/labnet"))


class LockTimeout(LabnetError):
    exit_code = 75


DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """`path` as a directory only root can enter (made so, or mended if it was not)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=DIR_MODE)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        os.chmod(path, DIR_MODE)


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, the new file created 0600."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a crashed writer's, maybe with other modes: never reuse it
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def open_log(path: Path):
    """A log file opened for appending, created 0600."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                             FILE_MODE), "ab")


def check_lab_name(name: str) -> str:
    problem = lab_name_problem(name)
    if problem is not None:
        raise SpecError("", problem)
    return name


class StateDir:
    def __init__(self, lab: str, root: Path | None = None) -> None:
        self.lab = check_lab_name(lab)
        self.base = root or RUN_DIR
        self.root = child(self.base, lab)

    @property
    def plan_path(self) -> Path:
        return self.root / "plan.json"

    @property
    def lock_path(self) -> Path:
        return self.root / "lock"

    @property
    def agent_pid_path(self) -> Path:
        return self.root / "agent.pid"

    @property
    def agent_socket(self) -> Path:
        return self.root / "agent.sock"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def exists(self) -> bool:
        return self.root.is_dir()

    def read_plan(self) -> Plan | None:
        try:
            return Plan.from_json(self.plan_path.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise LabnetError(f"{self.plan_path}: unreadable plan ({exc}); "
                              f"`labnet clean` removes what the lab left") from None

    def ensure(self) -> None:
        """The run directory and this lab's, both 0700."""
        make_private_dir(self.base)
        make_private_dir(self.root)

    def write(self, name: str, text: str) -> None:
        self.ensure()
        write_private(self.root / name, text)

    def write_plan(self, plan: Plan) -> None:
        self.write(self.plan_path.name, plan.to_json())

    SNAPSHOT_FILES = ("plan.json", "desired.json")

    def snapshot(self) -> dict[str, bytes | None]:
        """The bytes of the files a change rewrites (None: absent), for `restore`."""
        saved: dict[str, bytes | None] = {}
        for name in self.SNAPSHOT_FILES:
            try:
                saved[name] = (self.root / name).read_bytes()
            except FileNotFoundError:
                saved[name] = None
        return saved

    def restore(self, saved: dict[str, bytes | None]) -> None:
        for name, data in saved.items():
            if data is None:
                with contextlib.suppress(FileNotFoundError):
                    (self.root / name).unlink()
            else:
                self.write(name, data.decode())

    def host(self) -> str:
        """Which host of a multi-host lab this machine is ("" for single-machine labs)."""
        try:
            return (self.root / "host").read_text().strip()
        except FileNotFoundError:
            return ""

    def agent_pid(self) -> int | None:
        try:
            return int(self.agent_pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def remove(self) -> None:
        shutil.rmtree(child(self.base, self.lab), ignore_errors=True)
        with contextlib.suppress(OSError):
            self.base.rmdir()  # /run/labnet itself, once no lab is left

    @contextlib.contextmanager
    def locked(self, timeout: float = 60.0) -> Iterator[None]:
        """Exclusive lock for one labnet command on this lab.

        `down` deletes the directory (lock file included) while holding the lock, so a waiter
        that wakes up on a deleted file retries on the new one."""
        deadline = time.monotonic() + timeout
        while True:
            self.ensure()
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise LockTimeout(f"lab {self.lab} is busy: another labnet command "
                                              f"holds {self.lock_path}") from None
                        time.sleep(0.05)
                try:
                    same = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    yield
                    return
            finally:
                os.close(fd)


def list_labs(root: Path | None = None) -> list[str]:
    """Labs with a state directory here; entries whose names are not lab names are not labs."""
    base = root or RUN_DIR
    try:
        return sorted(p.name for p in base.iterdir()
                      if lab_name_problem(p.name) is None and p.is_dir() and not p.is_symlink())
    except FileNotFoundError:
        return []
