"""Fuzz the cluster DNS server over the wire: random and mutated packets over UDP and TCP,
bounded in count and time, then a valid question must be answered at once.

By default the target is labnet's DNS server started here in a child process on 127.0.0.1
(a synthetic zone: a ClusterIP service, a headless one with 80 endpoints, an ExternalName),
so its memory can be read. Against a running lab's cluster DNS, from inside a pod's netns
(the caller picks the pod; the agent's pid gives its RSS):

    .venv/bin/python bench/fuzz_dns.py                      # in-process server, 100,000 packets
    sudo ip netns exec <pod netns> .venv/bin/python bench/fuzz_dns.py \\
        --server 172.19.0.10 --pid <agent pid> [--packets 100000] [--seconds 120]

Mutations of valid queries: bit flips, truncation, byte insertion and deletion, bogus counts,
compression loops and bad pointers, bad label types and overlong names, huge EDNS (65535,
big options, two OPTs, a named OPT, version 1), junk additional records, trailing bytes,
responses, other opcodes; and plain random bytes of random lengths. Over TCP some connections
also end on a half-sent message. Prints packets sent, answers by rcode, packets left
unanswered, elapsed time, the server's RSS before and after (--pid, or the child), and the
check; exits 1 when the check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dnslib import EDNS0, QTYPE, RCODE, DNSHeader, DNSQuestion, DNSRecord  # noqa: E402

CHECK_NAME = "kube-dns.kube-system.svc.cluster.local"  # in every lab
ZONE_NAMES = [CHECK_NAME, "web.default.svc.cluster.local", "many.default.svc.cluster.local",
              "_h._tcp.many.default.svc.cluster.local", "ext.default.svc.cluster.local",
              "cluster.local", "dns-version.cluster.local", "10.0.19.172.in-addr.arpa",
              "nope.default.svc.cluster.local", "x.y.z.default.svc.cluster.local"]
QTYPES = ["A", "AAAA", "SRV", "PTR", "TXT", "SOA", "NS", "CNAME", "ANY", "MX", "AXFR"]

SYNTHETIC_LAB = """
name: fuzz
nodes: 1
manifests:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      replicas: 2
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          containers: [{name: c, ports: [{name: http, containerPort: 80}]}]
  - apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
  - apiVersion: v1
    kind: Service
    metadata: {name: ext}
    spec: {type: ExternalName, externalName: www.example.invalid}
  - apiVersion: v1
    kind: Service
    metadata: {name: many}
    spec: {clusterIP: None, selector: {app: many}, ports: [{name: h, port: 80}]}
""" + "".join(
    f"  - {{apiVersion: v1, kind: Pod, metadata: {{name: m{i}, labels: {{app: many}}}}, "
    f"spec: {{containers: [{{name: c, ports: [{{name: h, containerPort: 80}}]}}]}}}}\n"
    for i in range(80))


# --- the in-process server (a child process, so that its RSS is its own) --------------------

def fake_upstream_reply(data: bytes, rng: random.Random) -> tuple[float, bytes] | None:
    """A slow, unreliable upstream: 192.0.2.1 after up to 300 ms, or nothing (one in five)."""
    from dnslib import RR, A

    try:
        query = DNSRecord.parse(data)
    except Exception:
        return None
    if rng.random() < 0.2:
        return None
    reply = query.reply()
    reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A("192.0.2.1"), ttl=60))
    return rng.random() * 0.3, reply.pack()


def serve(port: int, with_upstream: bool) -> None:
    import asyncio

    from labnet.dns.server import DnsServer, DnsTcp, DnsUdpReader
    from labnet.input.labfile import parse_lab_text
    from labnet.plan import make_plan

    server = DnsServer()
    server.reload(make_plan(parse_lab_text(SYNTHETIC_LAB, "fuzz.yaml", Path("."))), "")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(20):  # UDP and TCP on one port
            tcp_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp_sock.bind(("127.0.0.1", port))
            udp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp_sock.bind(("127.0.0.1", tcp_sock.getsockname()[1]))
                break
            except OSError:
                tcp_sock.close()
                udp_sock.close()
        else:
            raise SystemExit("no free port on 127.0.0.1")
        tcp_sock.listen(512)
        tcp_sock.setblocking(False)
        udp_sock.setblocking(False)
        DnsUdpReader(server, udp_sock)
        await loop.create_server(lambda: DnsTcp(server), sock=tcp_sock)
        if with_upstream:
            rng = random.Random(7)

            class Udp(asyncio.DatagramProtocol):
                def connection_made(self, transport):
                    self.transport = transport

                def datagram_received(self, data, addr):
                    if answer := fake_upstream_reply(data, rng):
                        loop.call_later(answer[0], self.transport.sendto, answer[1], addr)

            class Tcp(asyncio.Protocol):
                def connection_made(self, transport):
                    self.transport, self.buffer = transport, b""

                def data_received(self, data):
                    self.buffer += data
                    while len(self.buffer) >= 2 and len(self.buffer) >= 2 + (
                            size := struct.unpack("!H", self.buffer[:2])[0]):
                        packet, self.buffer = self.buffer[2:2 + size], self.buffer[2 + size:]
                        if answer := fake_upstream_reply(packet, rng):
                            loop.call_later(answer[0], self.transport.write,
                                            struct.pack("!H", len(answer[1])) + answer[1])

            fake_tcp = await loop.create_server(Tcp, "127.0.0.1", 0)
            fake_port = fake_tcp.sockets[0].getsockname()[1]
            await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", fake_port))
            server.upstream = [("127.0.0.1", fake_port)]
        print(f"PORT {udp_sock.getsockname()[1]}", flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_reader(sys.stdin.fileno(), stop.set)  # the parent went away
        await stop.wait()
        print(server.metrics().decode(), file=sys.stderr, flush=True)

    asyncio.run(main())


def start_child(with_upstream: bool) -> tuple[subprocess.Popen, int]:
    argv = [sys.executable, __file__, "--serve"] + (["--with-upstream"] if with_upstream else [])
    child = subprocess.Popen(argv, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    if not line.startswith("PORT "):
        child.kill()
        raise SystemExit(f"the server did not start: {line!r} {child.stderr.read()[-2000:]}")
    return child, int(line.split()[1])


def rss(pid: int | None) -> dict | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}
    except OSError:
        return None


# --- packets -----------------------------------------------------------------------------------

class Fuzzer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.kinds = [
            ("valid", 8), ("bitflip", 12), ("truncate", 8), ("insert_delete", 6),
            ("random", 10), ("counts", 8), ("pointers", 8), ("labels", 5), ("edns", 8),
            ("additional", 8), ("trailing", 8), ("response", 3), ("opcode", 3), ("splice", 5)]
        self.weights = [w for _, w in self.kinds]

    def name(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.5:
            name = rng.choice(ZONE_NAMES)
        elif roll < 0.8:
            name = f"r{rng.getrandbits(40):x}.{rng.choice(['default.svc', 'svc', 'pod', ''])}" \
                   ".cluster.local".replace("..", ".")
        else:
            name = f"r{rng.getrandbits(40):x}.example.invalid"
        if rng.random() < 0.3:  # random case
            name = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
        return name

    def valid(self) -> bytes:
        rng = self.rng
        record = DNSRecord(DNSHeader(id=rng.getrandbits(16), rd=rng.random() < 0.9),
                           q=DNSQuestion(self.name(), getattr(QTYPE, rng.choice(QTYPES))))
        if rng.random() < 0.5:
            record.add_ar(EDNS0(udp_len=rng.choice([512, 1232, 4096, 65535]),
                                flags="do" if rng.random() < 0.3 else ""))
        return record.pack()

    def packet(self) -> tuple[str, bytes]:
        kind = self.rng.choices(self.kinds, self.weights)[0][0]
        return kind, getattr(self, "m_" + kind)()

    def m_valid(self) -> bytes:
        return self.valid()

    def m_bitflip(self) -> bytes:
        p = bytearray(self.valid())
        for _ in range(self.rng.randint(1, 8)):
            i = self.rng.randrange(len(p))
            p[i] ^= 1 << self.rng.randrange(8)
        return bytes(p)

    def m_truncate(self) -> bytes:
        p = self.valid()
        return p[:self.rng.randrange(len(p))]

    def m_insert_delete(self) -> bytes:
        p = bytearray(self.valid())
        for _ in range(self.rng.randint(1, 4)):
            i = self.rng.randrange(len(p))
            if self.rng.random() < 0.5:
                p[i:i] = self.rng.randbytes(self.rng.randint(1, 8))
            else:
                del p[i:i + self.rng.randint(1, 4)]
        return bytes(p)

    def m_random(self) -> bytes:
        size = self.rng.choice([self.rng.randrange(0, 20), self.rng.randrange(0, 512),
                                self.rng.randrange(0, 4096)])
        return self.rng.randbytes(size)

    def m_counts(self) -> bytes:
        p = bytearray(self.valid())
        counts = [self.rng.choice([0, 1, 2, 3, 255, 65535, self.rng.getrandbits(16)])
                  for _ in range(4)]
        p[4:12] = struct.pack("!HHHH", *counts)
        return bytes(p)

    def header(self, qd=1, an=0, ns=0, ar=0, flags=0x0100) -> bytes:
        return struct.pack("!HHHHHH", self.rng.getrandbits(16), flags, qd, an, ns, ar)

    def m_pointers(self) -> bytes:
        rng = self.rng
        choice = rng.randrange(5)
        if choice == 0:  # a pointer to itself
            name = b"\xc0\x0c"
        elif choice == 1:  # two labels pointing at each other
            name = b"\x01a\xc0\x0e\x01b\xc0\x0c"
        elif choice == 2:  # forwards
            name = b"\x01a" + struct.pack("!H", 0xC000 | rng.randrange(16, 4000))
        elif choice == 3:  # a long chain of pointers, in a record's owner name
            question = DNSRecord.question(self.name()).pack()[12:]
            start = 12 + len(question) + 11  # the first record's data
            links = rng.randint(50, 400)
            chain = b"".join(struct.pack("!H", 0xC000 | (12 if k == 0 else start + 2 * (k - 1)))
                             for k in range(links))
            first = b"\x00" + struct.pack("!HHIH", 10, 1, 0, len(chain)) + chain
            second = struct.pack("!H", 0xC000 | (start + 2 * (links - 1))) + struct.pack(
                "!HHIH", 1, 1, 0, 4) + b"\x01\x02\x03\x04"
            return self.header(ar=2) + question + first + second
        else:  # a pointer into the header
            name = b"\x01x" + struct.pack("!H", 0xC000 | rng.randrange(0, 12))
        return self.header() + name + b"\x00\x01\x00\x01"

    def m_labels(self) -> bytes:
        rng = self.rng
        choice = rng.randrange(4)
        if choice == 0:  # extended label types
            name = bytes([rng.choice([0x40, 0x41, 0x80, 0xBF])]) + b"abc\x00"
        elif choice == 1:  # over 255 bytes
            name = (b"\x3f" + b"a" * 63) * rng.randint(4, 20) + b"\x00"
        elif choice == 2:  # a label longer than the packet
            name = b"\x3fabc"
        else:  # binary labels
            name = b"".join(bytes([n]) + rng.randbytes(n) for n in
                            (rng.randint(1, 20) for _ in range(3))) + b"\x00"
        return self.header() + name + b"\x00\x01\x00\x01"

    def opt(self, size: int, option_bytes: int, version: int = 0, named: bool = False) -> bytes:
        option = struct.pack("!HH", 65001, option_bytes) + self.rng.randbytes(option_bytes)
        owner = b"\x01x\x00" if named else b"\x00"
        return owner + struct.pack("!HHIH", 41, size, (version << 16) | 0x8000,
                                   len(option)) + option

    def m_edns(self) -> bytes:
        rng = self.rng
        body = self.valid()[12:]
        body = body[:body.index(b"\x00", 0) + 5] if b"\x00" in body else body
        choice = rng.randrange(4)
        big = rng.choice([0, 100, 4000, 16000, 60000])
        if choice == 0:
            return self.header(ar=1) + body + self.opt(65535, big)
        if choice == 1:
            return self.header(ar=2) + body + self.opt(4096, 10) + self.opt(65535, big)
        if choice == 2:
            return self.header(ar=1) + body + self.opt(65535, big, named=True)
        return self.header(ar=1) + body + self.opt(rng.getrandbits(16), big, version=1)

    def m_additional(self) -> bytes:
        rng = self.rng
        q = DNSRecord.question(self.name()).pack()[12:]
        records = b""
        count = rng.choice([1, 2, 3, 50, 1000])
        for _ in range(min(count, 50)):
            size = rng.choice([4, 100, 2000, 20000]) if count <= 2 else rng.randrange(0, 64)
            records += b"\x00" + struct.pack("!HHIH", rng.choice([1, 16, 10, 250]), 1, 0,
                                             size) + rng.randbytes(size)
        return self.header(ar=count) + q + records

    def m_trailing(self) -> bytes:
        return self.valid() + self.rng.randbytes(self.rng.choice([1, 10, 1000, 16000]))

    def m_response(self) -> bytes:
        p = bytearray(self.valid())
        p[2] |= 0x80
        return bytes(p)

    def m_opcode(self) -> bytes:
        p = bytearray(self.valid())
        p[2] = (p[2] & 0x87) | (self.rng.randrange(1, 16) << 3)
        return bytes(p)

    def m_splice(self) -> bytes:
        a, b = self.valid(), self.valid()
        return a[:self.rng.randrange(12, len(a))] + b[self.rng.randrange(12, len(b)):]


def expected_drop(packet: bytes) -> bool:
    """No answer by design: no header, or a response."""
    return len(packet) < 12 or bool(packet[2] & 0x80)


# --- sending -------------------------------------------------------------------------------------

class Tally:
    def __init__(self) -> None:
        self.sent = Counter()
        self.kinds = Counter()
        self.rcodes = Counter()
        self.answered = Counter()
        self.expected_drops = Counter()
        self.tcp_connections = 0
        self.tcp_closed_early = 0
        self.half_sent = 0

    def reply(self, transport: str, data: bytes) -> None:
        self.answered[transport] += 1
        self.rcodes[RCODE.get(data[3] & 0xF) if len(data) >= 4 else "short"] += 1


def udp_round(sock: socket.socket, packets: list[bytes], tally: Tally) -> None:
    expected = 0
    for packet in packets:
        try:
            sock.send(packet)
        except OSError:  # e.g. an ICMP error from a previous send
            continue
        tally.sent["udp"] += 1
        expected += not expected_drop(packet)
    got, deadline = 0, time.monotonic() + 0.5
    while got < expected:
        # replies come within microseconds; forwarded ones may come late (counted later)
        wait = min(0.01, deadline - time.monotonic())
        if wait <= 0:
            break
        sock.settimeout(wait)
        try:
            data = sock.recv(65535)
        except TimeoutError:
            break
        except OSError:
            continue
        got += 1
        tally.reply("udp", data)


def tcp_batch(target: tuple, packets: list[bytes], half: bytes | None, tally: Tally) -> None:
    """One connection: every packet framed, maybe a half-sent message at the end; replies
    read while sending (the server stops reading when its replies are not read). Every
    packet with a header gets a reply, up to one without (then the server closes)."""
    tally.tcp_connections += 1
    expected = 0
    for packet in packets:
        if len(packet) < 12:
            break
        expected += not expected_drop(packet)
    data = b"".join(struct.pack("!H", len(p)) + p for p in packets) + (half or b"")
    try:
        sock = socket.create_connection(target, timeout=2)
    except OSError:
        return
    tally.sent["tcp"] += len(packets)
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent, inbox, got, closed = 0, b"", 0, False
    deadline = time.monotonic() + 3
    quiet_until = None  # once everything is sent: until replies stop for a while
    while got < expected and not closed and time.monotonic() < deadline:
        if sent >= len(data) and quiet_until is None:
            selector.modify(sock, selectors.EVENT_READ)
            quiet_until = time.monotonic() + 0.05
        if quiet_until is not None and time.monotonic() >= quiet_until:
            break  # what is left waits for the upstream
        for _, mask in selector.select(0.01):
            if mask & selectors.EVENT_WRITE and sent < len(data):
                try:
                    sent += sock.send(data[sent:sent + 65536])
                except BlockingIOError:
                    pass
                except OSError:
                    closed = True
            if mask & selectors.EVENT_READ:
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    closed = True
                    continue
                inbox += chunk
                if quiet_until is not None:
                    quiet_until = time.monotonic() + 0.05
                while len(inbox) >= 2 and len(inbox) >= 2 + (
                        size := struct.unpack("!H", inbox[:2])[0]):
                    tally.reply("tcp", inbox[2:2 + size])
                    inbox = inbox[2 + size:]
                    got += 1
    if closed and got < expected:
        tally.tcp_closed_early += 1
    selector.close()
    sock.close()


def check(target: tuple, name: str, expect: str | None) -> dict:
    result = {}
    packet = DNSRecord.question(name).pack()
    for transport in ("udp", "tcp"):
        started = time.monotonic()
        try:
            if transport == "udp":
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.settimeout(2)
                    sock.sendto(packet, target)
                    data = sock.recv(65535)
            else:
                with socket.create_connection(target, timeout=2) as sock:
                    sock.sendall(struct.pack("!H", len(packet)) + packet)
                    data = b""
                    while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
                        chunk = sock.recv(65535)
                        if not chunk:
                            raise ConnectionError("closed")
                        data += chunk
                    data = data[2:]
            reply = DNSRecord.parse(data)
            ips = [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]
            ok = (reply.header.id == DNSRecord.parse(packet).header.id
                  and reply.header.rcode == RCODE.NOERROR and bool(ips)
                  and (expect is None or expect in ips))
            result[transport] = {"ok": ok, "ms": round((time.monotonic() - started) * 1000, 2),
                                 "answer": ips, "rcode": RCODE.get(reply.header.rcode)}
        except Exception as exc:
            result[transport] = {"ok": False, "error": repr(exc)}
    return result


def fuzz(target: tuple, packets: int, seconds: float, tcp_share: float, seed: int,
         idle: float) -> dict:
    rng = random.Random(seed)
    fuzzer = Fuzzer(rng)
    tally = Tally()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.connect(target)
    started = time.monotonic()
    done = 0
    held: list[tuple[float, socket.socket]] = []  # half a message, then silence
    for _ in range(20):
        with contextlib.suppress(OSError):
            holder = socket.create_connection(target, timeout=2)
            holder.sendall(b"\x00\x40" + b"\x00" * 10)
            held.append((time.monotonic(), holder))
    while done < packets and time.monotonic() - started < seconds:
        if tally.sent["tcp"] < tcp_share * (done + 1):
            count = min(20, packets - done)
            batch = []
            for _ in range(count):
                kind, packet = fuzzer.packet()
                while len(packet) < 12 and rng.random() < 0.9:  # mostly: keep the connection
                    kind, packet = fuzzer.packet()
                tally.kinds[kind] += 1
                batch.append(packet[:65535])
            short = next((i for i, p in enumerate(batch) if len(p) < 12), len(batch))
            tally.expected_drops["tcp"] += sum(expected_drop(p) for p in batch[:short]) + (
                len(batch) - short)  # the server closes at a packet with no header
            half = None
            if rng.random() < 0.1:  # a message that never completes
                tally.half_sent += 1
                half = struct.pack("!H", rng.randint(100, 65535)) + rng.randbytes(50)
            tcp_batch(target, batch, half, tally)
        else:
            count = min(16, packets - done)
            batch = []
            for _ in range(count):
                kind, packet = fuzzer.packet()
                tally.kinds[kind] += 1
                batch.append(packet[:65507])
                tally.expected_drops["udp"] += expected_drop(batch[-1])
            udp_round(udp, batch, tally)
        done += count
    elapsed = time.monotonic() - started

    def closed(holder: socket.socket) -> bool:
        holder.setblocking(False)
        try:
            return holder.recv(1) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    # the server's idle deadline must close them: wait (bounded) until the first is past it
    open_held = [holder for _, holder in held]
    while held and open_held and time.monotonic() < held[0][0] + idle + 2:
        open_held = [holder for holder in open_held if not closed(holder)]
        time.sleep(0.1)
    closed_held = len(held) - sum(not closed(holder) for _, holder in held)
    for _, holder in held:
        holder.close()
    udp.close()
    sent = tally.sent["udp"] + tally.sent["tcp"]
    return {
        "sent": sent, "sent_udp": tally.sent["udp"], "sent_tcp": tally.sent["tcp"],
        "tcp_connections": tally.tcp_connections, "tcp_closed_by_server": tally.tcp_closed_early,
        "tcp_half_sent_messages": tally.half_sent,
        "answered_udp": tally.answered["udp"], "answered_tcp": tally.answered["tcp"],
        "answers_by_rcode": dict(tally.rcodes.most_common()),
        "unanswered_udp": tally.sent["udp"] - tally.answered["udp"],
        "unanswered_tcp": tally.sent["tcp"] - tally.answered["tcp"],
        "unanswered_by_design_udp": tally.expected_drops["udp"],
        "unanswered_by_design_tcp": tally.expected_drops["tcp"],
        "elapsed_s": round(elapsed, 2), "packets_per_s": round(sent / elapsed) if elapsed else 0,
        "kinds": dict(tally.kinds.most_common()),
        "held_connections": len(held), "held_closed_by_server": closed_held,
        "held_oldest_s": round(time.monotonic() - held[0][0], 1) if held else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", help="the DNS server's address (default: start labnet's "
                        "server in a child process on 127.0.0.1)")
    parser.add_argument("--port", type=int, default=53, help="with --server (default 53)")
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=120.0, help="time bound of the fuzzing")
    parser.add_argument("--tcp-share", type=float, default=0.2,
                        help="share of packets sent over TCP (default 0.2)")
    parser.add_argument("--idle", type=float, default=10.0,
                        help="the server's TCP idle deadline: connections holding half a "
                        "message must be closed by then (default 10, labnet's)")
    parser.add_argument("--pid", type=int, help="the server's process, for its RSS")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default=CHECK_NAME, help="the valid question asked after")
    parser.add_argument("--expect", help="an address the check's answer must contain")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--with-upstream", action="store_true",
                        help="the in-process server forwards names outside the zone to a fake "
                        "upstream on 127.0.0.1 (slow: up to 300 ms; one question in five is "
                        "never answered)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(0, args.with_upstream)
        return 0
    child = None
    if args.server:
        target, pid = (args.server, args.port), args.pid
        label = f"{args.server}:{args.port}"
    else:
        child, port = start_child(args.with_upstream)
        target, pid = ("127.0.0.1", port), child.pid
        label = f"127.0.0.1:{port} (labnet's DNS server, child pid {child.pid}" + (
            ", forwarding to a slow fake upstream)" if args.with_upstream else ")")
    try:
        before = rss(pid)
        figures = fuzz(target, args.packets, args.seconds, args.tcp_share, args.seed,
                       args.idle)
        after = rss(pid)
        figures["check"] = check(target, args.name, args.expect)
    finally:
        if child is not None:
            child.terminate()
            try:
                _, metrics = child.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                metrics = ""
            figures_metrics = [line for line in metrics.splitlines()
                               if line.startswith("labnet_dns_")]
    figures["target"] = label
    figures["rss_mb"] = {"before": before, "after": after}
    if child is not None:
        figures["server_metrics"] = figures_metrics
    ok = all(result.get("ok") for result in figures["check"].values())
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"target        {label}")
        print(f"sent          {figures['sent']:,} packets ({figures['sent_udp']:,} UDP, "
              f"{figures['sent_tcp']:,} TCP over {figures['tcp_connections']:,} connections, "
              f"{figures['tcp_half_sent_messages']} ending on a half-sent message) in "
              f"{figures['elapsed_s']} s ({figures['packets_per_s']:,}/s)")
        print("answers       " + ", ".join(f"{k} {v:,}" for k, v in
                                           figures["answers_by_rcode"].items()))
        print(f"unanswered    UDP {figures['unanswered_udp']:,} (by design: "
              f"{figures['unanswered_by_design_udp']:,}: no header, or a response), TCP "
              f"{figures['unanswered_tcp']:,} (by design: "
              f"{figures['unanswered_by_design_tcp']:,}: responses, and what follows a "
              f"packet with no header, where the server closes); TCP connections the server "
              f"closed before every expected reply: {figures['tcp_closed_by_server']}")
        print(f"held open     {figures['held_connections']} connections that sent half a "
              f"message at the start and then nothing: {figures['held_closed_by_server']} closed "
              f"by the server within {figures['held_oldest_s']} s")
        if before and after:
            print(f"server RSS    {before['VmRSS']:.1f} MB before, {after['VmRSS']:.1f} MB "
                  f"after (peak {after['VmHWM']:.1f} MB)")
        else:
            print("server RSS    unknown (give --pid)")
        for transport, result in figures["check"].items():
            print(f"check {transport}     {args.name} -> {result}")
        if child is not None:
            print("server        " + "; ".join(m.replace("labnet_dns_", "")
                                               for m in figures_metrics))
        print("OK" if ok else "FAILED: the valid question was not answered")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
