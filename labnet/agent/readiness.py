"""Readiness, as kubelet decides it: a pod is an endpoint only once it answers.

A container's readinessProbe (httpGet or tcpSocket, with its period, initial delay and
thresholds) is run from the pod's node, as kubelet runs it. A pod without one is ready once
every TCP port it declares accepts a connection (labnet's own servers do at once; a `command`
container when its program listens), checked every second. The agent serves the plan with
the endpoints of unready pods marked not ready, so kube-proxy's rules and DNS skip them.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, replace

from labnet.kernel import nsfs
from labnet.model import Probe
from labnet.plan import Plan, PlanPod

# without a readinessProbe: every declared TCP port must accept, checked every second
DEFAULT_PROBE = {"period": 1, "initial_delay": 0, "failure_threshold": 1,
                 "success_threshold": 1}
TIMEOUT = 1.0


@dataclass
class PodState:
    ip: str
    started: float
    ready: bool = False
    successes: int = 0
    failures: int = 0
    due: float = 0.0


def checks(pod: PlanPod) -> list[Probe]:
    """What to probe: each container's readinessProbe, else its TCP ports."""
    probes = [c.readiness for c in pod.containers if c.readiness]
    if probes:
        return probes
    return [Probe("tcp", p.port, **DEFAULT_PROBE)
            for c in pod.containers for p in c.ports if p.protocol == "TCP"]


def probe_once(node_netns: str, ip: str, check: Probe) -> bool:
    with nsfs.entered(node_netns):  # kubelet probes from the node
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(TIMEOUT)
        try:
            sock.connect((ip, check.port))
            if check.kind != "http":
                return True
            path = check.path or "/"
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {ip}\r\nUser-Agent: "
                         f"kube-probe/labnet\r\n\r\n".encode())
            status = sock.recv(64).split(b" ", 2)
            return len(status) > 1 and status[1].isdigit() and 200 <= int(status[1]) < 400
        except OSError:
            return False


class Readiness:
    """kubelet's prober. `run` is called from the agent's executor threads (a reload's urgent
    round and the periodic one may overlap): one round at a time, so no pod is probed twice at
    once and its counters are never updated by two threads."""

    def __init__(self) -> None:
        self.pods: dict[str, PodState] = {}
        self.remote: set[str] = set()
        self.lock = threading.Lock()

    def forget_missing(self, plan: Plan) -> None:
        current = {p.key: p.ip for p in plan.pods}
        self.pods = {k: s for k, s in self.pods.items() if current.get(k) == s.ip}

    def run(self, plan: Plan, now: float | None = None, urgent: bool = False,
            nodes: set[str] | None = None) -> bool:
        """Probe the pods that are due; with `urgent`, every pod that is not ready yet, now
        (a reload wants what answers to be an endpoint when it returns). True if any pod's
        readiness changed."""
        with self.lock:
            return self._run(plan, now, urgent, nodes)

    def _run(self, plan: Plan, now: float | None, urgent: bool, nodes: set[str] | None) -> bool:
        now = time.monotonic() if now is None else now
        self.forget_missing(plan)
        self.remote = {p.key for p in plan.pods if nodes is not None and p.node not in nodes}
        changed = False
        for pod in plan.pods:
            if pod.key in self.remote:  # another host's kubelet probes it
                continue
            state = self.pods.get(pod.key)
            if state is None:
                state = self.pods[pod.key] = PodState(pod.ip, now)
            if urgent:
                if state.ready:
                    continue
            elif state.due > now:
                continue
            probes = checks(pod)
            if not probes:
                if not state.ready:
                    state.ready, changed = True, True
                state.due = float("inf")
                continue
            first = probes[0]
            if now - state.started < first.initial_delay:
                state.due = state.started + first.initial_delay
                continue
            node = plan.node(pod.node).netns
            ok = all(probe_once(node, pod.ip, check) for check in probes)
            state.due = now + min(p.period for p in probes)
            if ok:
                state.successes, state.failures = state.successes + 1, 0
                if not state.ready and state.successes >= first.success_threshold:
                    state.ready, changed = True, True
            else:
                state.failures, state.successes = state.failures + 1, 0
                if state.ready and state.failures >= first.failure_threshold:
                    state.ready, changed = False, True
        return changed

    def ready(self, key: str) -> bool:
        if key in self.remote:  # pods of other hosts count as ready (their host decides)
            return True
        state = self.pods.get(key)
        return bool(state and state.ready)

    def effective(self, plan: Plan) -> Plan:
        """The plan with the endpoints of unready pods marked not ready (and not serving)."""
        services = []
        for svc in plan.services:
            if svc.publish_not_ready:  # spec.publishNotReadyAddresses: every pod is listed
                services.append(svc)
                continue
            ports = []
            for port in svc.ports:
                eps = tuple(e if not e.pod or self.ready(e.pod) else
                            replace(e, ready=False, serving=False) for e in port.endpoints)
                ports.append(replace(port, endpoints=eps))
            services.append(replace(svc, ports=tuple(ports)))
        return replace(plan, services=tuple(services))
