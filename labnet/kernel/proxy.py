"""labnet's kube-proxy: render every node's ruleset from the plan and install it.

The last installed ruleset of each node is kept in the state directory (rules/<node>.json), so a
resync rewrites only the chains that changed. Without that record (first sync, or a crash) the
sync is full: every KUBE- chain is rewritten and unknown ones are deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass, field

from labnet.kernel import iptables
from labnet.kubeproxy.for_plan import all_node_rulesets
from labnet.kubeproxy.rules import jump_rules
from labnet.plan import Plan
from labnet.state import StateDir


@dataclass
class ProxyReport:
    nodes: dict[str, dict] = field(default_factory=dict)
    conntrack_cleared: int = 0

    @property
    def changed(self) -> bool:
        return any(r["rewritten"] or r["deleted"] for r in self.nodes.values())


def _record_path(state: StateDir, node: str):
    return state.root / "rules" / f"{node}.json"


def _read_record(state: StateDir, node: str) -> dict | None:
    try:
        return json.loads(_record_path(state, node).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _write_record(state: StateDir, node: str, chains: dict) -> None:
    path = _record_path(state, node)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(chains, sort_keys=True))
    os.replace(tmp, path)


def sync(plan: Plan, state: StateDir, previous: Plan | None = None,
         full: bool = False) -> ProxyReport:
    report = ProxyReport()
    jumps = [(table, rule.chain, rule.args) for table, rule in jump_rules()]
    jobs, records = [], {}
    rulesets = all_node_rulesets(plan)
    for node in plan.nodes:
        ruleset = rulesets[node.name]
        chains = ruleset.chains()
        record = None if full else _read_record(state, node.name)
        if record == chains:
            report.nodes[node.name] = {"rewritten": 0, "rules": 0, "deleted": []}
            continue
        # the record is cleared first: if this sync dies half-way, the next one is full
        with contextlib.suppress(FileNotFoundError):
            _record_path(state, node.name).unlink()
        jobs.append((node.netns, iptables.plan_tables(ruleset, record, jumps)))
        records[node.netns] = (node.name, chains)
    if jobs:
        done = iptables.apply_nodes(jobs)
        for netns, (name, chains) in records.items():
            report.nodes[name] = done["nodes"][netns]
            _write_record(state, name, chains)
    if previous is not None:
        report.conntrack_cleared = clear_stale_udp(plan, previous)
    return report


def removed_udp_endpoints(plan: Plan, previous: Plan) -> set[tuple[str, str, int]]:
    """(service IP, endpoint IP, endpoint port) of UDP endpoints that went away."""
    def udp(p: Plan) -> set[tuple[str, str, int]]:
        return {(s.cluster_ip, e.ip, e.port) for s in p.services for port in s.ports
                if port.protocol == "UDP" and s.cluster_ip not in ("", "None")
                for e in port.endpoints}
    return udp(previous) - udp(plan)


def clear_stale_udp(plan: Plan, previous: Plan) -> int:
    """Delete conntrack entries that still send UDP flows to removed endpoints, as kube-proxy
    does: UDP has no connection to break, so without this a client keeps talking to a pod that
    is gone."""
    stale = removed_udp_endpoints(plan, previous)
    if not stale:
        return 0
    from pyroute2 import Conntrack  # imported on demand: most syncs never need it

    from labnet.kernel import nsfs

    cleared = 0
    for node in plan.nodes:
        with nsfs.entered(node.netns):  # the conntrack socket must belong to the node netns
            ct = Conntrack()
            try:
                for entry in list(ct.dump_entries()):
                    if entry.tuple_orig.proto != socket.IPPROTO_UDP:
                        continue
                    reply = entry.tuple_reply
                    if any(reply.saddr == ip and reply.sport == port for _v, ip, port in stale):
                        ct.delete(entry)
                        cleared += 1
            finally:
                ct.close()
    return cleared
