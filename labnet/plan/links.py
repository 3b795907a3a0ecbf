"""Every link of the lab as a record: its two ends, its kind, its MTU and its attributes.

The builder creates links from these records, `inspect` checks them and `graph` draws them, so
a per-link setting (a delay, a loss rate, a different MTU) is one field here and one kernel
call in the builder. Derived from the plan's nodes and pods, never stored: the plan's JSON form
(and so its golden file) stays what it was.

Kinds:
  veth    a pair; `a` is the side attached to a bridge (`a.master`), `b` the host's own eth0
  macvlan a node's eth0 on a real NIC (multi-host labs): `a` is the NIC, `b` the node's eth0
  vxlan   two nodes' VTEPs, peers through static FDB/ARP entries as flannel programs them
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labnet.names import POD_BRIDGE, UNDERLAY_BRIDGE, VXLAN_DEVICE
from labnet.plan.types import Plan

VETH, MACVLAN, VXLAN = "veth", "macvlan", "vxlan"


@dataclass(frozen=True)
class LinkEnd:
    netns: str  # "" for a machine's own NIC (the root netns: never changed, only named)
    ifname: str
    address: str = ""  # CIDR this end carries, "" for a bridge port
    master: str = ""  # the bridge this end is a port of
    owner: str = ""  # what the end belongs to: "node:<name>", "pod:<ns>/<name>", "external"…


@dataclass(frozen=True)
class PlanLink:
    kind: str
    a: LinkEnd
    b: LinkEnd
    mtu: int
    attributes: dict[str, object] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.a.netns}/{self.a.ifname}-{self.b.netns}/{self.b.ifname}"


def plan_links(plan: Plan) -> tuple[PlanLink, ...]:
    """Underlay ports (or uplinks), pod veths and the VXLAN mesh, in build order."""
    links: list[PlanLink] = []
    prefix = plan.underlay_prefixlen
    mtu = int(plan.network.mtu)
    if plan.hosts:
        for node in plan.nodes:
            nic = plan.hosts[node.host].interface if node.host in plan.hosts else ""
            links.append(PlanLink(
                MACVLAN, LinkEnd("", nic, owner=f"host:{node.host}"),
                LinkEnd(node.netns, "eth0", f"{node.underlay_ip}/{prefix}",
                        owner=f"node:{node.name}"), mtu, {"mode": "bridge"}))
    else:
        hosts = [(n.underlay_port, n.netns, n.underlay_ip, f"node:{n.name}") for n in plan.nodes]
        hosts.append(("external", plan.external_netns, plan.external_ip, "external"))
        for port, netns, ip, owner in hosts:
            links.append(PlanLink(
                VETH, LinkEnd(plan.underlay_netns, port, master=UNDERLAY_BRIDGE, owner="switch"),
                LinkEnd(netns, "eth0", f"{ip}/{prefix}", owner=owner), mtu))
    nodes = {n.name: n for n in plan.nodes}
    pod_prefix = plan.network.node_cidr_mask
    for pod in plan.pods:
        node = nodes[pod.node]
        # hairpin, as the CNI bridge plugin sets it: a pod that reaches its own Service may be
        # DNATed back to itself, out of the port the packet came in on
        links.append(PlanLink(
            VETH, LinkEnd(node.netns, pod.host_veth, master=POD_BRIDGE, owner=f"node:{node.name}"),
            LinkEnd(pod.netns, "eth0", f"{pod.ip}/{pod_prefix}", owner=f"pod:{pod.key}"),
            plan.pod_mtu, {"hairpin": True}))
    for i, a in enumerate(plan.nodes):
        for b in plan.nodes[i + 1:]:
            links.append(PlanLink(
                VXLAN, LinkEnd(a.netns, VXLAN_DEVICE, f"{a.vtep_ip}/32", owner=f"node:{a.name}"),
                LinkEnd(b.netns, VXLAN_DEVICE, f"{b.vtep_ip}/32", owner=f"node:{b.name}"),
                plan.pod_mtu, {"vni": plan.network.vxlan_vni, "port": plan.network.vxlan_port}))
    return tuple(links)
