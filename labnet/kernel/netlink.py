"""The one adapter over pyroute2: a long-lived rtnetlink socket per lab namespace.

pyroute2 is asked for a socket we opened ourselves inside the namespace (see nsfs), instead of
its own per-namespace helper process, which costs tens of milliseconds per namespace. Outside
this module the lab speaks in plain names and typed records, never in netlink attributes.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink import NETLINK_ROUTE
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP
from pyroute2.nftables.main import NFTables

from labnet.errors import KernelError
from labnet.kernel import nsfs

RTNH_F_ONLINK = 4
RTPROT_BOOT = 3
NUD_PERMANENT = 0x80
NTF_SELF = 0x02


_LOOP: asyncio.AbstractEventLoop | None = None


def _shared_loop() -> asyncio.AbstractEventLoop:
    """One event loop for every handle: pyroute2 would make one per handle, and a lab opens
    a handle per pod (the calls never overlap: the builder is sequential)."""
    global _LOOP
    if _LOOP is None or _LOOP.is_closed():
        _LOOP = asyncio.new_event_loop()
    return _LOOP


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str
    up: bool
    master: int
    mtu: int
    mac: str
    alias: str
    hairpin: bool = False  # bridge port: send frames back out the port they came in on


class NetnsLink:
    """rtnetlink inside one named network namespace of the lab."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        with nsfs.entered(netns):
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
        try:
            self.ipr = IPRoute(fileno=sock.detach(), use_event_loop=_shared_loop())
        except Exception:
            sock.close()
            raise
        self._index: dict[str, int] = {}

    def close(self) -> None:
        self.ipr.close()

    def __enter__(self) -> NetnsLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, method: str, *args: object, **kwargs: object) -> list:
        try:
            return getattr(self.ipr, method)(*args, **kwargs)
        except NetlinkError as exc:
            raise KernelError(f"netns {self.netns}: {what}: {exc.args[-1]} "
                              f"(errno {exc.code})") from None

    # --- reading ----------------------------------------------------------------------------

    def links(self) -> dict[str, Link]:
        result = {}
        for msg in self._call("listing links", "get_links"):
            info = msg.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info else ""
            port = info.get_attr("IFLA_INFO_SLAVE_DATA") if info else None
            name = msg.get_attr("IFLA_IFNAME")
            result[name] = Link(
                index=msg["index"], name=name, kind=kind or "", up=bool(msg["flags"] & IFF_UP),
                master=msg.get_attr("IFLA_MASTER") or 0, mtu=msg.get_attr("IFLA_MTU") or 0,
                mac=msg.get_attr("IFLA_ADDRESS") or "", alias=msg.get_attr("IFLA_IFALIAS") or "",
                hairpin=bool(port and port.get_attr("IFLA_BRPORT_MODE")),
            )
        self._index = {name: link.index for name, link in result.items()}
        return result

    def addresses(self) -> set[tuple[str, str]]:
        """(ifname, "ip/prefix") of every IPv4 address."""
        names = {v: k for k, v in self._index.items()} or {
            link.index: name for name, link in self.links().items()}
        return {(names.get(m["index"], str(m["index"])),
                 f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}")
                for m in self._call("listing addresses", "get_addr", family=socket.AF_INET)}

    def routes(self) -> set[tuple[str, str, str]]:
        """(dst/prefix, gateway or "", ifname) of the main table's IPv4 unicast routes."""
        names = {v: k for k, v in self._index.items()}
        result = set()
        for m in self._call("listing routes", "get_routes", family=socket.AF_INET, table=254):
            if m["type"] != 1:
                continue
            dst = f"{m.get_attr('RTA_DST') or '0.0.0.0'}/{m['dst_len']}"
            result.add((dst, m.get_attr("RTA_GATEWAY") or "",
                        names.get(m.get_attr("RTA_OIF"), "")))
        return result

    def host_routes(self) -> dict[str, list[str]]:
        """/32 routes of the main table and their next hops (several for ECMP), sorted."""
        result = {}
        for m in self._call("listing routes", "get_routes", family=socket.AF_INET, table=254):
            if m["dst_len"] != 32 or m["type"] != 1:
                continue
            hops = [m.get_attr("RTA_GATEWAY")] if m.get_attr("RTA_GATEWAY") else [
                h.get_attr("RTA_GATEWAY") for h in (m.get_attr("RTA_MULTIPATH") or [])]
            result[f"{m.get_attr('RTA_DST')}/32"] = sorted(h for h in hops if h)
        return result

    def neighbours(self, ifindex: int) -> set[tuple[str, str]]:
        """Permanent (ip, mac) entries on one device."""
        return {(m.get_attr("NDA_DST"), m.get_attr("NDA_LLADDR"))
                for m in self._call("listing neighbours", "get_neighbours",
                                    family=socket.AF_INET, ifindex=ifindex)
                if m["state"] & NUD_PERMANENT}

    def fdb(self, ifindex: int) -> set[tuple[str, str]]:
        """(mac, remote ip) forwarding entries of a VXLAN device."""
        return {(m.get_attr("NDA_LLADDR"), m.get_attr("NDA_DST"))
                for m in self._call("listing fdb", "fdb", "dump", ifindex=ifindex)
                if m["ifindex"] == ifindex and m.get_attr("NDA_DST")}

    def route_gateway(self, dst: str) -> str:
        """The gateway the kernel picks for `dst` (`ip route get`), "" when on link."""
        route = self._call(f"route get {dst}", "route", "get", dst=dst)[0]
        return route.get_attr("RTA_GATEWAY") or ""

    def tx_packets(self, name: str) -> int:
        """Packets sent by interface `name` (its 64-bit statistics)."""
        msg = self._call(f"reading {name}", "link", "get", ifname=name)[0]
        stats = msg.get_attr("IFLA_STATS64")
        return int(stats["tx_packets"]) if stats else 0

    def index(self, name: str) -> int:
        """ifindex by name, asking the kernel for that one link (a dump per lookup made a
        node with hundreds of pods quadratic)."""
        if name not in self._index:
            found = self._call(f"looking up {name}", "link", "get", ifname=name)
            if not found:
                raise KernelError(f"netns {self.netns}: no interface {name}")
            self._index[name] = found[0]["index"]
        return self._index[name]

    # --- changing ---------------------------------------------------------------------------

    def set_link(self, name: str, **attrs: object) -> None:
        """By index when known, else by name: the kernel resolves it, no lookup round trip."""
        where = {"index": self._index[name]} if name in self._index else {"ifname": name}
        self._call(f"setting {name} {attrs}", "link", "set", **where, **attrs)

    def claim_index(self, name: str, index: int, **attrs: object) -> bool:
        """In a namespace known to hold only lo and `name`: confirm `name` has `index` (the
        kernel numbers a fresh namespace's devices 1, 2, …) while setting `attrs`, so later
        calls need no lookup. False if the guess was wrong (nothing was changed)."""
        try:
            self.ipr.link("set", index=index, ifname=name, **attrs)
        except NetlinkError:
            return False
        self._index[name] = index
        return True

    def delete_link(self, name: str) -> None:
        self._call(f"deleting {name}", "link", "del", index=self.index(name))
        self._index.pop(name, None)

    def set_hairpin(self, name: str) -> None:
        where = {"index": self._index[name]} if name in self._index else {"ifname": name}
        self._call(f"setting hairpin on {name}", "brport", "set", **where, mode=1)

    def add_bridge(self, name: str, mtu: int, alias: str, nf_call_iptables: bool = False) -> None:
        extra = {"br_nf_call_iptables": 1} if nf_call_iptables else {}
        self._call(f"adding bridge {name}", "link", "add", ifname=name, kind="bridge", mtu=mtu,
                   ifalias=alias, state="up", **extra)

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, mtu: int, alias: str,
                 master: str | None = None) -> None:
        """A veth pair whose `peer` end is born directly in another namespace (down: pyroute2
        cannot set the peer's flags, so the caller brings it up from inside)."""
        extra = {"master": self.index(master)} if master else {}
        self._call(f"adding veth {name} (peer {peer})", "link", "add", ifname=name, kind="veth",
                   mtu=mtu, ifalias=alias, state="up",
                   peer={"ifname": peer, "net_ns_fd": peer_netns_fd, "mtu": mtu},
                   **extra)

    def add_vxlan(self, name: str, vni: int, local: str, port: int, dev: str, mtu: int,
                  mac: str, alias: str) -> None:
        self._call(f"adding vxlan {name}", "link", "add", ifname=name, kind="vxlan",
                   vxlan_id=vni, vxlan_local=local, vxlan_port=port, vxlan_learning=0,
                   vxlan_link=self.index(dev), mtu=mtu, address=mac, ifalias=alias)

    def add_address(self, name: str, cidr: str) -> None:
        ip, prefix = cidr.split("/")
        self._call(f"adding address {cidr} to {name}", "addr", "add", index=self.index(name),
                   address=ip, prefixlen=int(prefix))

    def delete_address(self, name: str, cidr: str) -> None:
        ip, prefix = cidr.split("/")
        self._call(f"deleting address {cidr} from {name}", "addr", "del",
                   index=self.index(name), address=ip, prefixlen=int(prefix))

    def add_route(self, dst: str, gateway: str, dev: str | None = None,
                  onlink: bool = False) -> None:
        # proto boot, as `ip route add` and flannel leave it (pyroute2 would say static)
        extra: dict = {"oif": self.index(dev)} if dev else {}
        extra["proto"] = RTPROT_BOOT
        if onlink:
            extra["flags"] = RTNH_F_ONLINK
        self._call(f"adding route {dst} via {gateway}", "route", "add", dst=dst,
                   gateway=gateway, **extra)

    def add_device_route(self, dst: str, dev: str) -> None:
        self._call(f"adding route {dst} dev {dev}", "route", "add", dst=dst,
                   oif=self.index(dev), proto=RTPROT_BOOT)

    def replace_multipath_route(self, dst: str, gateways: list[str]) -> None:
        """One route over several next hops (ECMP), like a load balancer spreading flows."""
        if len(gateways) == 1:
            self._call(f"setting route {dst}", "route", "replace", dst=dst, gateway=gateways[0],
                       proto=RTPROT_BOOT)
            return
        self._call(f"setting route {dst}", "route", "replace", dst=dst, proto=RTPROT_BOOT,
                   multipath=[{"gateway": gw} for gw in gateways])

    def delete_route(self, dst: str) -> None:
        self._call(f"deleting route {dst}", "route", "del", dst=dst)

    def add_neighbour(self, dev: str, ip: str, mac: str) -> None:
        self._call(f"adding neighbour {ip} on {dev}", "neigh", "replace", ifindex=self.index(dev),
                   dst=ip, lladdr=mac, state=NUD_PERMANENT)

    def delete_neighbour(self, dev: str, ip: str, mac: str) -> None:
        self._call(f"deleting neighbour {ip} on {dev}", "neigh", "del",
                   ifindex=self.index(dev), dst=ip, lladdr=mac)

    def forget_neighbour(self, dev: str, ip: str) -> None:
        """Drop a (possibly FAILED) cache entry, so the next packet asks ARP again at once."""
        for m in self._call(f"listing neighbours on {dev}", "get_neighbours",
                            family=socket.AF_INET, ifindex=self.index(dev), dst=ip):
            if not m["state"] & NUD_PERMANENT:
                self._call(f"deleting neighbour {ip} on {dev}", "neigh", "del",
                           ifindex=self.index(dev), dst=ip)

    def append_fdb(self, dev: str, mac: str, dst: str) -> None:
        self._call(f"adding fdb {mac} -> {dst} on {dev}", "fdb", "append",
                   ifindex=self.index(dev), lladdr=mac, dst=dst, state=NUD_PERMANENT,
                   flags=NTF_SELF)

    def delete_fdb(self, dev: str, mac: str, dst: str) -> None:
        self._call(f"deleting fdb {mac} -> {dst} on {dev}", "fdb", "del",
                   ifindex=self.index(dev), lladdr=mac, dst=dst)


class HostUplink:
    """The one netlink use in the machine's own namespace: in a multi-host lab, a node's eth0
    is a macvlan of the host's NIC. It is created by a single request that names the node's
    netns (IFLA_NET_NS_FD), so the device is born there: nothing appears in the host's
    namespace, and the host's addresses and routes are not touched."""

    def __init__(self) -> None:
        self.ipr = IPRoute(use_event_loop=_shared_loop())

    def close(self) -> None:
        self.ipr.close()

    def add_macvlan(self, parent: str, netns_fd: int, name: str, mtu: int, alias: str) -> None:
        found = self.ipr.link_lookup(ifname=parent)
        if not found:
            raise KernelError(f"this host has no interface {parent!r} for the nodes' eth0")
        try:
            self.ipr.link("add", ifname=name, kind="macvlan", link=found[0],
                          macvlan_mode="bridge", net_ns_fd=netns_fd, mtu=mtu, ifalias=alias)
        except NetlinkError as exc:
            raise KernelError(f"macvlan of {parent} for a node: {exc.args[-1]}") from None


AF_INET = 2


def nft_ip_tables(netns: str) -> set[str]:
    """The nftables tables of family ip in netns `netns`: one netlink dump from a socket
    opened inside it (about a millisecond; no `nft` process, which costs ~25 ms)."""
    with nsfs.entered(netns):
        nft = NFTables()
    try:
        return {t.get_attr("NFTA_TABLE_NAME") for t in nft.get_tables()
                if t["nfgen_family"] == AF_INET}
    finally:
        nft.close()
