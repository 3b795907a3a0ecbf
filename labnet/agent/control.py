"""Start, query and stop a lab's pod agent (used by `labnet up`, `status` and `down`)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import time

from labnet.errors import KernelError, LabnetError
from labnet.kernel.teardown import kill_processes
from labnet.state import StateDir, make_private_dir, open_log

START_TIMEOUT = 60.0
REQUEST_TIMEOUT = 60.0


def agent_alive(state: StateDir) -> int | None:
    """The agent's pid when the pid file names a live labnet agent of this lab."""
    pid = state.agent_pid()
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except FileNotFoundError:
        return None
    if b"labnet.agent" in argv and state.lab.encode() in argv:
        return pid
    return None


def find_agents(lab: str) -> list[int]:
    """Pids of processes that are pod agents of `lab` (`python -m labnet.agent --lab LAB`)."""
    needle = b"\0--lab\0" + lab.encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read()
            if b"\0labnet.agent\0" not in argv or needle not in argv:
                continue
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "kube-proxy":  # its worker: ends with the agent
                    continue
        except OSError:
            continue
        found.append(int(entry))
    return sorted(found)


def start_agent(state: StateDir) -> dict:
    make_private_dir(state.logs_dir)
    read_end, write_end = os.pipe()
    with open_log(state.logs_dir / "agent.log") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "labnet.agent", "--lab", state.lab,
             "--ready-fd", str(write_end)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write_end,),
            start_new_session=True, close_fds=True,
        )
    os.close(write_end)
    state.write(state.agent_pid_path.name, f"{process.pid}\n")
    line = b""
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], deadline - time.monotonic())
            chunk = os.read(read_end, 65536) if ready else b""
            if not chunk:
                break
            line += chunk
    finally:
        os.close(read_end)
    if not line.startswith(b"ready "):
        kill_processes([process.pid])
        tail = ""
        with contextlib.suppress(OSError):
            tail = (state.logs_dir / "agent.log").read_text()[-400:].strip()
        raise LabnetError(f"the pod agent of lab {state.lab} did not start: {tail or 'no output'}")
    answer = json.loads(line[6:])
    answer["pid"] = process.pid
    return answer


def request(state: StateDir, op: str, timeout: float = REQUEST_TIMEOUT) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(state.agent_socket))
        sock.sendall(json.dumps({"op": op}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data or b"{}")


def ensure_agent(state: StateDir) -> dict:
    """A running agent serving the plan now in the state directory; its reload report
    (pid, rules rewritten per node, conntrack entries cleared). Raises when the agent could not
    apply the plan (its rules failed)."""
    pid = agent_alive(state)
    answer = None
    if pid is not None:
        try:
            answer = request(state, "reload")
            answer["pid"] = pid
        except (OSError, ValueError):
            kill_processes([pid])
    if answer is None:
        answer = start_agent(state)
    if not answer.get("ok"):
        raise KernelError(answer.get("error", "the pod agent failed"))
    return answer


def status(state: StateDir) -> dict | None:
    if agent_alive(state) is None:
        return None
    try:
        return request(state, "status", timeout=10)
    except (OSError, ValueError):
        return None


def stop_agent(state: StateDir) -> None:
    pid = agent_alive(state)
    if pid is not None:
        with contextlib.suppress(OSError, ValueError):
            request(state, "stop", timeout=5)
        deadline = time.monotonic() + 5
        while agent_alive(state) and time.monotonic() < deadline:
            time.sleep(0.02)
        kill_processes([pid], grace=1.0)
    with contextlib.suppress(FileNotFoundError):
        state.agent_pid_path.unlink()
