"""Keeps a lab's pod agent running, as systemd or a DaemonSet's kubelet would, without either:
`python -m labnet.agent.supervisor --lab NAME [--ready-fd N]`.

A tiny single-threaded process: it starts the agent, waits for it, and starts it again when it
dies (kill -9, a crash), with a short backoff that grows only while restarts fail quickly. The
agent it starts after a death is told how many restarts there were (`status` shows them). It
ends when the agent exits on request (`stop`, exit status 0) or when it is itself told to stop
(SIGTERM), which it passes on to the agent.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time

from labnet.state import StateDir, open_log

QUICK_FAILURE = 10.0   # an agent that lived shorter than this counts as failing to start
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 5.0
STOPPED_ON_REQUEST = 0


class Supervisor:
    def __init__(self, state: StateDir, ready_fd: int | None) -> None:
        self.state = state
        self.ready_fd = ready_fd  # for the first agent only: `up` waits on it
        self.child: subprocess.Popen | None = None
        self.stopping = False
        self.restarts = 0

    def on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.child.send_signal(signum)

    def start(self) -> subprocess.Popen:
        argv = [sys.executable, "-m", "labnet.agent", "--lab", self.state.lab,
                "--restarts", str(self.restarts)]
        fds: tuple[int, ...] = ()
        if self.ready_fd is not None:
            argv += ["--ready-fd", str(self.ready_fd)]
            fds = (self.ready_fd,)
        with open_log(self.state.logs_dir / "agent.log") as log:
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     pass_fds=fds, close_fds=True)
        if self.ready_fd is not None:  # only the agent holds it now: `up` sees it die
            os.close(self.ready_fd)
            self.ready_fd = None
        self.state.write(self.state.agent_pid_path.name, f"{child.pid}\n")
        return child

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.on_signal)
        backoff = FIRST_BACKOFF
        while not self.stopping:
            started = time.monotonic()
            self.child = self.start()
            while True:
                try:
                    code = self.child.wait()
                    break
                except InterruptedError:
                    continue
            if self.stopping or code == STOPPED_ON_REQUEST:
                return 0
            lived = time.monotonic() - started
            backoff = FIRST_BACKOFF if lived > QUICK_FAILURE else min(MAX_BACKOFF, backoff * 2)
            self.restarts += 1
            print(f"labnet supervisor: the agent exited ({describe(code)}) after {lived:.1f} s;"
                  f" restart {self.restarts} in {backoff:.2f} s", file=sys.stderr, flush=True)
            deadline = time.monotonic() + backoff
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.01)
        return 0


def describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"status {code}"


def main() -> None:
    parser = argparse.ArgumentParser(description="labnet: keeps a lab's pod agent running")
    parser.add_argument("--lab", required=True)
    parser.add_argument("--ready-fd", type=int)
    args = parser.parse_args()
    state = StateDir(args.lab)
    with open_log(state.logs_dir / "agent.log") as log:
        os.dup2(log.fileno(), 2)
    raise SystemExit(Supervisor(state, args.ready_fd).run())


if __name__ == "__main__":
    main()
