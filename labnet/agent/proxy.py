"""labnet's kube-proxy, running in the pod agent: one iptables worker per node, kept between
syncs, and the rules of unchanged services kept rendered.

The first sync of a node (and the one after any failure) is full: every KUBE- chain is
rewritten and unknown ones are deleted, so whatever an earlier agent left is corrected. Later
syncs are partial, as kube-proxy's are: the chains of service ports whose rules were rendered
again are rewritten, those of vanished ones deleted, and the chains shared by all services
(KUBE-SERVICES, KUBE-NODEPORTS, …) rewritten when their text changed. All nodes commit at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labnet.errors import KernelError
from labnet.kernel import conntrack, iptables
from labnet.kubeproxy.for_plan import all_node_rulesets
from labnet.kubeproxy.rules import SHARED_CHAINS, RenderCache, Rule, Ruleset, jump_rules
from labnet.plan import Plan

JUMPS = [(table, rule.chain, rule.args) for table, rule in jump_rules()]


@dataclass
class Installed:
    """What one node's kernel holds, as far as the last successful sync knows."""

    fragments: dict[int, tuple] = field(default_factory=dict)  # id(filter part) -> parts
    shared: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # table -> chain


def own_chains(part) -> dict[str, list[Rule]]:
    return {c: rules for c, rules in part.chain_rules().items() if c not in SHARED_CHAINS}


def shared_texts(ruleset: Ruleset) -> dict[str, dict[str, list[str]]]:
    result = {}
    for table in ruleset.tables():
        chains = {c: [] for c in table.chains if c in SHARED_CHAINS}
        for rule in table.rules:
            if rule.chain in chains:
                chains[rule.chain].append(rule)
        ordered = table.chain_rules_of(chains)
        result[table.name] = {c: [r.text() for r in rules] for c, rules in ordered.items()}
    return result


def partial_plans(ruleset: Ruleset, before: Installed, shared: dict) -> list:
    """Table plans that rewrite only the chains a changed service port owns, delete the chains
    of vanished ones, and rewrite the shared chains whose text changed."""
    now = {id(parts[0]): parts for parts in ruleset.fragments}
    plans = []
    for index, table in enumerate(ruleset.tables()):
        rewrite: dict[str, list[tuple[str, ...]]] = {}
        for key, parts in now.items():
            if key not in before.fragments or before.fragments[key][index] is not parts[index]:
                rewrite.update({c: [r.args for r in rules]
                                for c, rules in own_chains(parts[index]).items()})
        gone = set()  # an unchanged fragment owns none of these: chains belong to one port
        for key, parts in before.fragments.items():
            if key not in now or now[key][index] is not parts[index]:
                gone.update(own_chains(parts[index]))
        stale = sorted(gone - set(rewrite))
        old_shared = before.shared.get(table.name, {})
        for chain, texts in shared[table.name].items():
            if old_shared.get(chain) != texts:
                rewrite[chain] = [r.args for r in table.chain_rules()[chain]]
        if rewrite or stale:  # an untouched table is neither read nor committed
            plans.append(iptables.TablePlan(table.name, rewrite, [], False, stale))
    return plans


class ProxyManager:
    def __init__(self) -> None:
        self.workers: dict[str, iptables.NodeWorker] = {}
        self.cache = RenderCache()
        self.installed: dict[str, Installed] = {}  # netns -> what its kernel holds
        self.plan: Plan | None = None
        self.restarts: dict[str, int] = {}  # netns -> workers started again after dying

    def worker(self, netns: str) -> iptables.NodeWorker:
        worker = self.workers.get(netns)
        if worker is None or not worker.alive():
            if worker is not None:  # it died: the node's rules stayed in the kernel meanwhile
                worker.stop()
                self.restarts[netns] = self.restarts.get(netns, 0) + 1
            self.installed.pop(netns, None)  # a new worker starts with a full sync
            worker = self.workers[netns] = iptables.NodeWorker(netns)
        return worker

    def sync(self, plan: Plan, local: set[str] | None = None) -> dict:
        """Sync the rules of every node this machine carries (all, unless `local` says)."""
        rulesets = all_node_rulesets(plan, self.cache)
        jobs = []
        for node in plan.nodes:
            if local is not None and node.name not in local:
                continue
            ruleset = rulesets[node.name]
            worker = self.worker(node.netns)
            before = self.installed.pop(node.netns, None)  # unknown until the worker answers
            shared = shared_texts(ruleset)
            if before is None:
                plans = iptables.plan_tables(ruleset, None, JUMPS)
            else:
                plans = partial_plans(ruleset, before, shared)
                if not plans:
                    self.installed[node.netns] = before
                    continue
            worker.send(plans)
            after = Installed({id(p[0]): p for p in ruleset.fragments}, shared)
            jobs.append((node, worker, after))
        report, errors = {}, []
        for node, worker, after in jobs:  # every node commits at the same time
            try:
                result = worker.receive()
            except KernelError as exc:
                result = {"ok": False, "error": str(exc)}
            if result.get("ok"):
                self.installed[node.netns] = after
                report[node.name] = {k: result[k] for k in ("rewritten", "rules", "deleted")}
            else:
                errors.append(f"node {node.name}: {result.get('error')}")
        here = {n.netns for n in plan.nodes if local is None or n.name in local}
        for netns in set(self.workers) - here:
            self.workers.pop(netns).stop()
            self.installed.pop(netns, None)
        if errors:
            raise KernelError("installing iptables rules failed: " + "; ".join(errors))
        cleared = conntrack.clear_stale_udp(plan, self.plan, local) if self.plan else 0
        self.plan = plan
        return {"rules": report, "conntrack_cleared": cleared}

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()
