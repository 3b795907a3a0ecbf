"""Names in kube-proxy's nftables table, exactly as its nftables proxier derives them
(pkg/proxy/nftables/proxier.go: servicePortChainNameBase, servicePortEndpointChainNameBase,
hashAndTruncate).

    base of a service port:  HASH-<namespace>/<service>/<protocol>/<port name>
    base of an endpoint:     HASH-<namespace>/<service>/<protocol>/<port name>__<ip>/<port>

HASH is the first 8 characters of the standard base32 (RFC 4648) encoding of SHA-256 over the
text after the dash; the protocol is lower case; an unnamed port leaves the trailing "/"; an
IPv6 endpoint's colons become dots (nftables names allow [A-Za-z0-9_./-] only). A base longer
than 240 characters (nftables' 256-character name limit minus 16 reserved for the prefix) is cut
to 237 and "..." appended: the hash keeps it unique. The chains and sets of a service port are
the base with a prefix: service- (Cluster policy), local- (Local policy), external-,
firewall-, endpoint- and affinity- (an endpoint's ClientIP set, same base as its chain).

Names with a "/" are service/endpoint chains (kube-proxy's isServiceChainName): none of the
fixed chains has one, which is how stale service chains are told apart.
"""

from __future__ import annotations

import functools
import hashlib

B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648 base32
NAME_LENGTH_MAX = 256  # knftables.NameLengthMax
PREFIX_LENGTH_MAX = 16  # chainNamePrefixLengthMax: the longest prefix with its dash
BASE_LENGTH_MAX = NAME_LENGTH_MAX - PREFIX_LENGTH_MAX  # 240

SERVICE = "service-"
LOCAL = "local-"
EXTERNAL = "external-"
FIREWALL = "firewall-"
ENDPOINT = "endpoint-"
AFFINITY = "affinity-"


def hash8(text: str) -> str:
    """The first 8 base32 characters of sha256(text): exactly its first 40 bits."""
    n = int.from_bytes(hashlib.sha256(text.encode()).digest()[:5], "big")
    return "".join(B32[(n >> shift) & 31] for shift in range(35, -1, -5))


def hash_and_truncate(name: str) -> str:
    name = f"{hash8(name)}-{name}"
    if len(name) > BASE_LENGTH_MAX:
        name = name[:BASE_LENGTH_MAX - 3] + "..."
    return name


@functools.lru_cache(maxsize=65536)
def service_port_base(namespace: str, service: str, port_name: str, protocol: str) -> str:
    return hash_and_truncate(f"{namespace}/{service}/{protocol.lower()}/{port_name}")


@functools.lru_cache(maxsize=262144)
def endpoint_base(namespace: str, service: str, port_name: str, protocol: str, ip: str,
                  port: int) -> str:
    ip = ip.strip("[]").replace(":", ".")
    return hash_and_truncate(
        f"{namespace}/{service}/{protocol.lower()}/{port_name}__{ip}/{port}")


def service_port_string(namespace: str, service: str, port_name: str) -> str:
    """proxy.ServicePortName.String(): "ns/svc" plus ":port" for a named port; kube-proxy's
    comment on a service port's no-endpoint elements."""
    return f"{namespace}/{service}" + (f":{port_name}" if port_name else "")


def is_service_chain(name: str) -> bool:
    return "/" in name


def is_affinity_set(name: str) -> bool:
    return name.startswith(AFFINITY)
