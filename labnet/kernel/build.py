"""Make the kernel agree with a plan: create what is missing, fix what is wrong, leave the rest.

A namespace created in this run is known to be empty, so it is built without reading anything
back; an existing one is read once (links, addresses, routes…) and only the differences are
applied. That makes a second `up` on a running lab a read-only pass.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from labnet import interrupt
from labnet.errors import KernelError
from labnet.kernel import nsfs
from labnet.kernel.netlink import HostUplink, Link, NetnsLink
from labnet.kernel.teardown import ETC_FILE_MODE, ensure_etc_netns_dir, etc_netns_dir
from labnet.names import OWNER_PREFIX, POD_BRIDGE, UNDERLAY_BRIDGE, VXLAN_DEVICE
from labnet.plan import Plan, PlanLink, PlanNode, PlanPod, plan_links
from labnet.plan.links import MACVLAN, VXLAN

Progress = Callable[[str, int, int], None]
ResolvConf = Callable[[Plan, PlanPod], "str | None"]  # a pod's /etc/resolv.conf (None: none)


@dataclass
class BuildReport:
    created_netns: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)

    def change(self, text: str) -> None:
        self.changes.append(text)


def write_etc_file(netns: str, name: str, text: str) -> bool:
    """/etc/netns/<netns>/<name>, which `ip netns exec` and `labnet exec` bind-mount over
    /etc/<name> in the namespace. True if it had to be written."""
    directory = etc_netns_dir(netns)
    path = directory / name
    try:
        if path.read_text() == text and path.stat().st_mode & 0o777 == ETC_FILE_MODE:
            return False
    except FileNotFoundError:
        pass
    ensure_etc_netns_dir(directory)
    tmp = directory / (name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    # root's, readable by the pod's processes, writable by nobody else
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                           ETC_FILE_MODE), "w") as f:
        f.write(text)
    os.chmod(tmp, ETC_FILE_MODE)  # the umask may have taken bits the pod needs to read it
    os.replace(tmp, path)
    return True


def owner_mark(lab: str) -> str:
    return f"{OWNER_PREFIX}{lab}"


class Builder:
    def __init__(self, plan: Plan, progress: Progress | None = None,
                 adoptable: set[str] | None = None, host: str = "",
                 resolv_conf: ResolvConf | None = None) -> None:
        self.plan = plan
        self.resolv_conf = resolv_conf  # from the dns stage: the kernel does not import it
        self.host = host  # multi-host labs: build only this machine's nodes and pods
        self.nodes = plan.local_nodes(host)
        names = {n.name for n in self.nodes}
        self.pods = [p for p in plan.pods if p.node in names]
        # unmarked namespaces that are still ours: named by the plan of a crashed earlier run
        self.adoptable = adoptable or set()
        self.mark = owner_mark(plan.lab)
        self.report = BuildReport()
        self.fresh: set[str] = set()
        self.handles: dict[str, NetnsLink] = {}
        self._node_links: dict[str, dict[str, Link]] = {}
        self.progress = progress or (lambda what, done, total: None)
        # the plan's link records, by the netns of their `b` end (eth0 of a node or pod)
        self.plan_links = plan_links(plan)
        self.links_to: dict[str, list[PlanLink]] = {}
        self.vxlan_peers: dict[str, list[str]] = {}  # node netns -> owners of its VXLAN peers
        for link in self.plan_links:
            self.links_to.setdefault(link.b.netns, []).append(link)
            if link.kind == VXLAN:
                self.vxlan_peers.setdefault(link.a.netns, []).append(link.b.owner)
                self.vxlan_peers.setdefault(link.b.netns, []).append(link.a.owner)

    # --- helpers ----------------------------------------------------------------------------

    def handle(self, netns: str) -> NetnsLink:
        if netns not in self.handles:
            self.handles[netns] = NetnsLink(netns)
        return self.handles[netns]

    def release(self, netns: str) -> None:
        handle = self.handles.pop(netns, None)
        if handle:
            handle.close()

    def close(self) -> None:
        for netns in list(self.handles):
            self.release(netns)

    def node_links(self, netns: str) -> dict[str, Link]:
        """A node's links, read once per build (pods only look up their own veth in it)."""
        if netns not in self._node_links:
            self._node_links[netns] = self.handle(netns).links()
        return self._node_links[netns]

    def links(self, netns: str) -> dict[str, Link]:
        if netns in self.fresh:
            return {}
        links = self.handle(netns).links()
        lo = links.get("lo")
        if (lo is None or lo.alias != self.mark) and netns not in self.adoptable:
            raise KernelError(f"netns {netns} exists but labnet did not make it for lab "
                              f"{self.plan.lab}: refusing to touch it (remove it with "
                              f"`ip netns del {netns}` if it is yours, or rename the lab)")
        return links

    def ensure_netns(self, netns: str) -> None:
        if not nsfs.exists(netns):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(nsfs.netns_path(netns))  # an empty file left by a crash
            self.report.created_netns.append(netns)  # before: a rollback must find even a
            nsfs.create(netns)                        # creation that was interrupted
            self.fresh.add(netns)

    def ensure_loopback(self, netns: str, links: dict[str, Link]) -> None:
        lo = links.get("lo")
        if lo is None or not lo.up or lo.alias != self.mark:
            self.handle(netns).set_link("lo", state="up", ifalias=self.mark)
            if lo is not None:
                self.report.change(f"{netns}: lo up and marked")

    def ensure_veth(self, netns: str, links: dict[str, Link], name: str, peer_netns: str,
                    peer_links: dict[str, Link], peer: str, mtu: int,
                    master: str | None = None) -> None:
        """A veth `name` in `netns` whose peer `peer` lives in `peer_netns`."""
        here, there = links.get(name), peer_links.get(peer)
        if here and there and here.kind == "veth" and there.kind == "veth":
            if master and here.master != self.handle(netns).index(master):
                self.handle(netns).set_link(name, master=self.handle(netns).index(master))
                self.report.change(f"{netns}: {name} re-attached to {master}")
            if not here.up:
                self.handle(netns).set_link(name, state="up")
                self.report.change(f"{netns}: {name} up")
            if not there.up:
                self.handle(peer_netns).set_link(peer, state="up")
                self.report.change(f"{peer_netns}: {peer} up")
            return
        for ns, link, ifname in ((netns, here, name), (peer_netns, there, peer)):
            if link is not None:
                self.handle(ns).delete_link(ifname)
                self.report.change(f"{ns}: removed half a veth pair {ifname}")
        fd = nsfs.open_fd(peer_netns)
        try:
            self.handle(netns).add_veth(name, peer, fd, mtu, self.mark, master)
        finally:
            os.close(fd)
        peer_handle = self.handle(peer_netns)
        # a fresh namespace holds lo (1) and now the peer, which the kernel numbers 2
        if peer_netns not in self.fresh or not peer_handle.claim_index(peer, 2, state="up"):
            peer_handle.set_link(peer, state="up")
        if netns not in self.fresh or peer_netns not in self.fresh:
            self.report.change(f"{netns}: veth {name} <-> {peer_netns}:{peer} created")

    def ensure_device(self, netns: str, links: dict[str, Link], name: str, kind: str,
                      create: Callable[[], None], fits: bool = True) -> bool:
        """A bridge or VXLAN device `name` of `kind`: made (again) by `create` when it is
        missing, of another kind or does not fit (`fits` False), else brought up if down.
        True if it was made."""
        have = links.get(name)
        if have is not None and have.kind == kind and fits:
            if not have.up:
                self.handle(netns).set_link(name, state="up")
                self.report.change(f"{netns}: {name} up")
            return False
        if have is not None:
            self.handle(netns).delete_link(name)
        create()  # which leaves it up
        if netns not in self.fresh:
            self.report.change(f"{netns}: {kind} {name} created")
        return True

    def ensure_link(self, link: PlanLink, a_links: dict[str, Link],
                    b_links: dict[str, Link]) -> None:
        """A veth link of the plan, with its attributes (a new attribute: one call here)."""
        a, b = link.a, link.b
        self.ensure_veth(a.netns, a_links, a.ifname, b.netns, b_links, b.ifname, link.mtu,
                         a.master or None)
        if link.attributes.get("hairpin"):
            port = a_links.get(a.ifname)
            if port is None or not port.hairpin:
                self.handle(a.netns).set_hairpin(a.ifname)
                if port is not None:
                    self.report.change(f"{a.netns}: hairpin on {a.ifname}")

    def ensure_addresses(self, netns: str, fresh: bool, wanted: dict[str, set[str]]) -> None:
        """Exactly these IPv4 addresses on these interfaces."""
        handle = self.handle(netns)
        have = set() if fresh else handle.addresses()
        for ifname, cidrs in wanted.items():
            for cidr in sorted(cidrs):
                if (ifname, cidr) not in have:
                    handle.add_address(ifname, cidr)
                    if not fresh:
                        self.report.change(f"{netns}: address {cidr} added to {ifname}")
            for name, cidr in sorted(have):
                if name == ifname and cidr not in cidrs:
                    handle.delete_address(ifname, cidr)
                    self.report.change(f"{netns}: stray address {cidr} removed from {ifname}")

    # --- the lab ----------------------------------------------------------------------------

    def local_netns(self) -> list[str]:
        infra = [] if self.plan.hosts else [self.plan.underlay_netns, self.plan.external_netns]
        return [*infra, *(n.netns for n in self.nodes), *(p.netns for p in self.pods)]

    def apply(self) -> BuildReport:
        names = self.local_netns()
        for netns in names:
            interrupt.check()
            self.ensure_netns(netns)
        self.progress("namespaces", len(names), len(names))
        if self.plan.hosts:
            self.build_uplinks()
        else:
            self.build_underlay()
        for i, node in enumerate(self.nodes, 1):
            interrupt.check()
            self.build_node(node)
            self.progress("nodes", i, len(self.nodes))
        for i, pod in enumerate(self.pods, 1):
            interrupt.check()
            self.build_pod(pod)
            if i % 25 == 0 or i == len(self.pods):
                self.progress("pods", i, len(self.pods))
        if not self.plan.hosts:
            self.build_load_balancers()
        interrupt.check()
        return self.report

    def build_uplinks(self) -> None:
        """Multi-host: each local node's eth0 is a macvlan of this host's NIC, on the real
        network between the hosts."""
        uplink = None
        try:
            for node in self.nodes:
                (link,) = [x for x in self.links_to[node.netns] if x.kind == MACVLAN]
                end = link.b
                links = self.links(end.netns)
                self.ensure_loopback(end.netns, links)
                if end.ifname not in links:
                    uplink = uplink or HostUplink()
                    fd = nsfs.open_fd(end.netns)
                    try:
                        uplink.add_macvlan(link.a.ifname, fd, end.ifname, link.mtu, self.mark)
                    finally:
                        os.close(fd)
                    self.handle(end.netns).set_link(end.ifname, state="up")
                    if end.netns not in self.fresh:
                        self.report.change(f"{end.netns}: {end.ifname} (macvlan of "
                                           f"{link.a.ifname}) created")
                self.ensure_addresses(end.netns, end.netns in self.fresh,
                                      {end.ifname: {end.address}})
        finally:
            if uplink is not None:
                uplink.close()

    def build_load_balancers(self) -> None:
        """The lab's load balancer: the external host routes each LoadBalancer IP (and each
        externalIP) to the nodes
        that can serve it (all of them; with externalTrafficPolicy Local, only nodes with a
        local endpoint, as a cloud LB's health checks would decide), spreading flows (ECMP)."""
        plan = self.plan
        ns = plan.external_netns
        handle = self.handle(ns)
        node_ip = {n.name: n.underlay_ip for n in plan.nodes}
        wanted: dict[str, list[str]] = {}
        for svc in plan.services:
            # externalIPs too: a real network routes them to the nodes, or they reach nothing
            for ip in (*svc.load_balancer_ips, *svc.external_ips):
                nodes = list(node_ip)
                if svc.external_traffic_local:
                    local = {e.node for p in svc.ports for e in p.endpoints if e.ready}
                    nodes = [n for n in nodes if n in local]
                if nodes:
                    wanted[f"{ip}/32"] = sorted(node_ip[n] for n in nodes)
        have = {} if ns in self.fresh else handle.host_routes()
        for dst, gateways in sorted(wanted.items()):
            if have.get(dst) != gateways:
                handle.replace_multipath_route(dst, gateways)
                if ns not in self.fresh:
                    self.report.change(f"{ns}: load balancer route {dst} via {gateways}")
        for dst in sorted(set(have) - set(wanted)):
            handle.delete_route(dst)
            self.report.change(f"{ns}: stale load balancer route {dst} removed")
        self.release(ns)

    def build_underlay(self) -> None:
        plan = self.plan
        ns = plan.underlay_netns
        links = self.links(ns)
        self.ensure_loopback(ns, links)
        self.ensure_device(ns, links, UNDERLAY_BRIDGE, "bridge", lambda: self.handle(
            ns).add_bridge(UNDERLAY_BRIDGE, int(plan.network.mtu), self.mark))
        ports = [link for link in self.plan_links if link.a.netns == ns]
        for link in ports:
            host_ns = link.b.netns
            host_links = self.links(host_ns)
            self.ensure_loopback(host_ns, host_links)
            self.ensure_link(link, links, host_links)
            self.ensure_addresses(host_ns, host_ns in self.fresh,
                                  {link.b.ifname: {link.b.address}})
        stale = set(links) - {"lo", UNDERLAY_BRIDGE, *(link.a.ifname for link in ports)}
        for name in sorted(stale):
            self.handle(ns).delete_link(name)
            self.report.change(f"{ns}: stale port {name} removed")

    def build_node(self, node: PlanNode) -> None:
        plan = self.plan
        ns = node.netns
        fresh = ns in self.fresh
        handle = self.handle(ns)
        links = self.links(ns)
        mtu = plan.pod_mtu
        # ip_forward: a node routes for its pods; route_localnet: kube-proxy's localhost
        # NodePorts (127.0.0.1:<nodePort>) need it, and kube-proxy sets it the same way
        for key in ("net/ipv4/ip_forward", "net/ipv4/conf/all/route_localnet"):
            if fresh or nsfs.read_sysctl(ns, key) != "1":
                nsfs.write_sysctl(ns, key, "1")
                if not fresh:
                    self.report.change(f"{ns}: {key} = 1")
        # nf_call_iptables: bridged pod-to-pod traffic on one node must see kube-proxy's DNAT
        # rules too (a pod calling a service whose endpoint is on the same node)
        self.ensure_device(ns, links, POD_BRIDGE, "bridge", lambda: handle.add_bridge(
            POD_BRIDGE, mtu, self.mark, nf_call_iptables=True))

        def add_vxlan() -> None:
            handle.add_vxlan(VXLAN_DEVICE, int(plan.network.vxlan_vni), node.underlay_ip,
                             int(plan.network.vxlan_port), "eth0", mtu, node.vtep_mac, self.mark)
            handle.set_link(VXLAN_DEVICE, state="up")

        vx = links.get(VXLAN_DEVICE)
        fresh_vx = self.ensure_device(ns, links, VXLAN_DEVICE, "vxlan", add_vxlan,
                                      fits=vx is not None and vx.mac == node.vtep_mac)
        prefix = plan.network.node_cidr_mask
        self.ensure_addresses(ns, fresh, {POD_BRIDGE: {f"{node.gateway}/{prefix}"},
                                          VXLAN_DEVICE: {f"{node.vtep_ip}/32"}})
        self.program_vxlan_peers(node, fresh or fresh_vx)
        # the underlay's "router" is the external host: a node needs a default route for its
        # own connections to ClusterIPs (routing happens before the OUTPUT chain's DNAT)
        routes = set() if fresh else handle.routes()
        if plan.hosts:  # no external host on a real network: route the service CIDR only
            service = str(plan.network.service_cidr)
            if (service, "", POD_BRIDGE) not in routes:
                handle.add_device_route(service, POD_BRIDGE)
        elif ("0.0.0.0/0", plan.external_ip, "eth0") not in routes:
            if any(r[0] == "0.0.0.0/0" for r in routes):
                handle.delete_route("0.0.0.0/0")
            handle.add_route("0.0.0.0/0", plan.external_ip)
            if not fresh:
                self.report.change(f"{ns}: default route via {plan.external_ip}")

    def program_vxlan_peers(self, node: PlanNode, fresh: bool) -> None:
        """What flannel's vxlan backend writes for every other node M: a route to M's pod CIDR
        via M's VTEP address (onlink), a permanent ARP entry for that address with M's VTEP
        MAC, and an FDB entry sending that MAC to M's underlay IP."""
        handle = self.handle(node.netns)
        peers = set(self.vxlan_peers.get(node.netns, ()))
        others = [m for m in self.plan.nodes if f"node:{m.name}" in peers]
        vx = handle.index(VXLAN_DEVICE)
        routes = set() if fresh else handle.routes()
        neigh = set() if fresh else handle.neighbours(vx)
        fdb = set() if fresh else handle.fdb(vx)
        want_routes = {(m.pod_cidr, m.vtep_ip, VXLAN_DEVICE) for m in others}
        want_neigh = {(m.vtep_ip, m.vtep_mac) for m in others}
        want_fdb = {(m.vtep_mac, m.underlay_ip) for m in others}
        for ip, mac in sorted(want_neigh - neigh):
            handle.add_neighbour(VXLAN_DEVICE, ip, mac)
        for mac, dst in sorted(want_fdb - fdb):
            handle.append_fdb(VXLAN_DEVICE, mac, dst)
        for dst, gateway, _ in sorted(want_routes - routes):
            handle.add_route(dst, gateway, VXLAN_DEVICE, onlink=True)
        for dst, _gateway, dev in sorted(routes - want_routes):
            if dev == VXLAN_DEVICE:
                handle.delete_route(dst)
        for ip, mac in sorted(neigh - want_neigh):
            handle.delete_neighbour(VXLAN_DEVICE, ip, mac)
        for mac, dst in sorted(fdb - want_fdb):
            handle.delete_fdb(VXLAN_DEVICE, mac, dst)
        if not fresh:
            changed = (want_routes ^ {r for r in routes if r[2] == VXLAN_DEVICE}) | (
                want_neigh ^ neigh) | (want_fdb ^ fdb)
            if changed:
                self.report.change(f"{node.netns}: VXLAN peers reprogrammed")

    def build_pod(self, pod: PlanPod) -> None:
        plan = self.plan
        ns = pod.netns
        fresh = ns in self.fresh
        node = plan.node(pod.node)
        links = self.links(ns)
        self.ensure_loopback(ns, links)
        node_links = {} if fresh else self.node_links(node.netns)
        (link,) = self.links_to[ns]
        self.ensure_link(link, node_links, links)
        changes = len(self.report.changes)
        self.ensure_addresses(ns, fresh, {link.b.ifname: {link.b.address}})
        if len(self.report.changes) > changes:
            # the node may hold a FAILED ARP entry from while the pod was broken
            self.handle(node.netns).forget_neighbour(POD_BRIDGE, pod.ip)
        handle = self.handle(ns)
        default = ("0.0.0.0/0", node.gateway, "eth0")
        routes = set() if fresh else handle.routes()
        if default not in routes:
            for dst, _gw, _dev in routes:
                if dst == "0.0.0.0/0":
                    handle.delete_route(dst)
            handle.add_route("0.0.0.0/0", node.gateway)
            if not fresh:
                self.report.change(f"{ns}: default route via {node.gateway}")
        self.release(ns)
        if any(c.argv for c in pod.containers):
            # a command runs unprivileged, yet may serve a port below 1024 it declares: what
            # container runtimes do, per pod network namespace (Docker since 20.10)
            key = "net/ipv4/ip_unprivileged_port_start"
            if fresh or nsfs.read_sysctl(ns, key) != "0":
                nsfs.write_sysctl(ns, key, "0")
                if not fresh:
                    self.report.change(f"{ns}: {key} = 0")
        text = self.resolv_conf(plan, pod) if self.resolv_conf else None
        if text is not None and write_etc_file(ns, "resolv.conf", text) and not fresh:
            self.report.change(f"{ns}: resolv.conf written")
