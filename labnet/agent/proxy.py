"""labnet's kube-proxy, running in the pod agent: one sync worker per node (of the lab's proxy
backend), kept between syncs, and the rules of unchanged services kept rendered.

What each sync writes is the backend's decision (`plan_sync`): the first sync of a worker (and
the one after any failure) is full, so whatever an earlier agent left is corrected; later syncs
are partial, as kube-proxy's are. All nodes commit at once.

The backend is the plan's `network.proxy_mode`. As kube-proxy does at start-up, a node's first
sync here is preceded by removing the other modes' rules from it; when a running lab's mode
changes, the old backend's workers remove its rules from every node and stop, and the new
mode's workers start with a full sync.
"""

from __future__ import annotations

import contextlib
from typing import Any

from labnet.errors import KernelError
from labnet.kernel import conntrack
from labnet.kubeproxy.backend import ProxyBackend, SyncWorker
from labnet.kubeproxy.modes import BACKENDS, DEFAULT_MODE, backend_for
from labnet.plan import Plan


class ProxyManager:
    def __init__(self, backend: ProxyBackend | None = None) -> None:
        """`backend`: always this one (tests, benchmarks); by default the plan's mode."""
        self.fixed = backend is not None
        self.backend = backend or backend_for(DEFAULT_MODE)
        self.workers: dict[str, SyncWorker] = {}
        self.cache = self.backend.new_cache()
        self.installed: dict[str, Any] = {}  # netns -> what its kernel holds (a snapshot)
        self.plan: Plan | None = None
        self.restarts: dict[str, int] = {}  # netns -> workers started again after dying
        self.cleaned: set[str] = set()  # nodes the other modes' rules were removed from

    def switch(self, mode: str) -> None:
        """The lab's proxy mode changed: the old backend's rules leave every node it synced
        (through its own workers), its workers stop, the new backend starts afresh."""
        old, jobs = self.backend, []
        for worker in self.workers.values():
            if worker.alive():
                worker.send(old.cleanup_changes())
                jobs.append(worker)
        for worker in jobs:
            with contextlib.suppress(KernelError):  # retried by the new mode's start-up cleanup
                worker.receive()
        self.stop()
        self.installed.clear()
        self.cleaned.clear()  # the new mode's first syncs clean up the old mode's rules again
        self.backend = backend_for(mode)
        self.cache = self.backend.new_cache()

    def clean_other_modes(self, netns: list[str]) -> list[str]:
        """kube-proxy's start-up: remove the rules every other mode may have left. Like
        kube-proxy, a failure is reported (in the sync's report), not fatal, and not retried
        until the mode changes."""
        errors = []
        for mode in BACKENDS:
            if mode != self.backend.mode:
                errors += [f"{mode} cleanup of {line}"
                           for line in backend_for(mode).cleanup_nodes(netns)]
        self.cleaned.update(netns)
        return errors

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
        mode = plan.network.proxy_mode
        if not self.fixed and mode != self.backend.mode:
            self.switch(mode)
        mine = [n for n in plan.nodes if local is None or n.name in local]
        fresh = [n.netns for n in mine if n.netns not in self.cleaned]
        cleanup_errors = self.clean_other_modes(fresh) if fresh else []
        rulesets = self.backend.render(plan, self.cache)
        jobs = []
        for node in mine:
            worker = self.worker(node.netns)
            before = self.installed.pop(node.netns, None)  # unknown until the worker answers
            changes, after = self.backend.plan_sync(before, rulesets[node.name])
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
        here = {n.netns for n in mine}
        for netns in set(self.workers) - here:
            self.workers.pop(netns).stop()
            self.installed.pop(netns, None)
        self.cleaned &= here
        if errors:
            raise KernelError(f"installing {self.backend.mode} rules failed: "
                              + "; ".join(errors))
        cleared = conntrack.clear_stale_udp(plan, self.plan, local) if self.plan else 0
        self.plan = plan
        result = {"rules": report, "conntrack_cleared": cleared}
        if cleanup_errors:
            result["cleanup_errors"] = cleanup_errors
        return result

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()
