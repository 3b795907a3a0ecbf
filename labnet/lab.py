"""The controller: spec → plan → kernel, and the Python API (`labnet.Lab`) over it.

    with Lab.load("lab.yaml") as lab:      # up on enter, down on exit
        lab.exec("client", ["curl", "-s", "http://172.16.2.2"])
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from labnet import interrupt
from labnet import status as statusmod
from labnet.agent import control
from labnet.desired import RUNNING, Desired, located
from labnet.dns.resolvconf import resolv_conf
from labnet.errors import LabnetError, LabNotFound, NotRootError, SpecError
from labnet.kernel import nsexec, nsfs, teardown
from labnet.kernel.build import Builder, Progress
from labnet.kubeproxy.backend import ProxyBackend
from labnet.kubeproxy.modes import backend_for
from labnet.model import LabSpec
from labnet.plan import Plan, PlanPod, make_plan, replica_of
from labnet.state import LockTimeout, StateDir, check_lab_name, list_labs
from labnet.status import StatusReport

if TYPE_CHECKING:  # the DNS client enters pods' netns: loaded when used
    from labnet.dns.client import Lookup


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotRootError()


@dataclass
class UpReport:
    lab: str
    created_netns: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    removed_netns: list[str] = field(default_factory=list)
    agent_pid: int = 0
    rules: dict[str, dict] = field(default_factory=dict)  # nodes whose rules were rewritten
    conntrack_cleared: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.created_netns or self.changes or self.removed_netns or self.rules)


class Lab:
    """One lab: its spec, and the running state under /run/labnet/<name>/."""

    def __init__(self, spec: LabSpec | None, name: str | None = None,
                 desired: Desired | None = None) -> None:
        self.spec = spec
        self.name = spec.name if spec else name
        self.state = StateDir(self.name)
        self.desired = desired

    @classmethod
    def attach(cls, name: str) -> Lab:
        """A running lab by name, to look at and run commands in (no spec: cannot `up`)."""
        lab = cls(None, name)
        lab.running_plan()
        return lab

    @classmethod
    def load(cls, path: str | Path | None = None) -> Lab:
        """A lab from a lab file, or the built-in default lab."""
        desired = Desired.from_lab_file(path)
        return cls(desired.spec(), desired=desired)

    def plan(self) -> Plan:
        """What `up` would build now (pure; keeps the running lab's addresses)."""
        return make_plan(self.spec, self.state.read_plan() if self.state.exists() else None)

    # --- lifecycle --------------------------------------------------------------------------

    def up(self, progress: Progress | None = None, host: str | None = None) -> UpReport:
        """Build or converge the lab. In a lab that spans hosts, `host` says which machine
        this is: only its nodes and pods are built here."""
        require_root()
        if self.spec is not None and self.spec.hosts:
            names = [h.name for h in self.spec.hosts]
            if host not in names:
                raise SpecError("--host", f"lab {self.name} spans hosts {', '.join(names)}: "
                                "say which one this machine is", "labnet up --host NAME FILE")
        elif host:
            raise SpecError("--host", f"lab {self.name} has no hosts section",
                            "drop --host: it is a single-machine lab")
        with self.state.locked():
            self.state.write("host", host or "")
            return self._converge(progress)

    def _converge(self, progress: Progress | None = None,
                  recreate: set[str] = frozenset()) -> UpReport:
        """Make the lab match self.spec (the caller holds the lock). Pods in `recreate` are
        made anew: fresh netns, new IP."""
        previous = original = self.state.read_plan()
        saved = self.state.snapshot()  # plan.json and desired.json, to restore on failure
        if previous is not None and recreate:
            # their processes stop; the agent's sockets in the old netns are closed when it
            # sees the new IP
            teardown.remove_netns([p.netns for p in previous.pods
                                   if p.key in recreate]).raise_if_failed(self.name)
            previous = replace(previous, pods=tuple(p for p in previous.pods
                                                    if p.key not in recreate))
        plan = make_plan(self.spec, previous)
        fresh_lab = previous is None and not teardown.marked_netns(self.name)
        self.state.write_plan(plan)
        if self.desired is not None:
            self.desired.save(self.state)
        builder = Builder(plan, progress, set(previous.all_netns()) if previous else set(),
                          self.state.host(), resolv_conf)
        try:
            built = builder.apply()
            builder.close()
            report = UpReport(self.name, built.created_netns, built.changes)
            # the agent serves the pods and runs kube-proxy for every node
            served = control.ensure_agent(self.state)
            interrupt.check()
            report.agent_pid = served["pid"]
            report.rules = {node: r for node, r in served.get("rules", {}).items()
                            if r["rewritten"] or r["deleted"]}
            report.conntrack_cleared = served.get("conntrack_cleared", 0)
            report.removed_netns = self._remove_stale(plan, previous)
        except BaseException as failure:
            builder.close()
            if fresh_lab:  # roll back: a half-built lab is worse than none
                self._rollback(builder.report.created_netns)
            elif original is not None:  # a change to a running lab: as if it never happened
                self._restore(original, saved, builder.report.created_netns, failure)
            raise
        return report

    def _restore(self, original: Plan, saved: dict[str, bytes | None], created: list[str],
                 failure: BaseException) -> None:
        """Undo a change that failed after validation: the previous desired state and plan,
        its kernel objects (what the change created removed, what it removed or altered built
        again), and the agent serving the previous plan again."""
        try:
            self.state.restore(saved)
            keep = set(original.all_netns())
            teardown.remove_netns([n for n in created if n not in keep]).raise_if_failed(
                self.name)
            builder = Builder(original, None, keep, self.state.host(), resolv_conf)
            try:
                builder.apply()
            finally:
                builder.close()
            control.ensure_agent(self.state)
        except BaseException as again:
            raise LabnetError(f"{failure}; restoring lab {self.name} as it was failed too: "
                              f"{again} (`labnet up` with the lab file repairs it)") from None

    # --- kubectl-like changes on a running lab ---------------------------------------------

    def change(self, edit: Callable[[Desired, Plan], list[str]],
               recreate: Callable[[Desired, Plan], set[str]] | None = None
               ) -> tuple[UpReport, list[str]]:
        """Edit the desired state, validate all of it, then converge; an invalid change
        leaves the running lab exactly as it was."""
        require_root()
        with self.state.locked():
            desired = Desired.load(self.state)
            plan = self.state.read_plan()
            if desired is None or plan is None:
                raise LabNotFound(f"lab {self.name} is not up: `labnet up` builds it")
            said = edit(desired, plan)
            spec = desired.spec()
            again = recreate(desired, plan) if recreate else set()
            self.spec, self.desired = spec, desired
            return self._converge(recreate=again), said

    def apply(self, objects: list) -> tuple[UpReport, list[str]]:
        return self.change(lambda desired, _plan: desired.apply(objects))

    def delete(self, keys: list[tuple[str, str, str]], where: str = "delete"
               ) -> tuple[UpReport, list[str]]:
        return self.change(lambda desired, _plan: desired.delete(keys, where))

    def scale(self, namespace: str, name: str, replicas: int) -> tuple[UpReport, list[str]]:
        def edit(desired: Desired, _plan: Plan) -> list[str]:
            obj = desired.find("Deployment", namespace, name)
            if obj is None:
                raise SpecError(f"deployment/{name}", f"no Deployment {namespace}/{name} in "
                                f"lab {self.name}", "`labnet get pods` shows what runs")
            if replicas < 0:
                raise SpecError(f"deployment/{name}", "replicas must be 0 or more")
            spec = obj.setdefault("spec", located({}, RUNNING))
            spec["replicas"] = replicas
            return [f"deployment/{name} scaled"]
        return self.change(edit)

    def delete_pod(self, namespace: str, name: str, restart: bool = False
                   ) -> tuple[UpReport, list[str]]:
        """Delete (or restart) a pod. A Deployment's pod is replaced by a new one (new name,
        new IP); a bare pod is removed, or with `restart` made anew with a new IP."""
        def owner(desired: Desired, plan: Plan):
            if not any(p.namespace == namespace and p.name == name for p in plan.pods):
                raise SpecError(f"pod/{name}", f"no pod {namespace}/{name} in lab {self.name}",
                                "`labnet get pods` lists them")
            return replica_of(desired.spec(), namespace, name)

        def edit(desired: Desired, plan: Plan) -> list[str]:
            replica = owner(desired, plan)
            if replica is not None:
                key = f"{replica[0]}/{replica[1]}"
                desired.generations[key] = desired.generations.get(key, 0) + 1
                verb = "restarted" if restart else "deleted"
                return [f"pod/{name} {verb} (deployment/{replica[0].split('/')[1]} makes a "
                        "new one)"]
            if restart:
                return [f"pod/{name} restarted"]
            return desired.delete([("Pod", namespace, name)], f"pod/{name}")

        def recreate(desired: Desired, plan: Plan) -> set[str]:
            bare = restart and desired.find("Pod", namespace, name) is not None
            return {f"{namespace}/{name}"} if bare else set()

        return self.change(edit, recreate)

    def _remove_stale(self, plan: Plan, previous: Plan | None) -> list[str]:
        """Namespaces the lab owned before but the new plan does not have."""
        wanted = set(plan.all_netns())
        candidates = set(previous.all_netns()) if previous else set()
        candidates |= {n for n in nsfs.list_netns()
                       if n.startswith(f"{self.name}-") and n not in wanted}
        stale = sorted(n for n in candidates - wanted
                       if not nsfs.exists(n) or teardown.owner_of(n) == self.name)
        return teardown.remove_netns(stale).raise_if_failed(self.name)

    def _rollback(self, created: list[str]) -> None:
        """Undo a first `up` that failed: what this run created and what carries the lab's
        mark, never a namespace someone else made under a name the plan wanted."""
        control.stop_agent(self.state)
        result = teardown.remove_netns(sorted(set(created) |
                                              set(teardown.marked_netns(self.name))))
        if not result.failed:  # else the plan stays, so `labnet down` can finish the job
            self.state.remove()

    def down(self) -> list[str]:
        return down(self.name)

    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # --- looking and running ----------------------------------------------------------------

    def running_plan(self) -> Plan:
        plan = self.state.read_plan() if self.state.exists() else None
        if plan is None:
            raise LabNotFound(f"lab {self.name} is not up: `labnet up` builds it")
        return plan

    def status(self) -> StatusReport:
        return status(self.name)

    def netns_of(self, target: str, namespace: str = "default") -> str:
        return resolve_target(self.running_plan(), target, namespace)

    def exec(self, target: str, argv: Sequence[str], namespace: str = "default",
             timeout: float | None = 30, check: bool = False) -> subprocess.CompletedProcess:
        """Run a command in a pod (`NAME`, `pod/NAME`), a node (`node/NAME`) or `external`."""
        netns = self.netns_of(target, namespace)
        result = nsexec.run(netns, argv, timeout, str(teardown.etc_netns_dir(netns)))
        if check:
            result.check_returncode()
        return result

    def become(self, target: str, namespace: str = "default") -> None:
        """Move this (single-threaded) process into a pod's, node's or `external`'s
        namespaces for good, as `ip netns exec` does, before it execs a program there."""
        netns = self.netns_of(target, namespace)
        nsfs.enter_for_exec(netns, str(teardown.etc_netns_dir(netns)))

    def client_pod(self, namespace: str = "default", source: str | None = None) -> PlanPod:
        """The pod to ask the cluster DNS from: `source`, or the first pod of `namespace` (of
        any namespace, if it has none) that is not the DNS pod itself."""
        plan = self.running_plan()
        if source:
            netns = resolve_target(plan, source, namespace)
            return next(p for p in plan.pods if p.netns == netns)
        candidates = [p for p in plan.pods if not p.is_dns]
        pods = [p for p in candidates if p.namespace == namespace] or candidates
        if not pods:
            raise LabnetError("no pod to ask from: give one with --from")
        return pods[0]

    def pod_at(self, target: str, namespace: str = "default") -> PlanPod:
        """The pod a target names (`NAME`, `pod/NAME`)."""
        netns = self.netns_of(target, namespace)
        for pod in self.running_plan().pods:
            if pod.netns == netns:
                return pod
        raise SpecError(target, f"{target} is not a pod of lab {self.name}",
                        "give NAME or pod/NAME")

    def pod(self, name: str, namespace: str = "default") -> PlanPod:
        for pod in self.running_plan().pods:
            if pod.name == name and pod.namespace == namespace:
                return pod
        raise LabnetError(f"no pod {namespace}/{name} in lab {self.name}")

    @property
    def proxy(self) -> ProxyBackend:
        """The lab's kube-proxy backend (its --proxy-mode): the running plan's, else the lab
        file's."""
        plan = self.state.read_plan() if self.state.exists() else None
        if plan is not None:
            return backend_for(plan.network.proxy_mode)
        return backend_for(self.spec.network.proxy_mode if self.spec is not None
                           else "iptables")

    def installed_rules(self, node: str, table: str = "all") -> str:
        """What node NODE's kernel holds, as the proxy mode's own tool prints it."""
        target = node if node.startswith("node/") else f"node/{node}"
        result = self.exec(target, self.proxy.read_back_argv(table))
        if result.returncode != 0:
            raise LabnetError(f"reading the {self.proxy.mode} rules of {node} failed: "
                              f"{result.stderr.strip()}")
        return "".join(line + "\n" for line in result.stdout.splitlines()
                       if not line.startswith("#"))

    def resolve(self, name: str, qtype: str = "A", namespace: str = "default",
                source: str | None = None, tcp: bool = False) -> Lookup:
        """Ask the cluster DNS for NAME the way a pod of `namespace` does (search list,
        ndots:5), from `source` or the first pod of the namespace that is not the DNS pod."""
        from labnet.dns.client import resolve
        from labnet.dns.resolvconf import cluster_dns_service

        plan = self.running_plan()
        if cluster_dns_service(plan) is None:
            raise LabnetError(f"lab {self.name} has no cluster DNS: no Service holds "
                              f"{plan.network.cluster_dns} (dns.enabled is false), so pods keep "
                              "the node's resolv.conf")
        netns = self.client_pod(namespace, source).netns
        try:
            return resolve(netns, str(plan.network.cluster_dns), name, qtype.upper(), namespace,
                           str(plan.network.cluster_domain), tcp)
        except OSError as exc:
            raise LabnetError(f"the cluster DNS at {plan.network.cluster_dns} did not answer: "
                              f"{exc}") from None

    def zone_text(self) -> str:
        """The cluster DNS zone of this lab's plan, as a zone file (pure: no root needed)."""
        from labnet.dns.zone import cluster_data
        from labnet.dns.zonefile import zone_file

        plan = self.plan()
        return zone_file(cluster_data(plan, int(plan.network.dns_ttl)))

    def kubernetes(self):
        """The running lab as the Kubernetes API would serve it (a labnet.kubectl.Cluster):
        its Pods, Services, Endpoints, EndpointSlices, Nodes and Namespaces as object dicts
        (`.list("pods")`), and `kubectl get` over them (`.get(GetRequest(...))`, what
        `labnet get` prints). Needs root: readiness comes from the status report."""
        from labnet.kubectl import Cluster
        from labnet.kubectl.host import host_node_info, lab_created

        plan = self.running_plan()
        desired = Desired.load(self.state)
        return Cluster(plan, self.status(), desired.objects if desired else [],
                       lab_created(self.state), host_node_info())

    def trace(self, pod: str, target: str, namespace: str = "default", icmp: bool = False):
        """One real request (or ping) from a pod to a target, explained hop by hop."""
        from labnet import trace as tracing

        return tracing.trace(self.running_plan(), self.pod_at(pod, namespace), target, icmp,
                             self.proxy)


def resolve_target(plan: Plan, target: str, namespace: str = "default") -> str:
    kind, _, name = target.rpartition("/")
    if target in ("external", "node/external"):
        return plan.external_netns
    if target in ("underlay", "node/underlay"):
        return plan.underlay_netns
    if kind == "node":
        for node in plan.nodes:
            if node.name == name:
                return node.netns
        raise SpecError(f"node/{name}", f"no node {name!r} in lab {plan.lab}",
                        f"nodes are {', '.join(n.name for n in plan.nodes)}")
    if kind not in ("", "pod", "po", "pods"):
        raise SpecError(target, f"unknown target kind {kind!r}",
                        "use NAME, pod/NAME, node/NAME or external")
    matches = [p for p in plan.pods if p.name == name and p.namespace == namespace]
    if not matches:
        prefix = [p for p in plan.pods if p.namespace == namespace and p.name.startswith(name)]
        if len(prefix) == 1:  # `my-nginx` alone is not a pod, but a unique prefix is handy
            return prefix[0].netns
        raise SpecError(target, f"no pod {name!r} in namespace {namespace} of lab {plan.lab}",
                        "`labnet status` lists the pods")
    return matches[0].netns


def running_labs() -> list[str]:
    return list_labs()


def pick_lab(name: str | None) -> str:
    """The lab a command acts on: the one named (checked to be a lab name before it becomes a
    path), or the only one running."""
    if name:
        return check_lab_name(name)
    labs = running_labs()
    if len(labs) == 1:
        return labs[0]
    if not labs:
        raise LabNotFound("no lab is running: `labnet up` builds the default lab")
    raise LabnetError(f"several labs are running ({', '.join(labs)}): choose one with --lab")


def down(name: str) -> list[str]:
    """Remove a lab: its agent, namespaces, files. What cannot be removed is kept in the
    state (so a later `down` finds it) and raised as one line each."""
    require_root()
    state = StateDir(name)
    if not state.exists() and not teardown.marked_netns(name):
        raise LabNotFound(f"no lab named {name!r} on this machine: `labnet list` shows the labs")
    with state.locked():
        return _take_down(state).raise_if_failed(name)


def _take_down(state: StateDir) -> teardown.Removal:
    """Stop the agent, remove the namespaces (the plan's and any with the lab's mark), and the
    state directory once nothing of the lab is left. The caller holds the lock."""
    plan = None
    with contextlib.suppress(LabnetError):
        plan = state.read_plan()
    control.stop_agent(state)
    names = set(plan.all_netns()) if plan else set()
    names |= set(teardown.marked_netns(state.lab, known=names))
    result = teardown.remove_netns(sorted(names))
    if not result.failed:
        state.remove()
    return result


@dataclass
class CleanReport:
    removed: dict[str, list[str]] = field(default_factory=dict)  # lab -> namespaces removed
    left_alone: dict[str, str] = field(default_factory=dict)     # lab -> why it was spared
    failed: list[str] = field(default_factory=list)              # one line each
    warnings: list[str] = field(default_factory=list)            # seen, not touched

    @property
    def ok(self) -> bool:
        return not self.failed


def clean(everything: bool = False) -> CleanReport:
    """Remove what crashed or half-removed labs left: no live agent, or no readable plan.
    Running labs are left alone and named, unless `everything`; a lab another labnet command
    is busy with is always left alone. A namespace whose owner mark names no valid lab is
    reported and never touched."""
    require_root()
    report = CleanReport()
    for netns, mark in sorted(teardown.invalid_marks().items()):
        report.warnings.append(f"netns {netns}: its owner mark {mark!r} names no valid lab: "
                               "left alone")
    labs = set(running_labs()) | {teardown.owner_of(n) for n in teardown.marked_netns()}
    for lab in sorted(x for x in labs if x):
        state = StateDir(lab)
        try:
            with state.locked(timeout=CLEAN_LOCK_WAIT):
                why = None if everything else _alive(state)
                if why:
                    report.left_alone[lab] = why
                    continue
                result = _take_down(state)
        except LockTimeout:
            report.left_alone[lab] = "busy: another labnet command holds its lock"
            continue
        report.removed[lab] = result.removed
        report.failed += result.lines()
    return report


CLEAN_LOCK_WAIT = 2.0


def _alive(state: StateDir) -> str | None:
    """Why this lab is a running lab rather than leftovers (None when it is leftovers). An
    agent of the lab found among the processes counts even when its pid file is gone: a lab
    whose state someone removed by hand is still somebody's running lab."""
    pid = control.agent_alive(state)
    if pid is None and control.supervisor_alive(state):
        return "its pod agent is being restarted by its supervisor"
    if pid is None:
        found = control.find_agents(state)
        return f"its pod agent runs (pid {found[0]}) but its state is gone" if found else None
    try:
        if state.read_plan() is None:
            return None
    except LabnetError:
        return None
    return f"running (pod agent pid {pid})"


def status(name: str) -> StatusReport:
    """The running lab's status report (labnet/status.py builds it)."""
    require_root()
    return statusmod.status(name)
