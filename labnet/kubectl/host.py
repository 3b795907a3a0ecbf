"""The two facts about a lab that come from this machine rather than from the plan: when the
lab was made, and what its nodes run on. Read-only (a stat and /etc/os-release)."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

from labnet.state import StateDir

# Go's GOARCH names, as kubelet reports status.nodeInfo.architecture
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
                 "s390x": "s390x", "riscv64": "riscv64", "i686": "386"}


def rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def lab_created(state: StateDir) -> str:
    """When the lab was made: the modification time of its lock file, which the first `up`
    creates (before it builds anything) and which nothing ever writes; `down` removes it with
    the state directory, so a lab brought up again gets a new time. labnet records no time per
    object, so every object of the lab carries this one as its creationTimestamp."""
    for path in (state.lock_path, state.root):
        try:
            return rfc3339(os.stat(path).st_mtime)
        except FileNotFoundError:
            continue
    return rfc3339(0)


def host_node_info(os_release: Path = Path("/etc/os-release")) -> dict[str, str]:
    """status.nodeInfo for every node: the nodes are network namespaces of this machine, so
    they run its kernel, OS and architecture (no kubelet and no container runtime: those
    fields are left out)."""
    pretty = ""
    try:
        for line in os_release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.partition("=")[2].strip().strip('"')
    except OSError:
        pass
    machine = platform.machine()
    info = {"architecture": ARCHITECTURES.get(machine, machine),
            "kernelVersion": platform.release(), "operatingSystem": "linux"}
    if pretty:
        info["osImage"] = pretty
    return info
