"""Named network namespaces, made and entered from this process without forking.

A namespace is created exactly the way `ip netns add` does it — /run/netns made a shared mount
point of itself if it is not one yet, then unshare and a bind mount of the new namespace onto
/run/netns/<name> — so labnet and iproute2 (and every tool built on it) share one convention and
neither hides the other's mounts. It happens in the calling thread, which then returns to the
root namespace. Entering one (setns) is per thread, so a socket opened while "inside" stays bound to
that namespace after the thread comes back. That is how labnet holds one long-lived netlink
socket per namespace without a helper process per namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Iterator, Sequence

from labnet.kernel import mounts

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 2
MS_NOSUID = 2
MS_NODEV = 4
PRIVATE_TMP_SIZE = "64m"

_libc = ctypes.CDLL(None, use_errno=True)


class SealError(RuntimeError):
    """Raised instead of touching the root network namespace."""


class NetnsBusy(OSError):
    """A namespace's name could not be removed, or the namespace outlived it; says why."""


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


def share_netns_dir() -> None:
    """What `ip netns add` does first: make /run/netns a shared mount (recursively), turning
    the directory into a bind mount of itself when it is not a mount point yet. Mounts made
    below it then propagate to other mount namespaces, and a later `ip netns add` finds it
    already done instead of covering our mounts with a new self-bind."""
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    made = False
    while _libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) != 0:
        code = ctypes.get_errno()
        if code != errno.EINVAL or made:
            raise OSError(code, f"mount --make-rshared {NETNS_DIR}: {os.strerror(code)}",
                          NETNS_DIR)
        _check(_libc.mount(NETNS_DIR.encode(), NETNS_DIR.encode(), b"none", MS_BIND | MS_REC,
                           None), f"mount --rbind {NETNS_DIR} {NETNS_DIR}", NETNS_DIR)
        made = True


def create(name: str) -> None:
    """Create netns `name` as `ip netns add` does. An interrupt at any point leaves this
    thread in the root namespace (the switch back is in a `finally` that also runs if we never
    left) and at worst an empty /run/netns/<name> file, which `delete` removes."""
    path = netns_path(name)
    share_netns_dir()
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
    """Remove one namespace's name (see `delete_many`); NetnsBusy says what is left."""
    removed, failed = delete_many([name])
    if failed:
        raise failed[name]
    return bool(removed)


def delete_many(names: Sequence[str]) -> tuple[list[str], dict[str, NetnsBusy]]:
    """Remove namespaces' names: every mount stacked on /run/netns/<name> (also those a later
    self-bind of /run/netns covers), then the file; then check that no mount of the namespace
    is left anywhere, so the kernel frees it once its last process is gone. Returns the names
    removed and, for each that could not be, why. mountinfo is read a fixed number of times,
    not once per name: a lab has hundreds."""
    paths = {name: netns_path(name) for name in names}
    ours = mounts.mounts_in_dir(NETNS_DIR)
    held = {name: {m.netns_inode for m in ours.get(name, []) if m.netns_inode}
            for name in names}
    failed: dict[str, NetnsBusy] = {}

    def fail(name: str, exc: OSError, why: str) -> None:
        failed[name] = NetnsBusy(exc.errno or errno.EBUSY, f"{exc.strerror or exc}{why}",
                                 paths[name])

    for name in names:  # the usual case: one visible mount each
        if held[name]:
            try:
                mounts.unmount_visible(paths[name])
            except OSError as exc:
                fail(name, exc, "")
    covered = {os.path.join(NETNS_DIR, name) for name in mounts.mounts_in_dir(NETNS_DIR)}
    removed = []
    for name in names:
        if name in failed:
            continue
        try:
            if paths[name] in covered:  # hidden under another tool's later self-bind
                mounts.unmount_all_at(paths[name])
            os.unlink(paths[name])
            removed.append(name)
        except FileNotFoundError:
            if held[name]:
                removed.append(name)
        except OSError as exc:
            fail(name, exc, " (a mount of it could not be removed)")
    if any(held.values()):
        where: dict[str, list[str]] = {}
        for m in mounts.mountinfo():
            if m.fstype == "nsfs":
                where.setdefault(m.root, []).append(m.mount_point)
        for name in removed:
            left = [p for inode in held[name] for p in where.get(mounts.netns_root(inode), [])]
            if left:
                fail(name, OSError(errno.EBUSY, f"still mounted at {', '.join(sorted(left))}"),
                     "")
        removed = [name for name in removed if name not in failed]
    return removed, failed


def inodes_of(names: Sequence[str]) -> set[int]:
    """The namespaces these names hold in /run/netns, through mounts visible or covered (never
    the copies of another directory's mounts at the same paths: see labnet.kernel.mounts)."""
    ours = mounts.mounts_in_dir(NETNS_DIR)
    return {m.netns_inode for name in names for m in ours.get(name, []) if m.netns_inode}


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


def enter_netns_for_good(name: str) -> None:
    """Move this whole (single-threaded) process into netns `name` for good, mounts untouched
    (a worker that only talks netlink/libiptc there); refuses to end up in the root netns."""
    fd = open_fd(name)
    try:
        _check(_libc.setns(fd, CLONE_NEWNET), "setns", name)
    finally:
        os.close(fd)
    if os.stat("/proc/self/ns/net").st_ino == ROOT_INODE:
        raise SealError(f"netns {name} is the root network namespace: refusing to work there")


def enter_for_exec(name: str, etc_dir: str | None = None, private_tmp: bool = False) -> None:
    """Move this whole (single-threaded) process into netns `name` for good, as `ip netns exec`
    does: a private mount namespace where /sys shows the netns and files in /etc/netns/<name>
    are bind-mounted over /etc; with `private_tmp`, a /tmp of its own (a small tmpfs)."""
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
    if private_tmp:
        _check(_libc.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV,
                           f"mode=1777,size={PRIVATE_TMP_SIZE}".encode()), "mount /tmp", name)


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
