"""Render a node's kube-proxy ruleset in nftables mode (pure).

The layout follows kube-proxy's nftables proxier (pkg/proxy/nftables/proxier.go:
setupNFTables and syncProxyRules): one table `ip kube-proxy`, the same base chains, fixed
chains, sets and verdict maps, per-service-port chains named as in `nft_names`, the same rules,
comments, verdicts and masquerade mark, for the same Services. Everything is rendered as the
operations kube-proxy queues in its knftables transaction, in the order it queues them, and each
operation is written as knftables writes it to `nft -f -` (one command per line). From the
operations come the three forms a backend needs:

- `transaction_text()`: a full sync as kube-proxy writes it (add table, base chains re-made,
  fixed chains ensured with add+flush, fixed rules, sets/maps, then every service port);
- `text()`: the resulting table, one `add` per object, in the order knftables' fake writes its
  Dump() (table, chains, sets, maps by name, then rules chain by chain, then elements): what
  `nft -f` loads into an empty netns and what kube-proxy's unit tests compare;
- `snapshot()`: per chain its rules, per set/map its elements, per object its declaration, for
  the sync decision, made of one part per service port (reused with the fragment through an
  `NftRenderCache`); `sync_ops(before_snapshot, after_ruleset)` is the transaction that takes
  a node from one to the other (a partial sync), diffing elements as kube-proxy does.

Services are visited in key order and endpoints in "ip:port" order (kube-proxy visits services
in Go map order; its tests sort the text before comparing, see tests/unit/test_nft_rules.py).
IPv4 only (the `ip` family).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from labnet.gotext import go_quote
from labnet.kubeproxy import nft_names as names
from labnet.kubeproxy.rules import ProxyOptions, node_independent
from labnet.plan import PlanEndpoint, PlanService, PlanServicePort

FAMILY = "ip"
TABLE = "kube-proxy"
TABLE_COMMENT = "rules for kube-proxy"
NODEPORTS_ALL = "all"  # --nodeport-addresses matching every local address

# fixed chains, sets and maps
SERVICES = "services"
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NODEPORT_IPS = "nodeport-ips"
CLUSTER_IPS = "cluster-ips"
SERVICE_ENDPOINTS_CHECK = "service-endpoints-check"
NODEPORT_ENDPOINTS_CHECK = "nodeport-endpoints-check"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
REJECT_CHAIN = "reject-chain"
CLUSTER_IPS_CHECK = "cluster-ips-check"
FIREWALL_IPS = "firewall-ips"
FIREWALL_CHECK = "firewall-check"
MARK_MASQ = "mark-for-masquerade"
MASQUERADING = "masquerading"

# (name, type, hook, priority): knftables writes the priority as a number (dstnat-10 = -110)
BASE_CHAINS: tuple[tuple[str, str, str, int], ...] = (
    ("filter-prerouting-pre-dnat", "filter", "prerouting", -110),
    ("filter-output-pre-dnat", "filter", "output", -110),
    ("filter-input", "filter", "input", 0),
    ("filter-forward", "filter", "forward", 0),
    ("filter-output", "filter", "output", 0),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
)
# (regular chain, base chain that jumps to it, match before the jump), in kube-proxy's order
JUMPS: tuple[tuple[str, str, str], ...] = (
    (NODEPORT_ENDPOINTS_CHECK, "filter-input", "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, "filter-input", "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, "filter-forward", "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, "filter-output", "ct state new"),
    (FIREWALL_CHECK, "filter-prerouting-pre-dnat", "ct state new"),
    (FIREWALL_CHECK, "filter-output-pre-dnat", "ct state new"),
    (SERVICES, "nat-output", ""),
    (SERVICES, "nat-prerouting", ""),
    (MASQUERADING, "nat-postrouting", ""),
    (CLUSTER_IPS_CHECK, "filter-forward", "ct state new"),
    (CLUSTER_IPS_CHECK, "filter-output", "ct state new"),
)
# the six sets/maps whose elements kube-proxy keeps in memory and diffs (nftElementStorage)
SERVICE_CONTAINERS: tuple[tuple[str, str], ...] = (
    ("set", CLUSTER_IPS), ("map", SERVICE_IPS), ("map", FIREWALL_IPS),
    ("map", NO_ENDPOINT_SERVICES), ("map", NO_ENDPOINT_NODEPORTS), ("map", SERVICE_NODEPORTS))

NO_LOCALHOST = "ip daddr != 127.0.0.0/8"
ADDR = "ipv4_addr"
LOOKUP = "ip daddr . meta l4proto . th dport"


def _where(kind: str, name: str = "") -> str:
    return f"{kind} {FAMILY} {TABLE}" + (f" {name}" if name else "")


# ---- the objects of a transaction, each written as knftables writes it ----

@dataclass(frozen=True)
class NftTable:
    comment: str = TABLE_COMMENT

    def write(self, verb: str) -> str:
        text = f"{verb} {_where('table')}"
        if verb == "add" and self.comment:
            text += f" {{ comment {go_quote(self.comment)} ; }}"
        return text


@dataclass(frozen=True)
class NftChain:
    name: str
    type: str = ""  # a base chain: filter or nat, with its hook and priority
    hook: str = ""
    priority: int = 0
    comment: str = ""

    def write(self, verb: str) -> str:
        text = f"{verb} {_where('chain', self.name)}"
        if verb == "add" and (self.type or self.comment):
            text += " {"
            if self.type:
                text += f" type {self.type} hook {self.hook} priority {self.priority} ;"
            if self.comment:
                text += f" comment {go_quote(self.comment)} ;"
            text += " }"
        return text


@dataclass(frozen=True)
class NftSet:
    """A named set or (kind "map") verdict map."""

    name: str
    type: str
    kind: str = "set"
    flags: tuple[str, ...] = ()
    timeout: int = 0  # seconds
    comment: str = ""

    def write(self, verb: str) -> str:
        text = f"{verb} {_where(self.kind, self.name)}"
        if verb == "add":
            text += f" {{ type {self.type} ;"
            if self.flags:
                text += f" flags {','.join(self.flags)} ;"
            if self.timeout:
                text += f" timeout {self.timeout}s ;"
            if self.comment:
                text += f" comment {go_quote(self.comment)} ;"
            text += " }"
        return text


@dataclass(frozen=True)
class NftRule:
    chain: str
    rule: str
    comment: str = ""

    @property
    def text(self) -> str:
        """The rule as it follows `add rule ip kube-proxy CHAIN `."""
        return self.rule + (f" comment {go_quote(self.comment)}" if self.comment else "")

    def write(self, verb: str) -> str:
        return f"{verb} {_where('rule', self.chain)} {self.text}"


@dataclass(frozen=True)
class NftElement:
    container: str
    key: tuple[str, ...]
    value: tuple[str, ...] = ()  # empty: an element of a set
    comment: str = ""

    @property
    def key_text(self) -> str:
        return " . ".join(self.key)

    @property
    def value_text(self) -> str:
        return " . ".join(self.value)

    def write(self, verb: str) -> str:
        text = f"{verb} {_where('element', self.container)} {{ {self.key_text}"
        if verb == "add":
            if self.comment:
                text += f" comment {go_quote(self.comment)}"
            if self.value:
                text += f" : {self.value_text}"
        return text + " }"


NftObject = NftTable | NftChain | NftSet | NftRule | NftElement
Op = tuple[str, NftObject]  # (verb: add | flush | delete, object)


def cleanup_text() -> str:
    """kube-proxy --cleanup in nftables mode: the whole table goes (added first, so a missing
    table is not an error); also what switching a node to iptables mode runs."""
    return f"add {_where('table')}\ndelete {_where('table')}\n"


def write_ops(ops: Iterable[Op]) -> str:
    return "".join(obj.write(verb) + "\n" for verb, obj in ops)


# ---- what a node's kernel holds after a transaction ----

@dataclass
class NftState:
    """The table after applying operations in order (a model of the kernel's table, enough
    to derive the dump and the snapshot; it does not check references)."""

    table: NftTable | None = None
    chains: dict[str, NftChain] = field(default_factory=dict)
    rules: dict[str, list[NftRule]] = field(default_factory=dict)
    sets: dict[str, NftSet] = field(default_factory=dict)
    elements: dict[str, dict[str, NftElement]] = field(default_factory=dict)

    def apply(self, ops: Iterable[Op]) -> NftState:
        for verb, obj in ops:
            if isinstance(obj, NftRule):
                self.rules.setdefault(obj.chain, []).append(obj)
            elif isinstance(obj, NftElement):
                if verb == "add":
                    self.elements.setdefault(obj.container, {})[obj.key_text] = obj
                else:
                    self.elements.get(obj.container, {}).pop(obj.key_text, None)
            elif isinstance(obj, NftChain):
                if verb == "add":
                    if obj.name not in self.chains or obj.type or obj.comment:
                        self.chains[obj.name] = obj
                    self.rules.setdefault(obj.name, [])
                elif verb == "flush":
                    self.rules[obj.name] = []
                else:
                    self.chains.pop(obj.name, None)
                    self.rules.pop(obj.name, None)
            elif isinstance(obj, NftSet):
                if verb == "add":
                    self.sets.setdefault(obj.name, obj)
                    self.elements.setdefault(obj.name, {})
                elif verb == "flush":
                    self.elements[obj.name] = {}
                else:
                    self.sets.pop(obj.name, None)
                    self.elements.pop(obj.name, None)
            elif verb == "add":
                self.table = self.table or obj
            else:  # delete table
                self.table = None
                for objects in (self.chains, self.rules, self.sets, self.elements):
                    objects.clear()
        return self

    def dump_ops(self) -> list[Op]:
        """Every object with one `add`, in knftables' Fake.Dump() order."""
        ops: list[Op] = [("add", self.table)] if self.table else []
        chains = sorted(self.chains)
        sets = sorted(n for n, s in self.sets.items() if s.kind == "set")
        maps = sorted(n for n, s in self.sets.items() if s.kind == "map")
        ops += [("add", self.chains[c]) for c in chains]
        ops += [("add", self.sets[s]) for s in sets + maps]
        ops += [("add", r) for c in chains for r in self.rules[c]]
        ops += [("add", e) for s in sets + maps for e in self.elements[s].values()]
        return ops

    def part(self) -> NftPart:
        objects = {("chain", name): chain.write("add") for name, chain in self.chains.items()}
        objects.update({(obj.kind, name): obj.write("add") for name, obj in self.sets.items()})
        return NftPart(
            {c: tuple(r.text for r in rules) for c, rules in self.rules.items()},
            objects,
            {s: {k: (e.value_text, e.comment) for k, e in els.items()}
             for s, els in self.elements.items()},
            self.table.write("add") if self.table else "")

    def snapshot(self) -> NftSnapshot:
        return NftSnapshot({"": self.part()})


@dataclass(frozen=True)
class NftPart:
    """A piece of a table: the fixed objects, or what one service port adds. Chains with their
    rules' text (what follows `add rule ip kube-proxy CHAIN `); declarations by (kind, name);
    elements by set/map, key text -> (value text, comment)."""

    chains: dict[str, tuple[str, ...]]
    objects: dict[tuple[str, str], str]
    elements: dict[str, dict[str, tuple[str, str]]]
    table: str = ""


class NftSnapshot:
    """A node's kube-proxy table keyed for comparison, made of parts (the fixed objects, one
    part per service port): `chains` (table -> chain -> its rules' text), `objects` (every
    chain/set/map's declaration by (kind, name)), `elements` (set/map -> key text -> (value
    text, comment)). Parts of a ruleset rendered through a cache are the same objects while
    their service is unchanged, so `sync_ops` skips them without comparing their contents."""

    def __init__(self, parts: dict[Hashable, NftPart]) -> None:
        self.parts = parts

    @functools.cached_property
    def _merged(self) -> NftPart:
        chains: dict[str, tuple[str, ...]] = {}
        objects: dict[tuple[str, str], str] = {}
        elements: dict[str, dict[str, tuple[str, str]]] = {}
        table = ""
        for part in self.parts.values():
            chains.update(part.chains)
            objects.update(part.objects)
            for container, els in part.elements.items():
                elements.setdefault(container, {}).update(els)
            table = table or part.table
        return NftPart(chains, objects, elements, table)

    @property
    def chains(self) -> dict[str, dict[str, tuple[str, ...]]]:
        return {TABLE: self._merged.chains}

    @property
    def objects(self) -> dict[tuple[str, str], str]:
        return self._merged.objects

    @property
    def elements(self) -> dict[str, dict[str, tuple[str, str]]]:
        return self._merged.elements

    @property
    def table(self) -> str:
        return self._merged.table

    def rules(self) -> dict[str, tuple[str, ...]]:
        return self._merged.chains

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NftSnapshot) and self._merged == other._merged

    __hash__ = None  # type: ignore[assignment]


# ---- rendering ----

@dataclass
class NftFragment:
    """What one service port adds to a sync, as kube-proxy queues it: ensure (add+flush) its
    chains, ensure its elements in the fixed sets/maps, then its rules and affinity sets."""

    service: str  # namespace/name
    port: str  # the port's name
    ops: list[Op] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.service, self.port)

    def chains(self) -> list[str]:
        return [obj.name for verb, obj in self.ops
                if verb == "add" and isinstance(obj, NftChain)]

    def part(self) -> NftPart:
        cached = self.__dict__.get("_part")
        if cached is None:
            cached = self.__dict__["_part"] = NftState().apply(self.ops).part()
        return cached


@dataclass
class NftRuleset:
    setup: list[Op]  # kube-proxy's setupNFTables, without the once-only add+delete
    fragments: list[NftFragment]

    def ops(self, first: bool = False, reset_elements: bool = False) -> list[Op]:
        """The operations of a full sync. `first`: kube-proxy's first sync in its process
        lifetime also adds and deletes every base chain before making it again (so an older
        layout's hook or priority cannot fail the transaction). `reset_elements`: flush the six
        service sets/maps (kube-proxy does it when it cannot read their elements back)."""
        ops = list(self.setup)
        if first:
            once: list[Op] = []
            for name, *_ in BASE_CHAINS:
                once += [("add", NftChain(name)), ("delete", NftChain(name))]
            ops[1:1] = once
        if reset_elements:
            ops += [("flush", NftSet(name, "", kind)) for kind, name in SERVICE_CONTAINERS]
        for fragment in self.fragments:
            ops += fragment.ops
        return ops

    def transaction_text(self, first: bool = True, reset_elements: bool = False) -> str:
        """A full sync as kube-proxy's transaction writes it to `nft -f -`."""
        return write_ops(self.ops(first, reset_elements))

    def reload_text(self) -> str:
        """The table replaced whole in one transaction (add+delete: no error if it is
        missing), then made as a full sync makes it: exactly this ruleset, whatever the table
        held (kube-proxy instead lists what it holds and removes the left-overs)."""
        return cleanup_text() + self.transaction_text(first=False)

    def state(self) -> NftState:
        cached = self.__dict__.get("_state")
        if cached is None:
            cached = self.__dict__["_state"] = NftState().apply(self.ops())
        return cached

    def text(self) -> str:
        """The table, one `add` per object (knftables' Dump() order): loads with `nft -f`."""
        return write_ops(self.state().dump_ops())

    def snapshot(self) -> NftSnapshot:
        """The table keyed for comparison: one part for the fixed objects, one per service
        port (the fragment's own, reused with it)."""
        cached = self.__dict__.get("_snapshot")
        if cached is None:
            parts: dict[Hashable, NftPart] = {"": NftState().apply(self.setup).part()}
            parts.update((f.key, f.part()) for f in self.fragments)
            cached = self.__dict__["_snapshot"] = NftSnapshot(parts)
        return cached


@dataclass(frozen=True)
class _Config:
    opts: ProxyOptions
    node_ip: str  # kube-proxy's nodeIP (the primary one): source ranges containing it
    masquerade_all: bool


def _v4(addresses: Iterable[str]) -> list[str]:
    return [a for a in addresses if a and ":" not in a]


def setup_ops(opts: ProxyOptions, service_cidrs: Sequence[str] = (),
              nodeport_ips: Sequence[str] | str | None = None) -> list[Op]:
    """kube-proxy's setupNFTables: the table, base chains, fixed chains, rules, sets, maps."""
    mark = opts.masquerade_mark
    ops: list[Op] = [("add", NftTable())]
    for name, ctype, hook, priority in BASE_CHAINS:
        chain = NftChain(name, ctype, hook, priority)
        ops += [("add", chain), ("flush", chain)]
    created: set[str] = set()

    def ensure(name: str) -> None:
        if name not in created:
            created.add(name)
            ops.extend([("add", NftChain(name)), ("flush", NftChain(name))])

    for dst, src, extra in JUMPS:
        ensure(dst)
        ops.append(("add", NftRule(src, " ".join(filter(None, (extra, "jump", dst))))))
    for name in (SERVICES, CLUSTER_IPS_CHECK, MASQUERADING, MARK_MASQ):
        ensure(name)
    ops += [
        ("add", NftRule(MARK_MASQ, f"mark set mark or {mark}")),
        ("add", NftRule(MASQUERADING, f"mark and {mark} == 0 return")),
        ("add", NftRule(MASQUERADING, f"mark set mark xor {mark}")),
        ("add", NftRule(MASQUERADING, "masquerade fully-random")),
        ("add", NftSet(CLUSTER_IPS, ADDR, comment="Active ClusterIPs")),
        ("add", NftRule(CLUSTER_IPS_CHECK, f"ip daddr @{CLUSTER_IPS} reject",
                        "Reject traffic to invalid ports of ClusterIPs")),
    ]
    cidrs = ",".join(_v4(service_cidrs))
    if cidrs:
        ops.append(("add", NftRule(CLUSTER_IPS_CHECK, f"ip daddr {{ {cidrs} }} drop",
                                   "Drop traffic to unallocated ClusterIPs")))
    all_nodeports = nodeport_ips == NODEPORTS_ALL
    nodeport_set = NftSet(NODEPORT_IPS, ADDR, comment="IPs that accept NodePort traffic")
    ops.append(("add", nodeport_set))
    if all_nodeports:
        ops.append(("delete", NftSet(NODEPORT_IPS, ADDR)))
    else:
        ops.append(("flush", NftSet(NODEPORT_IPS, ADDR)))
        ips = opts.node_ips if nodeport_ips is None else nodeport_ips
        for ip in _v4(ips):
            if not ipaddress.IPv4Address(ip).is_loopback:  # localhost NodePorts unsupported
                ops.append(("add", NftElement(NODEPORT_IPS, (ip,))))
    ops += [
        ("add", NftSet(NO_ENDPOINT_SERVICES, f"{ADDR} . inet_proto . inet_service : verdict",
                       "map", comment="vmap to drop or reject packets to services with no "
                       "endpoints")),
        ("add", NftSet(NO_ENDPOINT_NODEPORTS, "inet_proto . inet_service : verdict", "map",
                       comment="vmap to drop or reject packets to service nodeports with no "
                       "endpoints")),
        ("add", NftChain(REJECT_CHAIN,
                         comment=f"helper for @{NO_ENDPOINT_SERVICES} / @{NO_ENDPOINT_NODEPORTS}")),
        ("flush", NftChain(REJECT_CHAIN)),
        ("add", NftRule(REJECT_CHAIN, "reject")),
        ("add", NftRule(SERVICE_ENDPOINTS_CHECK, f"{LOOKUP} vmap @{NO_ENDPOINT_SERVICES}")),
    ]
    local_dst = NO_LOCALHOST if all_nodeports else f"ip daddr @{NODEPORT_IPS}"
    ops += [
        ("add", NftRule(NODEPORT_ENDPOINTS_CHECK,
                        f"{local_dst} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}")),
        ("add", NftSet(FIREWALL_IPS, f"{ADDR} . inet_proto . inet_service : verdict", "map",
                       comment="destinations that are subject to LoadBalancerSourceRanges")),
    ]
    ensure(FIREWALL_CHECK)
    ops += [
        ("add", NftRule(FIREWALL_CHECK, f"{LOOKUP} vmap @{FIREWALL_IPS}")),
        ("add", NftSet(SERVICE_IPS, f"{ADDR} . inet_proto . inet_service : verdict", "map",
                       comment="ClusterIP, ExternalIP and LoadBalancer IP traffic")),
        ("add", NftSet(SERVICE_NODEPORTS, "inet_proto . inet_service : verdict", "map",
                       comment="NodePort traffic")),
        ("add", NftRule(SERVICES, f"{LOOKUP} vmap @{SERVICE_IPS}")),
    ]
    nodeport_dst = f"fib daddr type local {NO_LOCALHOST}" if all_nodeports else local_dst
    ops.append(("add", NftRule(
        SERVICES, f"{nodeport_dst} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}")))
    return ops


def _usable(eps: Iterable[PlanEndpoint]) -> list[PlanEndpoint]:
    """Ready endpoints, else the serving+terminating ones (proxy.CategorizeEndpoints)."""
    eps = list(eps)
    return [e for e in eps if e.ready] or [e for e in eps if e.serving and e.terminating]


def render_port(svc: PlanService, port: PlanServicePort, cfg: _Config) -> NftFragment:
    """One service port's part of syncProxyRules, in the order kube-proxy queues it."""
    opts = cfg.opts
    proto = port.protocol.lower()
    base = names.service_port_base(svc.namespace, svc.name, port.name, proto)
    spn = names.service_port_string(svc.namespace, svc.name, port.name)
    cluster_chain = names.SERVICE + base
    local_chain = names.LOCAL + base
    ext_chain = names.EXTERNAL + base
    fw_chain = names.FIREWALL + base
    cip = svc.cluster_ip
    eps = sorted(port.endpoints, key=lambda e: e.address)
    ext_ips = _v4(svc.external_ips)
    lb_ips = _v4(svc.load_balancer_ips)  # ipMode Proxy ingress IPs are not captured
    ranges = [ipaddress.ip_network(r.strip(), strict=False)
              for r in svc.load_balancer_source_ranges if r.strip()]
    ranges = [r for r in ranges if r.version == 4]
    externally = bool(port.node_port or ext_ips or lb_ips)
    itp_local = svc.internal_traffic_local
    etp_local = svc.external_traffic_local and externally
    uses_cluster_eps = not itp_local or externally
    uses_local_eps = itp_local or etp_local

    # proxy.CategorizeEndpoints
    cluster_eps = _usable(eps) if uses_cluster_eps else []
    has_endpoints = bool(cluster_eps)
    local_eps: list[PlanEndpoint] = []
    reachable = cluster_eps
    if uses_local_eps:
        has_endpoints = has_endpoints or bool(_usable(eps))
        local_eps = _usable(e for e in eps if e.node == opts.node_name)
        if uses_cluster_eps:
            union = {e.address: e for e in cluster_eps} | {e.address: e for e in local_eps}
            reachable = [union[a] for a in sorted(union)]
        else:
            reachable = local_eps

    uses_cluster_chain = bool(cluster_eps)
    uses_local_chain = bool(local_eps)
    internal_chain = local_chain if itp_local else cluster_chain
    has_internal = has_endpoints and (not itp_local or bool(local_eps))
    external_policy_chain = local_chain if etp_local else cluster_chain
    has_external = has_endpoints and (not etp_local or bool(local_eps))
    uses_ext_chain = has_endpoints and externally
    reject = f"goto {REJECT_CHAIN}"
    internal_verdict = "drop" if has_endpoints else reject
    external_verdict = "drop" if has_endpoints else reject
    affinity = svc.session_affinity_timeout
    uses_fw = bool(lb_ips) and bool(ranges)

    fragment = NftFragment(svc.key, port.name)
    ops = fragment.ops

    def ensure(name: str) -> None:
        ops.extend([("add", NftChain(name)), ("flush", NftChain(name))])

    def rule(chain: str, text: str, comment: str = "") -> None:
        ops.append(("add", NftRule(chain, text, comment)))

    def element(container: str, key: tuple[str, ...], value: str, comment: str = "") -> None:
        ops.append(("add", NftElement(container, key, (value,) if value else (), comment)))

    def ep_base(ep: PlanEndpoint) -> str:
        return names.endpoint_base(svc.namespace, svc.name, port.name, proto, ep.ip, ep.port)

    for ep in reachable:
        ensure(names.ENDPOINT + ep_base(ep))
    if uses_cluster_chain:
        ensure(cluster_chain)
    if uses_local_chain:
        ensure(local_chain)
    if uses_ext_chain:
        ensure(ext_chain)

    vip = (proto, str(port.port))
    element(CLUSTER_IPS, (cip,), "")
    if has_internal:
        element(SERVICE_IPS, (cip, *vip), f"goto {internal_chain}")
    else:
        element(NO_ENDPOINT_SERVICES, (cip, *vip), internal_verdict, spn)
    for ip in ext_ips:
        if has_endpoints:
            element(SERVICE_IPS, (ip, *vip), f"goto {ext_chain}")
        if not has_external:
            element(NO_ENDPOINT_SERVICES, (ip, *vip), external_verdict, spn)
    if uses_fw:
        ensure(fw_chain)
    for ip in lb_ips:
        if has_endpoints:
            element(SERVICE_IPS, (ip, *vip), f"goto {ext_chain}")
        if uses_fw:
            element(FIREWALL_IPS, (ip, *vip), f"goto {fw_chain}")
    if not has_external:
        for ip in lb_ips:
            element(NO_ENDPOINT_SERVICES, (ip, *vip), external_verdict, spn)
    if port.node_port:
        nodeport = (proto, str(port.node_port))
        if has_endpoints:  # NodePorts are never subject to source ranges
            element(SERVICE_NODEPORTS, nodeport, f"goto {ext_chain}")
        if not has_external:
            element(NO_ENDPOINT_NODEPORTS, nodeport, external_verdict, spn)

    # traffic to the ClusterIP that does not come from a pod is masqueraded
    if has_internal:
        if cfg.masquerade_all:
            rule(internal_chain, f"ip daddr {cip} jump {MARK_MASQ}")
        elif opts.cluster_cidr:
            rule(internal_chain, f"ip daddr {cip} ip saddr != {opts.cluster_cidr} jump {MARK_MASQ}")
    if uses_ext_chain:
        if not etp_local:
            rule(ext_chain, f"jump {MARK_MASQ}")
        else:
            if opts.cluster_cidr:
                rule(ext_chain, f"ip saddr {opts.cluster_cidr} goto {cluster_chain}",
                     "short-circuit pod traffic")
            rule(ext_chain, f"fib saddr type local jump {MARK_MASQ}", "masquerade local traffic")
            rule(ext_chain, f"fib saddr type local goto {cluster_chain}",
                 "short-circuit local traffic")
        if has_external:
            rule(ext_chain, f"goto {external_policy_chain}")
    if uses_fw:
        sources = [str(r) for r in ranges]
        node_ip = ipaddress.IPv4Address(cfg.node_ip) if cfg.node_ip else None
        if node_ip is not None and any(node_ip in r for r in ranges):
            sources += lb_ips  # the node reaching its own VIP arrives with the VIP as source
        rule(fw_chain, f"ip saddr != {{ {' , '.join(sources)} }} drop")
    if affinity:
        for ep in reachable:
            ops.append(("add", NftSet(names.AFFINITY + ep_base(ep), ADDR,
                                      flags=("dynamic", "timeout"), timeout=affinity)))
    for chain, chain_eps, used in ((cluster_chain, cluster_eps, uses_cluster_chain),
                                   (local_chain, local_eps, uses_local_chain)):
        if not used:
            continue
        if affinity:
            for ep in chain_eps:
                rule(chain, f"ip saddr @{names.AFFINITY + ep_base(ep)} "
                            f"goto {names.ENDPOINT + ep_base(ep)}")
        targets = " , ".join(f"{i} : goto {names.ENDPOINT + ep_base(ep)}"
                             for i, ep in enumerate(chain_eps))
        rule(chain, f"numgen random mod {len(chain_eps)} vmap {{ {targets} }}")
    for ep in reachable:
        chain = names.ENDPOINT + ep_base(ep)
        rule(chain, f"ip saddr {ep.ip} jump {MARK_MASQ}")  # hairpin
        if affinity:
            rule(chain, f"update @{names.AFFINITY + ep_base(ep)} {{ ip saddr }}")
        rule(chain, f"meta l4proto {proto} dnat to {ep.ip}:{ep.port}")
    return fragment


class NftRenderCache:
    """Rendered fragments of each service port, reused while the service is unchanged: across
    the nodes of one sync (fragments that do not depend on the node are made once) and, in a
    long-lived process, across syncs (like rules.RenderCache for iptables)."""

    def __init__(self) -> None:
        self.entries: dict[tuple, tuple[PlanService, NftFragment]] = {}
        self.used: set[tuple] = set()

    def get(self, key: tuple, svc: PlanService) -> NftFragment | None:
        entry = self.entries.get(key)
        if entry is not None and (entry[0] is svc or entry[0] == svc):
            self.used.add(key)
            return entry[1]
        return None

    def put(self, key: tuple, svc: PlanService, fragment: NftFragment) -> None:
        self.entries[key] = (svc, fragment)
        self.used.add(key)

    def sweep(self) -> None:
        """Forget what the last sync did not use (deleted or changed services)."""
        if len(self.used) != len(self.entries):
            self.entries = {k: v for k, v in self.entries.items() if k in self.used}
        self.used = set()


def render_nft(services: Iterable[PlanService], opts: ProxyOptions,
               service_cidrs: Sequence[str] = (),
               nodeport_ips: Sequence[str] | str | None = None,
               masquerade_all: bool = False,
               cache: NftRenderCache | None = None) -> NftRuleset:
    """A node's kube-proxy nftables ruleset.

    `opts`: the node (name, IPs, the pod CIDR as local-traffic detector, masquerade mark; the
    iptables-only fields are ignored; an empty cluster_cidr means no detector).
    `service_cidrs`: the ServiceCIDRs, for the rule dropping traffic to unallocated ClusterIPs
    (no rule when empty). `nodeport_ips`: the addresses that accept NodePorts; None = the node's
    IPs (kube-proxy's nftables default, --nodeport-addresses=primary), NODEPORTS_ALL = every
    local address (the nodeport-ips set is then deleted and `fib daddr type local` used).
    `masquerade_all`: --masquerade-all."""
    services = sorted((s for s in services
                       if s.cluster_ip not in ("", "None") and ":" not in s.cluster_ip),
                      key=lambda s: s.key)
    node_ips = _v4(opts.node_ips)
    cfg = _Config(opts, node_ips[0] if node_ips else "", masquerade_all)
    common = (opts.cluster_cidr, masquerade_all)
    fragments = []
    for svc in services:
        scope = "" if node_independent(svc) else (opts.node_name, cfg.node_ip)
        for index, port in enumerate(svc.ports):
            key = (svc.key, index, common, scope)
            fragment = cache.get(key, svc) if cache is not None else None
            if fragment is None:
                fragment = render_port(svc, port, cfg)
                if cache is not None:
                    cache.put(key, svc, fragment)
            fragments.append(fragment)
    return NftRuleset(setup_ops(opts, service_cidrs, nodeport_ips), fragments)


# ---- partial syncs ----

@dataclass
class NftChange:
    """One sync's transaction and the service chains it left empty: kube-proxy flushes a
    chain that is no longer used and deletes it in a later sync (more than a second later:
    with kernels before 6.2 a chain just released by a deleted map element cannot be deleted
    at once), in a transaction of its own (`delete_text`)."""

    ops: list[str]
    stale: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(line + "\n" for line in self.ops)

    def delete_text(self, chains: Iterable[str]) -> str:
        return "".join(NftChain(c).write("delete") + "\n" for c in chains)


def sync_ops(before: NftSnapshot | None, after: NftRuleset) -> NftChange:
    """The transaction that makes a node holding `before` hold `after`.

    `before` None (nothing trusted about the kernel's table): the table is replaced whole in
    one atomic transaction (`reload_text`). Otherwise, a partial sync, computed from the parts
    that changed (a part that is the same object, or equal, is skipped): new sets/maps added
    (re-made when their declaration changed); every chain that is new or whose rules differ
    ensured (add+flush) and rewritten; chains no longer wanted flushed (service chains are
    reported stale, for a later `delete_text`); unused sets deleted; elements diffed as
    kube-proxy's nftElementStorage does (missing ones added, changed ones deleted and re-added,
    left-over ones deleted). Nothing changed: no operations."""
    if before is None:
        return NftChange(after.reload_text().splitlines())
    now = after.snapshot()
    old_parts, new_parts = before.parts, now.parts
    changed = [k for k, p in new_parts.items()
               if (q := old_parts.get(k)) is not p and q != p]
    gone = [k for k in old_parts if k not in new_parts]
    if not changed and not gone:
        return NftChange([])
    old = NftSnapshot({k: old_parts[k] for k in changed + gone if k in old_parts})
    new = NftSnapshot({k: new_parts[k] for k in changed})
    if any(kind != "chain" and old.objects.get((kind, name), text) != text
           for (kind, name), text in new.objects.items()):
        old, new = before, now  # a set/map re-made loses every part's elements
    return _diff(old, new)


def _diff(before: NftSnapshot, now: NftSnapshot) -> NftChange:
    out: list[str] = []
    if now.table and now.table != before.table:
        out.append(now.table)
    remade: set[str] = set()
    for (kind, name), text in now.objects.items():  # first: rules and elements use them
        if kind != "chain" and before.objects.get((kind, name)) != text:
            if (kind, name) in before.objects:
                out.append(f"delete {_where(kind, name)}")
                remade.add(name)
            out.append(text)
    old_rules, new_rules = before.rules(), now.rules()
    changed = [name for name, rules in new_rules.items()
               if old_rules.get(name) != rules
               or before.objects.get(("chain", name)) != now.objects[("chain", name)]]
    for name in changed:  # every chain exists before any rule jumps to it
        out += [now.objects[("chain", name)], f"flush {_where('chain', name)}"]
    for name in changed:
        out += [f"add {_where('rule', name)} {rule}" for rule in new_rules[name]]
    stale = [name for name in old_rules if name not in new_rules]
    out += [f"flush {_where('chain', name)}" for name in stale]
    deleted = {name for kind, name in before.objects
               if kind != "chain" and (kind, name) not in now.objects}
    out += [f"delete {_where(kind, name)}" for kind, name in before.objects
            if name in deleted and kind != "chain"]
    for container in dict.fromkeys([*now.elements, *before.elements]):
        if container in deleted:
            continue  # its elements went with it
        elements = now.elements.get(container, {})
        old = {} if container in remade else before.elements.get(container, {})
        for key, value in elements.items():
            if old.get(key) == value:
                continue
            if key in old:
                out.append(f"delete {_where('element', container)} {{ {key} }}")
            out.append(_element_text(container, key, *value))
        out += [f"delete {_where('element', container)} {{ {key} }}"
                for key in old if key not in elements]
    return NftChange(out, [name for name in stale if names.is_service_chain(name)])


def _element_text(container: str, key: str, value: str, comment: str) -> str:
    text = f"add {_where('element', container)} {{ {key}"
    if comment:
        text += f" comment {go_quote(comment)}"
    if value:
        text += f" : {value}"
    return text + " }"
