"""Install a node's kube-proxy nftables ruleset the way kube-proxy's knftables does: each
transaction is written to `nft -f -`, run inside the node's netns (atomic: all of it or none).

Each node is synced by a worker process that enters the node's netns for good (the same
fork-server pattern as labnet.kernel.iptables.NodeWorker) and runs `nft` there, so a
transaction can only land in that namespace. The worker also owns kube-proxy's delayed
deletion of stale service chains: a partial sync flushes a chain that is no longer used, and
the chain itself is deleted in a transaction of its own more than a second later (kernels
before 6.2 refuse to delete a chain a just-deleted map element released); a later transaction
that makes the chain again takes it off that list.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import signal
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from labnet.errors import KernelError
from labnet.kernel import nsfs
from labnet.model import SYNC_TIMEOUT

NFT = "nft"
STALE_DELAY = 1.0  # seconds a flushed stale chain waits before it is deleted
NFT_TIMEOUT = 120.0  # a full load of a very big table takes seconds


@dataclass
class NftJob:
    """One transaction for one node: `text` for `nft -f -`; `stale` service chains it left
    empty (deleted later); `full`: it replaces the table whole (nothing pending survives it);
    `rules`/`rewritten`: what it wrote, for the sync report."""

    text: str
    stale: list[str] = field(default_factory=list)
    full: bool = False
    rules: int = 0
    rewritten: int = 0


ADD_CHAIN = re.compile(r"^add chain \S+ \S+ (\S+)", re.M)


def run_nft(text: str, timeout: float = NFT_TIMEOUT) -> None:
    """`nft -f -` in this process's netns; raises OSError with nft's message on failure."""
    result = subprocess.run([NFT, "-f", "-"], input=text, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        message = " ".join(result.stderr.split())[:2000] or f"exit status {result.returncode}"
        raise OSError(f"nft -f failed: {message}")


def run_in_nodes(netns: list[str], text: str, timeout: float = NFT_TIMEOUT) -> list[str]:
    """The same transaction by `nft -f -` inside each of these netns, all at once, from any
    process (nsenter: no interpreter to start); one error line per netns that failed."""
    procs = [(name, subprocess.Popen(["nsenter", f"--net={nsfs.netns_path(name)}", NFT, "-f",
                                      "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True))
             for name in netns]
    errors = []
    for name, proc in procs:
        try:
            _, err = proc.communicate(text, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            err, proc.returncode = "nft did not finish", 1
        if proc.returncode != 0:
            errors.append(f"{name}: {' '.join(err.split())}")
    return errors


def _delete_stale(pending: dict[str, float], now: float) -> list[str]:
    """Delete the chains that have waited long enough; returns those that went."""
    due = sorted(c for c, since in pending.items() if now - since >= STALE_DELAY)
    if not due:
        return []
    text = "".join(f"delete chain ip kube-proxy {c}\n" for c in due)
    try:
        run_nft(text)
        deleted = due
    except OSError:  # one refused (still referenced, already gone): try them one by one
        deleted = []
        for chain in due:
            with contextlib.suppress(OSError):
                run_nft(f"delete chain ip kube-proxy {chain}\n")
                deleted.append(chain)
    for chain in due:  # a chain that cannot go now is not retried for ever
        pending.pop(chain, None)
    return deleted


def _worker_main(netns: str, conn: Connection) -> None:
    """The worker process: enter the node's netns for good, then run transactions as they
    come, until the pipe closes. Never returns."""
    status = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)  # not the agent's handlers (asyncio wakeup fd)
        signal.set_wakeup_fd(-1)
        with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
            comm.write("kube-proxy")
        nsfs.enter_netns_for_good(netns)  # never the root netns: it refuses that
        pending: dict[str, float] = {}  # stale chain -> when it was flushed
        while True:
            wait = None
            if pending:
                wait = max(0.0, min(pending.values()) + STALE_DELAY - time.monotonic())
            try:
                if not conn.poll(wait):
                    _delete_stale(pending, time.monotonic())
                    continue
                jobs = conn.recv()
            except (EOFError, OSError):
                status = 0
                break
            try:
                deleted: list[str] = []
                rules = rewritten = 0
                for job in jobs:
                    if job.full:
                        pending.clear()
                    for chain in ADD_CHAIN.findall(job.text):
                        pending.pop(chain, None)
                    if job.text:
                        run_nft(job.text)
                    now = time.monotonic()
                    for chain in job.stale:
                        pending.setdefault(chain, now)
                    rules += job.rules
                    rewritten += job.rewritten
                    deleted += job.stale
                conn.send({"ok": True, "rewritten": rewritten, "rules": rules,
                           "deleted": deleted, "pending": len(pending)})
            except Exception as exc:  # report it; the next (full) sync may still succeed
                message = f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, (OSError, ValueError, subprocess.SubprocessError)):
                    message += "\n" + traceback.format_exc(limit=4)
                conn.send({"ok": False, "error": message})
    except BaseException as exc:  # never raise in a fork
        with contextlib.suppress(Exception):
            conn.send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        os._exit(status)


_CONTEXT = None


def _worker_context():
    """Workers come from multiprocessing's fork server (never forked from the agent, which
    has threads), the same one labnet.kernel.iptables uses; whichever mode starts it, it
    preloads both modes' modules (never the caller's __main__, multiprocessing's default):
    nftables mode starts iptables workers too, to clean iptables mode's rules up."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["labnet.kernel.iptables", "labnet.kernel.nftables",
                                         "iptc"])
    return _CONTEXT


def prepare_workers() -> None:
    from multiprocessing import forkserver

    _worker_context()
    forkserver.ensure_running()


class NodeWorker:
    """labnet's kube-proxy (nftables mode) for one node: a process in the node's netns that
    applies transactions with `nft -f -` and deletes stale chains when they are due."""

    def __init__(self, netns: str) -> None:
        context = _worker_context()
        self.netns = netns
        parent, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(netns, child), daemon=False,
                                       name="kube-proxy")
        self.process.start()
        child.close()
        self.pid = self.process.pid
        self.conn = parent

    def alive(self) -> bool:
        return self.process.is_alive()

    def send(self, jobs: list[NftJob]) -> None:
        self.conn.send(jobs)

    def receive(self, timeout: float = max(SYNC_TIMEOUT, NFT_TIMEOUT)) -> dict:
        if not self.conn.poll(timeout):
            raise KernelError(f"netns {self.netns}: the nftables worker did not answer")
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            raise KernelError(f"netns {self.netns}: the nftables worker died") from None

    def stop(self) -> None:
        self.conn.close()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
