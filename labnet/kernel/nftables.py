"""Install a node's kube-proxy nftables ruleset the way kube-proxy's knftables does: each
transaction is written to `nft -f -`, run inside the node's netns (atomic: all of it or none).

Each node is synced by a worker process (labnet.kernel.workers, as in iptables mode) that
enters the node's netns for good and runs `nft` there, so a transaction can only land in that
namespace. The worker also owns kube-proxy's delayed
deletion of stale service chains: a partial sync flushes a chain that is no longer used, and
the chain itself is deleted in a transaction of its own more than a second later (kernels
before 6.2 refuse to delete a chain a just-deleted map element released); a later transaction
that makes the chain again takes it off that list.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from labnet.kernel import nsfs, workers
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


class NftHandler:
    """The worker's side: transactions by `nft -f -`, and the stale chains waiting to go."""

    def __init__(self) -> None:
        self.pending: dict[str, float] = {}  # stale chain -> when it was flushed

    def apply(self, jobs: list[NftJob]) -> dict:
        deleted: list[str] = []
        rules = rewritten = 0
        for job in jobs:
            if job.full:
                self.pending.clear()
            for chain in ADD_CHAIN.findall(job.text):
                self.pending.pop(chain, None)
            if job.text:
                run_nft(job.text)
            now = time.monotonic()
            for chain in job.stale:
                self.pending.setdefault(chain, now)
            rules += job.rules
            rewritten += job.rewritten
            deleted += job.stale
        return {"rewritten": rewritten, "rules": rules, "deleted": deleted,
                "pending": len(self.pending)}

    def idle_wait(self) -> float | None:
        if not self.pending:
            return None
        return max(0.0, min(self.pending.values()) + STALE_DELAY - time.monotonic())

    def idle(self) -> None:
        _delete_stale(self.pending, time.monotonic())


def _worker_main(netns: str, conn: Connection) -> None:
    workers.serve(netns, conn, NftHandler,
                  expected=(OSError, ValueError, subprocess.SubprocessError))


def prepare_workers() -> None:
    workers.prepare_workers()


class NodeWorker(workers.NodeWorker):
    """labnet's kube-proxy (nftables mode) for one node: a process in the node's netns that
    applies transactions with `nft -f -` and deletes stale chains when they are due."""

    def __init__(self, netns: str) -> None:
        super().__init__(netns, _worker_main, "nftables", max(SYNC_TIMEOUT, NFT_TIMEOUT))
