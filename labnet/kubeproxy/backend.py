"""The proxy-backend seam: what labnet's kube-proxy needs from a mode (iptables, nftables).

A backend renders each node's rules from the plan (pure), starts one sync worker per node,
applies the changes `labnet.kubeproxy.sync.decide` chose, reads back what a node's kernel
holds, gives the packet counters `trace` shows as evidence, and removes its own rules from a
node (kube-proxy --cleanup-style), which is how switching modes clears the other backend's.

A new backend is one module next to iptables_backend.py, registered in kubeproxy/modes.py; the
agent's ProxyManager, `labnet rules`, `labnet render`, `trace` and the tests go through this
interface only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from labnet.kubeproxy.rules import RenderCache, Ruleset
from labnet.kubeproxy.sync import Snapshot, TableChange
from labnet.plan import Plan


class SyncWorker(Protocol):
    """One node's sync process: applies a list of table changes, one commit per table."""

    pid: int

    def alive(self) -> bool: ...

    def send(self, changes: list[TableChange]) -> None: ...

    def receive(self) -> dict: ...

    def stop(self) -> None: ...


class ProxyBackend(ABC):
    mode: str  # kube-proxy's --proxy-mode value

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
    def cleanup_changes(self) -> list[TableChange]:
        """Changes that remove every rule and chain this backend owns from a node."""
