"""Conntrack cleanup after endpoints change, as kube-proxy does it (through pyroute2)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from labnet.kernel import nsfs
from labnet.plan import Plan


@contextlib.contextmanager
def table(netns: str) -> Iterator:
    """(conntrack handle, its entries) of one node; the socket belongs to that netns."""
    from pyroute2 import Conntrack  # imported on demand: most syncs never need it

    with nsfs.entered(netns):
        ct = Conntrack()
        try:
            yield ct, list(ct.dump_entries())
        finally:
            ct.close()


def removed_udp_endpoints(plan: Plan, previous: Plan) -> set[tuple[str, str, int]]:
    """(service IP, endpoint IP, endpoint port) of UDP endpoints that went away."""
    def udp(p: Plan) -> set[tuple[str, str, int]]:
        return {(s.cluster_ip, e.ip, e.port) for s in p.services for port in s.ports
                if port.protocol == "UDP" and s.cluster_ip not in ("", "None")
                for e in port.endpoints}
    return udp(previous) - udp(plan)


def clear_stale_udp(plan: Plan, previous: Plan, nodes: set[str] | None = None) -> int:
    """Delete conntrack entries that still send UDP flows to removed endpoints, as kube-proxy
    does: UDP has no connection to break, so without this a client keeps talking to a pod that
    is gone. Only in `nodes` (the ones this machine carries) when given."""
    stale = removed_udp_endpoints(plan, previous)
    if not stale:
        return 0
    cleared = 0
    for node in plan.nodes:
        if nodes is not None and node.name not in nodes:
            continue
        with table(node.netns) as (ct, entries):
            for entry in entries:
                if entry.tuple_orig.proto != socket.IPPROTO_UDP:
                    continue
                reply = entry.tuple_reply
                if any(reply.saddr == ip and reply.sport == port for _v, ip, port in stale):
                    ct.delete(entry)
                    cleared += 1
    return cleared
