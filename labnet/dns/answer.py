"""Answer one DNS question from ClusterData, as CoreDNS's kubernetes plugin does (pure).

The decision procedure of reference/cluster-dns.md §10: names outside the cluster zone are
refused (or forwarded, when the lab has an upstream), reverse names of the service and pod
CIDRs get PTRs, the apex and dns-version are special, everything else is parsed right to left
into namespace / service / endpoint or _port._proto, or (pod records, §2.5) dashed IP /
namespace under `pod`, answered per the lab's `pods` mode. A name that does not exist is
NXDOMAIN, a name that exists without the asked type is NODATA; both are authoritative with the
zone's SOA. The question's spelling is echoed in every owner name and in the zone part of
targets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from dnslib import (
    AAAA,
    CNAME,
    NS,
    PTR,
    QTYPE,
    RCODE,
    RR,
    SOA,
    SRV,
    TXT,
    A,
    DNSLabel,
    DNSRecord,
)

from labnet.dns.zone import SCHEMA_VERSION, ClusterData

Forwarder = Callable[[DNSRecord], DNSRecord | None]
NX, EXISTS = "nx", "exists"


@dataclass(frozen=True)
class Item:
    """One thing a name resolves to: an address, a name (CNAME), with an optional port."""

    host: str  # an IP, or (ExternalName) a DNS name
    port: int | None
    target: list[str]  # the owner name of the SRV target, as labels (lower case k8s parts)
    cname: bool = False


def labels_of(name: DNSLabel) -> list[str]:
    return [x.decode("latin-1") for x in name.label]


def in_zone(labels: list[str], zone: list[str]) -> bool:
    return len(labels) >= len(zone) and [x.lower() for x in labels[-len(zone):]] == zone


def soa_rr(data: ClusterData, owner: list[str]) -> RR:
    zone = ".".join(owner)
    return RR(zone + ".", QTYPE.SOA, ttl=min(data.ttl, 300), rdata=SOA(
        f"ns.dns.{zone}.", f"hostmaster.{zone}.",
        (data.serial, 7200, 1800, 86400, data.ttl)))


def lookup(data: ClusterData, base: list[str]) -> str | list[Item]:
    """Labels left of the zone (lower case) -> NX, EXISTS (no records) or items."""
    if base in ([], ["svc"], ["pod"]):
        return EXISTS
    if base[-1] not in ("svc", "pod"):
        return NX
    if len(base) == 2:  # <ns>.svc, <ns>.pod: an empty non-terminal if the namespace exists
        pods_off = base[1] == "pod" and data.pod_mode == "disabled"
        return EXISTS if base[0] in data.namespaces and not pods_off else NX
    if base[-1] == "pod":
        return lookup_pod(data, base)
    namespace, name, rest = base[-2], base[-3], base[:-3]
    if namespace not in data.namespaces or len(rest) > 2:
        return NX
    svc = data.services.get((namespace, name))
    if svc is None:
        return NX
    fqdn = [name, namespace, "svc"]
    endpoint = rest[0] if len(rest) == 1 else None
    port = proto = None
    if len(rest) == 2:
        port, proto = rest[0], rest[1]
        if not (port.startswith("_") and proto.startswith("_")):
            return NX
        port, proto = port[1:], proto[1:]
    if svc.kind == "ExternalName":
        if rest:
            return NX
        return [Item(svc.external_name, None, fqdn, cname=True)]
    items: list[Item] = []
    if svc.headless or endpoint is not None:
        for ep in svc.endpoints:
            if endpoint is not None and ep.hostname != endpoint:
                continue
            for p in ep.ports if port is not None else ep.ports or [None]:
                if p is not None and port is not None and (p.name != port or p.protocol != proto):
                    continue
                items.append(Item(ep.ip, p.port if p else None, [ep.hostname, *fqdn]))
    else:
        for p in svc.ports:
            if port is not None and (p.name != port or p.protocol != proto):
                continue
            items.append(Item(svc.cluster_ip, p.port, fqdn))
        if port is None and not svc.ports:
            items.append(Item(svc.cluster_ip, None, fqdn))
    return items or NX


POD_LABEL = frozenset("0123456789abcdef-")


def pod_address(label: str) -> tuple[str, str | None]:
    """A pod name's label read as CoreDNS reads it (kubernetes.go findPods): exactly three
    dashes and no `--` is IPv4 (dashes -> dots), anything else IPv6 (dashes -> colons). Returns
    that text (what `pods verified` compares with pod IPs) and the address it parses as, in
    canonical form (None: not an IP). Parsing is Go's net.ParseIP: IPv4 without leading zeros
    (`010-0-0-1` is no address), IPv6 without a zone; an IPv4-mapped IPv6 address is the IPv4
    address (Go's To4). Only hex digits and dashes can spell one."""
    if label.count("-") == 3 and "--" not in label:
        text = label.replace("-", ".")
    else:
        text = label.replace("-", ":")
    if not label or not set(label) <= POD_LABEL:
        return text, None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text, None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return text, str(address)


def lookup_pod(data: ClusterData, base: list[str]) -> str | list[Item]:
    """`<dashed-ip>.<ns>.pod` (reference §2.5; CoreDNS findPods). disabled: NX. insecure: the
    address the label spells, if the namespace exists. verified: only if a pod of that
    namespace has that IP. CoreDNS parses the one or two labels left of the dashed IP as an
    endpoint or _port._proto and findPods ignores them: they answer the same; more is NX."""
    if data.pod_mode == "disabled" or len(base) > 5:
        return NX
    label, namespace = base[-3], base[-2]
    if namespace not in data.namespaces:
        return NX
    text, address = pod_address(label)
    if data.pod_mode == "verified":
        if (namespace, text) not in data.pods:  # CoreDNS compares the text with pod IPs
            return NX
        address = text
    elif address is None:
        return NX
    # no port: an SRV question gets port 0 and this name as target, as CoreDNS answers it
    return [Item(address, 0, [label, namespace, "pod"])]


def answer(query: DNSRecord, data: ClusterData, forward: Forwarder | None = None) -> DNSRecord:
    reply = DNSRecord(header=query.header.__class__(id=query.header.id, qr=1, aa=1, ra=0,
                                                    rd=query.header.rd, opcode=query.header.opcode),
                      q=query.q)
    if query.header.opcode != 0:
        reply.header.rcode = RCODE.NOTIMP
        return reply
    if len(query.questions) != 1:
        reply.header.rcode = RCODE.FORMERR
        return reply
    q = query.q
    labels = labels_of(q.qname)
    zone = data.domain.split(".")
    if q.qclass not in (1, 255):  # IN (or ANY)
        reply.header.rcode = RCODE.REFUSED
        return reply
    if q.qtype in (QTYPE.AXFR, QTYPE.IXFR):
        reply.header.rcode = RCODE.REFUSED
        return reply
    if not in_zone(labels, zone):
        if reverse_name(labels) is not None:
            return answer_reverse(reply, labels, data, forward, query)
        return outside(reply, query, forward)
    zone_spelt = labels[-len(zone):]
    base = [x.lower() for x in labels[:-len(zone)]]
    qname = ".".join(labels) + "."
    if base == []:
        if q.qtype == QTYPE.SOA:
            reply.add_answer(soa_rr(data, zone_spelt))
        elif q.qtype == QTYPE.NS:
            target = f"kube-dns.kube-system.svc.{'.'.join(zone_spelt)}."
            reply.add_answer(RR(qname, QTYPE.NS, ttl=data.ttl, rdata=NS(target)))
            reply.add_ar(RR(target, QTYPE.A, ttl=data.ttl, rdata=A(data.dns_ip)))
        else:
            reply.add_auth(soa_rr(data, zone_spelt))
        return reply
    if base == ["dns-version"]:
        if q.qtype == QTYPE.TXT:
            reply.add_answer(RR(qname, QTYPE.TXT, ttl=28800, rdata=TXT(SCHEMA_VERSION)))
        else:  # CoreDNS: the parser rejects the label for other types
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(soa_rr(data, zone_spelt))
        return reply
    found = lookup(data, base)
    if isinstance(found, str):  # NX or EXISTS
        if found == NX:
            reply.header.rcode = RCODE.NXDOMAIN
        reply.add_auth(soa_rr(data, zone_spelt))
        return reply
    zone_text = ".".join(zone_spelt)
    added = 0
    if q.qtype in (QTYPE.A, QTYPE.ANY):
        added += add_addresses(reply, qname, found, data, forward, query)
    elif q.qtype == QTYPE.AAAA:  # only a pod name can spell an IPv6 address
        added += add_addresses6(reply, qname, found, data)
    elif q.qtype == QTYPE.SRV:
        added += add_srv(reply, qname, found, data, zone_text)
    elif q.qtype == QTYPE.CNAME:
        for item in found:
            if item.cname:
                reply.add_answer(RR(qname, QTYPE.CNAME, ttl=data.ttl,
                                    rdata=CNAME(item.host + ".")))
                added += 1
    if not added:
        reply.add_auth(soa_rr(data, zone_spelt))
    return reply


def add_addresses(reply: DNSRecord, qname: str, items: list[Item], data: ClusterData,
                  forward: Forwarder | None, query: DNSRecord) -> int:
    added = 0
    seen = set()
    for item in items:
        if item.cname:
            cname = RR(qname, QTYPE.CNAME, ttl=data.ttl, rdata=CNAME(item.host + "."))
            chased = chase(item.host, data, forward, query)
            if chased is None:  # in-zone target that resolves to nothing: CoreDNS drops it
                continue
            reply.add_answer(cname)
            for rr in chased:
                reply.add_answer(rr)
            added += 1
            continue
        if item.host in seen:
            continue
        seen.add(item.host)
        try:
            ipaddress.IPv4Address(item.host)
        except ValueError:
            continue
        reply.add_answer(RR(qname, QTYPE.A, ttl=data.ttl, rdata=A(item.host)))
        added += 1
    return added


def add_addresses6(reply: DNSRecord, qname: str, items: list[Item], data: ClusterData) -> int:
    hosts = dict.fromkeys(i.host for i in items if not i.cname and ":" in i.host)
    for host in hosts:
        reply.add_answer(RR(qname, QTYPE.AAAA, ttl=data.ttl, rdata=AAAA(host)))
    return len(hosts)


def chase(target: str, data: ClusterData, forward: Forwarder | None,
          query: DNSRecord) -> list[RR] | None:
    """An ExternalName's target: resolved here when in the zone, else asked upstream."""
    labels = target.split(".")
    zone = data.domain.split(".")
    if in_zone(labels, zone):
        found = lookup(data, [x.lower() for x in labels[:-len(zone)]])
        if not isinstance(found, list):
            return None
        hosts = dict.fromkeys(i.host for i in found if not i.cname)  # one per address
        return [RR(target + ".", QTYPE.A, ttl=data.ttl, rdata=A(host)) for host in hosts]
    if forward is None:
        return []
    upstream = forward(DNSRecord.question(target, "A"))
    return list(upstream.rr) if upstream is not None else []


def add_srv(reply: DNSRecord, qname: str, items: list[Item], data: ClusterData,
            zone_text: str) -> int:
    ports = [i for i in items if i.port is not None and not i.cname]
    if not ports:
        return 0
    weight = max(1, 100 // len(ports))  # CoreDNS counts before removing duplicates
    done, glue = set(), set()
    for item in ports:
        target = ".".join(item.target) + f".{zone_text}."
        if (target, item.port) in done:
            continue
        done.add((target, item.port))
        reply.add_answer(RR(qname, QTYPE.SRV, ttl=data.ttl,
                            rdata=SRV(priority=0, weight=weight, port=item.port, target=target)))
        if (target, item.host) not in glue:
            glue.add((target, item.host))
            if ":" in item.host:
                reply.add_ar(RR(target, QTYPE.AAAA, ttl=data.ttl, rdata=AAAA(item.host)))
            else:
                reply.add_ar(RR(target, QTYPE.A, ttl=data.ttl, rdata=A(item.host)))
    return len(done)


def reverse_name(labels: list[str]) -> str | None:
    """The IPv4 address of an in-addr.arpa name with four octets, else None."""
    lower = [x.lower() for x in labels]
    if lower[-2:] != ["in-addr", "arpa"] or len(lower) != 6:
        return None
    try:
        return str(ipaddress.IPv4Address(".".join(reversed(lower[:4]))))
    except ValueError:
        return None


def answer_reverse(reply: DNSRecord, labels: list[str], data: ClusterData,
                   forward: Forwarder | None, query: DNSRecord) -> DNSRecord:
    ip = reverse_name(labels)
    address = ipaddress.IPv4Address(ip)
    network = next((n for n in data.reverse_networks if address in n), None)
    if network is None:
        return outside(reply, query, forward)
    qname = ".".join(labels) + "."
    names = data.ptr.get(ip, [])
    if query.q.qtype in (QTYPE.PTR, QTYPE.ANY):
        for name in names:
            reply.add_answer(RR(qname, QTYPE.PTR, ttl=data.ttl, rdata=PTR(name + ".")))
    if not reply.rr:
        if not names:
            reply.header.rcode = RCODE.NXDOMAIN
        octets = network.network_address.exploded.split(".")[: network.prefixlen // 8]
        reply.add_auth(soa_rr(data, [*reversed(octets), "in-addr", "arpa"]))
    return reply


def outside(reply: DNSRecord, query: DNSRecord, forward: Forwarder | None) -> DNSRecord:
    """Not the cluster's name: forwarded when the lab has an upstream, else refused at once
    (the lab is sealed: nothing else would answer)."""
    if forward is not None:
        upstream = forward(query)
        if upstream is not None:
            upstream.header.id = query.header.id
            return upstream
        reply.header.rcode = RCODE.SERVFAIL
        reply.header.aa = 0
        return reply
    reply.header.rcode = RCODE.REFUSED
    reply.header.aa = 0
    return reply
