"""The status report of a running lab: the plan, the kernel as it is, and the pod agent's view.

`status(name)` reads the three (kernel/inspect.py's KernelReport, the agent's answer over its
control socket, the plan) and `build` combines them into a StatusReport, a tree of frozen
dataclasses that the CLI, `labnet get` and the tests read by attribute. `to_dict`/`to_json` are
its only serialisation: the JSON `labnet status -o json` prints (keys sorted there).

The agent's answer is JSON on its socket; AgentReport.from_wire turns it into types right at
that boundary, so nothing here reads the agent's dict by key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from labnet.agent import control
from labnet.errors import LabNotFound
from labnet.kernel.inspect import KernelReport, inspect_plan
from labnet.plan import Plan, PlanNetwork, PlanService
from labnet.state import StateDir

# --- the pod agent's answer, typed at the socket ------------------------------------------------


@dataclass(frozen=True)
class ProcessStatus:
    """One container command the agent runs in a pod."""

    container: str
    argv: tuple[str, ...] = ()
    pid: int | None = None
    running: bool = False
    restarts: int = 0
    last_exit: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessStatus:
        return cls(data["container"], tuple(data.get("argv", ())), data.get("pid"),
                   bool(data.get("running", False)), data.get("restarts", 0),
                   data.get("last_exit"))

    def to_dict(self) -> dict:
        return {"container": self.container, "argv": list(self.argv), "pid": self.pid,
                "running": self.running, "restarts": self.restarts, "last_exit": self.last_exit}


@dataclass(frozen=True)
class PodRuntime:
    """What the agent says of one pod: its servers listening, its commands, its readiness."""

    listening: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    ready: bool = True
    processes: tuple[ProcessStatus, ...] = ()


@dataclass(frozen=True)
class ProxyWorker:
    """The agent's kube-proxy worker for one node."""

    pid: int | None = None
    alive: bool = False
    synced: bool = False
    restarts: int = 0


@dataclass(frozen=True)
class AgentReport:
    """The agent's answer to "status" (agent/main.py Agent.status), as types."""

    pid: int | None
    pods: dict[str, PodRuntime] = field(default_factory=dict)    # by pod key
    proxy: dict[str, ProxyWorker] = field(default_factory=dict)  # by node netns
    restarts: int = 0

    @classmethod
    def from_wire(cls, data: Mapping[str, Any] | None) -> AgentReport | None:
        """The JSON the control socket returns (None: no agent answered)."""
        if data is None:
            return None
        pods = {key: PodRuntime(tuple(rt.get("listening", ())), tuple(rt.get("errors", ())),
                                bool(rt.get("ready", True)),
                                tuple(ProcessStatus.from_dict(p)
                                      for p in rt.get("processes", ())))
                for key, rt in data.get("pods", {}).items()}
        proxy = {netns: ProxyWorker(w.get("pid"), bool(w.get("alive")), bool(w.get("synced")),
                                    w.get("restarts", 0))
                 for netns, w in data.get("proxy", {}).items()}
        return cls(data.get("pid"), pods, proxy, data.get("restarts", 0))


# --- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentStatus:
    pid: int | None
    alive: bool
    restarts: int | None  # None when no agent answered
    supervisor: int | None  # the supervisor's pid, when it runs
    # running; restarting: its supervisor will have it back in a moment; down: nothing will
    state: str

    def to_dict(self) -> dict:
        return {"pid": self.pid, "alive": self.alive, "restarts": self.restarts,
                "supervisor": self.supervisor, "state": self.state}


@dataclass(frozen=True)
class UnderlayStatus:
    netns: str
    cidr: str
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"netns": self.netns, "cidr": self.cidr, "missing": list(self.missing)}


@dataclass(frozen=True)
class ExternalStatus:
    netns: str
    ip: str
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"netns": self.netns, "ip": self.ip, "missing": list(self.missing)}


@dataclass(frozen=True)
class NodeStatus:
    name: str
    netns: str
    underlay_ip: str
    pod_cidr: str
    pods: int  # how many pods the plan puts on it
    missing: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()
    proxy_pid: int | None = None
    proxy_restarts: int = 0
    remote: str = ""  # multi-host labs: the host that carries it, when that is not this one

    @property
    def ready(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict:
        data: dict[str, Any] = {
            "name": self.name, "netns": self.netns, "underlay_ip": self.underlay_ip,
            "pod_cidr": self.pod_cidr, "pods": self.pods, "ready": self.ready,
            "missing": list(self.missing), "foreign": list(self.foreign)}
        if self.remote:
            data["remote"] = self.remote
        else:
            data |= {"proxy_pid": self.proxy_pid, "proxy_restarts": self.proxy_restarts}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeStatus:
        return cls(data["name"], data["netns"], data["underlay_ip"], data["pod_cidr"],
                   data["pods"], tuple(data["missing"]), tuple(data["foreign"]),
                   data.get("proxy_pid"), data.get("proxy_restarts", 0),
                   data.get("remote", ""))


@dataclass(frozen=True)
class PodStatus:
    namespace: str
    name: str
    ip: str
    node: str
    netns: str
    ports: tuple[str, ...] = ()      # every port the pod declares, "80/TCP"
    listening: tuple[str, ...] = ()  # what the agent serves
    processes: tuple[ProcessStatus, ...] = ()
    missing: tuple[str, ...] = ()
    remote: bool = False  # multi-host labs: on another host, not checked here

    @property
    def ready(self) -> bool:
        return not self.missing

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def to_dict(self) -> dict:
        data: dict[str, Any] = {
            "namespace": self.namespace, "name": self.name, "ip": self.ip, "node": self.node,
            "netns": self.netns, "ports": list(self.ports), "listening": list(self.listening),
            "processes": [p.to_dict() for p in self.processes], "ready": self.ready,
            "missing": list(self.missing)}
        if self.remote:
            data["remote"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PodStatus:
        return cls(data["namespace"], data["name"], data["ip"], data["node"], data["netns"],
                   tuple(data["ports"]), tuple(data["listening"]),
                   tuple(ProcessStatus.from_dict(p) for p in data["processes"]),
                   tuple(data["missing"]), bool(data.get("remote", False)))


@dataclass(frozen=True)
class ServiceStatus:
    """A Service as `kubectl get svc` and its EndpointSlices would show it."""

    namespace: str
    name: str
    type: str
    cluster_ip: str   # "<none>" for ExternalName, "None" for headless
    external_ip: str  # comma-separated, or "<none>"
    ports: tuple[str, ...] = ()      # "80/TCP", "80:30080/TCP"
    endpoints: tuple[str, ...] = ()  # "ip:port", sorted

    def to_dict(self) -> dict:
        return {"namespace": self.namespace, "name": self.name, "type": self.type,
                "cluster_ip": self.cluster_ip, "external_ip": self.external_ip,
                "ports": list(self.ports), "endpoints": list(self.endpoints)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceStatus:
        return cls(data["namespace"], data["name"], data["type"], data["cluster_ip"],
                   data["external_ip"], tuple(data["ports"]), tuple(data["endpoints"]))


@dataclass(frozen=True)
class StatusReport:
    lab: str
    agent: AgentStatus
    underlay: UnderlayStatus
    external: ExternalStatus
    network: PlanNetwork
    nodes: tuple[NodeStatus, ...] = ()
    pods: tuple[PodStatus, ...] = ()
    services: tuple[ServiceStatus, ...] = ()
    stray_netns: tuple[str, ...] = ()  # namespaces with the lab's prefix the plan does not own

    @property
    def healthy(self) -> bool:
        return (self.agent.alive and all(p.ready for p in self.pods)
                and all(n.ready for n in self.nodes) and not self.stray_netns
                and not self.underlay.missing and not self.external.missing)

    def node(self, name: str) -> NodeStatus:
        return next(n for n in self.nodes if n.name == name)

    def pod(self, name: str, namespace: str = "default") -> PodStatus:
        return next(p for p in self.pods if p.name == name and p.namespace == namespace)

    def to_dict(self) -> dict:
        return {
            "lab": self.lab, "healthy": self.healthy, "agent": self.agent.to_dict(),
            "underlay": self.underlay.to_dict(), "external": self.external.to_dict(),
            "nodes": [n.to_dict() for n in self.nodes], "pods": [p.to_dict() for p in self.pods],
            "stray_netns": list(self.stray_netns),
            "services": [s.to_dict() for s in self.services],
            "network": asdict(self.network),
        }

    def to_json(self) -> str:
        """As `labnet status -o json` prints it."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StatusReport:
        """The inverse of to_dict (`healthy` is derived, so it is not read)."""
        return cls(
            data["lab"], AgentStatus(**data["agent"]),
            UnderlayStatus(data["underlay"]["netns"], data["underlay"]["cidr"],
                           tuple(data["underlay"]["missing"])),
            ExternalStatus(data["external"]["netns"], data["external"]["ip"],
                           tuple(data["external"]["missing"])),
            PlanNetwork(**data["network"]),
            tuple(NodeStatus.from_dict(n) for n in data["nodes"]),
            tuple(PodStatus.from_dict(p) for p in data["pods"]),
            tuple(ServiceStatus.from_dict(s) for s in data["services"]),
            tuple(data["stray_netns"]))


# --- building it --------------------------------------------------------------------------------


def service_status(svc: PlanService, unready: Iterable[str] = frozenset()) -> ServiceStatus:
    """A Service as `kubectl get svc` and its EndpointSlices would show it: the endpoints of
    pods that do not answer (yet) are left out."""
    unready = set(unready)
    ports = tuple(f"{p.port}" + (f":{p.node_port}" if p.node_port else "") + f"/{p.protocol}"
                  for p in svc.ports)
    endpoints = tuple(sorted({e.address for p in svc.ports for e in p.endpoints
                              if e.ready and e.pod not in unready}))
    return ServiceStatus(
        svc.namespace, svc.name, svc.type, svc.cluster_ip or "<none>",
        ",".join(svc.load_balancer_ips + svc.load_balancer_proxy_ips + svc.external_ips)
        or "<none>", ports, endpoints)


def build(plan: Plan, kernel: KernelReport, agent: AgentReport | None,
          supervisor: int | None = None) -> StatusReport:
    """The report from what was read: pure, so it can be tested without a lab."""
    served = agent.pods if agent else {}
    pods = []
    for pod in plan.pods:
        seen = kernel.pods[pod.key]
        if seen.remote:
            pods.append(PodStatus(pod.namespace, pod.name, pod.ip, pod.node, pod.netns,
                                  remote=True))
            continue
        runtime = served.get(pod.key)
        want = tuple(f"{p.port}/{p.protocol}" for p in pod.ports)
        listening = runtime.listening if runtime else ()
        procs = runtime.processes if runtime else ()
        missing = list(seen.missing)
        missing += [f"server {p}" for p in want if p not in listening]
        missing += [f"process {p.container}" for p in procs if not p.running]
        if runtime and not runtime.ready:
            missing.append("readiness (not answering yet)")
        declared = tuple(f"{p.port}/{p.protocol}" for p in pod.declared_ports)
        pods.append(PodStatus(pod.namespace, pod.name, pod.ip, pod.node, pod.netns, declared,
                              listening, procs, tuple(missing)))
    proxies = agent.proxy if agent else {}
    nodes = []
    for n in plan.nodes:
        seen = kernel.nodes[n.name]
        on_node = len(plan.pods_on(n.name))
        if seen.remote:
            nodes.append(NodeStatus(n.name, n.netns, n.underlay_ip, n.pod_cidr, on_node,
                                    seen.missing, remote=seen.host))
            continue
        proxy = proxies.get(n.netns, ProxyWorker())
        missing = seen.missing
        if not (proxy.alive and proxy.synced):
            missing += ("kube-proxy rules (the agent's worker for this node)",)
        nodes.append(NodeStatus(n.name, n.netns, n.underlay_ip, n.pod_cidr, on_node, missing,
                                seen.foreign, proxy.pid, proxy.restarts))
    unready = {key for key, rt in served.items() if not rt.ready}
    return StatusReport(
        lab=plan.lab,
        agent=AgentStatus(
            pid=agent.pid if agent else None, alive=agent is not None,
            restarts=agent.restarts if agent else None, supervisor=supervisor,
            state="running" if agent else "restarting" if supervisor else "down"),
        underlay=UnderlayStatus(plan.underlay_netns, plan.network.underlay_cidr,
                                kernel.underlay.missing if kernel.underlay else ()),
        external=ExternalStatus(plan.external_netns, plan.external_ip,
                                kernel.external.missing if kernel.external else ()),
        network=plan.network,
        nodes=tuple(nodes), pods=tuple(pods),
        services=tuple(service_status(s, unready) for s in plan.services),
        stray_netns=kernel.stray_netns,
    )


def status(name: str) -> StatusReport:
    """The report of running lab `name` (needs root: labnet.lab.status checks it)."""
    state = StateDir(name)
    plan = state.read_plan() if state.exists() else None
    if plan is None:
        raise LabNotFound(f"lab {name} is not up: `labnet list` shows the labs")
    kernel = inspect_plan(plan, state.host())
    agent = AgentReport.from_wire(control.status(state))
    return build(plan, kernel, agent, control.supervisor_alive(state))
