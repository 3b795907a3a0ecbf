"""The lab's DNS zone as a zone file (`labnet render --dns`): every record the server answers
for, in one deterministic order. Pod records (`pods insecure|verified`) are listed for the
lab's pods; a comment says what the mode answers beyond them."""

from __future__ import annotations

from labnet.dns.zone import SCHEMA_VERSION, ClusterData, dashed

POD_MODES = {
    "insecure": "any <a>-<b>-<c>-<d>.<ns>.pod.{zone} under an existing namespace answers "
                "that IP, pod or not; listed: the lab's pods",
    "verified": "<a>-<b>-<c>-<d>.<ns>.pod.{zone} answers only when a pod of <ns> has that IP; "
                "listed: every one",
    "disabled": "no pod records: <a>-<b>-<c>-<d>.<ns>.pod.{zone} and <ns>.pod.{zone} are "
                "NXDOMAIN",
}


def zone_file(data: ClusterData) -> str:
    zone = data.domain
    ttl = data.ttl
    lines = [] if data.served else [
        "; dns.enabled is false: labnet serves no cluster DNS in this lab (a DNS server of your",
        "; own may, behind a Service at the cluster DNS address); the built-in one would answer:"]
    lines += [f"$ORIGIN {zone}.", f"$TTL {ttl}",
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
    lines.append(f"; pods {data.pod_mode}: " + POD_MODES[data.pod_mode].format(zone=zone))
    if data.pod_mode != "disabled":
        for namespace, ip in sorted(data.pods, key=lambda p: (p[0], _ip_key(p[1]))):
            lines.append(f"{dashed(ip)}.{namespace}.pod.{zone}. {ttl} IN A {ip}")
    lines.append("; reverse (PTR)")
    for ip, names in sorted(data.ptr.items(), key=lambda kv: _ip_key(kv[0])):
        rev = ".".join(reversed(ip.split("."))) + ".in-addr.arpa."
        lines += [f"{rev} {ttl} IN PTR {name}." for name in names]
    return "\n".join(lines) + "\n"


def _ip_key(ip: str) -> tuple[int, ...]:
    return tuple(map(int, ip.split(".")))
