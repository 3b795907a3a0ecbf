"""Read back what is really in the kernel for a plan: present, missing, and foreign objects.

The answer is typed (NetnsCheck per namespace, KernelReport for the plan); the status report
(labnet/status.py) reads it, so this module imports nothing above the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from labnet.errors import KernelError
from labnet.kernel import nsexec, nsfs
from labnet.kernel.netlink import NetnsLink
from labnet.names import POD_BRIDGE, UNDERLAY_BRIDGE, VXLAN_DEVICE
from labnet.plan import Plan, PlanLink, plan_links
from labnet.plan.links import VXLAN


@dataclass(frozen=True)
class NetnsCheck:
    """One namespace against what the plan expects there."""

    netns: str
    present: bool = False
    missing: tuple[str, ...] = ()  # what the plan wants and the kernel lacks, in words
    foreign: tuple[str, ...] = ()  # what the kernel has and the plan does not
    links: tuple[str, ...] = ()    # the links found (sorted); empty when not read
    remote: bool = False           # multi-host labs: on another host, so not read here
    host: str = ""                 # ... and that host


@dataclass(frozen=True)
class KernelReport:
    """What inspect_plan found for a whole plan."""

    nodes: dict[str, NetnsCheck] = field(default_factory=dict)  # by node name
    pods: dict[str, NetnsCheck] = field(default_factory=dict)   # by pod key (namespace/name)
    stray_netns: tuple[str, ...] = ()  # namespaces with the lab's prefix the plan does not own
    # None when the lab spans hosts: there is no underlay or external namespace to check
    underlay: NetnsCheck | None = None
    external: NetnsCheck | None = None


def check_netns(netns: str, expect: dict[str, set[str]]) -> NetnsCheck:
    """Links and addresses of one namespace against what the plan expects there."""
    if not nsfs.exists(netns):
        return NetnsCheck(netns, present=False, missing=(f"netns {netns}",))
    missing = []
    try:
        with NetnsLink(netns) as link:
            links = link.links()
            addrs = link.addresses()
    except (OSError, KernelError) as exc:
        return NetnsCheck(netns, present=True, missing=(str(exc),))
    for ifname, cidrs in expect.items():
        found = links.get(ifname)
        if found is None:
            missing.append(f"link {ifname}")
            continue
        if not found.up:
            missing.append(f"link {ifname} is down")
        for cidr in cidrs:
            if (ifname, cidr) not in addrs:
                missing.append(f"address {cidr} on {ifname}")
    return NetnsCheck(netns, present=True, missing=tuple(missing), links=tuple(sorted(links)))


def check_vxlan_peers(plan: Plan, node, peers: set[str]) -> list[str]:
    """Routes, ARP and FDB entries flannel would have written for every peer (`peers`: the
    owners at the other end of the node's VXLAN links, "node:<name>")."""
    if not nsfs.exists(node.netns):
        return []
    missing = []
    try:
        with NetnsLink(node.netns) as link:
            links = link.links()
            if VXLAN_DEVICE not in links:
                return []
            vx = links[VXLAN_DEVICE].index
            routes, neigh, fdb = link.routes(), link.neighbours(vx), link.fdb(vx)
    except (OSError, KernelError) as exc:
        return [str(exc)]
    for other in plan.nodes:
        if f"node:{other.name}" not in peers:
            continue
        if (other.pod_cidr, other.vtep_ip, VXLAN_DEVICE) not in routes:
            missing.append(f"route {other.pod_cidr} via {VXLAN_DEVICE}")
        if (other.vtep_ip, other.vtep_mac) not in neigh:
            missing.append(f"ARP entry {other.vtep_ip} on {VXLAN_DEVICE}")
        if (other.vtep_mac, other.underlay_ip) not in fdb:
            missing.append(f"FDB entry {other.vtep_mac} -> {other.underlay_ip}")
    return missing


def vtep_answers(from_netns: str, ip: str) -> bool:
    """Does a remote node's underlay address answer a ping from a local node?"""
    return nsexec.run(from_netns, ["ping", "-c", "1", "-W", "1", ip], timeout=10).returncode == 0


def ends_by_netns(links: tuple[PlanLink, ...]) -> dict[str, dict[str, set[str]]]:
    """netns -> interface -> the addresses the plan's links put there (none for a bridge
    port)."""
    found: dict[str, dict[str, set[str]]] = {}
    for link in links:
        for end in (link.a, link.b):
            if end.netns:  # "" is a host's own NIC (multi-host): not labnet's to check
                found.setdefault(end.netns, {}).setdefault(end.ifname, set()).update(
                    {end.address} - {""})
    return found


def inspect_plan(plan: Plan, host: str = "") -> KernelReport:
    prefix = plan.network.node_cidr_mask
    local = {n.name for n in plan.local_nodes(host)}
    links = plan_links(plan)
    ends = ends_by_netns(links)
    peers: dict[str, set[str]] = {}
    for link in links:
        if link.kind == VXLAN:
            peers.setdefault(link.a.netns, set()).add(link.b.owner)
            peers.setdefault(link.b.netns, set()).add(link.a.owner)
    nodes = {}
    for node in plan.nodes:
        if node.name not in local:
            here = next(n for n in plan.nodes if n.name in local)
            ok = vtep_answers(here.netns, node.underlay_ip)
            nodes[node.name] = NetnsCheck(
                node.netns, present=False, remote=True, host=node.host,
                missing=() if ok else (f"remote VTEP {node.underlay_ip} on host {node.host} "
                                       "does not answer",))
            continue
        here = ends.get(node.netns, {})
        # its uplink and its two devices (a bridge and a VTEP are not links: a one-node lab
        # has them too); the pods' veth ports are checked from the pods' side
        result = check_netns(node.netns, {
            "eth0": here.get("eth0", set()),
            POD_BRIDGE: {f"{node.gateway}/{prefix}"},
            VXLAN_DEVICE: {f"{node.vtep_ip}/32"},
        })
        expected = {"lo", POD_BRIDGE, VXLAN_DEVICE, *here}
        nodes[node.name] = replace(
            result,
            foreign=result.foreign + tuple(f"link {name}" for name in result.links
                                           if name not in expected),
            missing=result.missing + tuple(check_vxlan_peers(plan, node,
                                                             peers.get(node.netns, set()))))
    pods = {p.key: check_netns(p.netns, ends.get(p.netns, {})) if p.node in local
            else NetnsCheck(p.netns, present=False, remote=True, host=plan.node(p.node).host)
            for p in plan.pods}
    owned = set(plan.all_netns())
    strays = tuple(n for n in nsfs.list_netns()
                   if n.startswith(f"{plan.lab}-") and n not in owned)
    if plan.hosts:
        return KernelReport(nodes, pods, strays)
    return KernelReport(
        nodes, pods, strays,
        underlay=check_netns(plan.underlay_netns, {UNDERLAY_BRIDGE: set()}),
        external=check_netns(plan.external_netns, ends.get(plan.external_netns, {})))
