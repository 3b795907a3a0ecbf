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
    root: str        # inside its filesystem; for nsfs "net:[4026532177]"
    mount_point: str
    fstype: str


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
        mounts.append(Mount(int(fields[0]), int(fields[1]), _unescape(fields[3]),
                            _unescape(fields[4]), fields[dash + 1]))
    return mounts


def mountinfo() -> list[Mount]:
    with open("/proc/self/mountinfo") as f:
        return parse_mountinfo(f.read())


def netns_root(inode: int) -> str:
    return f"net:[{inode}]"


def mounts_at(path: str, table: list[Mount] | None = None) -> list[Mount]:
    """Every mount whose mount point is `path`, visible or covered."""
    return [m for m in (table if table is not None else mountinfo()) if m.mount_point == path]


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
    """Unmount every mount stacked on `path`: the visible ones through the path, then any a
    later mount covers. Raises OSError naming what could not be unmounted."""
    for _ in range(limit):
        here = mounts_at(path)
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
