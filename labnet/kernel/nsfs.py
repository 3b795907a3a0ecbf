"""Named network namespaces, made and entered from this process without forking.

A namespace is created the way `ip netns add` does it (unshare, then bind-mount the new
namespace onto /run/netns/<name>), but in the calling thread, which then returns to the root
namespace. Entering one (setns) is per thread, so a socket opened while "inside" stays bound to
that namespace after the thread comes back. That is how labnet holds one long-lived netlink
socket per namespace without a helper process per namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import subprocess
from collections.abc import Iterator, Sequence

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SLAVE = 1 << 19
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


class SealError(RuntimeError):
    """Raised instead of touching the root network namespace."""


def _check(result: int, what: str, name: str = "") -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}", name or None)


def _ns_inode(path: str) -> int:
    return os.stat(path).st_ino


ROOT_FD = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
ROOT_INODE = os.fstat(ROOT_FD).st_ino


def netns_path(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"bad netns name {name!r}")
    return os.path.join(NETNS_DIR, name)


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def exists(name: str) -> bool:
    """True when /run/netns/<name> is a mounted namespace (not a leftover empty file)."""
    try:
        return os.stat(netns_path(name)).st_dev != os.stat(NETNS_DIR).st_dev
    except FileNotFoundError:
        return False


def create(name: str) -> None:
    """Create netns `name`. An interrupt at any point leaves this thread in the root namespace
    (the switch back is in a `finally` that also runs if we never left) and at worst an empty
    /run/netns/<name> file, which `delete` removes."""
    path = netns_path(name)
    os.makedirs(NETNS_DIR, exist_ok=True)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
    done = False
    try:
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare", name)
            _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND,
                               None), "mount", name)
        finally:
            _check(_libc.setns(ROOT_FD, CLONE_NEWNET), "setns back to the root namespace")
        done = True
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(path)


def delete(name: str) -> bool:
    """Unmount and remove a namespace's name; the kernel frees it once nothing holds it."""
    path = netns_path(name)
    result = _libc.umount2(path.encode(), MNT_DETACH)
    if result != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        _check(result, "umount", name)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def open_fd(name: str) -> int:
    return os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)


def inode(name: str) -> int:
    return _ns_inode(netns_path(name))


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with this thread inside netns `name`; always come back to the root."""
    fd = open_fd(name)
    try:
        _check(_libc.setns(fd, CLONE_NEWNET), "setns", name)
        if _ns_inode("/proc/thread-self/ns/net") == ROOT_INODE:
            raise SealError(f"netns {name} is the root network namespace: refusing to use it")
        yield
    finally:
        # also when setns itself was interrupted: returning to the root is always safe
        os.close(fd)
        _check(_libc.setns(ROOT_FD, CLONE_NEWNET), "setns back to the root namespace")


def enter_for_exec(name: str, etc_dir: str | None = None) -> None:
    """Move this whole (single-threaded) process into netns `name` for good, as `ip netns exec`
    does: a private mount namespace where /sys shows the netns and files in /etc/netns/<name>
    are bind-mounted over /etc."""
    fd = open_fd(name)
    _check(_libc.setns(fd, CLONE_NEWNET), "setns", name)
    os.close(fd)
    _check(_libc.unshare(CLONE_NEWNS), "unshare mount namespace", name)
    _check(_libc.mount(b"", b"/", b"none", MS_SLAVE | MS_REC, None), "make / a slave mount")
    if _libc.umount2(b"/sys", MNT_DETACH) == 0:
        _libc.mount(name.encode(), b"/sys", b"sysfs", 0, None)
    if etc_dir and os.path.isdir(etc_dir):
        for entry in sorted(os.listdir(etc_dir)):
            src, dst = os.path.join(etc_dir, entry), os.path.join("/etc", entry)
            if os.path.exists(dst):
                _libc.mount(src.encode(), dst.encode(), b"none", MS_BIND, None)


def run(netns: str, argv: Sequence[str], timeout: float | None = 30,
        etc_dir: str | None = None) -> subprocess.CompletedProcess:
    """Run a command inside netns `name` (as `ip netns exec` would), output captured."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          preexec_fn=lambda: enter_for_exec(netns, etc_dir))  # noqa: PLW1509


def write_sysctl(name: str, key: str, value: str) -> None:
    """Set a per-netns sysctl inside netns `name`; `key` is a path under /proc/sys
    (`net/ipv4/ip_forward`), since interface names such as flannel.1 contain dots."""
    with entered(name), open(f"/proc/sys/{key}", "w") as f:
        f.write(value)


def read_sysctl(name: str, key: str) -> str:
    with entered(name), open(f"/proc/sys/{key}") as f:
        return f.read().strip()


def pids_in(inodes: set[int]) -> list[int]:
    """Processes whose network namespace is one of `inodes` (for cleanup of strays)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                found.append(int(entry))
        except OSError:
            continue
    return found
