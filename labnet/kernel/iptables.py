"""Install a node's kube-proxy ruleset with python-iptables (libiptc, the legacy backend).

Each node is synced in a child process that enters the node's netns and opens fresh libiptc
handles there, so a commit can only land in that namespace (python-iptables caches tables by
name per process) and nothing keeps the namespace alive afterwards. Per table: one atomic
commit. Only the chains labnet.kubeproxy.sync chose are rewritten; stale chains the producer
owns are deleted (another producer's are left alone); kube-proxy's jumps from the built-in
chains are prepended where missing.

Speed: turning argv into a libiptc entry through python-iptables parses every option through
xtables (~0.7 ms a rule). Rules of one *shape* (same options, other addresses, ports, names)
differ only in a few fixed fields, so each shape is parsed once with sentinel values, and
every further rule is the template's bytes with its values written in. The first rule of each
shape is also built the slow way and compared byte for byte; a shape that does not match is
always built the slow way.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from labnet.kernel import nsfs, workers
from labnet.model import SYNC_TIMEOUT
from labnet.producers import KUBE_PROXY, RuleProducer

FIELD_SIZES = {"comment": 256, "name": 200, "chain": 29}


@dataclass
class TablePlan:
    """What the child does to one table."""

    name: str
    rewrite: dict[str, list[tuple[str, ...]]]  # chain -> every rule's argv
    jumps: list[tuple[str, tuple[str, ...]]]  # (built-in chain, argv) in prepend order
    full: bool  # no trusted record of the kernel: read it, delete the owner's unknown chains
    stale: list[str] = field(default_factory=list)  # chains of the last sync that must go
    owner: RuleProducer = KUBE_PROXY  # a full sync deletes only chains this producer owns
    cleanup: bool = False  # remove the owner's jumps from the built-in chains too


@dataclass
class SyncResult:
    node: str
    rewritten: int = 0
    rules: int = 0
    deleted: list[str] = field(default_factory=list)
    templates: int = 0
    slow_rules: int = 0


# --- the child: argv -> libiptc entries ------------------------------------------------------

def _is_service_chain(name: str) -> bool:
    return name.startswith(KUBE_PROXY.prefixes)


class EntryFactory:
    """argv -> libiptc entry bytes, one python-iptables parse per rule shape."""

    def __init__(self, iptc) -> None:
        self.iptc = iptc
        self.templates: dict[tuple, tuple[bytes, list] | None] = {}
        self.slow = 0
        self.buffers: dict[tuple[str, ...], ctypes.Array] = {}  # the same rule on every node

    def buffer(self, args: tuple[str, ...]) -> ctypes.Array:
        buf = self.buffers.get(args)
        if buf is None:
            blob = self.entry(args)
            buf = self.buffers[args] = (ctypes.c_ubyte * len(blob)).from_buffer_copy(blob)
        return buf

    # shape: argv with variable values replaced by their kind
    @staticmethod
    def shape_of(args: tuple[str, ...]) -> tuple[tuple, list[tuple[str, str]]]:
        shape: list = []
        values: list[tuple[str, str]] = []
        prev = ""
        for arg in args:
            kind = None
            if prev in ("-d", "-s") and "/" not in arg:
                kind = "ip"
            elif prev == "--dport":
                kind = "port"
            elif prev == "--comment":
                kind = "comment"
            elif prev == "--to-destination":
                kind = "hostport"
            elif prev == "--probability":
                kind = "probability"
            elif prev == "--name":
                kind = "name"
            elif prev == "--seconds":
                kind = "seconds"
            elif prev == "-j" and _is_service_chain(arg):
                kind = "chain"
            if kind:
                shape.append((kind,))
                values.append((kind, arg))
            else:
                shape.append(arg)
            prev = arg
        return tuple(shape), values

    def build_slow(self, args: tuple[str, ...]) -> bytes:
        return bytes(self.make_rule(args).rule)

    def make_rule(self, args: tuple[str, ...]):
        """A python-iptables Rule from argv, parsed option by option (the slow way)."""
        iptc = self.iptc
        rule = iptc.Rule()
        current = None
        negate = False
        i = 0
        while i < len(args):
            arg = args[i]
            nxt = args[i + 1] if i + 1 < len(args) else None
            bang = "!" if negate else ""
            negate = False
            if arg == "!":
                negate = True
                i += 1
                continue
            if arg in ("-s", "-d", "-p", "-i", "-o"):
                attr = {"-s": "src", "-d": "dst", "-p": "protocol", "-i": "in_interface",
                        "-o": "out_interface"}[arg]
                setattr(rule, attr, bang + nxt)
                i += 2
            elif arg == "-m":
                current = rule.create_match(nxt)
                i += 2
            elif arg == "-j":
                current = rule.create_target(nxt)
                if nxt == "MASQUERADE":
                    # python-iptables does not run the extension's init, which sets the
                    # IPv4 range count (rangesize) to 1: without it the kernel says EINVAL
                    header = ctypes.sizeof(iptc.xtables.xt_entry_target)
                    current._target_buf[header] = 1  # little-endian u32 1
                i += 2
            elif arg.startswith("--"):
                takes = nxt is not None and not nxt.startswith("-") and nxt != "!"
                value = nxt if takes else ""
                current.set_parameter(arg[2:], (bang + value) if bang else value)
                i += 2 if takes else 1
            else:
                raise ValueError(f"cannot read rule argument {arg!r} in {args}")
        if rule.target is None:  # a rule with no target (KUBE-FW's last rule) just counts
            rule.create_target("")
        return rule

    def sentinel_args(self, args, values) -> tuple[tuple[str, ...], list]:
        """The rule with a unique, recognisable value in every variable slot."""
        out = list(args)
        slots = []
        positions = [i for i, a in enumerate(args) if i > 0 and
                     self.shape_of((args[i - 1], a))[1]]
        for k, (pos, (kind, value)) in enumerate(zip(positions, values, strict=True)):
            ip = f"198.51.100.{200 + k}"
            port = 48640 + k
            sentinel = {
                "ip": ip, "port": str(port), "comment": f"labnet-sentinel-{k:02d}-comment",
                "hostport": f"{ip}:{port}", "probability": f"0.{k + 1:02d}23456789",
                "name": f"LABNET-SENTINEL-{k:02d}", "seconds": str(987000 + k),
                # a jump's chain must exist when python-iptables parses it: the real one serves
                "chain": value,
            }[kind]
            out[pos] = sentinel
            slots.append((kind, sentinel))
        return tuple(out), slots

    def locate(self, blob: bytes, slots: list) -> list | None:
        """Offsets of each slot's sentinel encodings in the template, or None if ambiguous."""
        fields = []
        for index, (kind, sentinel) in enumerate(slots):
            found = []
            if kind in ("ip", "hostport"):
                ip = sentinel.split(":")[0]
                found += [(o, "ip", index) for o in _find_all(blob, socket.inet_aton(ip))]
            if kind in ("port", "hostport"):
                port = int(sentinel.rsplit(":", 1)[-1])
                found += [(o, "port_le", index) for o in _find_all(blob, struct.pack("<H", port))]
                found += [(o, "port_be", index) for o in _find_all(blob, struct.pack(">H", port))]
            if kind in ("comment", "name", "chain"):
                found += [(o, kind, index) for o in _find_all(blob, sentinel.encode() + b"\0")]
            if kind == "probability":
                raw = struct.pack("<I", round(0x80000000 * float(sentinel)))
                found += [(o, "probability", index) for o in _find_all(blob, raw)]
            if kind == "seconds":
                found += [(o, "seconds", index)
                          for o in _find_all(blob, struct.pack("<I", int(sentinel)))]
            if not found:
                return None
            fields += found
        return fields

    def entry(self, args: tuple[str, ...]) -> bytes:
        shape, values = self.shape_of(args)
        if shape not in self.templates:
            self.templates[shape] = None
            sentinel_args, slots = self.sentinel_args(args, values)
            blob = self.build_slow(sentinel_args)
            fields = self.locate(blob, slots)
            real = self.build_slow(args)
            if fields is not None and self.fill(blob, fields, values) == real:
                self.templates[shape] = (blob, fields)
            self.slow += 1
            return real
        template = self.templates[shape]
        if template is None:
            self.slow += 1
            return self.build_slow(args)
        return self.fill(template[0], template[1], values)

    @staticmethod
    def fill(blob: bytes, fields: list, values: list[tuple[str, str]]) -> bytes:
        buf = bytearray(blob)
        for offset, how, index in fields:
            value = values[index][1]
            if how == "ip":
                buf[offset:offset + 4] = socket.inet_aton(value.split(":")[0])
            elif how in ("port_le", "port_be"):
                port = int(value.rsplit(":", 1)[-1])
                buf[offset:offset + 2] = struct.pack("<H" if how == "port_le" else ">H", port)
            elif how in FIELD_SIZES:
                size = FIELD_SIZES[how]
                raw = value.encode()
                if len(raw) >= size:
                    raise ValueError(f"{how} {value!r} is too long")
                buf[offset:offset + size] = raw.ljust(size, b"\0")
            elif how == "probability":
                buf[offset:offset + 4] = struct.pack("<I", round(0x80000000 * float(value)))
            elif how == "seconds":
                buf[offset:offset + 4] = struct.pack("<I", int(value))
        return bytes(buf)


def _find_all(blob: bytes, pattern: bytes) -> list[int]:
    found, start = [], 0
    while (index := blob.find(pattern, start)) >= 0:
        found.append(index)
        start = index + 1
    return found


def _chain_names(table) -> list[str]:
    names, lib, handle = [], table._iptc, table._handle
    name = lib.iptc_first_chain(handle)
    while name:
        names.append(name.decode())
        name = lib.iptc_next_chain(handle)
    return names


def _apply_table(iptc, factory: EntryFactory, plan: TablePlan, result: SyncResult) -> None:
    table = iptc.Table(plan.name, autocommit=False)
    lib, handle = table._iptc, table._handle
    existing = set(_chain_names(table)) if plan.full else None
    for chain in plan.rewrite:
        there = chain in existing if existing is not None else lib.iptc_is_chain(
            chain.encode(), handle)
        if there:
            table.flush_entries(chain)
        else:
            table.create_chain(chain)
    for chain, rules in plan.rewrite.items():
        name = chain.encode()
        for args in rules:
            if lib.iptc_append_entry(name, factory.buffer(args), handle) != 1:
                raise OSError(f"cannot append to {chain}: {table.strerror()}: {args}")
        result.rules += len(rules)
        result.rewritten += 1
    wanted = set(plan.rewrite)
    if existing is not None:  # full: everything wanted is in `rewrite`; other producers'
        stale = sorted(c for c in existing if plan.owner.owns(c) and c not in wanted)
    else:
        stale = [c for c in plan.stale if c not in wanted and lib.iptc_is_chain(c.encode(),
                                                                                handle)]
    if plan.cleanup:
        _remove_jumps(iptc, table, plan.owner)
    for chain in stale:
        table.flush_entries(chain)
    for chain in stale:
        table.delete_chain(chain)
    result.deleted += [f"{plan.name}/{c}" for c in stale]
    if plan.full:  # a trusted record means the jumps were checked when it was written
        for builtin, args in plan.jumps:
            if not _has_entry(iptc, table, builtin, args, factory):
                table.insert_entry(builtin, factory.buffer(args), 0)
    table.commit()


def _remove_jumps(iptc, table, owner: RuleProducer) -> None:
    """Delete the rules of the built-in chains that jump to a chain `owner` owns."""
    for name in _chain_names(table):
        if not table.builtin_chain(name):
            continue
        chain = iptc.Chain(table, name)
        for rule in chain.rules:
            if rule.target is not None and owner.owns(rule.target.name):
                chain.delete_rule(rule)


def _has_entry(iptc, table, chain: str, args: tuple[str, ...], factory: EntryFactory) -> bool:
    """Is this rule already in the built-in chain (as `iptables -C` would say)?"""
    rules = iptc.Chain(table, chain).rules
    if not rules:  # a new node: nothing to compare, nothing to parse
        return False
    want = factory.make_rule(args)
    return any(rule == want and rule.target.name == want.target.name for rule in rules)


_IPTC = None


def _load_iptc():
    """python-iptables, imported once in the fork server (its preload): importing only loads
    libraries (it runs ldconfig, ~0.3 s) and opens no socket; every libiptc handle is made
    later, in a worker, inside a node's netns."""
    global _IPTC
    if _IPTC is None:
        import iptc

        _IPTC = iptc
    return _IPTC


def loaded_tables(netns: str) -> set[str]:
    """The legacy xtables tables netns `netns` has (ip_tables_names): a namespace gets one
    only once something used it, so an empty answer means no rule of any kind is there."""
    with nsfs.entered(netns), open("/proc/thread-self/net/ip_tables_names") as f:
        return set(f.read().split())


class IptcHandler:
    """The worker's side: python-iptables and its entry templates, kept between syncs."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.iptc = _load_iptc()
        self.factory = EntryFactory(self.iptc)

    def apply(self, plans: list[TablePlan]) -> dict:
        iptc = self.iptc
        # python-iptables caches tables (and their libiptc handles) by name: drop them, so
        # every sync reads the kernel's tables afresh
        iptc.Table._cache.clear()
        iptc.Chain._cache.clear()
        result = SyncResult(self.netns)
        for plan in plans:
            _apply_table(iptc, self.factory, plan, result)
        result.templates = sum(1 for t in self.factory.templates.values() if t)
        result.slow_rules = self.factory.slow
        return result.__dict__

    def idle_wait(self) -> float | None:
        return None

    def idle(self) -> None:
        pass


def _worker_main(netns: str, conn: Connection) -> None:
    workers.serve(netns, conn, lambda: IptcHandler(netns))


def prepare_workers() -> None:
    workers.prepare_workers()


class NodeWorker(workers.NodeWorker):
    """labnet's kube-proxy (iptables mode) for one node: a process in the node's netns that
    keeps python-iptables and its entry templates between syncs, so a resync costs only the
    chains that changed, a read of the table and one commit."""

    def __init__(self, netns: str) -> None:
        super().__init__(netns, _worker_main, "iptables", SYNC_TIMEOUT)
