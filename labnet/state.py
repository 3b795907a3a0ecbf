"""The lab's state directory, /run/labnet/<lab>/ (gone at reboot, like the namespaces).

    plan.json   the plan being applied or running, written atomically before any change
    lock        flock'd by every command that changes or reads the lab
    agent.pid   the pod agent;  agent.sock  its control socket;  logs/  pod command output
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from labnet.errors import LabnetError
from labnet.plan import Plan

RUN_DIR = Path(os.environ.get("LABNET_RUN_DIR", "/run/labnet"))


class LockTimeout(LabnetError):
    exit_code = 75


class StateDir:
    def __init__(self, lab: str, root: Path | None = None) -> None:
        self.lab = lab
        self.root = (root or RUN_DIR) / lab

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

    def write_plan(self, plan: Plan) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o755)
        tmp = self.plan_path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(plan.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.plan_path)

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
        shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.root.parent.rmdir()  # /run/labnet itself, once no lab is left

    @contextlib.contextmanager
    def locked(self, timeout: float = 60.0) -> Iterator[None]:
        """Exclusive lock for one labnet command on this lab.

        `down` deletes the directory (lock file included) while holding the lock, so a waiter
        that wakes up on a deleted file retries on the new one."""
        deadline = time.monotonic() + timeout
        while True:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o755)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
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
    base = root or RUN_DIR
    try:
        return sorted(p.name for p in base.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []
