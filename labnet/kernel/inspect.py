"""Read back what is really in the kernel for a plan: present, missing, and foreign objects."""

from __future__ import annotations

from labnet.errors import KernelError
from labnet.kernel import nsexec, nsfs
from labnet.kernel.netlink import NetnsLink
from labnet.names import POD_BRIDGE, VXLAN_DEVICE
from labnet.plan import Plan


def check_netns(netns: str, expect: dict[str, set[str]]) -> dict:
    """Links and addresses of one namespace against what the plan expects there."""
    if not nsfs.exists(netns):
        return {"netns": netns, "present": False, "missing": [f"netns {netns}"], "foreign": []}
    missing, foreign = [], []
    try:
        with NetnsLink(netns) as link:
            links = link.links()
            addrs = link.addresses()
    except (OSError, KernelError) as exc:
        return {"netns": netns, "present": True, "missing": [str(exc)], "foreign": []}
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
    return {"netns": netns, "present": True, "missing": missing, "foreign": foreign,
            "links": sorted(links)}


def check_vxlan_peers(plan: Plan, node) -> list[str]:
    """Routes, ARP and FDB entries flannel would have written for every other node."""
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
        if other.name == node.name:
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


def inspect_plan(plan: Plan, host: str = "") -> dict:
    prefix = plan.network.node_cidr_mask
    local = {n.name for n in plan.local_nodes(host)}
    nodes = {}
    for node in plan.nodes:
        if node.name not in local:
            here = next(n for n in plan.nodes if n.name in local)
            ok = vtep_answers(here.netns, node.underlay_ip)
            nodes[node.name] = {"netns": node.netns, "present": False, "remote": node.host,
                                "missing": [] if ok else [f"remote VTEP {node.underlay_ip} on "
                                                          f"host {node.host} does not answer"],
                                "foreign": []}
            continue
        result = check_netns(node.netns, {
            "eth0": {f"{node.underlay_ip}/{plan.underlay_prefixlen}"},
            POD_BRIDGE: {f"{node.gateway}/{prefix}"},
            VXLAN_DEVICE: {f"{node.vtep_ip}/32"},
        })
        expected = {"lo", "eth0", POD_BRIDGE, VXLAN_DEVICE,
                    *(p.host_veth for p in plan.pods_on(node.name))}
        result["foreign"] += [f"link {name}" for name in result.get("links", [])
                              if name not in expected]
        result["missing"] += check_vxlan_peers(plan, node)
        nodes[node.name] = result
    pods = {p.key: check_netns(p.netns, {"eth0": {f"{p.ip}/{prefix}"}}) if p.node in local
            else {"netns": p.netns, "present": False, "missing": [], "foreign": [],
                  "remote": True} for p in plan.pods}
    owned = set(plan.all_netns())
    strays = [n for n in nsfs.list_netns() if n.startswith(f"{plan.lab}-") and n not in owned]
    none = {"missing": [], "foreign": []}
    return {
        "underlay": none if plan.hosts else check_netns(plan.underlay_netns, {"br0": set()}),
        "external": none if plan.hosts else check_netns(
            plan.external_netns, {"eth0": {f"{plan.external_ip}/{plan.underlay_prefixlen}"}}),
        "nodes": nodes, "pods": pods, "stray_netns": strays,
    }
