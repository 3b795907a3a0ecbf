"""Deterministic names: network namespaces, interfaces, generated pods, MAC addresses.

Interface names are at most 15 bytes (IFNAMSIZ - 1); netns names are files under /run/netns.
Where a readable name would not fit, a short hash of the full identity stands in, so the same
object always gets the same name.

    <lab>-underlay            the "physical" switch: bridge br0, one port per node + external
    <lab>-external            a machine outside the cluster on the underlay
    <lab>-<node>              a node: eth0 (underlay), cni0 (pod bridge), flannel.1 (VXLAN)
    <lab>-<namespace>-<pod>   a pod: eth0, the veth whose peer veth<hash> sits on the node's cni0
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib

IFNAMSIZ = 15
MAX_NETNS_NAME = 64
# A lab name starts every netns name (`<lab>-…`, kept whole by netns_name's truncation), names
# /run/labnet/<lab>/ and is the ifalias mark `labnet:<lab>`: a DNS-1123 label this short keeps
# each of those legal, and can never be `..` or hold a `/`.
MAX_LAB_NAME = 32
LAB_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
MAX_FILE_NAME = 128  # well under NAME_MAX (255 bytes), whatever the manifests hold
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' rand.SafeEncodeString alphabet
OWNER_PREFIX = "labnet:"  # ifalias on every lab netns' lo: the mark of ownership


# the kernel devices of every node, named as flannel and the bridge CNI plugin name them
UNDERLAY_BRIDGE = "br0"
VXLAN_DEVICE = "flannel.1"
POD_BRIDGE = "cni0"


def lab_name_problem(name: object) -> str | None:
    """Why `name` cannot be a lab's name, or None. The one check every way a lab name comes in
    goes through: lab files, CLI arguments, state directories, ownership marks."""
    if not isinstance(name, str) or not LAB_NAME.fullmatch(name):
        return (f"lab name {name!r} is not a valid DNS-1123 label (lower-case letters, digits "
                "and '-', starting and ending with a letter or digit)")
    if len(name) > MAX_LAB_NAME:
        return (f"lab name {name!r} is longer than {MAX_LAB_NAME} characters (namespace names "
                "start with it: choose a shorter one)")
    return None


def owner_from_mark(alias: str) -> str | None:
    """The lab an ifalias mark names (`labnet:<lab>`), or None when it is not a mark."""
    return alias[len(OWNER_PREFIX):] if alias.startswith(OWNER_PREFIX) else None


def log_file_name(namespace: str, pod: str, container: str) -> str:
    """A pod command's log file: readable when short, never longer than MAX_FILE_NAME (a pod
    name alone may be 253 characters)."""
    name = f"{namespace}_{pod}_{container}.log"
    if len(name) <= MAX_FILE_NAME and "/" not in name:
        return name
    tag = digest(f"{namespace}/{pod}/{container}")[:12]
    keep = MAX_FILE_NAME - len(tag) - len(".log") - 1
    return f"{name[:keep].replace('/', '_')}-{tag}.log"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def netns_name(lab: str, *parts: str) -> str:
    name = "-".join((lab, *parts))
    if len(name) <= MAX_NETNS_NAME:
        return name
    return f"{name[: MAX_NETNS_NAME - 9]}-{digest(name)[:8]}"


def disambiguate(name: str, identity: str) -> str:
    """A second name for an object whose first choice collided with another object's."""
    suffix = digest(identity)[:6]
    return f"{name[: MAX_NETNS_NAME - 7]}-{suffix}"


def host_veth_name(namespace: str, pod: str, salt: int = 0) -> str:
    """The node side of a pod's veth, as CNI plugins name it: veth + 8 hex digits."""
    return "veth" + digest(f"{namespace}/{pod}#{salt}" if salt else f"{namespace}/{pod}")[:8]


def underlay_port_name(node: str) -> str:
    if len(node) <= IFNAMSIZ and node not in ("br0", "external"):
        return node
    return "n" + digest(node)[:10]


def mac_address(identity: str) -> str:
    """A stable, locally administered unicast MAC for `identity`."""
    raw = bytes.fromhex(digest(identity)[:10])
    return ":".join(f"{b:02x}" for b in (0x0A, *raw))


def safe_encode(number: int, length: int | None = None) -> str:
    """Kubernetes' SafeEncodeString of a number's decimal digits (no vowels, no look-alikes)."""
    text = "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in str(number))
    return text[:length] if length else text


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def pod_template_hash(template: object) -> str:
    """The pod-template-hash label of a Deployment's ReplicaSet (FNV-32a, safe-encoded)."""
    return safe_encode(fnv32a(json.dumps(template, sort_keys=True, default=str).encode()))


def replica_pod_name(deployment: str, template_hash: str, index: int, generation: int = 0,
                     attempt: int = 0) -> str:
    """`<deployment>-<template-hash>-<5 chars>`, like a ReplicaSet's pods; stable per replica.
    `attempt` > 0 draws another suffix for a name that is taken, as the ReplicaSet controller
    draws again when the API server says a name exists (attempt 0 is the first draw)."""
    identity = f"{deployment}/{template_hash}/{index}/{generation}"
    seed = zlib.crc32((f"{identity}/{attempt}" if attempt else identity).encode())
    suffix = ""
    for _ in range(5):
        seed, digit = divmod(seed, len(SAFE_ALPHABET))
        suffix += SAFE_ALPHABET[digit]
    base = f"{deployment}-{template_hash}"
    return f"{base[: 253 - 6]}-{suffix}"
