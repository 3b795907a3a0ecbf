"""Per-node kube-proxy worker processes, whatever the proxy mode: where they come from, how
they enter their node, and how they take jobs and answer.

Workers come from multiprocessing's fork server: a clean single-threaded process that forks
them, never the agent, which has threads (a child forked from a threaded process can deadlock
on a lock another thread held). One fork server serves both modes and preloads both modes'
modules and python-iptables once (importing only loads libraries; every handle is made later,
inside a node's netns).

A worker enters its node's netns for good (refusing the root netns), calls itself
`kube-proxy` (what `ps -e` shows), then hands each job to its mode's handler and sends back the
handler's report, until the pipe closes. A handler may also ask to be woken while idle (the
nftables mode deletes stale chains a second after a sync).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Protocol

from labnet.errors import KernelError
from labnet.kernel import nsfs

PRELOAD = ["labnet.kernel.iptables", "labnet.kernel.nftables", "iptc"]


class Handler(Protocol):
    """A mode's work inside one node."""

    def apply(self, jobs: Any) -> dict:
        """Apply one sync's jobs; the report (without "ok"). Raises on failure."""

    def idle_wait(self) -> float | None:
        """Seconds until `idle` is due; None: nothing to do while idle."""

    def idle(self) -> None:
        """Work that waited for a quiet moment."""


def serve(netns: str, conn: Connection, make_handler: Callable[[], Handler],
          expected: tuple[type[BaseException], ...] = (OSError, ValueError)) -> None:
    """The worker process's life. Never returns. A failed job is reported (with a traceback
    unless it is one of the `expected` kinds) and the worker goes on: the next (full) sync may
    still succeed."""
    status = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)  # not the agent's handlers (asyncio wakeup fd)
        signal.set_wakeup_fd(-1)
        with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
            comm.write("kube-proxy")  # what `ps -e` and `top` call this process
        nsfs.enter_netns_for_good(netns)  # never the root netns: it refuses that
        handler = make_handler()
        while True:
            try:
                if not conn.poll(handler.idle_wait()):
                    handler.idle()
                    continue
                jobs = conn.recv()
            except (EOFError, OSError):
                status = 0
                break
            try:
                conn.send({"ok": True, **handler.apply(jobs)})
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, expected):
                    message += "\n" + traceback.format_exc(limit=4)
                conn.send({"ok": False, "error": message})
    except BaseException as exc:  # never raise in a fork
        with contextlib.suppress(Exception):
            conn.send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        os._exit(status)


_CONTEXT = None


def worker_context():
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(PRELOAD)
    return _CONTEXT


def prepare_workers() -> None:
    """Start the fork server (and its preloads) now, so that it overlaps with whatever the
    caller does before the first sync."""
    from multiprocessing import forkserver

    worker_context()
    forkserver.ensure_running()


class NodeWorker:
    """One node's worker, seen from the agent: `target(netns, conn)` runs in the child (a
    module-level function, so the fork server can find it)."""

    def __init__(self, netns: str, target: Callable[[str, Connection], None], what: str,
                 timeout: float) -> None:
        context = worker_context()
        self.netns = netns
        self.what = what
        self.timeout = timeout
        parent, child = context.Pipe()
        self.process = context.Process(target=target, args=(netns, child), daemon=False,
                                       name="kube-proxy")
        self.process.start()
        child.close()
        self.pid = self.process.pid
        self.conn = parent

    def alive(self) -> bool:
        return self.process.is_alive()

    def send(self, jobs: Any) -> None:
        self.conn.send(jobs)

    def receive(self, timeout: float | None = None) -> dict:
        if not self.conn.poll(self.timeout if timeout is None else timeout):
            raise KernelError(f"netns {self.netns}: the {self.what} worker did not answer")
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            raise KernelError(f"netns {self.netns}: the {self.what} worker died") from None

    def stop(self) -> None:
        self.conn.close()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
