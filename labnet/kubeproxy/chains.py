"""Chain names exactly as kube-proxy derives them (pkg/proxy/iptables/proxier.go).

    portProtoHash = base32(sha256(servicePortName + protocol))[:16]
    KUBE-SVC-/KUBE-SVL-/KUBE-EXT-/KUBE-FW-<portProtoHash>
    KUBE-SEP-<base32(sha256(servicePortName + protocol + "ip:port"))[:16]>

servicePortName is "<namespace>/<name>" plus ":<port name>" when the port has a name; the
protocol is lower case; iptables chain names must stay within 28 characters.
"""

from __future__ import annotations

import functools
import hashlib

B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648 base32


@functools.lru_cache(maxsize=65536)
def _hash16(text: str) -> str:
    """The first 16 base32 characters of sha256(text): exactly the first 80 bits (10 bytes),
    encoded here directly (base64.b32encode is pure Python and was most of a render)."""
    n = int.from_bytes(hashlib.sha256(text.encode()).digest()[:10], "big")
    return "".join(B32[(n >> shift) & 31] for shift in range(75, -1, -5))


def service_port_name(namespace: str, name: str, port_name: str = "") -> str:
    return f"{namespace}/{name}" + (f":{port_name}" if port_name else "")


def port_proto_hash(spn: str, protocol: str) -> str:
    return _hash16(spn + protocol.lower())


def svc_chain(spn: str, protocol: str) -> str:
    return "KUBE-SVC-" + port_proto_hash(spn, protocol)


def svl_chain(spn: str, protocol: str) -> str:
    return "KUBE-SVL-" + port_proto_hash(spn, protocol)


def ext_chain(spn: str, protocol: str) -> str:
    return "KUBE-EXT-" + port_proto_hash(spn, protocol)


def fw_chain(spn: str, protocol: str) -> str:
    return "KUBE-FW-" + port_proto_hash(spn, protocol)


def join_host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def sep_chain(spn: str, protocol: str, ip: str, port: int) -> str:
    return "KUBE-SEP-" + _hash16(spn + protocol.lower() + join_host_port(ip, port))
