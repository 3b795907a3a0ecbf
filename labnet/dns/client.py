"""Resolve a name the way a pod does: its resolv.conf's search list and ndots, asking the
cluster DNS ClusterIP from inside the pod's netns (through kube-proxy's rules, as the pod would).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE, DNSRecord

from labnet.kernel import nsfs

NDOTS = 5


def candidates(name: str, namespace: str, zone: str) -> list[str]:
    """The names a pod's resolver tries, in order (resolv.conf(5), ndots:5)."""
    if name.endswith("."):
        return [name]
    search = [f"{namespace}.svc.{zone}", f"svc.{zone}", zone]
    expanded = [f"{name}.{domain}." for domain in search]
    return [f"{name}.", *expanded] if name.count(".") >= NDOTS else [*expanded, f"{name}."]


@dataclass
class Lookup:
    tries: list[tuple[str, str]] = field(default_factory=list)  # (name, rcode or "NODATA")
    reply: DNSRecord | None = None

    @property
    def answered(self) -> bool:
        return self.reply is not None and bool(self.reply.rr)

    def text(self) -> str:
        """What `labnet dns` prints: every name tried, then the reply's sections."""
        return describe(self)


def query(netns: str, server: str, name: str, qtype: str, tcp: bool = False,
          timeout: float = 3.0) -> DNSRecord:
    packet = DNSRecord.question(name, qtype).pack()
    with nsfs.entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    with sock:
        sock.settimeout(timeout)
        if tcp:
            sock.connect((server, 53))
            sock.sendall(struct.pack("!H", len(packet)) + packet)
            size = struct.unpack("!H", _read(sock, 2))[0]
            return DNSRecord.parse(_read(sock, size))
        sock.sendto(packet, (server, 53))
        reply = DNSRecord.parse(sock.recvfrom(65535)[0])
    if reply.header.tc:  # too big for UDP: ask again over TCP, as resolvers do
        return query(netns, server, name, qtype, True, timeout)
    return reply


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


def resolve(netns: str, server: str, name: str, qtype: str, namespace: str, zone: str,
            tcp: bool = False) -> Lookup:
    result = Lookup()
    for candidate in candidates(name, namespace, zone):
        reply = query(netns, server, candidate, qtype, tcp)
        rcode = RCODE.get(reply.header.rcode)
        result.tries.append((candidate, rcode if reply.rr or rcode != "NOERROR" else "NODATA"))
        result.reply = reply
        if reply.header.rcode == RCODE.NOERROR and reply.rr:
            break
    return result


def describe(lookup: Lookup) -> str:
    lines = [f";; tried {name:<60} {rcode}" for name, rcode in lookup.tries]
    reply = lookup.reply
    if reply is not None:
        for section, rrs in (("ANSWER", reply.rr), ("AUTHORITY", reply.auth),
                             ("ADDITIONAL", [r for r in reply.ar if r.rtype != QTYPE.OPT])):
            if rrs:
                lines.append(f";; {section}")
                lines += [rr.toZone() for rr in rrs]
    return "\n".join(lines) + "\n"
