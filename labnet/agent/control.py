"""Start, query and stop a lab's pod agent (used by `labnet up`, `status` and `down`).

The agent runs under a supervisor (labnet.agent.supervisor) that starts it again when it dies;
`supervisor.pid` names the one, `agent.pid` (written by the supervisor) the other.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from labnet.errors import KernelError, LabnetError
from labnet.kernel.teardown import kill_processes, start_time
from labnet.model import SYNC_TIMEOUT
from labnet.safepath import child
from labnet.state import StateDir, make_private_dir, open_log

# a reload probes unready pods (a second each at most) and waits for every node's sync: the
# CLI waits longer than the agent's own limit for a sync, never shorter
REQUEST_TIMEOUT = SYNC_TIMEOUT + 60.0
START_TIMEOUT = REQUEST_TIMEOUT
RESTART_WAIT = 10.0  # a supervisor that is restarting its agent gets this long


def _running(pid: int | None, module: bytes, lab: str) -> int | None:
    """`pid` when it is a live `python -m MODULE --lab LAB` process (not a zombie)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return None
    if not start_time(pid):  # gone, or a zombie
        return None
    return pid if module in argv and lab.encode() in argv else None


def agent_alive(state: StateDir) -> int | None:
    """The agent's pid when the pid file names a live labnet agent of this lab."""
    return _running(state.agent_pid(), b"labnet.agent", state.lab)


def supervisor_alive(state: StateDir) -> int | None:
    return _running(_read_pid(state.root / SUPERVISOR_PID), b"labnet.agent.supervisor",
                    state.lab)


def _read_pid(path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


SUPERVISOR_PID = "supervisor.pid"


def find_agents(state: StateDir, module: bytes = b"labnet.agent") -> list[int]:
    """Pids of this lab's processes running `python -m MODULE --lab LAB`, found without pid
    files (a command killed between starting one and writing its pid leaves none): only in
    this mount namespace and with this run directory, so a lab of the same name elsewhere (a
    container with its own /run, another LABNET_RUN_DIR) is never taken for this one."""
    needle = b"\0--lab\0" + state.lab.encode() + b"\0"
    mine = os.stat("/proc/self/ns/mnt").st_ino
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read()
            if b"\0" + module + b"\0" not in argv or needle not in argv:
                continue
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "kube-proxy":  # an agent's worker: ends with it
                    continue
            if os.stat(f"/proc/{entry}/ns/mnt").st_ino != mine:
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = dict(item.partition(b"=")[::2] for item in f.read().split(b"\0") if item)
            if env.get(b"LABNET_RUN_DIR", DEFAULT_RUN_DIR).rstrip(b"/") != str(
                    state.base).encode().rstrip(b"/"):
                continue
        except OSError:
            continue
        found.append(int(entry))
    return sorted(found)


DEFAULT_RUN_DIR = b"/run/labnet"


def start_agent(state: StateDir) -> dict:
    """Start the supervisor, which starts the agent; wait for the agent's first reload."""
    make_private_dir(state.logs_dir)
    read_end, write_end = os.pipe()
    with open_log(state.logs_dir / "agent.log") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "labnet.agent.supervisor", "--lab", state.lab,
             "--ready-fd", str(write_end)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write_end,),
            start_new_session=True, close_fds=True,
        )
    os.close(write_end)
    state.write(SUPERVISOR_PID, f"{process.pid}\n")
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
        kill_processes([process.pid, *filter(None, [agent_alive(state)])])
        tail = ""
        with contextlib.suppress(OSError):
            tail = (state.logs_dir / "agent.log").read_text()[-400:].strip()
        raise LabnetError(f"the pod agent of lab {state.lab} did not start: {tail or 'no output'}")
    answer = json.loads(line[6:])
    answer["pid"] = agent_alive(state) or state.agent_pid()
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


def wait_for_restart(state: StateDir, timeout: float = RESTART_WAIT) -> int | None:
    """The agent's pid once a restarting supervisor has it answering again (None: it did not
    come back in time, or there is no supervisor)."""
    deadline = time.monotonic() + timeout
    while supervisor_alive(state) and time.monotonic() < deadline:
        pid = agent_alive(state)
        if pid is not None:
            with contextlib.suppress(OSError, ValueError):
                request(state, "status", timeout=2)
                return pid
        time.sleep(0.05)
    return None


def ensure_agent(state: StateDir) -> dict:
    """A running agent serving the plan now in the state directory; its reload report
    (pid, rules rewritten per node, conntrack entries cleared). Raises when the agent could not
    apply the plan (its rules failed)."""
    pid = agent_alive(state) if supervisor_alive(state) else None
    if pid is None:
        pid = wait_for_restart(state)
    answer = None
    if pid is not None:
        try:
            answer = request(state, "reload")
            answer["pid"] = pid
        except (OSError, ValueError):
            answer = None
    if answer is None:
        stop_agent(state)  # whatever is left of an agent that does not answer
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
    """Stop the supervisor (so nothing starts the agent again), then the agent."""
    if agent_alive(state) is not None:
        with contextlib.suppress(OSError, ValueError):
            request(state, "stop", timeout=5)  # the agent exits 0, and its supervisor with it
        deadline = time.monotonic() + 5
        while (agent_alive(state) or supervisor_alive(state)) and time.monotonic() < deadline:
            time.sleep(0.02)
    # the supervisor first, so nothing starts an agent again; also one whose pid file a
    # killed `up` never wrote
    supervisors = {supervisor_alive(state), *find_agents(state, b"labnet.agent.supervisor")}
    kill_processes([p for p in supervisors if p], grace=2.0)
    for _ in range(3):  # a supervisor killed as it started an agent: that one too
        agents = {agent_alive(state), *find_agents(state)} - {None}
        if not agents:
            break
        kill_processes(sorted(agents), grace=2.0)
    remove_temp_dirs(state)
    for name in (state.agent_pid_path.name, SUPERVISOR_PID):
        with contextlib.suppress(FileNotFoundError):
            (state.root / name).unlink()


TEMP_DIRS = "tempdirs"  # multiprocessing's pymp-* directories the agents made (fork server)


def record_temp_dir(state: StateDir, path: str) -> None:
    """Note a temporary directory an agent made: an agent that is killed cannot remove its
    own (its fork server's socket lives there), so the next agent or `down` does."""
    with contextlib.suppress(OSError), open(state.root / TEMP_DIRS, "a") as f:
        f.write(path + "\n")


def remove_temp_dirs(state: StateDir) -> None:
    """Remove the temporary directories recorded for this lab: only `pymp-*` entries directly
    in the temporary directory (what multiprocessing makes), never anything else."""
    try:
        paths = (state.root / TEMP_DIRS).read_text().split()
    except OSError:
        return
    base = tempfile.gettempdir()
    for path in paths:
        name = os.path.basename(path)
        if os.path.dirname(path) != base or not name.startswith("pymp-"):
            continue
        with contextlib.suppress(LabnetError, OSError):
            shutil.rmtree(child(base, name))
    with contextlib.suppress(OSError):
        (state.root / TEMP_DIRS).unlink()
