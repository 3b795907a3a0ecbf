"""What a lab may leave behind, looked for everywhere it could be: namespaces, nsfs mounts
(visible or covered), processes, the state directory, /etc/netns files. Used from inside
sealed mount namespaces too, so it imports nothing of pytest."""

from __future__ import annotations

import glob
import os

from labnet.kernel import mounts, nsfs
from labnet.state import RUN_DIR


def lab_inodes(lab: str) -> set[int]:
    """The inodes of the lab's network namespaces now, from every nsfs mount of its names."""
    prefix = f"{nsfs.NETNS_DIR}/{lab}-"
    return {m.netns_inode for m in mounts.mountinfo()
            if m.netns_inode and m.mount_point.startswith(prefix)}


def leftovers(lab: str, inodes: set[int] = frozenset()) -> list[str]:
    """One line per thing of lab `lab` still on this machine (empty: nothing)."""
    found = [f"netns {n}" for n in nsfs.list_netns() if n.startswith(f"{lab}-")]
    prefix = f"{nsfs.NETNS_DIR}/{lab}-"
    table = mounts.mountinfo()
    # covered mounts show in mountinfo under their path too
    found += [f"mount {m.mount_point} ({m.root})" for m in table
              if m.mount_point.startswith(prefix)]
    # the kernel reuses a freed namespace's inode number: one that another name holds now is
    # not the lab's any more
    inodes = set(inodes) - {m.netns_inode for m in table
                            if m.netns_inode and not m.mount_point.startswith(prefix)}
    if (RUN_DIR / lab).exists():
        found.append(f"state {RUN_DIR / lab}")
    found += [f"file {p}" for p in glob.glob(f"/etc/netns/{lab}-*")]
    needle = b"\0--lab\0" + lab.encode() + b"\0"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read()
            inode = os.stat(f"/proc/{entry}/ns/net").st_ino
        except OSError:
            continue
        if needle in argv or inode in inodes:
            shown = argv.replace(b"\0", b" ").decode(errors="replace")[:80]
            found.append(f"process {entry} {shown}")
    return found
