"""The proxy-backend seam: what labnet's kube-proxy needs from a mode (iptables, nftables).

A backend renders each node's rules from the plan (pure), starts one sync worker per node,
decides what a sync sends it (`plan_sync`: full when nothing is trusted about the kernel,
partial otherwise; iptables' decision is `labnet.kubeproxy.sync.decide`, nftables' is
`nft_rules.sync_ops`), reads back what a node's kernel holds, gives the packet counters
`trace` shows as evidence, and removes its own rules from a node (kube-proxy
--cleanup-style), which is how switching modes clears the other backend's.

A new backend is one module next to iptables_backend.py, registered in kubeproxy/modes.py; the
agent's ProxyManager, `labnet rules`, `labnet render`, `trace` and the tests go through this
interface only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol

from labnet.kubeproxy.rules import RenderCache, Ruleset
from labnet.kubeproxy.sync import Snapshot, decide
from labnet.plan import Plan


class SyncWorker(Protocol):
    """One node's sync process: applies a list of its backend's changes (iptables: table
    changes, one commit per table; nftables: transactions) and answers with a dict: `ok`, and
    `rewritten`, `rules`, `deleted` (or `error`)."""

    pid: int

    def alive(self) -> bool: ...

    def send(self, changes: list[Any]) -> None: ...

    def receive(self) -> dict: ...

    def stop(self) -> None: ...


class ProxyBackend(ABC):
    mode: str  # kube-proxy's --proxy-mode value

    @abstractmethod
    def new_cache(self) -> Any:
        """A render cache for `render`, kept between syncs by a long-lived caller."""

    @abstractmethod
    def render(self, plan: Plan, cache: RenderCache | None = None) -> dict[str, Ruleset]:
        """Every node's rules, by node name (pure)."""

    @abstractmethod
    def node_text(self, plan: Plan, node: str, sync_only: bool = False) -> str:
        """A node's rules as the mode's own loader reads them (iptables-restore, nft -f)."""

    @abstractmethod
    def snapshot(self, rules: Ruleset) -> Snapshot:
        """The node's rules keyed per table and chain: what sync.decide compares."""

    @abstractmethod
    def jumps(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(table, built-in chain, argv) a full sync ensures, in prepend order."""

    def plan_sync(self, before: Any, rules: Ruleset) -> tuple[list[Any], Any]:
        """What one node's worker is sent so that a kernel holding `before` (a snapshot of an
        earlier sync; None: unknown, so a full sync) holds `rules`, and the snapshot it will
        hold. No changes: nothing to send. The iptables decision (sync.decide) by default."""
        after = self.snapshot(rules)
        return decide(after, before, self.jumps()), after

    def prepare(self) -> None:  # noqa: B027 - optional: most backends need no head start
        """Start, ahead of the first sync, whatever the workers come from (overlaps with the
        caller's own start-up)."""

    @abstractmethod
    def start_worker(self, netns: str) -> SyncWorker:
        """A sync worker inside node netns `netns`."""

    @abstractmethod
    def read_back_argv(self, table: str = "all") -> list[str]:
        """The command that prints, inside a node, the rules its kernel holds."""

    @abstractmethod
    def counters(self, netns: str) -> dict[tuple[str, str], int]:
        """Packets matched per (chain, rule text) in the nat table of a node: trace evidence."""

    @abstractmethod
    def cleanup_changes(self) -> list[Any]:
        """Changes that remove every rule and chain this backend owns from a node."""

    def cleanup_nodes(self, netns: list[str]) -> list[str]:
        """Remove this backend's rules from these nodes (what kube-proxy of another mode does
        at start-up), through workers of its own, all at once. Returns one error per node
        that failed."""
        workers = []
        errors = []
        for name in netns:
            worker = self.start_worker(name)
            worker.send(self.cleanup_changes())
            workers.append((name, worker))
        for name, worker in workers:
            try:
                result = worker.receive()
            except Exception as exc:  # noqa: BLE001 - a node's failure is reported, not raised
                result = {"ok": False, "error": str(exc)}
            finally:
                worker.stop()
            if not result.get("ok"):
                errors.append(f"{name}: {result.get('error')}")
        return errors
