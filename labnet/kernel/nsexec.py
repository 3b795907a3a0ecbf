"""Run a program inside a lab namespace, as `ip netns exec` would, with only the privileges
asked for: `python -m labnet.kernel.nsexec [options] NETNS -- PROGRAM ARGS…`.

A fresh process does the entering (setns, a private mount namespace, /sys and /etc/netns
files, a private /tmp) and then drops privileges before exec — instead of a `preexec_fn`, which
is not safe in a process that has threads (the pod agent has several): a child forked from a
threaded parent may deadlock on a lock another thread held.

Privileges, as a container runtime grants them from a securityContext:
  --user UID --group GID   setgroups([]), setgid, setuid (default: keep root)
  --cap NAME …             capabilities kept (ambient for a non-root user, so they survive exec)
  --privileged             keep everything; no no_new_privs
Without --privileged, the bounding set is cut to the kept capabilities and no_new_privs is set,
so neither setuid binaries nor file capabilities can give more back.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
from collections.abc import Sequence

from labnet.kernel import nsfs
from labnet.model import CAPABILITIES

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522
CAP_LAST_FALLBACK = 40

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _fail(what: str) -> None:
    code = ctypes.get_errno()
    raise OSError(code, f"{what}: {os.strerror(code)}")


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return CAP_LAST_FALLBACK


def _syscall_capset_number() -> int:
    machine = os.uname().machine
    return {"x86_64": 126, "aarch64": 91, "arm64": 91}.get(machine, 126)


def drop_privileges(uid: int | None, gid: int | None, caps: list[str],
                    privileged: bool) -> None:
    """Become `uid`/`gid` with exactly `caps` (see the module's docstring)."""
    if privileged:
        if gid is not None:
            os.setgroups([])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        return
    keep = 0
    for name in caps:
        keep |= 1 << CAPABILITIES[name]
    for cap in range(_last_cap() + 1):
        if not keep & (1 << cap) and _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            _fail(f"drop capability {cap} from the bounding set")
    if _libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
        _fail("keep capabilities across setuid")
    if gid is not None:
        os.setgroups([])
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        word = (keep >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = data[i].permitted = data[i].inheritable = word
    if _libc.syscall(_syscall_capset_number(), ctypes.byref(header), data) != 0:
        _fail("capset")
    if uid not in (None, 0):  # a non-root program keeps its capabilities across exec only
        for name in caps:      # as ambient ones
            if _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAPABILITIES[name], 0, 0) != 0:
                _fail(f"raise ambient capability {name}")
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        _fail("no_new_privs")


def command(netns: str, argv: list[str], etc_dir: str | None = None, uid: int | None = None,
            gid: int | None = None, caps: tuple[str, ...] = (), privileged: bool = True,
            private_tmp: bool = False, die_with_parent: bool = False,
            cwd: str | None = None) -> list[str]:
    """The argv that runs `argv` in `netns` through this module (with subprocess, no
    preexec_fn); `cwd`: the directory it starts in (else the caller's, as `ip netns exec`)."""
    line = [sys.executable, "-m", "labnet.kernel.nsexec"]
    if etc_dir:
        line += ["--etc", etc_dir]
    if uid is not None:
        line += ["--user", str(uid)]
    if gid is not None:
        line += ["--group", str(gid)]
    for cap in caps:
        line += ["--cap", cap]
    if privileged:
        line.append("--privileged")
    if private_tmp:
        line.append("--private-tmp")
    if die_with_parent:
        line += ["--die-with", str(os.getpid())]
    if cwd:
        line += ["--cwd", cwd]
    return [*line, netns, "--", *argv]


def run(netns: str, argv: Sequence[str], timeout: float | None = 30,
        etc_dir: str | None = None) -> subprocess.CompletedProcess:
    """Run a command inside netns `name` (as `ip netns exec` would), output captured. Through
    this module's own entry point, not a preexec_fn: callers may have threads."""
    return subprocess.run(command(netns, list(argv), etc_dir), capture_output=True,
                          text=True, timeout=timeout)


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="labnet-nsexec")
    parser.add_argument("--etc")
    parser.add_argument("--user", type=int)
    parser.add_argument("--group", type=int)
    parser.add_argument("--cap", action="append", default=[], choices=sorted(CAPABILITIES))
    parser.add_argument("--privileged", action="store_true")
    parser.add_argument("--private-tmp", action="store_true")
    parser.add_argument("--die-with", type=int, metavar="PID",
                        help="end (SIGKILL) when this parent process dies")
    parser.add_argument("--cwd", help="start in this directory (after the mounts)")
    parser.add_argument("netns")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    opts = parser.parse_args(args)
    argv = opts.argv[1:] if opts.argv[:1] == ["--"] else opts.argv
    if not argv:
        parser.error("no program to run")
    try:
        nsfs.enter_for_exec(opts.netns, opts.etc, private_tmp=opts.private_tmp)
        drop_privileges(opts.user, opts.group, opts.cap, opts.privileged)
        if opts.cwd:
            os.chdir(opts.cwd)
        if opts.die_with is not None:
            # after the credentials change, which clears it; kept across exec
            if _libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0) != 0:
                _fail("parent death signal")
            if os.getppid() != opts.die_with:  # the parent died before that: go now
                os._exit(1)
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"labnet: cannot start {argv[0]} in {opts.netns}: {exc.strerror or exc}",
              file=sys.stderr, flush=True)
        os._exit(127)


if __name__ == "__main__":
    main()
