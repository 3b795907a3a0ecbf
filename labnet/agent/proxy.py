"""labnet's kube-proxy, running in the pod agent: one iptables worker per node, kept between
syncs, and the rules of unchanged services kept rendered.

A sync renders every node's ruleset (reusing what did not change), compares each chain with
what that node last installed, and sends only the differences to the node's worker; all nodes
commit at once. The first sync of an agent is full: it rewrites every KUBE- chain and deletes
unknown ones, so whatever an earlier agent left is corrected.
"""

from __future__ import annotations

from labnet.errors import KernelError
from labnet.kernel import conntrack, iptables
from labnet.kubeproxy.for_plan import all_node_rulesets
from labnet.kubeproxy.rules import RenderCache, jump_rules
from labnet.plan import Plan

JUMPS = [(table, rule.chain, rule.args) for table, rule in jump_rules()]


class ProxyManager:
    def __init__(self) -> None:
        self.workers: dict[str, iptables.NodeWorker] = {}
        self.cache = RenderCache()
        self.installed: dict[str, dict] = {}  # netns -> the chains its kernel holds
        self.plan: Plan | None = None

    def worker(self, netns: str) -> iptables.NodeWorker:
        worker = self.workers.get(netns)
        if worker is None or not worker.alive():
            worker = self.workers[netns] = iptables.NodeWorker(netns)
        return worker

    def sync(self, plan: Plan) -> dict:
        rulesets = all_node_rulesets(plan, self.cache)
        jobs = []
        for node in plan.nodes:
            ruleset = rulesets[node.name]
            chains = ruleset.chains()
            before = self.installed.get(node.netns)
            if before == chains:
                continue
            self.installed.pop(node.netns, None)  # unknown until the worker answers
            worker = self.worker(node.netns)
            worker.send(iptables.plan_tables(ruleset, before, JUMPS))
            jobs.append((node, worker, chains))
        report, errors = {}, []
        for node, worker, chains in jobs:  # every node commits at the same time
            try:
                result = worker.receive()
            except KernelError as exc:
                result = {"ok": False, "error": str(exc)}
            if result.get("ok"):
                self.installed[node.netns] = chains
                report[node.name] = {k: result[k] for k in ("rewritten", "rules", "deleted")}
            else:
                errors.append(f"node {node.name}: {result.get('error')}")
        for netns in set(self.workers) - {n.netns for n in plan.nodes}:
            self.workers.pop(netns).stop()
            self.installed.pop(netns, None)
        if errors:
            raise KernelError("installing iptables rules failed: " + "; ".join(errors))
        cleared = conntrack.clear_stale_udp(plan, self.plan) if self.plan else 0
        self.plan = plan
        return {"rules": report, "conntrack_cleared": cleared}

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()
