"""The lab's DNS zone as a zone file (`labnet render --dns`): every record the server answers
for, in one deterministic order."""

from __future__ import annotations

from labnet.dns.zone import SCHEMA_VERSION, ClusterData


def zone_file(data: ClusterData) -> str:
    zone = data.domain
    ttl = data.ttl
    lines = [f"$ORIGIN {zone}.", f"$TTL {ttl}",
             f"{zone}. {min(ttl, 300)} IN SOA ns.dns.{zone}. hostmaster.{zone}. "
             f"{data.serial} 7200 1800 86400 {ttl}",
             f"{zone}. {ttl} IN NS kube-dns.kube-system.svc.{zone}.",
             f"dns-version.{zone}. 28800 IN TXT \"{SCHEMA_VERSION}\""]
    for (namespace, name), svc in sorted(data.services.items()):
        fqdn = f"{name}.{namespace}.svc.{zone}."
        lines.append(f"; Service {namespace}/{name} ({svc.kind}"
                     + (", headless" if svc.headless else "") + ")")
        if svc.kind == "ExternalName":
            lines.append(f"{fqdn} {ttl} IN CNAME {svc.external_name}.")
            continue
        if not svc.headless:
            lines.append(f"{fqdn} {ttl} IN A {svc.cluster_ip}")
        for ep in svc.endpoints:
            if svc.headless:
                lines.append(f"{fqdn} {ttl} IN A {ep.ip}")
            lines.append(f"{ep.hostname}.{fqdn} {ttl} IN A {ep.ip}")
        named = [p for p in svc.ports if p.name]
        for port in named:
            owner = f"_{port.name}._{port.protocol}.{fqdn}"
            if svc.headless:
                targets = [(f"{ep.hostname}.{fqdn}", p.port) for ep in svc.endpoints
                           for p in ep.ports if p.name == port.name]
            else:
                targets = [(fqdn, port.port)]
            weight = max(1, 100 // max(1, len(targets)))
            lines += [f"{owner} {ttl} IN SRV 0 {weight} {p} {target}" for target, p in targets]
    lines.append("; reverse (PTR)")
    for ip, names in sorted(data.ptr.items(), key=lambda kv: tuple(map(int, kv[0].split(".")))):
        rev = ".".join(reversed(ip.split("."))) + ".in-addr.arpa."
        lines += [f"{rev} {ttl} IN PTR {name}." for name in names]
    return "\n".join(lines) + "\n"
