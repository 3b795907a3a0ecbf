"""Conntrack cleanup after endpoints change, as kube-proxy does it (through pyroute2)."""

from __future__ import annotations

import socket

from labnet.plan import Plan


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
