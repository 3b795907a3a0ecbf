"""kube-proxy's nftables mode as a proxy backend: each node's table `ip kube-proxy` rendered
by labnet.kubeproxy.nft_rules, installed as kube-proxy's knftables installs it, by `nft -f -`
transactions run inside the node (labnet.kernel.nftables workers), read back with
`nft list table ip kube-proxy`.

Syncs: a worker's first one (and the one after any failure) replaces the table whole in one
atomic transaction; later ones are partial, the transaction `nft_rules.sync_ops` computes from
the last sync's snapshot (only the changed service ports' chains and map elements); the
chains a partial sync leaves unused are flushed, and the worker deletes them a second later.
"""

from __future__ import annotations

import shutil

from labnet.kernel import netlink, nftables
from labnet.kubeproxy.backend import ProxyBackend
from labnet.kubeproxy.for_plan import options_for
from labnet.kubeproxy.nft_rules import (
    FAMILY,
    TABLE,
    NftRenderCache,
    NftRuleset,
    NftSnapshot,
    cleanup_text,
    render_nft,
    sync_ops,
)
from labnet.plan import Plan


def node_nft_ruleset(plan: Plan, node: str, cache: NftRenderCache | None = None) -> NftRuleset:
    """What kube-proxy in nftables mode on `node` writes (pure)."""
    return render_nft(plan.services, options_for(plan, plan.node(node)),
                      [str(plan.network.service_cidr)], cache=cache)


class NftablesBackend(ProxyBackend):
    mode = "nftables"

    def new_cache(self) -> NftRenderCache:
        return NftRenderCache()

    def render(self, plan: Plan, cache: NftRenderCache | None = None) -> dict[str, NftRuleset]:
        cache = cache if cache is not None else NftRenderCache()
        rulesets = {n.name: node_nft_ruleset(plan, n.name, cache) for n in plan.nodes}
        cache.sweep()
        return rulesets

    def node_text(self, plan: Plan, node: str, sync_only: bool = False) -> str:
        """The table as `nft -f` loads it (one `add` per object); `sync_only`: the full-sync
        transaction kube-proxy writes instead."""
        ruleset = node_nft_ruleset(plan, node)
        return ruleset.transaction_text(first=False) if sync_only else ruleset.text()

    def snapshot(self, rules: NftRuleset) -> NftSnapshot:
        return rules.snapshot()

    def jumps(self) -> list[tuple[str, str, tuple[str, ...]]]:
        return []  # the base chains and their jumps are part of every full transaction

    def plan_sync(self, before: NftSnapshot | None,
                  rules: NftRuleset) -> tuple[list[nftables.NftJob], NftSnapshot]:
        after = rules.snapshot()
        change = sync_ops(before, rules)
        if not change.ops:
            return [], after
        lines = change.ops
        job = nftables.NftJob(
            change.text(), list(change.stale), full=before is None,
            rules=sum(1 for line in lines if line.startswith("add rule ")),
            rewritten=sum(1 for line in lines if line.startswith("flush chain ")))
        return [job], after

    def prepare(self) -> None:
        nftables.prepare_workers()

    def start_worker(self, netns: str) -> nftables.NodeWorker:
        return nftables.NodeWorker(netns)

    def read_back_argv(self, table: str = "all") -> list[str]:
        # one table holds everything kube-proxy writes in this mode: "all", "nat" and
        # "filter" all list it
        return ["nft", "list", "table", FAMILY, TABLE]

    def counters(self, netns: str) -> dict[tuple[str, str], int]:
        return {}  # not yet: kube-proxy's rules carry no counters; trace will use nftrace

    def cleanup_changes(self) -> list[nftables.NftJob]:
        return [nftables.NftJob(cleanup_text(), full=True)]

    def cleanup_nodes(self, netns: list[str]) -> list[str]:
        """`nft` (add and delete the table: no error when it is missing) in every node at
        once, without workers; nothing to do where nft is not installed."""
        if shutil.which(nftables.NFT) is None:
            return []
        # asked first over netlink: almost always there is nothing to clean, and a node then
        # costs no process at every agent start
        holding = [n for n in netns if TABLE in netlink.nft_ip_tables(n)]
        return nftables.run_in_nodes(holding, cleanup_text()) if holding else []
