"""labnet's kube-proxy, running in the pod agent: one sync worker per node (of the lab's proxy
backend), kept between syncs, and the rules of unchanged services kept rendered.

What each sync writes is labnet.kubeproxy.sync's decision: the first sync of a worker (and the
one after any failure) is full, so whatever an earlier agent left is corrected; later syncs are
partial, as kube-proxy's are. All nodes commit at once.
"""

from __future__ import annotations

from labnet.errors import KernelError
from labnet.kernel import conntrack
from labnet.kubeproxy.backend import ProxyBackend, SyncWorker
from labnet.kubeproxy.modes import backend_for
from labnet.kubeproxy.rules import RenderCache
from labnet.kubeproxy.sync import Snapshot, decide
from labnet.plan import Plan


class ProxyManager:
    def __init__(self, backend: ProxyBackend | None = None) -> None:
        self.backend = backend or backend_for("iptables")
        self.workers: dict[str, SyncWorker] = {}
        self.cache = RenderCache()
        self.installed: dict[str, Snapshot] = {}  # netns -> what its kernel holds
        self.plan: Plan | None = None
        self.restarts: dict[str, int] = {}  # netns -> workers started again after dying

    def worker(self, netns: str) -> SyncWorker:
        worker = self.workers.get(netns)
        if worker is None or not worker.alive():
            if worker is not None:  # it died: the node's rules stayed in the kernel meanwhile
                worker.stop()
                self.restarts[netns] = self.restarts.get(netns, 0) + 1
            self.installed.pop(netns, None)  # a new worker starts with a full sync
            worker = self.workers[netns] = self.backend.start_worker(netns)
        return worker

    def sync(self, plan: Plan, local: set[str] | None = None) -> dict:
        """Sync the rules of every node this machine carries (all, unless `local` says)."""
        rulesets = self.backend.render(plan, self.cache)
        jumps = self.backend.jumps()
        jobs = []
        for node in plan.nodes:
            if local is not None and node.name not in local:
                continue
            worker = self.worker(node.netns)
            before = self.installed.pop(node.netns, None)  # unknown until the worker answers
            after = self.backend.snapshot(rulesets[node.name])
            changes = decide(after, before, jumps)
            if not changes:
                self.installed[node.netns] = after
                continue
            worker.send(changes)
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
            raise KernelError(f"installing {self.backend.mode} rules failed: "
                              + "; ".join(errors))
        cleared = conntrack.clear_stale_udp(plan, self.plan, local) if self.plan else 0
        self.plan = plan
        return {"rules": report, "conntrack_cleared": cleared}

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()
