"""Find and remove what a lab owns: processes, namespaces, /etc/netns files.

Ownership is known two ways, so a crashed `up` is still cleaned: the plan in the state
directory (written before anything is built) names every namespace, and every namespace the lab
made carries the mark `labnet:<lab>` as the ifalias of its `lo`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from labnet import safepath
from labnet.errors import KernelError, LabnetError
from labnet.kernel import nsfs
from labnet.kernel.netlink import NetnsLink
from labnet.names import lab_name_problem, owner_from_mark

ETC_NETNS = "/etc/netns"
ETC_DIR_MODE = 0o755   # as `ip netns` users expect: readable, writable by root only
ETC_FILE_MODE = 0o644


def etc_netns_dir(netns: str) -> Path:
    """/etc/netns/<netns>, checked to be an entry directly in /etc/netns."""
    return safepath.child(ETC_NETNS, netns)


def ensure_etc_netns_dir(directory: Path) -> None:
    for path in (directory.parent, directory):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=ETC_DIR_MODE)
            os.chmod(path, ETC_DIR_MODE)  # whatever the umask


@dataclass(frozen=True)
class Owner:
    """What the `lo` of a namespace says about who made it."""

    lab: str | None     # a valid lab name, or None
    invalid: str = ""   # a mark that names no valid lab: reported, never acted on


def read_owner(netns: str) -> Owner:
    if not nsfs.exists(netns):
        return Owner(None)
    try:
        with NetnsLink(netns) as link:
            lo = link.links().get("lo")
    except (OSError, KernelError):
        return Owner(None)
    lab = owner_from_mark(lo.alias) if lo else None
    if lab is None:
        return Owner(None)
    if lab_name_problem(lab) is not None:
        return Owner(None, lo.alias)
    return Owner(lab)


def owner_of(netns: str) -> str | None:
    """The lab that marked this namespace, or None for a namespace labnet did not make (or
    one whose mark names no valid lab)."""
    return read_owner(netns).lab


def marked_netns(lab: str | None = None, known: set[str] | frozenset = frozenset()) -> list[str]:
    """Namespaces marked by `lab` (any lab when None), besides the `known` ones (whose
    ownership the caller already has from the plan, so they need not be opened and read). A
    lab's namespaces carry its name as their prefix and its mark: both must agree."""
    found = []
    for name in nsfs.list_netns():
        if name in known or (lab is not None and not name.startswith(f"{lab}-")):
            continue
        owner = owner_of(name)
        if owner is not None and (lab is None or owner == lab) and name.startswith(
                f"{owner}-"):
            found.append(name)
    return found


def invalid_marks() -> dict[str, str]:
    """Namespaces whose `lo` carries a labnet mark naming no valid lab: never touched."""
    found = {}
    for name in nsfs.list_netns():
        owner = read_owner(name)
        if owner.invalid:
            found[name] = owner.invalid
    return found


def kill_processes(pids: list[int], grace: float = 2.0) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(0.02)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def start_time(pid: int) -> int:
    """A live process's start time (clock ticks since boot); 0 when it is gone or a zombie.
    With the pid, it names one process even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[19]) if fields[0] != "Z" else 0


def _alive(pid: int) -> bool:
    return start_time(pid) != 0


@dataclass
class Removal:
    """What a teardown removed, and what it could not (name -> why)."""

    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [f"netns {name}: {why}" for name, why in sorted(self.failed.items())]

    def raise_if_failed(self, lab: str) -> list[str]:
        """The names removed; TeardownIncomplete (one line per namespace) if any was not."""
        if self.failed:
            raise TeardownIncomplete(lab, self.lines())
        return self.removed


class TeardownIncomplete(LabnetError):
    exit_code = 3

    def __init__(self, lab: str, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join([*lines, f"lab {lab}: {len(lines)} namespace(s) could not "
                                     "be removed: see above; `labnet down` tries again"]))


def remove_netns(names: list[str]) -> Removal:
    """Stop every process inside these namespaces, then remove them and their /etc/netns
    files. Namespaces are found through mountinfo too, so one whose name a half-finished
    removal already unlinked, or another tool's self-bind of /run/netns covered, is found.

    The /etc/netns files go first: a removal killed half-way then leaves a namespace, which
    still carries the lab's mark for a later `down` to find, never an /etc/netns directory
    whose namespace is gone (nothing would name it any more)."""
    result = Removal()
    names = [n for n in names if _plain(n, result)]
    for name in names:
        try:
            shutil.rmtree(etc_netns_dir(name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            result.failed[name] = f"/etc/netns/{name}: {_reason(exc)}"
    inodes = nsfs.inodes_of(names)
    if inodes:
        kill_processes(nsfs.pids_in(inodes))
    removed, failed = nsfs.delete_many(names)
    result.removed = removed
    result.failed.update({name: _reason(exc) for name, exc in failed.items()})
    with contextlib.suppress(OSError):
        os.rmdir(ETC_NETNS)  # only when empty: other tools may keep files there
    return result


def _plain(name: str, result: Removal) -> bool:
    try:
        nsfs.netns_path(name)
        etc_netns_dir(name)
    except (ValueError, LabnetError) as exc:
        result.failed[name] = str(exc)
        return False
    return True


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
