"""Render a node's kube-proxy ruleset (filter and nat tables) from the plan's services.

The layout follows proxier.go's syncProxyRules: the same chains, jump order, comments,
probabilities and masquerade mark, for the same objects. Rules are data (`Rule`: a chain and the
argv kube-proxy writes after `-A CHAIN`), so the text and the kernel install share one source.

Output order is canonical and deterministic (the order kube-proxy's own tests compare in):
KUBE-NODEPORTS, KUBE-SERVICES, then the other chains by name; KUBE-SERVICES and KUBE-NODEPORTS
rules sorted by service, the "must be the last rule" rule last. (Real kube-proxy visits
services in Go map order, so its raw text has services in no particular order.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from labnet.kubeproxy import chains as names
from labnet.plan import PlanEndpoint, PlanService
from labnet.producers import KUBE_PROXY

MARK_MASQ = "KUBE-MARK-MASQ"
# chains that gather rules of many services (and kube-proxy's own); all others belong to one
# service port: KUBE-SVC-/SVL-/EXT-/FW-/SEP-
SHARED_CHAINS = KUBE_PROXY.chains
LARGE_CLUSTER_ENDPOINTS = 1000
NODEPORTS_LAST = ("kubernetes service nodeports; NOTE: this must be the last rule in this chain")


@dataclass(frozen=True)
class ProxyOptions:
    node_name: str
    node_ips: tuple[str, ...]
    cluster_cidr: str  # the local-traffic detector: pods are -s cluster_cidr
    masquerade_mark: str = "0x4000"
    localhost_nodeports: bool = True
    nfacct: bool = False  # kube-proxy adds nfacct matches only where the counters exist
    random_fully: bool = False
    conntrack_liberal: bool = False


@dataclass(frozen=True)
class Rule:
    chain: str
    args: tuple[str, ...]

    def text(self) -> str:
        text = self.__dict__.get("_text")
        if text is None:  # cached: a sync renders, records and diffs the same rules
            text = " ".join(["-A", self.chain, *(quote(a) for a in self.args)])
            object.__setattr__(self, "_text", text)
        return text


def quote(arg: str) -> str:
    return f'"{arg}"' if (" " in arg or not arg) else arg


@dataclass
class Table:
    name: str
    chains: dict[str, None] = field(default_factory=dict)  # an ordered set
    rules: list[Rule] = field(default_factory=list)

    def declare(self, chain: str) -> None:
        self.chains.setdefault(chain, None)

    def add(self, chain: str, *args: str) -> None:
        self.declare(chain)
        self.rules.append(Rule(chain, tuple(args)))

    def merge(self, other: Table) -> None:
        self.chains.update(other.chains)
        self.rules.extend(other.rules)

    @staticmethod
    def chain_rules_of(chains: dict[str, list[Rule]]) -> dict[str, list[Rule]]:
        """Chains in canonical order, KUBE-SERVICES and KUBE-NODEPORTS sorted by service."""
        result = {chain: chains[chain] for chain in sorted(chains, key=chain_order)}
        for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS"):
            if chain in result:
                result[chain] = sorted(result[chain], key=service_order)
        return result

    def chain_rules(self) -> dict[str, list[Rule]]:
        """Every declared chain in canonical order with its rules in canonical order (computed
        once: the table is complete when anyone asks)."""
        cached = self.__dict__.get("_ordered")
        if cached is not None and cached[0] == len(self.rules):
            return cached[1]
        grouped: dict[str, list[Rule]] = {chain: [] for chain in self.chains}
        for rule in self.rules:
            grouped[rule.chain].append(rule)
        result = self.chain_rules_of(grouped)
        self.__dict__["_ordered"] = (len(self.rules), result)
        return result


def chain_order(chain: str) -> tuple[int, str]:
    fixed = {"KUBE-NODEPORTS": 0, "KUBE-SERVICES": 1}
    return (fixed.get(chain, 2 if chain.startswith("KUBE-") else 3), chain)


def service_order(rule: Rule) -> tuple[int, str]:
    comment = rule.args[2] if rule.args[:2] == ("-m", "comment") else ""
    if comment == NODEPORTS_LAST:
        return (1, "")
    return (0, comment.split(" ")[0].split(":")[0])


BUILTIN_ORDER = {"filter": ("INPUT", "FORWARD", "OUTPUT"),
                 "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")}

# kube-proxy's jumps from the built-in chains, in the order it ensures (prepends) them.
JUMPS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("filter", "INPUT", "KUBE-EXTERNAL-SERVICES", "kubernetes externally-visible service portals",
     ("-m", "conntrack", "--ctstate", "NEW")),
    ("filter", "FORWARD", "KUBE-EXTERNAL-SERVICES",
     "kubernetes externally-visible service portals", ("-m", "conntrack", "--ctstate", "NEW")),
    ("filter", "INPUT", "KUBE-NODEPORTS", "kubernetes health check service ports", ()),
    ("filter", "FORWARD", "KUBE-SERVICES", "kubernetes service portals",
     ("-m", "conntrack", "--ctstate", "NEW")),
    ("filter", "OUTPUT", "KUBE-SERVICES", "kubernetes service portals",
     ("-m", "conntrack", "--ctstate", "NEW")),
    ("filter", "FORWARD", "KUBE-FORWARD", "kubernetes forwarding rules", ()),
    ("filter", "INPUT", "KUBE-PROXY-FIREWALL", "kubernetes load balancer firewall",
     ("-m", "conntrack", "--ctstate", "NEW")),
    ("filter", "OUTPUT", "KUBE-PROXY-FIREWALL", "kubernetes load balancer firewall",
     ("-m", "conntrack", "--ctstate", "NEW")),
    ("filter", "FORWARD", "KUBE-PROXY-FIREWALL", "kubernetes load balancer firewall",
     ("-m", "conntrack", "--ctstate", "NEW")),
    ("nat", "OUTPUT", "KUBE-SERVICES", "kubernetes service portals", ()),
    ("nat", "PREROUTING", "KUBE-SERVICES", "kubernetes service portals", ()),
    ("nat", "POSTROUTING", "KUBE-POSTROUTING", "kubernetes postrouting rules", ()),
    ("filter", "INPUT", "KUBE-FIREWALL", "", ()),  # kubelet's chain, duplicated by kube-proxy
    ("filter", "OUTPUT", "KUBE-FIREWALL", "", ()),
)


def jump_rules() -> list[tuple[str, Rule]]:
    """(table, rule) in the order they must be prepended."""
    result = []
    for table, src, dst, comment, extra in JUMPS:
        args = [*extra]
        if comment:
            args += ["-m", "comment", "--comment", comment]
        result.append((table, Rule(src, (*args, "-j", dst))))
    return result


def jump_rules_in_place() -> dict[str, dict[str, list[Rule]]]:
    """The jumps as they stand in each built-in chain once all are prepended."""
    result: dict[str, dict[str, list[Rule]]] = {}
    for table, rule in jump_rules():
        result.setdefault(table, {}).setdefault(rule.chain, []).insert(0, rule)
    return result


@dataclass
class Ruleset:
    filter: Table
    nat: Table
    # the (filter, nat) rules of each service port, as rendered or reused from a RenderCache
    fragments: list[tuple[Table, Table]] = field(default_factory=list)

    def tables(self) -> list[Table]:
        return [self.filter, self.nat]

    def sync_text(self) -> str:
        """What kube-proxy writes with iptables-restore --noflush on a sync (canonical order)."""
        return self._text(with_jumps=False)

    def restore_text(self) -> str:
        """The same plus the jumps from the built-in chains: loads into an empty netns."""
        return self._text(with_jumps=True)

    def _text(self, with_jumps: bool) -> str:
        jumps = jump_rules_in_place() if with_jumps else {}
        out = []
        for table in self.tables():
            out.append(f"*{table.name}")
            ordered = table.chain_rules()
            out += [f":{chain} - [0:0]" for chain in ordered]
            for chain in BUILTIN_ORDER[table.name]:
                out += [r.text() for r in jumps.get(table.name, {}).get(chain, [])]
            for rules in ordered.values():
                out += [r.text() for r in rules]
            out.append("COMMIT")
        return "\n".join(out) + "\n"

    def chains(self) -> dict[str, dict[str, list[str]]]:
        """{table: {chain: [rule text, …]}}: the form the installer diffs against (computed
        once)."""
        if "_chains" not in self.__dict__:
            self.__dict__["_chains"] = {
                t.name: {c: [r.text() for r in rules] for c, rules in t.chain_rules().items()}
                for t in self.tables()}
        return self.__dict__["_chains"]


def probability(n: int) -> str:
    """kube-proxy's computeProbability: fmt.Sprintf("%0.10f", 1.0/float64(n))."""
    return f"{1.0 / n:.10f}"


def node_independent(svc: PlanService) -> bool:
    """Rules that do not depend on which node renders them: no Local traffic policy (local
    endpoints) and no source ranges (whose FW rules look at the node's IPs)."""
    return not (svc.internal_traffic_local or svc.external_traffic_local
                or svc.load_balancer_source_ranges)


class RenderCache:
    """Rendered rules of each service port, reused while the service is unchanged: across the
    nodes of one sync (rules that do not depend on the node are made once, text included) and,
    in a long-lived process, across syncs (a resync renders only what changed)."""

    def __init__(self) -> None:
        self.entries: dict[tuple, tuple[PlanService, Table, Table]] = {}
        self.used: set[tuple] = set()

    def get(self, key: tuple, svc: PlanService) -> tuple[Table, Table] | None:
        entry = self.entries.get(key)
        if entry is not None and entry[0] == svc:
            self.used.add(key)
            return entry[1], entry[2]
        return None

    def put(self, key: tuple, svc: PlanService, filt: Table, nat: Table) -> None:
        self.entries[key] = (svc, filt, nat)
        self.used.add(key)

    def sweep(self) -> None:
        """Forget what the last sync did not use (deleted or changed services)."""
        self.entries = {k: v for k, v in self.entries.items() if k in self.used}
        self.used = set()


def render_nodes(services: Iterable[PlanService], nodes: list[ProxyOptions],
                 cache: RenderCache | None = None) -> list[Ruleset]:
    """Every node's ruleset, sharing what is the same on every node (most of it)."""
    services = list(services)
    cache = cache if cache is not None else RenderCache()
    result = [render(services, opts, cache) for opts in nodes]
    cache.sweep()
    return result


def render(services: Iterable[PlanService], opts: ProxyOptions,
           cache: RenderCache | None = None) -> Ruleset:
    services = sorted((s for s in services if s.cluster_ip not in ("", "None")),
                      key=lambda s: s.key)
    filt = Table("filter")
    nat = Table("nat")
    for chain in ("KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD",
                  "KUBE-PROXY-FIREWALL"):
        filt.declare(chain)
    for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", MARK_MASQ):
        nat.declare(chain)
    mark = opts.masquerade_mark
    masquerade = ["-m", "comment", "--comment", "kubernetes service traffic requiring SNAT", "-j",
                  "MASQUERADE"] + (["--random-fully"] if opts.random_fully else [])
    nat.add("KUBE-POSTROUTING", "-m", "mark", "!", "--mark", f"{mark}/{mark}", "-j", "RETURN")
    nat.add("KUBE-POSTROUTING", "-j", "MARK", "--xor-mark", mark)
    nat.add("KUBE-POSTROUTING", *masquerade)
    nat.add(MARK_MASQ, "-j", "MARK", "--or-mark", mark)
    if opts.localhost_nodeports:
        filt.add("KUBE-FIREWALL", "-m", "comment", "--comment",
                 "block incoming localnet connections", "-d", "127.0.0.0/8", "!", "-s",
                 "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT",
                 "-j", "DROP")
    total = sum(len(p.endpoints) for s in services for p in s.ports)
    large = total > LARGE_CLUSTER_ENDPOINTS
    common = (opts.cluster_cidr, opts.masquerade_mark, opts.localhost_nodeports, opts.nfacct,
              large)
    fragments: list[tuple[Table, Table]] = []
    for svc in services:
        scope = "" if node_independent(svc) else (opts.node_name, opts.node_ips)
        for index, port in enumerate(svc.ports):
            key = (svc.key, index, common, scope)
            parts = cache.get(key, svc) if cache is not None else None
            if parts is None:
                parts = Table("filter"), Table("nat")
                render_port(svc, port, opts, parts[0], parts[1], large)
                if cache is not None:
                    cache.put(key, svc, *parts)
            filt.merge(parts[0])
            nat.merge(parts[1])
            fragments.append(parts)
    if not opts.conntrack_liberal:
        invalid = ["-m", "conntrack", "--ctstate", "INVALID"]
        if opts.nfacct:
            invalid += ["-m", "nfacct", "--nfacct-name", "ct_state_invalid_dropped_pkts"]
        filt.add("KUBE-FORWARD", *invalid, "-j", "DROP")
    filt.add("KUBE-FORWARD", "-m", "comment", "--comment", "kubernetes forwarding rules", "-m",
             "mark", "--mark", f"{mark}/{mark}", "-j", "ACCEPT")
    filt.add("KUBE-FORWARD", "-m", "comment", "--comment", "kubernetes forwarding conntrack rule",
             "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
    last = ["-m", "comment", "--comment", NODEPORTS_LAST, "-m", "addrtype", "--dst-type", "LOCAL"]
    if not opts.localhost_nodeports:
        last += ["!", "-d", "127.0.0.0/8"]
    nat.add("KUBE-SERVICES", *last, "-j", "KUBE-NODEPORTS")
    return Ruleset(filt, nat, fragments)


def render_port(svc: PlanService, port, opts: ProxyOptions, filt: Table, nat: Table,
                large: bool) -> None:
    spn = names.service_port_name(svc.namespace, svc.name, port.name)
    p = port.protocol.lower()
    proto = ("-m", p, "-p", p)
    svc_chain = names.svc_chain(spn, p)
    svl_chain = names.svl_chain(spn, p)
    ext_chain = names.ext_chain(spn, p)
    fw_chain = names.fw_chain(spn, p)
    eps = port.endpoints
    local = [e for e in eps if e.node == opts.node_name]
    cluster_eps = [e for e in eps if e.ready] or [e for e in eps if e.serving and e.terminating]
    local_eps = [e for e in local if e.ready] or [e for e in local if e.serving and e.terminating]
    has_endpoints = any(e.ready or (e.serving and e.terminating) for e in eps)
    external = bool(port.node_port or svc.load_balancer_ips or svc.external_ips)
    itp_local, etp_local = svc.internal_traffic_local, svc.external_traffic_local
    uses_cluster = bool(cluster_eps) and (not itp_local or external)
    uses_local = bool(local_eps) and (itp_local or (etp_local and external))
    internal_chain = svl_chain if itp_local else svc_chain
    external_chain = svl_chain if etp_local else svc_chain
    has_internal = has_endpoints and (not itp_local or bool(local_eps))
    has_external = has_endpoints and (not etp_local or bool(local_eps))
    uses_ext = has_endpoints and external
    uses_fw = has_endpoints and bool(svc.load_balancer_ips) and bool(
        svc.load_balancer_source_ranges)
    lb_chain = fw_chain if uses_fw else ext_chain
    internal_filter = ("DROP", "has no local endpoints") if has_endpoints and itp_local else (
        "REJECT", "has no endpoints")
    external_filter = ("DROP", "has no local endpoints") if has_endpoints and etp_local else (
        "REJECT", "has no endpoints")

    def comment(text: str) -> tuple[str, ...]:
        return ("-m", "comment", "--comment", text)

    vip = ("-d", svc.cluster_ip, "--dport", str(port.port))
    # 1. the ClusterIP
    if has_internal:
        nat.add("KUBE-SERVICES", *comment(f"{spn} cluster IP"), *proto, *vip, "-j",
                internal_chain)
    else:
        target, why = internal_filter
        filt.add("KUBE-SERVICES", *comment(f"{spn} {why}"), *proto, *vip, "-j", target)
    # 2. external IPs
    for ip in svc.external_ips:
        dst = ("-d", ip, "--dport", str(port.port))
        if has_endpoints:
            nat.add("KUBE-SERVICES", *comment(f"{spn} external IP"), *proto, *dst, "-j",
                    ext_chain)
        if not has_external:
            target, why = external_filter
            filt.add("KUBE-EXTERNAL-SERVICES", *comment(f"{spn} {why}"), *proto, *dst, "-j",
                     target)
    # 3. LoadBalancer ingress IPs
    for ip in svc.load_balancer_ips:
        dst = ("-d", ip, "--dport", str(port.port))
        if has_endpoints:
            nat.add("KUBE-SERVICES", *comment(f"{spn} loadbalancer IP"), *proto, *dst, "-j",
                    lb_chain)
        if uses_fw:
            filt.add("KUBE-PROXY-FIREWALL", *comment(f"{spn} traffic not accepted by {fw_chain}"),
                     *proto, *dst, "-j", "DROP")
    if not has_external:
        target, why = external_filter
        for ip in svc.load_balancer_ips:
            filt.add("KUBE-EXTERNAL-SERVICES", *comment(f"{spn} {why}"), *proto, "-d", ip,
                     "--dport", str(port.port), "-j", target)
    # 4. the NodePort
    if port.node_port:
        np = str(port.node_port)
        if has_endpoints:
            if opts.localhost_nodeports and opts.nfacct:
                nat.add("KUBE-NODEPORTS", *comment(spn), *proto, "-d", "127.0.0.0/8", "--dport",
                        np, "-m", "nfacct", "--nfacct-name", "localhost_nps_accepted_pkts",
                        "-j", ext_chain)
            nat.add("KUBE-NODEPORTS", *comment(spn), *proto, "--dport", np, "-j", ext_chain)
        if not has_external:
            target, why = external_filter
            filt.add("KUBE-EXTERNAL-SERVICES", *comment(f"{spn} {why}"), "-m", "addrtype",
                     "--dst-type", "LOCAL", *proto, "--dport", np, "-j", target)
    # 5. the health check NodePort (externalTrafficPolicy Local only)
    if svc.health_check_node_port and etp_local:
        filt.add("KUBE-NODEPORTS", *comment(f"{spn} health check node port"), "-m", "tcp", "-p",
                 "tcp", "--dport", str(svc.health_check_node_port), "-j", "ACCEPT")
    if not has_endpoints:
        return
    # traffic to the ClusterIP from outside the cluster CIDR is masqueraded
    if has_internal:
        nat.add(internal_chain, *comment(f"{spn} cluster IP"), *proto, *vip, "!", "-s",
                opts.cluster_cidr, "-j", MARK_MASQ)
    if uses_ext:
        if not etp_local:
            nat.add(ext_chain, *comment(f"masquerade traffic for {spn} external destinations"),
                    "-j", MARK_MASQ)
        else:
            nat.add(ext_chain, *comment(f"pod traffic for {spn} external destinations"), "-s",
                    opts.cluster_cidr, "-j", svc_chain)
            nat.add(ext_chain,
                    *comment(f"masquerade LOCAL traffic for {spn} external destinations"),
                    "-m", "addrtype", "--src-type", "LOCAL", "-j", MARK_MASQ)
            nat.add(ext_chain, *comment(f"route LOCAL traffic for {spn} external destinations"),
                    "-m", "addrtype", "--src-type", "LOCAL", "-j", svc_chain)
        if has_external:
            nat.add(ext_chain, "-j", external_chain)
    if uses_fw:
        for cidr in svc.load_balancer_source_ranges:
            nat.add(fw_chain, *comment(f"{spn} loadbalancer IP"), "-s", cidr, "-j", ext_chain)
        ranges = [ipaddress.IPv4Network(c) for c in svc.load_balancer_source_ranges]
        if any(ipaddress.IPv4Address(ip) in r for ip in opts.node_ips for r in ranges):
            for ip in svc.load_balancer_ips:
                nat.add(fw_chain, *comment(f"{spn} loadbalancer IP"), "-s", ip, "-j", ext_chain)
        nat.add(fw_chain, *comment(f"other traffic to {spn} will be dropped by "
                                   "KUBE-PROXY-FIREWALL"))
    reachable: dict[str, PlanEndpoint] = {}
    for chain, chain_eps, used in ((svc_chain, cluster_eps, uses_cluster),
                                   (svl_chain, local_eps, uses_local)):
        if used:
            to_endpoints(nat, chain, spn, p, chain_eps, svc.session_affinity_timeout, large)
            reachable.update((e.address, e) for e in chain_eps)
    for ep in reachable.values():
        sep = names.sep_chain(spn, p, ep.ip, ep.port)
        tag = () if large else comment(spn)
        nat.add(sep, *tag, "-s", ep.ip, "-j", MARK_MASQ)
        affinity = ("-m", "recent", "--name", sep, "--set") if svc.session_affinity_timeout else ()
        nat.add(sep, *tag, *affinity, *proto, "-j", "DNAT", "--to-destination",
                names.join_host_port(ep.ip, ep.port))


def to_endpoints(nat: Table, chain: str, spn: str, p: str, eps: list[PlanEndpoint],
                 affinity: int, large: bool) -> None:
    """The SVC/SVL chain's jumps: affinity checks first, then random choice, the last
    endpoint taking what is left (kube-proxy's writeServiceToEndpointRules)."""
    eps = sorted(eps, key=lambda e: e.address)

    def tag(ep: PlanEndpoint) -> tuple[str, ...]:
        return () if large else ("-m", "comment", "--comment", f"{spn} -> {ep.address}")

    if affinity:
        for ep in eps:
            sep = names.sep_chain(spn, p, ep.ip, ep.port)
            nat.add(chain, *tag(ep), "-m", "recent", "--name", sep, "--rcheck", "--seconds",
                    str(affinity), "--reap", "-j", sep)
    n = len(eps)
    for i, ep in enumerate(eps):
        sep = names.sep_chain(spn, p, ep.ip, ep.port)
        chance = ("-m", "statistic", "--mode", "random", "--probability",
                  probability(n - i)) if i < n - 1 else ()
        nat.add(chain, *tag(ep), *chance, "-j", sep)
