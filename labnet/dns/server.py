"""The cluster DNS server's wire handling: UDP and TCP, EDNS0, truncation, malformed input,
forwarding (opt-in), and answers for repeated questions straight from ready-made bytes.

Runs in the pod agent, on sockets opened in the DNS pod's netns; `DnsServer.reload` swaps in
the data of a new plan, so answers follow the lab without a restart.

Everything a client can make the server hold is bounded:
- the answer cache is keyed on the normalised question (name in lower case, type, class, RD,
  EDNS present, DO), never on the packet, and bounded in entries and in bytes (LRU); one
  entry holds the whole reply and the reply cut for UDP, so every EDNS size and TCP share it,
  and serves the spelling it was made for (another spelling is answered afresh and replaces
  it). The hot path finds the entry from the exact bytes of a small query that was read
  whole before (an index, not a cache of answers: SEEN_ENTRIES of at most SEEN_BYTES);
- a query is read without building objects for its records: a header that miekg/CoreDNS
  would reject (not one question, more than one answer or authority record, more than two
  additional records), a malformed name (compression pointers that do not point backwards,
  more than 126 of them, over 255 bytes), a record running past the end, a second OPT, or any
  byte after the last record is FORMERR;
- replies over UDP are cut at min(the client's EDNS size, 1232) bytes (TC set);
- forwarding (opt-in `dns.upstream`) runs on the event loop with non-blocking sockets:
  at most FORWARD_CONCURRENCY client questions at once, FORWARD_RATE a second, each try
  FORWARD_TIMEOUT and each question FORWARD_DEADLINE; a reply is used only when it comes from
  the upstream's address and port, with our random ID and the question asked;
- a TCP connection is closed when no complete message arrived for TCP_IDLE seconds (bytes
  that do not complete a message do not count) and after TCP_LIFETIME seconds in any case; it
  gets at most TCP_INFLIGHT forwarded questions at once and reading stops while more than
  TCP_WRITE_LIMIT bytes of replies wait to be sent; at most TCP_MAX_CONNECTIONS connections
  are kept (a new one closes the one idle the longest).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import secrets
import socket
import struct
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

from dnslib import EDNS0, QTYPE, RCODE, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from labnet.dns.answer import answer
from labnet.dns.zone import ClusterData, cluster_data
from labnet.kernel import nsfs
from labnet.plan import Plan

EDNS_SIZE = 1232  # the DNS flag day 2020 default, what CoreDNS advertises; the UDP cap too
MAX_TCP_MESSAGE = 65535
MAX_NAME = 255  # RFC 1035: a name's wire form, root label included
MAX_POINTERS = 126  # miekg's maxCompressionPointers: (255 + 1) / 2 - 2

CACHE_ENTRIES = 10_000  # CoreDNS's cache plugin holds 9,984 per kind by default
CACHE_BYTES = 8 << 20  # counted as the bytes kept plus CACHE_ENTRY_OVERHEAD per entry
CACHE_ENTRY_OVERHEAD = 320  # the dict slot, the tuple and the bytes objects' headers
SEEN_ENTRIES = 4096  # queries read before, by their exact bytes: the hot path skips reading
SEEN_BYTES = 512  # (only queries this small: at most 4096 * (512 + 200) bytes in all)

FORWARD_TIMEOUT = 2.0  # one try at one upstream
FORWARD_DEADLINE = 5.0  # one client question, every upstream and try included (CoreDNS: 5 s)
FORWARD_CONCURRENCY = 64  # client questions being forwarded at once; more: SERVFAIL at once
FORWARD_RATE = 200.0  # client questions forwarded per second (token bucket) ...
FORWARD_BURST = 200  # ... with this many at once after a quiet time
FORWARD_ROUNDS = 3  # upstream questions for one client question (a CNAME chased upstream)

TCP_IDLE = 10.0  # seconds without a complete message (miekg: 8 s idle, 2 s for the first)
TCP_LIFETIME = 120.0  # seconds a connection is kept, however busy
TCP_MAX_CONNECTIONS = 128
TCP_INFLIGHT = 16  # forwarded questions pending on one connection; then reading stops
TCP_WRITE_LIMIT = 64 * 1024  # reply bytes waiting to be sent; then reading stops

HEADER = struct.Struct("!HHHHHH")
RR_FIXED = struct.Struct("!HHIH")  # type, class, TTL, RDLENGTH
OPT = 41
FLAG_QR, FLAG_TC, FLAG_RD = 0x8000, 0x0200, 0x0100
EDNS_DO = 0x8000
KEY_BITS = [bytes([i]) for i in range(8)]


def formerr(packet: bytes, rcode: int = RCODE.FORMERR) -> bytes | None:
    """FORMERR (or `rcode`), header only, for a packet whose header at least is readable;
    None: drop it."""
    if len(packet) < 12:
        return None
    ident, flags = struct.unpack("!HH", packet[:4])
    if flags & FLAG_QR:  # a response, not a question: never answer those
        return None
    opcode = flags & 0x7800
    return struct.pack("!HHHHHH", ident, 0x8000 | opcode | rcode, 0, 0, 0, 0)


# --- reading a query without trusting it ---------------------------------------------------

class Malformed(Exception):
    pass


def read_name(packet: bytes, pos: int) -> tuple[bytes, int]:
    """The name at `pos`: its wire form without compression, and where it ends in the packet."""
    start, n = pos, len(packet)
    while True:  # the usual name: labels, no pointer
        if pos >= n:
            raise Malformed("name runs past the end")
        length = packet[pos]
        if length == 0:
            pos += 1
            if pos - start > MAX_NAME:
                raise Malformed("name longer than 255 bytes")
            return packet[start:pos], pos
        if length >= 64:
            return read_compressed(packet, start)
        pos += length + 1
        if pos - start > MAX_NAME:
            raise Malformed("name longer than 255 bytes")


def read_compressed(packet: bytes, pos: int) -> tuple[bytes, int]:
    """A name with compression pointers. A pointer must point before the name it is in and
    before the last pointer's target (so there can be no loop), at most MAX_POINTERS of them,
    MAX_NAME bytes in all."""
    n = len(packet)
    parts = []
    size = 1  # the root label
    end = -1
    limit = pos
    jumps = 0
    while True:
        if pos >= n:
            raise Malformed("name runs past the end")
        length = packet[pos]
        if length == 0:
            parts.append(b"\0")
            return b"".join(parts), end if end >= 0 else pos + 1
        if length < 64:
            stop = pos + 1 + length
            if stop > n:
                raise Malformed("label runs past the end")
            size += length + 1
            if size > MAX_NAME:
                raise Malformed("name longer than 255 bytes")
            parts.append(packet[pos:stop])
            pos = stop
        elif length >= 0xC0:
            if pos + 1 >= n:
                raise Malformed("pointer runs past the end")
            target = (length & 0x3F) << 8 | packet[pos + 1]
            if end < 0:
                end = pos + 2
            jumps += 1
            if target >= limit or jumps > MAX_POINTERS:
                raise Malformed("compression pointer that does not point backwards")
            limit = pos = target
        else:
            raise Malformed("extended label type")


def split_name(wire: bytes) -> list[bytes]:
    labels, pos = [], 0
    while wire[pos]:
        labels.append(wire[pos + 1:pos + 1 + wire[pos]])
        pos += 1 + wire[pos]
    return labels


class Query:
    """A well-formed question: the header, the question (as spelt), its EDNS0 (UDP size or
    None, flags) and the cache key (None: not cached)."""

    __slots__ = ("ident", "flags", "name", "qtype", "qclass", "edns_size", "edns_flags", "key")

    def __init__(self, ident: int, flags: int, name: bytes, qtype: int, qclass: int,
                 edns_size: int | None, edns_flags: int, key: bytes | None) -> None:
        self.ident, self.flags, self.name, self.qtype, self.qclass = (
            ident, flags, name, qtype, qclass)
        self.edns_size, self.edns_flags, self.key = edns_size, edns_flags, key

    @property
    def edns(self) -> bool:
        return self.edns_size is not None

    def udp_limit(self) -> int:
        """What fits in a UDP reply: the client's EDNS size (at least 512), at most 1232."""
        return 512 if self.edns_size is None else min(max(512, self.edns_size), EDNS_SIZE)

    def record(self) -> DNSRecord:
        """The query as dnslib would have parsed it, for `answer`."""
        labels = split_name(self.name)
        for label in labels:  # dnslib's rule: labels are UTF-8
            try:
                label.decode()
            except UnicodeDecodeError:
                raise Malformed(f"label {label!r} is not UTF-8") from None
        return DNSRecord(DNSHeader(id=self.ident, bitmap=self.flags, q=1),
                         questions=[DNSQuestion(DNSLabel(labels), self.qtype, self.qclass)])


def parse_query(packet: bytes) -> Query | int | None:
    """A query read from the wire: a Query, an rcode to answer with (header only: NOTIMP for
    an opcode other than QUERY and NOTIFY, FORMERR for counts miekg rejects), or None: drop
    (a response, or no header). Raises Malformed for anything else that is wrong."""
    n = len(packet)
    if n < 12:
        return None
    ident, flags, qd, an, ns, ar = HEADER.unpack_from(packet)
    if flags & FLAG_QR:
        return None
    opcode = flags & 0x7800
    if opcode and opcode != 0x2000:  # QUERY and NOTIFY only
        return RCODE.NOTIMP
    if qd != 1 or an > 1 or ns > 1 or ar > 2:
        return RCODE.FORMERR
    name, pos = read_name(packet, 12)
    question = pos
    pos += 4
    if pos > n:
        raise Malformed("question runs past the end")
    edns_size, edns_flags = None, 0
    if an or ns or ar:
        pos, edns_size, edns_flags = read_records(packet, pos, an, ns, ar)
    if pos != n:
        raise Malformed(f"{n - pos} bytes after the last record")
    key = None
    if not opcode:  # (NOTIFY is not answered from the cache)
        bits = (1 if flags & FLAG_RD else 0) | (0 if edns_size is None else 2) | (
            4 if edns_flags & EDNS_DO else 0)
        key = name.lower() + packet[question:question + 4] + KEY_BITS[bits]
    qtype, qclass = struct.unpack_from("!HH", packet, question)
    return Query(ident, flags, name, qtype, qclass, edns_size, edns_flags, key)


def read_records(packet: bytes, pos: int, an: int, ns: int,
                 ar: int) -> tuple[int, int | None, int]:
    """Skip the records after the question, without keeping them: where they end, and the
    OPT record's UDP size (None: no OPT) and flags."""
    n = len(packet)
    edns_size, edns_flags = None, 0
    for section, count in ((1, an), (2, ns), (3, ar)):
        for _ in range(count):
            root = pos < n and packet[pos] == 0
            pos = read_name(packet, pos)[1]
            if pos + 10 > n:
                raise Malformed("record runs past the end")
            rtype, rclass, ttl, rdlength = RR_FIXED.unpack_from(packet, pos)
            pos += 10 + rdlength
            if pos > n:
                raise Malformed("record data runs past the end")
            if rtype == OPT:
                if section != 3 or edns_size is not None or not root:
                    raise Malformed("OPT record out of place")
                check_options(packet, pos - rdlength, pos)
                edns_size, edns_flags = rclass, ttl & 0xFFFF
    return pos, edns_size, edns_flags


def check_options(packet: bytes, pos: int, end: int) -> None:
    while pos < end:
        if pos + 4 > end:
            raise Malformed("EDNS option runs past the record")
        pos += 4 + struct.unpack_from("!H", packet, pos + 2)[0]
    if pos != end:
        raise Malformed("EDNS option runs past the record")


def question_key(q: DNSQuestion) -> tuple:
    return tuple(x.lower() for x in q.qname.label), q.qtype, q.qclass


def upstream_query(ident: int, question: DNSQuestion) -> bytes:
    record = DNSRecord(DNSHeader(id=ident), q=DNSQuestion(question.qname, question.qtype,
                                                           question.qclass))
    record.add_ar(EDNS0(udp_len=EDNS_SIZE))
    return record.pack()


def same_address(a: tuple, b: tuple) -> bool:
    try:
        return ipaddress.ip_address(a[0]) == ipaddress.ip_address(b[0]) and a[1] == b[1]
    except ValueError:
        return False


class NeedsForward(Exception):
    """The answer needs the upstream's answer to `question` first."""

    def __init__(self, question: DNSQuestion | None = None) -> None:
        super().__init__()
        self.question = question


class DnsServer:
    # the bounds, as attributes so that one server (a test's) can have its own
    cache_entries = CACHE_ENTRIES
    cache_bytes_max = CACHE_BYTES
    forward_timeout = FORWARD_TIMEOUT
    forward_deadline = FORWARD_DEADLINE
    forward_concurrency = FORWARD_CONCURRENCY
    forward_rate = FORWARD_RATE
    forward_burst = FORWARD_BURST
    tcp_idle = TCP_IDLE
    tcp_lifetime = TCP_LIFETIME
    tcp_max_connections = TCP_MAX_CONNECTIONS
    tcp_inflight = TCP_INFLIGHT
    tcp_write_limit = TCP_WRITE_LIMIT

    def __init__(self) -> None:
        self.data: ClusterData | None = None
        self.upstream: list[tuple[str, int]] = []
        self.netns = ""
        # normalised question -> (name as spelt, reply less its ID, truncated reply, cost)
        self.cache: OrderedDict[bytes, tuple[bytes, bytes, bytes | None, int]] = OrderedDict()
        self.cache_bytes = 0
        # exact bytes (less the ID) of small well-formed queries -> (key, spelling, UDP limit)
        self.seen: dict[bytes, tuple[bytes, bytes, int]] = {}
        self.stats: Counter = Counter()
        self.hits = 0
        self.forwarding = 0  # client questions being forwarded now
        self.tokens = float(self.forward_burst)
        self.refilled = time.monotonic()
        self.tasks: set[asyncio.Task] = set()
        self.connections: OrderedDict[DnsTcp, None] = OrderedDict()  # least recently active first

    def reload(self, plan: Plan, netns: str) -> None:
        ttl = int(plan.network.dns_ttl)
        self.data = cluster_data(plan, ttl, int(time.time()))
        self.upstream = [(str(ip), 53) for ip in plan.network.dns_upstream]
        self.netns = netns
        self.cache.clear()
        self.cache_bytes = 0
        self.seen.clear()

    # --- answering ---------------------------------------------------------------------------

    def respond(self, packet: bytes, udp: bool, allow_forward: bool = False) -> bytes | None:
        """The reply to one query (None: drop). A question that needs the upstream resolver
        returns b"": the caller hands it to `start_forward`, which answers it off the hot path
        (`allow_forward` is kept for callers of the old API: forwarding is never done here)."""
        reply = self._respond(bytes(packet), udp, None)
        return b"" if isinstance(reply, NeedsForward) else reply

    def _respond(self, packet: bytes, udp: bool, forwards: dict | None,
                 final: bool = False) -> bytes | None | NeedsForward:
        """`forwards`: upstream answers fetched so far (question key -> reply bytes or None);
        None: raise for any. `final`: a question not fetched gets no upstream answer."""
        seen = self.seen.get(packet[2:])
        if seen is not None:  # the hot path: this exact well-formed query was read before
            key, name, udp_limit = seen
            entry = self.cache.get(key)
            if entry is not None and entry[0] is name:
                self.cache.move_to_end(key)
                self.hits += 1
                size = len(entry[1]) + 2
                return packet[:2] + (entry[1] if size <= (udp_limit if udp else MAX_TCP_MESSAGE)
                                     else entry[2])
        try:
            query = parse_query(packet)
        except Malformed as exc:
            return self.malformed(packet, exc)
        if query is None:
            return None
        if isinstance(query, int):
            self.stats["formerr" if query == RCODE.FORMERR else "notimp"] += 1
            return formerr(packet, query)
        limit = query.udp_limit() if udp else MAX_TCP_MESSAGE
        key = query.key
        if key is not None:
            entry = self.cache.get(key)
            if entry is not None and entry[0] == query.name:  # ready-made bytes
                self.cache.move_to_end(key)
                self.hits += 1
                self.remember(packet, key, entry[0], query)
                return packet[:2] + (entry[1] if len(entry[1]) + 2 <= limit else entry[2])
        try:
            record = query.record()
        except Malformed as exc:
            return self.malformed(packet, exc)
        if self.data is None:  # before the first plan
            reply = record.reply(ra=0, aa=0)
            reply.header.rcode = RCODE.SERVFAIL
            try:
                return bytes(reply.pack())
            except Exception:
                return formerr(packet, RCODE.SERVFAIL)
        forwarded = []

        def forward(q: DNSRecord) -> DNSRecord | None:
            forwarded.append(q)
            wanted = question_key(q.q)
            if forwards is not None:
                if wanted in forwards:
                    return relay(forwards[wanted])
                if final:
                    return None
            raise NeedsForward(q.q)

        try:
            reply = answer(record, self.data, forward if self.upstream else None)
        except NeedsForward as need:
            return need
        except Exception:  # never let one question take the server down
            self.stats["servfail"] += 1
            reply = record.reply(ra=0, aa=0)
            reply.header.rcode = RCODE.SERVFAIL
        wire, full, truncated = self.pack_or_fail(packet, reply, query, limit)
        rcode = reply.header.rcode
        self.stats[f"rcode_{RCODE.get(rcode)}"] += 1
        if not forwarded and key is not None and full is not None and rcode != RCODE.SERVFAIL:
            self.store(key, query.name, full, truncated)
            self.remember(packet, key, query.name, query)
        return wire

    def pack_or_fail(self, packet: bytes, reply: DNSRecord, query: Query,
                     limit: int) -> tuple[bytes | None, bytes | None, bytes | None]:
        """(what to send, the whole reply, the reply truncated or None when it always fits)."""
        if query.edns and not any(rr.rtype == QTYPE.OPT for rr in reply.ar):
            reply.add_ar(EDNS0(udp_len=EDNS_SIZE))
        try:
            full = bytes(reply.pack())
            truncated = None
            if len(full) > 512:  # too big for some client: say so, it retries over TCP
                reply.rr, reply.auth = [], []
                reply.ar = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
                reply.header.tc = 1
                truncated = bytes(reply.pack())
        except Exception:  # a name dnslib cannot write back
            self.stats["servfail"] += 1
            return formerr(packet, RCODE.SERVFAIL), None, None
        return (full if len(full) <= limit else truncated), full, truncated

    def malformed(self, packet: bytes, exc: Exception) -> bytes | None:
        self.stats["formerr"] += 1
        if self.stats["formerr"] <= 20 or self.stats["formerr"] % 10000 == 0:
            print(f"labnet dns: malformed query ({len(packet)} bytes, {exc}); "
                  f"{self.stats['formerr']} so far", file=sys.stderr, flush=True)
        return formerr(packet)

    def remember(self, packet: bytes, key: bytes, name: bytes, query: Query) -> None:
        """Index a small well-formed query's exact bytes (less the ID) to its question's cache
        entry, so that the next one skips reading (`name` is the entry's own spelling object:
        a new spelling replaces the entry and the index no longer matches it). Not a cache of
        answers: at most SEEN_ENTRIES queries of at most SEEN_BYTES bytes; emptied when full."""
        if len(packet) > SEEN_BYTES:
            return
        if len(self.seen) >= SEEN_ENTRIES:
            self.seen.clear()
        self.seen[packet[2:]] = (key, name, query.udp_limit())

    def store(self, key: bytes, name: bytes, full: bytes, truncated: bytes | None) -> None:
        cost = (len(key) + len(name) + len(full) + len(truncated or b"")
                + CACHE_ENTRY_OVERHEAD)
        if cost > self.cache_bytes_max:
            return
        old = self.cache.pop(key, None)
        if old is not None:
            self.cache_bytes -= old[3]
        self.cache[key] = (name, full[2:], truncated[2:] if truncated else None, cost)
        self.cache_bytes += cost
        while len(self.cache) > self.cache_entries or self.cache_bytes > self.cache_bytes_max:
            self.cache_bytes -= self.cache.popitem(last=False)[1][3]

    # --- forwarding ----------------------------------------------------------------------------

    def admit(self) -> bool:
        """Room for one more client question upstream: the concurrency cap and the rate."""
        now = time.monotonic()
        self.tokens = min(float(self.forward_burst),
                          self.tokens + (now - self.refilled) * self.forward_rate)
        self.refilled = now
        if self.forwarding >= self.forward_concurrency or self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def start_forward(self, packet: bytes, udp: bool,
                      deliver: Callable[[bytes | None], None]) -> None:
        """Answer a question `respond` returned b"" for, asking the upstream on the event loop;
        `deliver` gets the reply (None: nothing to send), always later, never from within this
        call. Over the caps: SERVFAIL (what the answer is when the upstream does not answer)."""
        loop = asyncio.get_running_loop()
        if not self.admit():
            self.stats["forward_shed"] += 1
            reply = self._respond(packet, udp, {}, final=True)
            loop.call_soon(deliver, None if isinstance(reply, NeedsForward) else reply)
            return
        self.forwarding += 1
        task = loop.create_task(self.resolve(packet, udp))
        self.tasks.add(task)

        def done(task: asyncio.Task) -> None:
            self.tasks.discard(task)
            self.forwarding -= 1
            reply = None
            if not task.cancelled() and task.exception() is None:
                reply = task.result()
            deliver(reply)

        task.add_done_callback(done)

    async def resolve(self, packet: bytes, udp: bool) -> bytes | None:
        """The reply to a query whose answer needs the upstream (asked over the query's own
        transport, as CoreDNS's forward plugin does; over TCP again when a UDP reply is cut)."""
        forwards: dict = {}
        for _ in range(FORWARD_ROUNDS):
            reply = self._respond(packet, udp, forwards)
            if not isinstance(reply, NeedsForward):
                return reply
            forwards[question_key(reply.question)] = await self.ask_upstream(
                reply.question, tcp=not udp)
        reply = self._respond(packet, udp, forwards, final=True)
        return None if isinstance(reply, NeedsForward) else reply

    async def ask_upstream(self, question: DNSQuestion, tcp: bool) -> bytes | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.forward_deadline
        for server in list(self.upstream):
            for over_tcp in ((True,) if tcp else (False, True)):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                ask = self.ask_tcp if over_tcp else self.ask_udp
                try:
                    async with asyncio.timeout(min(self.forward_timeout, remaining)):
                        wire = await ask(server, secrets.randbelow(65536), question)
                except TimeoutError:
                    self.stats["forward_timeout"] += 1
                    break
                except Exception:  # refused, unreachable, the pod's netns gone...
                    self.stats["forward_error"] += 1
                    break
                if wire is None:  # a mismatched reply over TCP: this upstream is no good
                    break
                if not over_tcp and struct.unpack_from("!H", wire, 2)[0] & FLAG_TC:
                    continue  # cut: ask the same upstream over TCP
                self.stats["forwarded"] += 1
                return wire
        return None

    def upstream_socket(self, server: tuple[str, int], kind: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        if self.netns:  # from the DNS pod's netns, as the pod would
            with nsfs.entered(self.netns):
                sock = socket.socket(family, kind)
        else:  # no DNS pod here (a test's server on loopback)
            sock = socket.socket(family, kind)
        sock.setblocking(False)
        return sock

    def matches(self, data: bytes, ident: int, question: DNSQuestion) -> bool:
        """A reply to what we asked: our ID, a response, the same question."""
        if len(data) < 12:
            return False
        rid, flags, qd = struct.unpack_from("!HHH", data)
        if rid != ident or not flags & FLAG_QR or flags & 0x7800 or qd != 1:
            return False
        try:
            reply = DNSRecord.parse(data)
        except Exception:
            return False
        return question_key(reply.q) == question_key(question)

    async def ask_udp(self, server: tuple[str, int], ident: int,
                      question: DNSQuestion) -> bytes | None:
        loop = asyncio.get_running_loop()
        with self.upstream_socket(server, socket.SOCK_DGRAM) as sock:
            sock.connect(server)  # an address, not a name: does not block
            sock.send(upstream_query(ident, question))
            while True:  # until the reply, or the caller's timeout
                data, source = await loop.sock_recvfrom(sock, 65535)
                if not same_address(source, server) or not self.matches(data, ident, question):
                    self.stats["forward_mismatch"] += 1
                    continue
                return data

    async def ask_tcp(self, server: tuple[str, int], ident: int,
                      question: DNSQuestion) -> bytes | None:
        loop = asyncio.get_running_loop()
        with self.upstream_socket(server, socket.SOCK_STREAM) as sock:
            await loop.sock_connect(sock, server)
            query = upstream_query(ident, question)
            await loop.sock_sendall(sock, struct.pack("!H", len(query)) + query)
            size = struct.unpack("!H", await recv_exactly(loop, sock, 2))[0]
            data = await recv_exactly(loop, sock, size)
            if not same_address(sock.getpeername(), server) or not self.matches(
                    data, ident, question):
                self.stats["forward_mismatch"] += 1
                return None
            return data

    # --- TCP connections -----------------------------------------------------------------------

    def tcp_opened(self, conn: DnsTcp) -> None:
        while self.connections and len(self.connections) >= self.tcp_max_connections:
            oldest = next(iter(self.connections))
            self.connections.pop(oldest)
            self.stats["tcp_evicted"] += 1
            oldest.shut(abort=True)
        self.connections[conn] = None
        self.stats["tcp_connections"] += 1

    def tcp_active(self, conn: DnsTcp) -> None:
        if conn in self.connections:
            self.connections.move_to_end(conn)

    def tcp_closed(self, conn: DnsTcp) -> None:
        self.connections.pop(conn, None)

    def metrics(self) -> bytes:
        stats = self.stats + Counter(cache_hits=self.hits)
        lines = [f"labnet_dns_{key}_total {value}" for key, value in sorted(stats.items())]
        lines.append(f"labnet_dns_cache_entries {len(self.cache)}")
        lines.append(f"labnet_dns_cache_bytes {self.cache_bytes}")
        lines.append(f"labnet_dns_forwards_in_flight {self.forwarding}")
        lines.append(f"labnet_dns_tcp_open {len(self.connections)}")
        return ("\n".join(lines) + "\n").encode()


def relay(wire: bytes | None) -> DNSRecord | None:
    """An upstream reply, to be passed on: a fresh copy, without the upstream's OPT (ours is
    added when the client spoke EDNS)."""
    if wire is None:
        return None
    reply = DNSRecord.parse(wire)
    reply.ar = [rr for rr in reply.ar if rr.rtype != QTYPE.OPT]
    return reply


async def recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


class DnsUdpReader:
    """DNS over UDP on a bare socket: on each readiness event, drain every waiting datagram
    and answer it in place (asyncio's datagram transport reads one per loop iteration, which
    halves throughput under load). Questions for the upstream are answered later, on the loop."""

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
            except OSError:  # BlockingIOError: drained
                return
            try:
                reply = respond(data, True)
            except Exception as exc:  # a bug for one packet must not stop the others
                self.server.stats["internal_error"] += 1
                print(f"labnet dns: {exc!r}", file=sys.stderr, flush=True)
                continue
            if reply:
                with contextlib.suppress(OSError):
                    sendto(reply, addr)
            elif reply == b"":  # needs the upstream: answered later
                self.server.start_forward(data, True, functools.partial(self.send_later, addr))

    def send_later(self, addr: tuple, reply: bytes | None) -> None:
        if reply:
            with contextlib.suppress(OSError):
                self.sock.sendto(reply, addr)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


class DnsTcp(asyncio.Protocol):
    """DNS over TCP: two-byte length prefix, several queries per connection (replies to
    forwarded ones may come out of order, RFC 7766), with the deadlines and bounds above."""

    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.started = 0.0
        self.deadline = 0.0
        self.inflight = 0
        self.write_paused = False
        self.read_paused = False
        self.processing = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(high=self.server.tcp_write_limit)
        loop = asyncio.get_running_loop()
        self.started = loop.time()
        self.server.tcp_opened(self)
        self.touch()
        self.timer = loop.call_at(self.deadline, self.expire)

    def touch(self) -> None:
        """A complete message: the idle deadline starts again (never past the lifetime)."""
        now = asyncio.get_running_loop().time()
        self.deadline = min(now + self.server.tcp_idle, self.started + self.server.tcp_lifetime)
        self.server.tcp_active(self)

    def expire(self) -> None:
        loop = asyncio.get_running_loop()
        if self.closed:
            return
        if loop.time() < self.deadline:  # moved on since the timer was set
            self.timer = loop.call_at(self.deadline, self.expire)
            return
        self.server.stats["tcp_deadline"] += 1
        self.shut(abort=bool(self.transport.get_write_buffer_size()))

    def shut(self, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if abort:  # nothing more to say, or a client that does not read what we said
            self.transport.abort()
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.timer:
            self.timer.cancel()
        self.buffer = bytearray()
        self.server.tcp_closed(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.process()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.process()

    def process(self) -> None:
        """Answer every complete message waiting, until the replies are not being read or
        too many are being forwarded; then stop reading until that changes."""
        if self.processing or self.closed:
            return
        self.processing = True
        buf, pos = self.buffer, 0
        try:
            while not (self.closed or self.write_paused
                       or self.inflight >= self.server.tcp_inflight):
                if len(buf) - pos < 2:
                    break
                size = buf[pos] << 8 | buf[pos + 1]
                if len(buf) - pos - 2 < size:
                    break
                packet = bytes(buf[pos + 2:pos + 2 + size])
                pos += 2 + size
                self.handle(packet)
        finally:
            del buf[:pos]
            self.processing = False
        self.flow()

    def flow(self) -> None:
        if self.closed:
            return
        blocked = self.write_paused or self.inflight >= self.server.tcp_inflight
        if blocked and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        elif not blocked and self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def handle(self, packet: bytes) -> None:
        self.server.stats["queries_tcp"] += 1
        self.touch()
        reply = self.server.respond(packet, udp=False)
        if reply:
            self.write(reply)
        elif reply == b"":
            self.inflight += 1
            self.server.start_forward(packet, False, self.deliver)
        elif len(packet) < 12:  # not even a header: this is not a DNS client
            self.shut()

    def deliver(self, reply: bytes | None) -> None:
        self.inflight -= 1
        if self.closed:
            return
        if reply:
            self.write(reply)
        self.touch()
        self.process()

    def write(self, reply: bytes) -> None:
        self.transport.write(struct.pack("!H", len(reply)) + reply)
