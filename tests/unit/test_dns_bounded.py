"""The cluster DNS server holds against hostile clients: its cache is keyed on the question and
bounded, junk does not grow memory, TCP connections have deadlines and bounded pipelining, and
forwarding never blocks or delays in-zone answers and checks what the upstream says.

Everything runs on 127.0.0.1 in this process: the server's UDP reader and TCP protocol on an
asyncio loop in a thread, fake upstream resolvers on another, blocking client sockets here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, A, DNSHeader, DNSQuestion, DNSRecord

from labnet.dns.server import (
    EDNS_SIZE,
    SEEN_ENTRIES,
    DnsServer,
    DnsTcp,
    DnsUdpReader,
    parse_query,
)
from labnet.input.labfile import parse_lab_text
from labnet.plan import make_plan
from tests.manifests import EXTERNAL, HTTP_80, bare_pods, deployment, lab_text, service

MANY = 80  # endpoints of the headless service `many`: its A answer is over 1,232 bytes

LAB = lab_text(
    deployment(replicas=2, containers=HTTP_80),
    service(ports="[{name: http, port: 80}]", clusterIP="172.19.0.80"),
    EXTERNAL,
    "  - {apiVersion: v1, kind: Service, metadata: {name: many}, spec: {clusterIP: None, selector: {app: many}, ports: [{name: h, port: 80}]}}\n",
    bare_pods(MANY, prefix="m", app="many",
              containers="[{name: c, ports: [{name: h, containerPort: 80}]}]"),
    name="t", nodes=1)

WEB = "web.default.svc.cluster.local"
OUTSIDE = "www.example.com"


@pytest.fixture(scope="module")
def plan():
    return make_plan(parse_lab_text(LAB, "lab.yaml", Path(".")))


@pytest.fixture
def server(plan):
    server = DnsServer()
    server.reload(plan, "")  # no DNS pod: upstream sockets in this netns (loopback)
    return server


# --- loops, servers and clients on loopback ------------------------------------------------

class Loop:
    """An asyncio event loop running in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args):
        async def call():
            return fn(*args)
        return self.run(call())

    def close(self) -> None:
        async def cancel():
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
        with contextlib.suppress(Exception):
            self.run(cancel())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class Endpoint:
    udp: tuple
    tcp: tuple
    loop: Loop


@contextlib.contextmanager
def serving(server: DnsServer):
    loop = Loop()

    async def start():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        reader = DnsUdpReader(server, sock)
        tcp = await asyncio.get_running_loop().create_server(
            lambda: DnsTcp(server), "127.0.0.1", 0)
        return reader, tcp

    reader, tcp = loop.run(start())
    try:
        yield Endpoint(reader.sock.getsockname(), tcp.sockets[0].getsockname(), loop)
    finally:
        async def stop():
            reader.close()
            tcp.close()
            for conn in list(server.connections):
                conn.shut(abort=True)
        loop.run(stop())
        loop.close()


def question(name: str, qtype: str = "A", ident: int | None = None, edns: int | None = None,
             do: bool = False) -> bytes:
    record = DNSRecord(DNSHeader(id=random.randrange(65536) if ident is None else ident),
                       q=DNSQuestion(name, getattr(QTYPE, qtype)))
    if edns is not None:
        record.add_ar(EDNS0(udp_len=edns, flags="do" if do else ""))
    return record.pack()


def udp_client(timeout: float = 2.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    return sock


def ask_udp(addr, packet: bytes, timeout: float = 2.0) -> bytes:
    with udp_client(timeout) as sock:
        sock.sendto(packet, addr)
        return sock.recv(65535)


def tcp_client(addr, timeout: float = 2.0) -> socket.socket:
    sock = socket.create_connection(addr, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_frame(sock: socket.socket, packet: bytes) -> None:
    sock.sendall(struct.pack("!H", len(packet)) + packet)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def recv_frame(sock: socket.socket) -> bytes:
    return recv_exactly(sock, struct.unpack("!H", recv_exactly(sock, 2))[0])


def ask_tcp(addr, packet: bytes, timeout: float = 2.0) -> bytes:
    with tcp_client(addr, timeout) as sock:
        send_frame(sock, packet)
        return recv_frame(sock)


def addresses(wire: bytes) -> list[str]:
    return [str(rr.rdata) for rr in DNSRecord.parse(wire).rr if rr.rtype == QTYPE.A]


def rcode(wire: bytes) -> int:
    return wire[3] & 0xF


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def closed_by_peer(sock: socket.socket) -> bool:
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(65535) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True
    finally:
        sock.settimeout(timeout)


# --- a fake upstream resolver ---------------------------------------------------------------

class Upstream:
    """UDP and TCP on one port of 127.0.0.1. mode: "good" (answers 192.0.2.1 at once, or
    after `delay`), "silent" (never answers; TCP: accepts and reads), "bogus" (a reply with
    another ID, one for another question and one from another port, then, 50 ms later, the
    good one), "bogus-only" (the three bad replies alone)."""

    GOOD, BAD = "192.0.2.1", ("6.6.6.1", "6.6.6.2", "6.6.6.3")

    def __init__(self, mode: str = "good", delay: float = 0.0) -> None:
        self.mode, self.delay = mode, delay
        self.queries = {"udp": 0, "tcp": 0}
        self.loop = Loop()
        self.other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.other.bind(("127.0.0.1", 0))
        self.loop.run(self.start())

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tcp = await loop.create_server(lambda: UpstreamTcp(self), "127.0.0.1", 0)
        port = self.tcp.sockets[0].getsockname()[1]
        self.udp, _ = await loop.create_datagram_endpoint(lambda: UpstreamUdp(self),
                                                          local_addr=("127.0.0.1", port))
        self.addr = ("127.0.0.1", port)

    @staticmethod
    def reply(query: DNSRecord, ip: str, ident: int | None = None,
              name: str | None = None) -> bytes:
        reply = DNSRecord(DNSHeader(id=query.header.id if ident is None else ident, qr=1,
                                    ra=1, rd=1),
                          q=DNSQuestion(name or query.q.qname, query.q.qtype))
        reply.add_answer(RR(name or query.q.qname, QTYPE.A, rdata=A(ip), ttl=60))
        return reply.pack()

    def answers(self, data: bytes) -> list[tuple[float, bytes, bool]]:
        """(delay, reply, from the other socket) for one query."""
        query = DNSRecord.parse(data)
        if self.mode == "silent":
            return []
        good = [(self.delay, self.reply(query, self.GOOD), False)]
        if self.mode == "good":
            return good
        bad = [(0, self.reply(query, self.BAD[0], ident=(query.header.id + 1) % 65536), False),
               (0, self.reply(query, self.BAD[1], name="evil.example."), False),
               (0, self.reply(query, self.BAD[2]), True)]
        return bad if self.mode == "bogus-only" else bad + [(0.05, good[0][1], False)]

    def close(self) -> None:
        async def stop():
            self.tcp.close()
            self.udp.close()
        self.loop.run(stop())
        self.loop.close()
        self.other.close()


class UpstreamUdp(asyncio.DatagramProtocol):
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.upstream.queries["udp"] += 1
        loop = asyncio.get_running_loop()
        for delay, reply, other in self.upstream.answers(data):
            send = self.upstream.other.sendto if other else self.transport.sendto
            loop.call_later(delay, send, reply, addr)


class UpstreamTcp(asyncio.Protocol):
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.buffer = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 2 and len(self.buffer) >= 2 + (
                size := struct.unpack("!H", self.buffer[:2])[0]):
            packet, self.buffer = self.buffer[2:2 + size], self.buffer[2 + size:]
            self.upstream.queries["tcp"] += 1
            loop = asyncio.get_running_loop()
            for delay, reply, other in self.upstream.answers(packet):
                if not other:
                    loop.call_later(delay, self.transport.write,
                                    struct.pack("!H", len(reply)) + reply)


@contextlib.contextmanager
def upstream(server: DnsServer, mode: str = "good", delay: float = 0.0):
    fake = Upstream(mode, delay)
    server.upstream = [fake.addr]
    try:
        yield fake
    finally:
        fake.close()


# --- the cache -------------------------------------------------------------------------------

def test_cache_is_keyed_on_the_question_not_the_packet(server):
    with serving(server) as dns:
        first = question(WEB, ident=0x1111)
        reply = ask_udp(dns.udp, first)
        assert addresses(reply) == ["172.19.0.80"] and reply[:2] == b"\x11\x11"
        # the same question with bytes after it: FORMERR, not the cached answer
        for junk in (b"\0", b"\0" * 40, os.urandom(3000)):
            bad = ask_udp(dns.udp, first + junk)
            assert rcode(bad) == RCODE.FORMERR and bad[:2] == b"\x11\x11"
            assert DNSRecord.parse(bad).rr == []
        assert server.hits == 0 and len(server.cache) == 1
        # another ID: a hit, with that ID
        hit = ask_udp(dns.udp, question(WEB, ident=0x2222))
        assert hit[:2] == b"\x22\x22" and hit[2:] == reply[2:] and server.hits == 1
        # another spelling: its own spelling echoed, no new entry (one per question)
        for spelt in ("WeB.DeFaUlT.sVc.ClUsTeR.lOcAl", "WEB.default.svc.cluster.local"):
            for _ in range(2):
                echoed = DNSRecord.parse(ask_udp(dns.udp, question(spelt, ident=0x3333)))
                assert echoed.header.id == 0x3333
                assert str(echoed.q.qname) == spelt + "." == str(echoed.rr[0].rname)
        assert len(server.cache) == 1
        # over TCP: the same entry
        assert ask_tcp(dns.tcp, question(spelt, ident=0x4444))[:2] == b"\x44\x44"
        assert len(server.cache) == 1
        # the flags that change the answer are part of the key: RD, EDNS (the reply has an
        # OPT), DO; the EDNS size is not (the entry keeps the whole and the cut reply)
        norecurse = DNSRecord(DNSHeader(id=7, rd=0), q=DNSQuestion(WEB)).pack()
        assert not DNSRecord.parse(ask_udp(dns.udp, norecurse)).header.rd
        for size in (512, 1232, 4096):
            with_edns = DNSRecord.parse(ask_udp(dns.udp, question(WEB, edns=size)))
            assert [rr.rtype for rr in with_edns.ar] == [QTYPE.OPT]
            assert with_edns.ar[0].edns_len == EDNS_SIZE
        ask_udp(dns.udp, question(WEB, edns=4096, do=True))
        assert len(server.cache) == 4  # plain, RD=0, EDNS, EDNS+DO


def test_one_entry_serves_every_edns_size_and_tcp(server):
    name = "many.default.svc.cluster.local"
    with serving(server) as dns:
        for size in (512, 1232, 4096, 65535):  # 80 A records: over 1,232 bytes
            reply = DNSRecord.parse(ask_udp(dns.udp, question(name, edns=size)))
            assert reply.header.tc and not reply.rr
        whole = DNSRecord.parse(ask_tcp(dns.tcp, question(name, edns=65535)))
        assert not whole.header.tc and len(whole.rr) == MANY
        assert len(server.cache) == 1 and server.hits == 4


def test_cache_is_bounded_in_entries_and_bytes(server):
    server.cache_entries = 100
    for i in range(1000):  # distinct questions: NXDOMAIN each, all cached until the bound
        server.respond(question(f"n{i}.default.svc.cluster.local"), udp=True)
        assert len(server.cache) <= 100
    assert len(server.cache) == 100
    assert server.cache_bytes == sum(entry[3] for entry in server.cache.values())
    assert len(server.seen) <= SEEN_ENTRIES  # the index of queries read before, too
    # least recently used goes first: a question asked again stays
    server.respond(question("n900.default.svc.cluster.local"), udp=True)
    for i in range(50):
        server.respond(question(f"m{i}.default.svc.cluster.local"), udp=True)
    hits = server.hits
    server.respond(question("n900.default.svc.cluster.local"), udp=True)
    assert server.hits == hits + 1
    # big answers: the byte bound holds first
    server.cache_entries, server.cache_bytes_max = 10_000, 30_000
    server.cache.clear()
    server.cache_bytes = 0
    for qtype in ("A", "SRV", "ANY"):
        for spelt in ("many", "MANY", "Many", "mAny"):  # one entry per question
            server.respond(question(f"{spelt}.default.svc.cluster.local", qtype), udp=False)
    for i in range(300):
        server.respond(question(f"x{i}.default.svc.cluster.local"), udp=True)
        assert server.cache_bytes <= 30_000
    assert 0 < server.cache_bytes <= 30_000 and len(server.cache) < 300


# --- malformed input ---------------------------------------------------------------------------

def header(ident=1, flags=0x0100, qd=1, an=0, ns=0, ar=0) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


NAME = b"\x03web\x07default\x03svc\x07cluster\x05local\x00"
QUESTION = NAME + b"\x00\x01\x00\x01"
OPT_RR = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)


@pytest.mark.parametrize("packet, expected", [
    (header() + QUESTION, RCODE.NOERROR),
    (header(ar=1) + QUESTION + OPT_RR, RCODE.NOERROR),
    (header() + QUESTION + b"\0", RCODE.FORMERR),  # trailing bytes
    (header(ar=1) + QUESTION + OPT_RR + b"junk", RCODE.FORMERR),
    (header(ar=2) + QUESTION + OPT_RR + OPT_RR, RCODE.FORMERR),  # two OPTs
    (header(an=1) + QUESTION + OPT_RR, RCODE.FORMERR),  # OPT outside the additional section
    (header(ar=3) + QUESTION + OPT_RR * 3, RCODE.FORMERR),  # miekg's header checks
    (header(an=2) + QUESTION, RCODE.FORMERR),
    (header(ns=2) + QUESTION, RCODE.FORMERR),
    (header(qd=2) + QUESTION + QUESTION, RCODE.FORMERR),
    (header(qd=0), RCODE.FORMERR),
    (header(flags=0x1000) + QUESTION, RCODE.NOTIMP),  # opcode 2
    (header() + b"\xc0\x0c\x00\x01\x00\x01", RCODE.FORMERR),  # a pointer to itself
    (header() + b"\x01a\xc0\x0c\x00\x01\x00\x01", RCODE.FORMERR),  # a loop
    (header() + b"\x01a\xc0\x20\x00\x01\x00\x01", RCODE.FORMERR),  # pointing forwards
    (header() + b"\x41a" + b"\0\0\x01\0\x01", RCODE.FORMERR),  # extended label type
    (header() + b"\x3f" + b"a" * 63 + b"\x3f" + b"a" * 63 + b"\x3f" + b"a" * 63
     + b"\x3f" + b"a" * 63 + b"\0\0\x01\0\x01", RCODE.FORMERR),  # 257 bytes
    (header() + NAME[:-3], RCODE.FORMERR),  # cut
    (header(ar=1) + QUESTION + b"\0" + struct.pack("!HHIH", 41, 1232, 0, 8) + b"\0\1\0\x09abcd",
     RCODE.FORMERR),  # an EDNS option longer than its record
    (header(ar=1) + QUESTION + b"\0" + struct.pack("!HHIH", 16, 1, 0, 60000), RCODE.FORMERR),
])
def test_malformed_queries(server, packet, expected):
    reply = server.respond(packet, udp=True)
    assert reply[:2] == packet[:2] and rcode(reply) == expected
    if expected != RCODE.NOERROR:
        assert struct.unpack("!HHHH", reply[4:12]) == (0, 0, 0, 0)


def test_big_bogus_additional_records_are_skipped_not_kept(server):
    junk = b"\0" + struct.pack("!HHIH", 16, 1, 0, 40000) + os.urandom(40000)
    packet = header(ar=2) + QUESTION + junk + OPT_RR
    query = parse_query(packet)
    assert query.edns_size == 1232 and query.key == parse_query(
        header(ar=1) + QUESTION + OPT_RR).key
    reply = server.respond(packet, udp=True)
    assert addresses(reply) == ["172.19.0.80"] and len(reply) < 100
    assert server.cache_bytes < 1000 and not server.seen  # big queries are not indexed
    assert server.respond(header(flags=0x8100) + QUESTION, udp=True) is None  # a response


# --- memory under junk -------------------------------------------------------------------------

def junk_query(i: int, rng: random.Random) -> bytes:
    """A valid question for a name never asked before, then junk: trailing bytes, a big
    bogus additional record (with a big EDNS option), or many additional records."""
    suffix = ("default.svc.cluster.local", "svc.cluster.local", "example.org")[i % 3]
    name = f"junk{i}-{rng.getrandbits(32):x}.{suffix}"
    kind = i % 3
    body = DNSRecord(DNSHeader(id=i % 65536), q=DNSQuestion(name)).pack()[12:]
    if kind == 0:
        return header(ident=i % 65536) + body + os.urandom(rng.randint(1000, 16000))
    if kind == 1:
        bogus = b"\0" + struct.pack("!HHIH", 10, 1, 0, size := rng.randint(1000, 12000))
        option = os.urandom(rng.randint(100, 4000))
        opt = b"\0" + struct.pack("!HHIH", 41, 65535, 0x8000, 4 + len(option)) + struct.pack(
            "!HH", 65001, len(option)) + option
        return header(ident=i % 65536, ar=2) + body + bogus + os.urandom(size) + opt
    return header(ident=i % 65536, ar=300) + body + OPT_RR * 300


def test_junk_queries_leave_memory_bounded(server):
    rng = random.Random(11)
    with serving(server) as dns, udp_client(1.0) as sock:
        window = 8

        def blast(start: int, count: int) -> tuple[int, int]:
            answered = tcp_answered = 0
            udp_count = count * 9 // 10
            for base in range(start, start + udp_count, window):
                batch = range(base, min(base + window, start + udp_count))
                for i in batch:
                    sock.sendto(junk_query(i, rng), dns.udp)
                for _ in batch:
                    with contextlib.suppress(TimeoutError):
                        sock.recv(65535)
                        answered += 1
            tcp_start = start + udp_count
            for base in range(tcp_start, start + count, 50):
                with tcp_client(dns.tcp) as conn:
                    batch = range(base, min(base + 50, start + count))
                    conn.sendall(b"".join(
                        struct.pack("!H", len(p)) + p for p in (
                            junk_query(i, rng) for i in batch)))
                    for _ in batch:
                        recv_frame(conn)
                        tcp_answered += 1
            return answered, tcp_answered

        blast(0, 2000)  # warm up the allocator
        before = rss_mb()
        started = time.monotonic()
        answered, tcp_answered = blast(2000, 20_000)
        elapsed = time.monotonic() - started
        grown = rss_mb() - before
        stats = dict(server.stats)
    print(f"20,000 junk queries in {elapsed:.1f} s: RSS +{grown:.1f} MB, "
          f"cache {len(server.cache)} entries / {server.cache_bytes} bytes, {stats}")
    assert answered >= 18_000 * 0.99 and tcp_answered == 2000
    assert grown < 50
    assert server.cache_bytes <= server.cache_bytes_max
    assert len(server.cache) <= server.cache_entries


# --- TCP: deadlines, pipelining, connection cap ----------------------------------------------

def test_tcp_idle_deadline_is_not_reset_by_single_bytes(server):
    server.tcp_idle, server.tcp_lifetime = 0.3, 10.0
    with serving(server) as dns, tcp_client(dns.tcp) as sock:
        started = time.monotonic()
        sock.sendall(b"\x00\x40")  # a 64-byte message, sent one byte every 20 ms
        closed_at = None
        for _ in range(100):
            time.sleep(0.02)
            if closed_by_peer(sock):
                closed_at = time.monotonic() - started
                break
            with contextlib.suppress(OSError):
                sock.send(b"\x00")
        assert closed_at is not None and 0.25 <= closed_at < 0.8, closed_at
        assert server.stats["tcp_deadline"] == 1


def test_tcp_complete_messages_keep_a_connection_until_its_lifetime(server):
    server.tcp_idle, server.tcp_lifetime = 0.3, 1.0
    with serving(server) as dns, tcp_client(dns.tcp) as sock:
        started = time.monotonic()
        answered = 0
        closed_at = None
        while time.monotonic() - started < 3:
            try:
                send_frame(sock, question(WEB))
                assert addresses(recv_frame(sock)) == ["172.19.0.80"]
                answered += 1
            except OSError:
                closed_at = time.monotonic() - started
                break
            time.sleep(0.1)
        assert closed_at is not None and 0.9 <= closed_at < 1.5, closed_at
        assert answered >= 7  # well past the idle deadline


def server_connections(dns: Endpoint, server: DnsServer) -> list[DnsTcp]:
    return dns.loop.call(lambda: list(server.connections))


def test_tcp_pipelining_is_bounded(server):
    server.tcp_write_limit = 16 * 1024
    count = 3000
    packet = question("many.default.svc.cluster.local", "SRV", ident=0)
    frames = [struct.pack("!H", len(packet)) + struct.pack("!H", i) + packet[2:]
              for i in range(count)]
    with serving(server) as dns:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.connect(dns.tcp)
        sock.setblocking(False)
        data = b"".join(frames)
        sent = 0
        with contextlib.suppress(BlockingIOError):
            while sent < len(data):
                sent += sock.send(data[sent:sent + 65536])
        time.sleep(0.5)  # the client reads nothing: the server must stop answering
        (conn,) = server_connections(dns, server)
        state = dns.loop.call(lambda: (conn.transport.get_write_buffer_size(), conn.read_paused,
                                       len(conn.buffer), server.stats["queries_tcp"]))
        buffered, paused, pending, answered = state
        assert paused and buffered <= 16 * 1024 + 65537, state
        assert pending <= 256 * 1024 + 65537, state
        assert answered < count, state
        # the client reads: every reply comes, in order
        sock.setblocking(True)
        sock.settimeout(5)
        writer = threading.Thread(target=lambda: sock.sendall(data[sent:]))
        writer.start()
        idents = [struct.unpack("!H", recv_frame(sock)[:2])[0] for _ in range(count)]
        writer.join()
        sock.close()
    assert idents == list(range(count))


def test_tcp_forwards_in_flight_are_bounded_per_connection(server):
    server.tcp_inflight = 4
    server.forward_timeout = server.forward_deadline = 0.5
    with upstream(server, "silent"), serving(server) as dns, tcp_client(dns.tcp, 5) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(p)) + p for p in (
            [question(f"q{i}.example.com", ident=i) for i in range(10)]
            + [question(WEB, ident=99)])))
        time.sleep(0.15)
        (conn,) = server_connections(dns, server)
        assert dns.loop.call(lambda: (conn.inflight, conn.read_paused)) == (4, True)
        assert server.forwarding == 4
        started = time.monotonic()  # another connection is answered at once
        assert addresses(ask_tcp(dns.tcp, question(WEB))) == ["172.19.0.80"]
        assert time.monotonic() - started < 0.1
        replies = {}
        for _ in range(11):
            reply = recv_frame(sock)
            replies[struct.unpack("!H", reply[:2])[0]] = rcode(reply)
    assert replies == {**dict.fromkeys(range(10), RCODE.SERVFAIL), 99: RCODE.NOERROR}


def test_tcp_connection_cap_closes_the_longest_idle(server):
    server.tcp_max_connections = 5
    with serving(server) as dns:
        socks = []
        for _ in range(8):
            sock = tcp_client(dns.tcp)
            send_frame(sock, question(WEB))
            recv_frame(sock)
            socks.append(sock)
        time.sleep(0.1)
        assert [closed_by_peer(s) for s in socks] == [True] * 3 + [False] * 5
        for sock in socks[3:]:
            send_frame(sock, question(WEB))
            assert addresses(recv_frame(sock)) == ["172.19.0.80"]
        assert len(server_connections(dns, server)) == 5 and server.stats["tcp_evicted"] == 3
        for sock in socks:
            sock.close()


# --- forwarding ------------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_slow_upstream_does_not_delay_in_zone_answers(server, transport):
    """Over UDP the server asks the upstream over UDP, over TCP over TCP (as CoreDNS)."""
    ask = ask_udp if transport == "udp" else ask_tcp
    server.forward_timeout, server.forward_deadline = 1.0, 1.0
    with upstream(server, "silent") as fake, serving(server) as dns:
        target = dns.udp if transport == "udp" else dns.tcp
        clients = []
        for i in range(10):  # questions for the upstream, left pending
            if transport == "udp":
                client = udp_client()
                client.sendto(question(f"n{i}.example.com"), target)
            else:
                client = tcp_client(target)
                send_frame(client, question(f"n{i}.example.com"))
            clients.append(client)
        time.sleep(0.05)
        assert server.forwarding == 10 and fake.queries[transport] == 10
        for _ in range(5):
            started = time.monotonic()
            assert addresses(ask(target, question(WEB))) == ["172.19.0.80"]
            assert time.monotonic() - started < 0.1
        for client in clients:  # the upstream never answered: SERVFAIL in the end
            reply = client.recv(65535) if transport == "udp" else recv_frame(client)
            assert rcode(reply) == RCODE.SERVFAIL
            client.close()
    with upstream(server, "good", delay=0.4) as fake, serving(server) as dns:
        target = dns.udp if transport == "udp" else dns.tcp
        results = {}
        slow = threading.Thread(target=lambda: results.update(
            reply=ask(target, question(OUTSIDE, ident=0x5151))))
        slow.start()
        time.sleep(0.05)
        started = time.monotonic()
        assert addresses(ask(target, question(WEB))) == ["172.19.0.80"]
        assert time.monotonic() - started < 0.1
        slow.join()
        assert results["reply"][:2] == b"\x51\x51"
        assert addresses(results["reply"]) == [Upstream.GOOD]
        assert fake.queries[transport] == 1


def test_forwarded_replies_are_checked(server):
    with upstream(server, "bogus") as fake, serving(server) as dns:
        reply = DNSRecord.parse(ask_udp(dns.udp, question(OUTSIDE, ident=0x6161, edns=4096)))
        assert reply.header.id == 0x6161 and [str(rr.rdata) for rr in reply.rr] == [
            Upstream.GOOD]
        assert str(reply.q.qname) == OUTSIDE + "."
        assert [rr.edns_len for rr in reply.ar if rr.rtype == QTYPE.OPT] == [EDNS_SIZE]
        assert server.stats["forward_mismatch"] >= 2  # (the other port: the kernel drops it)
        assert fake.queries["udp"] == 1
    server.forward_timeout = server.forward_deadline = 0.3
    server.stats.clear()
    with upstream(server, "bogus-only"), serving(server) as dns:
        reply = ask_udp(dns.udp, question(OUTSIDE, ident=0x6262))
        assert reply[:2] == b"\x62\x62" and rcode(reply) == RCODE.SERVFAIL
        assert not addresses(reply)
        assert server.stats["forward_mismatch"] >= 2 and server.stats["forward_timeout"] == 1
        # over TCP: another ID on our own connection is not believed either
        reply = ask_tcp(dns.tcp, question(OUTSIDE, ident=0x6363))
        assert rcode(reply) == RCODE.SERVFAIL and not addresses(reply)


def test_external_name_target_is_asked_upstream(server):
    with upstream(server, "good") as fake, serving(server) as dns:
        reply = DNSRecord.parse(ask_udp(dns.udp, question("ext.default.svc.cluster.local")))
        assert [(QTYPE[rr.rtype], str(rr.rdata)) for rr in reply.rr] == [
            ("CNAME", "www.example.com."), ("A", Upstream.GOOD)]
        assert fake.queries["udp"] == 1
    assert len(server.cache) == 0  # upstream answers are not cached


def test_forwarding_concurrency_and_rate_are_bounded(server):
    server.forward_concurrency = 3
    server.forward_timeout = server.forward_deadline = 0.5
    with upstream(server, "silent") as fake, serving(server) as dns:
        clients = [udp_client() for _ in range(10)]
        started = time.monotonic()
        for i, client in enumerate(clients):
            client.sendto(question(f"c{i}.example.com"), dns.udp)
        for client in clients[3:]:  # over the cap: SERVFAIL at once
            assert rcode(client.recv(65535)) == RCODE.SERVFAIL
        assert time.monotonic() - started < 0.1
        for client in clients[:3]:
            assert rcode(client.recv(65535)) == RCODE.SERVFAIL
            client.close()
        assert fake.queries["udp"] == 3 and server.stats["forward_shed"] == 7
    server.forward_concurrency = 100
    server.forward_rate, server.forward_burst = 5.0, 5
    server.tokens = 5.0
    with upstream(server, "good") as fake, serving(server) as dns:
        with udp_client() as client:
            for i in range(20):
                client.sendto(question(f"r{i}.example.com"), dns.udp)
            replies = [client.recv(65535) for _ in range(20)]
        good = [r for r in replies if addresses(r) == [Upstream.GOOD]]
        assert 5 <= len(good) <= 6 and fake.queries["udp"] == len(good)
        assert sum(rcode(r) == RCODE.SERVFAIL for r in replies) == 20 - len(good)


def test_the_old_api_never_blocks(server):
    server.upstream = [("127.0.0.1", 9)]  # nothing there: must not even be tried here
    started = time.monotonic()
    assert server.respond(question(OUTSIDE), udp=False, allow_forward=True) == b""
    assert server.respond(question(OUTSIDE), udp=True) == b""
    assert time.monotonic() - started < 0.05
