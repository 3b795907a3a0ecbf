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

from labnet.errors import KernelError
from labnet.kernel import nsfs
from labnet.kernel.netlink import NetnsLink
from labnet.names import OWNER_PREFIX

ETC_NETNS = "/etc/netns"


def owner_of(netns: str) -> str | None:
    """The lab that marked this namespace, or None for a namespace labnet did not make."""
    if not nsfs.exists(netns):
        return None
    try:
        with NetnsLink(netns) as link:
            alias = link.links().get("lo")
    except (OSError, KernelError):
        return None
    if alias and alias.alias.startswith(OWNER_PREFIX):
        return alias.alias[len(OWNER_PREFIX):]
    return None


def marked_netns(lab: str | None = None, known: set[str] | frozenset = frozenset()) -> list[str]:
    """Namespaces marked by `lab` (any lab when None), besides the `known` ones (whose
    ownership the caller already has from the plan, so they need not be opened and read)."""
    found = []
    for name in nsfs.list_netns():
        if name in known or (lab is not None and not name.startswith(f"{lab}-")):
            continue
        owner = owner_of(name)
        if owner is not None and (lab is None or owner == lab):
            found.append(name)
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


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def remove_netns(names: list[str]) -> list[str]:
    """Stop every process inside these namespaces, then remove them. Returns what was removed."""
    inodes = set()
    for name in names:
        with contextlib.suppress(OSError):
            if nsfs.exists(name):
                inodes.add(nsfs.inode(name))
    if inodes:
        kill_processes(nsfs.pids_in(inodes))
    removed = []
    for name in names:
        if nsfs.delete(name):
            removed.append(name)
        shutil.rmtree(os.path.join(ETC_NETNS, name), ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(ETC_NETNS)  # only when empty: other tools may keep files there
    return removed
