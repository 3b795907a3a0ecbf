"""kube-proxy's iptables mode as a proxy backend: rules from labnet.kubeproxy.rules, installed
by python-iptables workers (labnet.kernel.iptables), read back with iptables-legacy-save."""

from __future__ import annotations

import re

from labnet.kernel import iptables, nsexec
from labnet.kubeproxy.backend import ProxyBackend
from labnet.kubeproxy.for_plan import all_node_rulesets, node_ruleset
from labnet.kubeproxy.rules import RenderCache, Ruleset, jump_rules
from labnet.kubeproxy.sync import Snapshot, TableChange, snapshot
from labnet.plan import Plan
from labnet.producers import KUBE_PROXY

COUNTER = re.compile(r"^\[(\d+):(\d+)\] -A (\S+) (.*)$")
TABLES = ("filter", "nat")


def table_plan(change: TableChange) -> iptables.TablePlan:
    return iptables.TablePlan(change.table, change.rewrite, change.jumps, change.full,
                              change.delete, KUBE_PROXY, change.cleanup)


class IptablesWorker:
    """A node's python-iptables worker, fed backend-neutral table changes."""

    def __init__(self, netns: str) -> None:
        self.worker = iptables.NodeWorker(netns)
        self.pid = self.worker.pid

    def alive(self) -> bool:
        return self.worker.alive()

    def send(self, changes: list[TableChange]) -> None:
        self.worker.send([table_plan(c) for c in changes])

    def receive(self) -> dict:
        return self.worker.receive()

    def stop(self) -> None:
        self.worker.stop()


class IptablesBackend(ProxyBackend):
    mode = "iptables"

    def new_cache(self) -> RenderCache:
        return RenderCache()

    def render(self, plan: Plan, cache: RenderCache | None = None) -> dict[str, Ruleset]:
        return all_node_rulesets(plan, cache)

    def node_text(self, plan: Plan, node: str, sync_only: bool = False) -> str:
        ruleset = node_ruleset(plan, node)
        return ruleset.sync_text() if sync_only else ruleset.restore_text()

    def snapshot(self, rules: Ruleset) -> Snapshot:
        return snapshot(rules)

    def jumps(self) -> list[tuple[str, str, tuple[str, ...]]]:
        return [(table, rule.chain, rule.args) for table, rule in jump_rules()]

    def prepare(self) -> None:
        iptables.prepare_workers()  # the fork server and its python-iptables import

    def start_worker(self, netns: str) -> IptablesWorker:
        return IptablesWorker(netns)

    def read_back_argv(self, table: str = "all") -> list[str]:
        return ["iptables-legacy-save"] + ([] if table == "all" else ["-t", table])

    def counters(self, netns: str) -> dict[tuple[str, str], int]:
        out = nsexec.run(netns, ["iptables-legacy-save", "-c", "-t", "nat"]).stdout
        counters = {}
        for line in out.splitlines():
            match = COUNTER.match(line)
            if match:
                counters[(match.group(3), match.group(4))] = int(match.group(1))
        return counters

    def cleanup_nodes(self, netns: list[str]) -> list[str]:
        # a worker (a process, python-iptables) only for nodes whose filter or nat table
        # exists at all: in a node iptables mode never used there is nothing to clean
        holding = [n for n in netns if {"filter", "nat"} & iptables.loaded_tables(n)]
        return super().cleanup_nodes(holding) if holding else []

    def cleanup_changes(self) -> list[TableChange]:
        # full, nothing wanted: the worker deletes every chain kube-proxy owns and the jumps to
        # them from the built-in chains
        return [TableChange(table, {}, [], True, cleanup=True) for table in TABLES]
