"""The nsfs mounts that hold named network namespaces, as /proc/self/mountinfo shows them, and
removing every one of them — also those another tool's `ip netns add` has hidden.

Why hidden: on a machine where /run/netns is a plain directory, `ip netns add` turns it into a
bind mount of itself (recursively, so it copies the nsfs mounts already there). The originals
stay underneath, covered; unmounting the visible copy leaves them, the name cannot be unlinked
(EBUSY) and the namespace stays alive. A path walk never reaches a covered mount, but a file
handle does: `open_by_handle_at` opens the covered directory in the *parent* mount without
crossing the cover, and from there `openat` lands on the hidden mount, which `umount2` then
takes through /proc/self/fd. Every step checks mount ids, so only the mount that mountinfo
names is ever unmounted.

Not every covered mount at /run/netns/<name> is ours, though: in a mount namespace where a tmpfs
was mounted over /run/netns (a container, a sealed test), the copies of the outer namespace's
mounts sit at the very same paths, under the tmpfs — another directory, other namespaces. A
mount belongs to the directory /run/netns resolves to *now* only when its parent mount shows
that same directory (same device, same path inside the filesystem); that is decided from
mountinfo alone, before anything is touched.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass

MNT_DETACH = 2
AT_FDCWD = -100
MAX_HANDLE_SZ = 128

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Mount:
    id: int
    parent: int
    dev: str         # major:minor of its filesystem
    root: str        # inside its filesystem; for nsfs "net:[4026532177]"
    mount_point: str
    fstype: str

    @property
    def netns_inode(self) -> int | None:
        if self.fstype == "nsfs" and self.root.startswith("net:["):
            return int(self.root[5:-1])
        return None


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or "-" not in fields[6:]:
            continue
        dash = fields.index("-", 6)
        mounts.append(Mount(int(fields[0]), int(fields[1]), fields[2], _unescape(fields[3]),
                            _unescape(fields[4]), fields[dash + 1]))
    return mounts


def mountinfo() -> list[Mount]:
    with open("/proc/self/mountinfo") as f:
        return parse_mountinfo(f.read())


def netns_root(inode: int) -> str:
    return f"net:[{inode}]"


def _under(path: str, mount_point: str) -> bool:
    return mount_point == "/" or path == mount_point or path.startswith(mount_point + "/")


def visible_mount(path: str, table: list[Mount]) -> Mount:
    """The mount a path walk to `path` ends in: from the root mount down, at each level the
    child mounted on the shallowest dentry along the path covers everything below it."""
    ids = {m.id for m in table}
    children: dict[int, list[Mount]] = {}
    for m in table:
        children.setdefault(m.parent, []).append(m)
    current = next(m for m in table if m.parent not in ids)  # this process's root
    while True:
        along = [c for c in children.get(current.id, []) if _under(path, c.mount_point)]
        if not along:
            return current
        current = min(along, key=lambda c: (len(c.mount_point), -c.id))


def fs_location(mount: Mount, path: str) -> tuple[str, str]:
    """Where `path` (inside `mount`) is: its filesystem's device and the path within it."""
    inside = os.path.relpath(path, mount.mount_point)
    return mount.dev, os.path.normpath(os.path.join(mount.root, inside))


def mounts_in_dir(directory: str, table: list[Mount] | None = None) -> dict[str, list[Mount]]:
    """Mounts at `directory`/<name>, visible or covered, that are in the directory `directory`
    resolves to now (see the module's docstring), by name."""
    table = table if table is not None else mountinfo()
    here = fs_location(visible_mount(directory, table), directory)
    by_id = {m.id: m for m in table}
    found: dict[str, list[Mount]] = {}
    for m in table:
        parent = by_id.get(m.parent)
        if (parent is None or os.path.dirname(m.mount_point) != directory
                or fs_location(parent, directory) != here):
            continue
        found.setdefault(os.path.basename(m.mount_point), []).append(m)
    return found


def mount_id_of_fd(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    raise OSError(errno.ENOTSUP, "no mnt_id in fdinfo")


class _FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * MAX_HANDLE_SZ)]


def _errno_error(what: str, path: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}", path)


def _covered_dir_fd(parent: Mount, directory: str) -> int:
    """An fd on `directory` (an absolute path) as it is inside mount `parent`, below whatever
    is mounted over it now."""
    handle, mount_id = _FileHandle(), ctypes.c_int()
    handle.handle_bytes = MAX_HANDLE_SZ
    if _libc.name_to_handle_at(AT_FDCWD, directory.encode(), ctypes.byref(handle),
                               ctypes.byref(mount_id), 0) != 0:
        raise _errno_error("name_to_handle_at", directory)
    parent_fd = os.open(parent.mount_point, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if mount_id_of_fd(parent_fd) != parent.id:
            raise OSError(errno.EXDEV, "the parent mount is itself covered", parent.mount_point)
        fd = _libc.open_by_handle_at(parent_fd, ctypes.byref(handle),
                                     os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if fd < 0:
            raise _errno_error("open_by_handle_at", directory)
    finally:
        os.close(parent_fd)
    if mount_id_of_fd(fd) != parent.id:
        os.close(fd)
        raise OSError(errno.EXDEV, "the covered directory is not in the parent mount", directory)
    return fd


def unmount_covered(hidden: Mount) -> None:
    """Unmount `hidden`, a mount that another mount covers (see the module's docstring)."""
    table = {m.id: m for m in mountinfo()}
    parent = table.get(hidden.parent)
    if parent is None:
        raise OSError(errno.ENOENT, "its parent mount is gone", hidden.mount_point)
    directory, name = os.path.split(hidden.mount_point)
    dir_fd = _covered_dir_fd(parent, directory)
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    try:
        if mount_id_of_fd(fd) != hidden.id:  # only ever the mount mountinfo named
            raise OSError(errno.EXDEV, "the covered path leads to another mount",
                          hidden.mount_point)
        if _libc.umount2(f"/proc/self/fd/{fd}".encode(), MNT_DETACH) != 0:
            raise _errno_error("umount", hidden.mount_point)
    finally:
        os.close(fd)


def _visible_mount(path: str) -> bool:
    try:
        return os.lstat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except FileNotFoundError:
        return False


def unmount_visible(path: str, limit: int = 64) -> None:
    """Unmount what is mounted on `path` as a path walk sees it, however many are stacked."""
    for _ in range(limit):
        if not _visible_mount(path):
            return
        if _libc.umount2(path.encode(), MNT_DETACH) != 0:
            code = ctypes.get_errno()
            if code not in (errno.EINVAL, errno.ENOENT):
                raise _errno_error("umount", path)
            return
    raise OSError(errno.EBUSY, f"more than {limit} mounts stacked", path)


def unmount_all_at(path: str, limit: int = 64) -> None:
    """Unmount every mount stacked on `path` in the directory it resolves to now: the visible
    ones through the path, then any a later mount covers. Raises OSError naming what could not
    be unmounted."""
    directory, name = os.path.split(path)
    for _ in range(limit):
        here = mounts_in_dir(directory).get(name, [])
        if not here:
            return
        if _visible_mount(path):
            unmount_visible(path)
            continue
        # nothing visible is mounted there, so these are covered: take the lowest (its parent
        # is the directory's mount); a detaching unmount takes what is stacked on it too
        ids = {m.id for m in here}
        unmount_covered(next(m for m in here if m.parent not in ids))
    raise OSError(errno.EBUSY, f"more than {limit} mounts stacked", path)
