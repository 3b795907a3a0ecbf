"""The cluster DNS server's wire handling: UDP and TCP, EDNS0, truncation, malformed input,
forwarding (opt-in), and answers for repeated questions straight from ready-made bytes.

Runs in the pod agent, on sockets opened in the DNS pod's netns; `DnsServer.reload` swaps in
the data of a new plan, so answers follow the lab without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
import time
from collections import Counter, OrderedDict

from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from labnet.dns.answer import answer
from labnet.dns.zone import ClusterData, cluster_data
from labnet.kernel import nsfs
from labnet.plan import Plan

EDNS_SIZE = 1232  # the DNS flag day 2020 default, what CoreDNS advertises
CACHE_ENTRIES = 20000
FORWARD_TIMEOUT = 2.0
TCP_IDLE = 10.0
MAX_TCP_MESSAGE = 65535


def formerr(packet: bytes) -> bytes | None:
    """FORMERR for a packet whose header at least is readable; None: drop it."""
    if len(packet) < 12:
        return None
    ident, flags = struct.unpack("!HH", packet[:4])
    if flags & 0x8000:  # a response, not a question: never answer those
        return None
    opcode = flags & 0x7800
    return struct.pack("!HHHHHH", ident, 0x8000 | opcode | RCODE.FORMERR, 0, 0, 0, 0)


class DnsServer:
    def __init__(self) -> None:
        self.data: ClusterData | None = None
        self.upstream: list[str] = []
        self.netns = ""
        self.cache: OrderedDict[bytes, bytes] = OrderedDict()
        self.stats: Counter = Counter()
        self.hits = 0

    def reload(self, plan: Plan, netns: str) -> None:
        self.data = cluster_data(plan, int(plan.network.get("dns_ttl", 5)), int(time.time()))
        self.upstream = list(plan.network.get("dns_upstream", []))
        self.netns = netns
        self.cache.clear()

    # --- answering ---------------------------------------------------------------------------

    def respond(self, packet: bytes, udp: bool, allow_forward: bool = False) -> bytes | None:
        """The reply to one query (None: drop). With `allow_forward` false, a question that
        would need the upstream resolver returns b"" so the caller can retry off-loop."""
        packet = bytes(packet)
        key = packet[2:] if udp else b"t" + packet[2:]
        cached = self.cache.get(key)
        if cached is not None:  # the hot path: a repeated question, ready-made bytes
            self.hits += 1
            return packet[:2] + cached
        try:
            query = DNSRecord.parse(packet)
        except Exception as exc:  # malformed: dnslib raises several kinds
            self.stats["formerr"] += 1
            if self.stats["formerr"] <= 20 or self.stats["formerr"] % 10000 == 0:
                print(f"labnet dns: malformed query ({len(packet)} bytes, {exc}); "
                      f"{self.stats['formerr']} so far", file=sys.stderr, flush=True)
            return formerr(packet)
        if query.header.qr:
            return None
        if self.data is None:
            reply = query.reply(ra=0, aa=0)
            reply.header.rcode = RCODE.SERVFAIL
            return reply.pack()
        forwarded = []

        def forward(q: DNSRecord) -> DNSRecord | None:
            forwarded.append(q)
            if not allow_forward:
                raise NeedsForward()
            return self.forward(q)

        try:
            reply = answer(query, self.data, forward if self.upstream else None)
        except NeedsForward:
            return b""
        except Exception:  # never let one question take the server down
            self.stats["servfail"] += 1
            reply = query.reply(ra=0, aa=0)
            reply.header.rcode = RCODE.SERVFAIL
        edns = next((rr for rr in query.ar if rr.rtype == QTYPE.OPT), None)
        limit = max(512, edns.edns_len if edns else 512) if udp else MAX_TCP_MESSAGE
        if edns is not None and not any(rr.rtype == QTYPE.OPT for rr in reply.ar):
            reply.add_ar(EDNS0(udp_len=EDNS_SIZE))
        wire = reply.pack()
        if len(wire) > limit:  # too big for UDP: say so, the client retries over TCP
            reply.rr, reply.auth = [], []
            reply.ar = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
            reply.header.tc = 1
            wire = reply.pack()
        self.stats[f"rcode_{RCODE.get(reply.header.rcode)}"] += 1
        if not forwarded:
            self.cache[key] = wire[2:]
            if len(self.cache) > CACHE_ENTRIES:
                self.cache.popitem(last=False)
        return wire

    def forward(self, query: DNSRecord) -> DNSRecord | None:
        """Ask the lab's upstream resolvers, from inside the DNS pod's netns."""
        for server in self.upstream:
            with nsfs.entered(self.netns):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.settimeout(FORWARD_TIMEOUT)
                sock.sendto(query.pack(), (server, 53))
                data, _ = sock.recvfrom(65535)
                self.stats["forwarded"] += 1
                return DNSRecord.parse(data)
            except (OSError, Exception):
                continue
            finally:
                sock.close()
        return None

    def metrics(self) -> bytes:
        stats = self.stats + Counter(cache_hits=self.hits)
        lines = [f"labnet_dns_{key}_total {value}" for key, value in sorted(stats.items())]
        lines.append(f"labnet_dns_cache_entries {len(self.cache)}")
        return ("\n".join(lines) + "\n").encode()


class NeedsForward(Exception):
    pass


class DnsUdpReader:
    """DNS over UDP on a bare socket: on each readiness event, drain every waiting datagram
    and answer it in place (asyncio's datagram transport reads one per loop iteration, which
    halves throughput under load)."""

    BATCH = 256

    def __init__(self, server: DnsServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(sock.fileno(), self.drain)

    def drain(self) -> None:
        recvfrom, sendto, respond = self.sock.recvfrom, self.sock.sendto, self.server.respond
        for _ in range(self.BATCH):
            try:
                data, addr = recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            reply = respond(data, True)
            if reply:
                with contextlib.suppress(OSError):
                    sendto(reply, addr)
            elif reply == b"":  # needs the upstream: off the loop
                future = self.loop.run_in_executor(None, respond, data, True, True)
                future.add_done_callback(lambda f, a=addr: self.send_later(f, a))

    def send_later(self, future: asyncio.Future, addr: tuple) -> None:
        with contextlib.suppress(Exception):
            reply = future.result()
            if reply:
                self.sock.sendto(reply, addr)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


class DnsTcp(asyncio.Protocol):
    """DNS over TCP: two-byte length prefix, several queries per connection, idle timeout."""

    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.touch()

    def touch(self) -> None:
        if self.idle:
            self.idle.cancel()
        self.idle = asyncio.get_running_loop().call_later(TCP_IDLE, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle:
            self.idle.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.touch()
        while len(self.buffer) >= 2:
            size = struct.unpack("!H", self.buffer[:2])[0]
            if len(self.buffer) < 2 + size:
                return
            packet, self.buffer = self.buffer[2:2 + size], self.buffer[2 + size:]
            self.server.stats["queries_tcp"] += 1
            reply = self.server.respond(packet, udp=False, allow_forward=True)
            if reply:
                self.transport.write(struct.pack("!H", len(reply)) + reply)
            elif reply is None and len(packet) < 12:
                self.transport.close()
                return
