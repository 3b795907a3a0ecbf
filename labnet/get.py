"""`labnet get`: the lab's pods, services, endpoints and nodes as kubectl lists them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only a type: `get` stays pure, as a table of what status read
    from labnet.status import StatusReport


def table(status: StatusReport, resource: str, namespace: str | None
          ) -> tuple[list[dict], list[str], list[str]]:
    """(rows, columns, extra columns for -o wide) from `labnet status` data."""
    def mine(ns: str) -> bool:
        return namespace is None or ns == namespace

    if resource in ("pods", "pod", "po"):
        rows = [{"NAMESPACE": p.namespace, "NAME": p.name,
                 "READY": "1/1" if p.ready else "0/1",
                 "STATUS": "Running" if p.ready else "NotReady",
                 "IP": p.ip, "NODE": p.node, "PORTS": ",".join(p.ports) or "<none>"}
                for p in status.pods if mine(p.namespace)]
        return rows, ["NAME", "READY", "STATUS", "IP", "NODE"], ["PORTS"]
    if resource in ("services", "service", "svc"):
        rows = [{"NAMESPACE": s.namespace, "NAME": s.name, "TYPE": s.type,
                 "CLUSTER-IP": s.cluster_ip, "EXTERNAL-IP": s.external_ip,
                 "PORT(S)": ",".join(s.ports) or "<none>",
                 "ENDPOINTS": ",".join(s.endpoints) or "<none>"}
                for s in status.services if mine(s.namespace)]
        return rows, ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"], ["ENDPOINTS"]
    if resource in ("endpoints", "ep"):
        rows = []
        for s in status.services:
            if not mine(s.namespace) or s.type == "ExternalName":
                continue
            shown = s.endpoints[:3]
            more = len(s.endpoints) - len(shown)
            text = ",".join(shown) + (f" + {more} more..." if more > 0 else "")
            rows.append({"NAMESPACE": s.namespace, "NAME": s.name,
                         "ENDPOINTS": text or "<none>", "ALL": ",".join(s.endpoints)})
        return rows, ["NAME", "ENDPOINTS"], ["ALL"]
    rows = [{"NAME": n.name, "STATUS": "Ready" if n.ready else "NotReady",
             "ROLES": "<none>", "INTERNAL-IP": n.underlay_ip, "POD-CIDR": n.pod_cidr,
             "PODS": n.pods} for n in status.nodes]
    return rows, ["NAME", "STATUS", "ROLES", "INTERNAL-IP"], ["POD-CIDR", "PODS"]
