"""Small, reusable validation helpers that collect problems instead of stopping at the first.

The rules are the Kubernetes API server's (pkg/apis/core/validation and
k8s.io/apimachinery/pkg/util/validation): DNS-1123 labels and subdomains, DNS-1035 labels for
Service names, IANA service names for named ports, qualified names for label keys, IP addresses
that may not be special (ValidateNonSpecialIP). Where labnet hands a value to something stricter
than the API server (the kernel, an HTTP request line, a command line), the check is that
thing's, and the message says why.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Any

from labnet.errors import Problems
from labnet.input.yamlsrc import Located, where_of

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
IANA_SVC_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
HTTP_HEADER_NAME = re.compile(r"[-A-Za-z0-9]+")
IPV4_SLOPPY = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)")
CIDR_TEXT = re.compile(r"([^/]*)/([0-9]{1,3})")

# Caps that keep a lab file from exhausting the machine (the kernel objects, the plan and the
# agent grow with each of them). The API server has its own for EndpointSlices (below).
NODE_CIDR_MASK = (16, 28)  # nodeCIDRMaskSize: a /16 holds 65,534 pods, a /28 13
MAX_NODE_CIDR_BITS = 16  # nodeCIDRMaskSize - podCIDR prefix (kube-controller-manager's limit)
MIN_SERVICE_PREFIX = 12  # serviceCIDR at most a /12 (the API server's limit: 20 bits)
MIN_CIDR_PREFIX = 8  # no network range wider than a /8
MAX_ARG_BYTES = 131072 - 1  # one command-line argument (Linux's MAX_ARG_STRLEN, with its NUL)
IFNAMSIZ = 16  # Linux: interface names are at most 15 bytes and a NUL

# Ranges no lab address may be in (reported with the API server's words where it has them).
SPECIAL_RANGES = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "the 'this network' range (0.0.0.0/8)"),
    (ipaddress.IPv4Network("127.0.0.0/8"), "the loopback range (127.0.0.0/8)"),
    (ipaddress.IPv4Network("169.254.0.0/16"), "the link-local range (169.254.0.0/16)"),
    (ipaddress.IPv4Network("224.0.0.0/24"), "the link-local multicast range (224.0.0.0/24)"),
    (ipaddress.IPv4Network("224.0.0.0/4"), "the multicast range (224.0.0.0/4)"),
    (ipaddress.IPv4Network("240.0.0.0/4"), "the reserved range (240.0.0.0/4)"),
)
BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def shown(value: Any, limit: int = 80) -> str:
    """A user's value for a message: its repr, shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "…" + text[-3:]


def check_fields(obj: Located, allowed: set[str], what: str, problems: Problems) -> None:
    """Unknown (often misspelt) fields are errors, with the nearest known name as a hint."""
    for key in obj:
        if key in allowed:
            continue
        near = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
        known = ", ".join(sorted(allowed))
        hint = f"did you mean {near[0]!r}?" if near else f"known fields: {known}"
        problems.add(obj.where(key), f"unknown field {shown(key)} in {what}", hint)


def type_name(value: Any) -> str:
    for kind, name in ((dict, "a mapping"), (list, "a list"), (bool, "a boolean"),
                       ((int, float), "a number"), (str, "a string")):
        if isinstance(value, kind):
            return name
    return "empty" if value is None else type(value).__name__


def empty_map(source: str, line: int = 0) -> Located:
    return Located(source=source, line=line)


def get_map(obj: Located, key: str, what: str, problems: Problems,
            required: bool = False) -> Located:
    """obj[key] as a mapping; an empty one (located at obj, so that later problems still
    have a line) when it is missing or wrong."""
    value = obj.get(key)
    if value is None:
        if required:
            problems.add(obj.where(), f"{what} is missing {key!r}")
        return empty_map(obj.source, obj.line)
    if not isinstance(value, Located):
        problems.add(obj.where(key), f"{what}.{key} must be a mapping, not {type_name(value)}")
        return empty_map(obj.source, obj.key_lines.get(key, obj.line))
    return value


def get_list(obj: Located, key: str, what: str, problems: Problems) -> list:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(obj.where(key), f"{what}.{key} must be a list, not {type_name(value)}")
        return []
    return value


def get_str(obj: Located, key: str, what: str, problems: Problems,
            required: bool = False, default: str | None = None) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            problems.add(obj.where(), f"{what} is missing {key!r}")
        return default
    if not isinstance(value, str):
        problems.add(obj.where(key), f"{what}.{key} must be a string, not {type_name(value)}")
        return default
    return value


def get_int(obj: Located, key: str, what: str, problems: Problems, default: int | None,
            lo: int | None = None, hi: int | None = None) -> int | None:
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(obj.where(key), f"{what}.{key} must be a whole number, not {shown(value)}")
        return default
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        problems.add(obj.where(key), f"{what}.{key} is {shown(value)}, outside {lo}..{hi}")
        return default
    return value


def get_bool(obj: Located, key: str, what: str, problems: Problems, default: bool = False
             ) -> bool:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        problems.add(obj.where(key), f"{what}.{key} must be true or false, not "
                     f"{shown(value)}")
        return default
    return value


def read_port(item: Any, where: str, number_key: str, fields: set[str], what: str,
              problems: Problems, protocol_hint: str) -> tuple[int, str] | None:
    """One entry of a `ports` list (a container's or a Service's): (number, protocol), or
    None after reporting what is wrong with it."""
    if not isinstance(item, Located):
        problems.add(where, f"{what}: each port must be a mapping with {number_key}")
        return None
    check_fields(item, fields, f"{what} port", problems)
    number = get_int(item, number_key, f"{what} port", problems, None, 1, 65535)
    if number is None:
        if number_key not in item:
            problems.add(where, f"{what}: a port needs {number_key}")
        return None
    protocol = get_str(item, "protocol", f"{what} port", problems, default="TCP")
    if protocol not in ("TCP", "UDP"):
        if protocol is not None:
            problems.add(item.where("protocol"), f"{what}: protocol {shown(protocol)} is not "
                         "supported", protocol_hint)
        return None
    return number, protocol


class PortList:
    """The ports of one list seen so far (a pod's, a Service's, an EndpointSlice's): a second
    use of a name, or of a number with a protocol, is reported where it is, with the first."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.names: set[str] = set()
        self.numbers: dict[tuple[int, str], str] = {}

    def name(self, name: str, where: str, problems: Problems) -> None:
        if name in self.names:
            problems.add(where, f"{self.what}: duplicate port name {name!r}")
        self.names.add(name)

    def number(self, number: int, protocol: str, where: str, problems: Problems) -> None:
        first = self.numbers.setdefault((number, protocol), where)
        if first is not where:
            problems.add(where, f"{self.what}: duplicate port {number}/{protocol}",
                         f"first at {first}")


# --- names -------------------------------------------------------------------------------

def check_dns_label(name: Any, where: str, what: str, problems: Problems) -> bool:
    if not isinstance(name, str) or len(name) > 63 or not DNS1123_LABEL.fullmatch(name):
        problems.add(where, f"{what} {shown(name)} is not a valid DNS-1123 label",
                     "use at most 63 lower-case letters, digits and '-', starting and ending "
                     "with a letter or digit")
        return False
    return True


def check_dns1035_label(name: Any, where: str, what: str, problems: Problems) -> bool:
    """A Service's name (the API server's DNS-1035 label: it starts with a letter)."""
    if not isinstance(name, str) or len(name) > 63 or not DNS1035_LABEL.fullmatch(name):
        problems.add(where, f"{what} {shown(name)} is not a valid DNS-1035 label",
                     "use at most 63 lower-case letters, digits and '-', starting with a "
                     "letter and ending with a letter or digit")
        return False
    return True


def check_dns_subdomain(name: Any, where: str, what: str, problems: Problems,
                        label_limit: bool = False) -> bool:
    """A DNS-1123 subdomain; `label_limit`: each label also at most 63 characters, as a name
    that goes on the DNS wire must be (the API server checks only the whole length)."""
    if (not isinstance(name, str) or len(name) > 253 or not DNS1123_SUBDOMAIN.fullmatch(name)
            or (label_limit and any(len(part) > 63 for part in name.split(".")))):
        problems.add(where, f"{what} {shown(name)} is not a valid DNS-1123 subdomain",
                     "use at most 253 lower-case letters, digits, '-' and '.', in labels of at "
                     "most 63, each starting and ending with a letter or digit")
        return False
    return True


def port_name_problem(name: Any) -> str | None:
    """Why `name` is not an IANA service name (a container port's, a named targetPort), as the
    API server's IsValidPortName says it."""
    if not isinstance(name, str):
        return f"must be a string, not {type_name(name)}"
    if not 1 <= len(name) <= 15:
        return "must be 1 to 15 characters"
    if not re.fullmatch(r"[-a-z0-9]+", name):
        return "must contain only lower-case letters, digits and '-'"
    if not re.search(r"[a-z]", name):
        return "must contain at least one letter"
    if "--" in name:
        return "must not contain consecutive '-'"
    if name[0] == "-" or name[-1] == "-":
        return "must not begin or end with '-'"
    return None


def qualified_name_problem(key: Any) -> str | None:
    """Why `key` is not a qualified name ([prefix/]name: a label or annotation key)."""
    if not isinstance(key, str):
        return f"must be a string, not {type_name(key)}"
    prefix, slash, name = key.rpartition("/")
    if slash and "/" in prefix:
        return "may hold at most one '/'"
    if slash and (not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return "its prefix (before '/') must be a DNS-1123 subdomain of at most 253 characters"
    if not name or len(name) > 63 or not LABEL_NAME.fullmatch(name):
        return ("its name must be at most 63 letters, digits, '-', '_' or '.', starting and "
                "ending with a letter or digit")
    return None


def check_labels(labels: Any, where_obj: Any, what: str, problems: Problems) -> dict[str, str]:
    """Kubernetes label maps: qualified names and values of at most 63 characters."""
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        problems.add(where_of(where_obj), f"{what} must be a mapping of label names to values")
        return {}
    result: dict[str, str] = {}
    for key, value in labels.items():
        where = where_of(labels, key, where_of(where_obj))
        if (why := qualified_name_problem(key)) is not None:
            problems.add(where, f"{what}: {shown(key)} is not a valid label name: {why}")
            continue
        if isinstance(value, bool) or value is None or not isinstance(value, (str, int, float)):
            problems.add(where, f"{what}: the value of {shown(key)} must be a string",
                         "quote it, e.g. \"true\"")
            continue
        text = str(value)
        if not check_label_value(text, where, what, problems):
            continue
        result[key] = text
    return result


def check_label_value(text: str, where: str, what: str, problems: Problems) -> bool:
    if len(text) > 63 or not LABEL_VALUE.fullmatch(text):
        problems.add(where, f"{what}: {shown(text)} is not a valid label value",
                     "use at most 63 letters, digits, '-', '_' or '.', starting and ending "
                     "with a letter or digit")
        return False
    return True


def check_annotations(annotations: Any, where_obj: Any, what: str, problems: Problems) -> None:
    """Annotations: qualified keys, string values, at most 256 KiB together (the API
    server's rules; labnet does not act on them)."""
    if annotations is None:
        return
    if not isinstance(annotations, dict):
        problems.add(where_of(where_obj), f"{what} must be a mapping of names to strings")
        return
    total = 0
    for key, value in annotations.items():
        where = where_of(annotations, key, where_of(where_obj))
        if (why := qualified_name_problem(key)) is not None:
            problems.add(where, f"{what}: {shown(key)} is not a valid annotation name: {why}")
        elif not isinstance(value, str):
            problems.add(where, f"{what}: the value of {shown(key)} must be a string, not "
                         f"{type_name(value)}", "quote it")
        else:
            total += len(key) + len(value)
    if total > 256 * 1024:
        problems.add(where_of(annotations, fallback=where_of(where_obj)),
                     f"{what} hold {total} bytes, more than 262144")


def interface_name_problem(name: Any) -> str | None:
    """Why `name` cannot be a Linux interface name (the kernel's dev_valid_name): at most 15
    bytes, not '.' or '..', no '/', ':' or white space; nor control characters here."""
    if not isinstance(name, str):
        return f"must be a string, not {type_name(name)}"
    raw = name.encode("utf-8", "surrogateescape")
    if not raw:
        return "must not be empty"
    if len(raw) >= IFNAMSIZ:
        return f"is {len(raw)} bytes: Linux interface names are at most {IFNAMSIZ - 1}"
    if name in (".", ".."):
        return "may not be '.' or '..'"
    if any(b in b"/: \t\n\v\f\r\xa0" for b in raw) or not name.isprintable():
        return "may not contain '/', ':', white space or control characters"
    return None


# --- text that reaches a command line, a request or a log ----------------------------------

def bad_character(text: str, allow: str = "") -> str | None:
    """The first character of `text` that is a control character (or a line or paragraph
    separator) and not in `allow`, or None."""
    if text.isprintable():
        return None
    for c in text:
        if not c.isprintable() and c not in allow and (
                c < " " or "\x7f" <= c <= "\x9f" or c in "\u2028\u2029"):
            return c
    return None


def check_text(value: str, where: str, what: str, problems: Problems, allow: str = "",
               why: str = "") -> bool:
    """No control characters (except those in `allow`) in a string that goes to a command
    line, an HTTP request or a log."""
    bad = bad_character(value, allow)
    if bad is not None:
        problems.add(where, f"{what} {shown(value)} holds the control character "
                     f"{shown(bad)}", why or "remove it")
        return False
    return True


# --- addresses ------------------------------------------------------------------------------

def parse_ipv4(value: Any, sloppy: bool = False) -> ipaddress.IPv4Address | None:
    """An IPv4 address in dotted-decimal form, or None. `sloppy` also takes octets with
    leading zeros, read as decimal (the API server's ParseIPSloppy, for legacy fields)."""
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        pass
    match = IPV4_SLOPPY.fullmatch(value) if sloppy else None
    if match is None:
        return None
    octets = [o.lstrip("0") or "0" for o in match.groups()]
    if any(len(o) > 3 or int(o) > 255 for o in octets):
        return None
    return ipaddress.IPv4Address(".".join(octets))


def special_ip_problem(ip: ipaddress.IPv4Address) -> str | None:
    """Why `ip` cannot be an endpoint, external IP, LoadBalancer IP or resolver: the API
    server's ValidateNonSpecialIP (unspecified, loopback, link-local, link-local multicast),
    and what no packet of the lab can reach (other multicast, reserved, broadcast)."""
    if ip.is_unspecified:
        return f"may not be unspecified ({ip})"
    if ip == BROADCAST:
        return "may not be the broadcast address (255.255.255.255)"
    for net, name in SPECIAL_RANGES:
        if ip in net:
            return f"may not be in {name}"
    return None


def parse_address(value: Any, where: str, what: str, problems: Problems,
                  unicast: bool = False, sloppy: bool = False) -> ipaddress.IPv4Address | None:
    """An IPv4 address (`unicast`: one a packet can be sent to), or None after reporting."""
    ip = parse_ipv4(value, sloppy)
    if ip is None:
        problems.add(where, f"{what} {shown(value)} is not a valid IPv4 address",
                     "write it as four decimal numbers 0..255, e.g. 10.0.0.1")
        return None
    if unicast and (why := special_ip_problem(ip)) is not None:
        problems.add(where, f"{what} {ip} {why}")
        return None
    return ip


def parse_cidr(value: Any, strict: bool = True, sloppy: bool = False) -> ipaddress.IPv4Network:
    """address/prefix (prefix 0..32; no netmask form); `strict`: no host bits set; `sloppy`:
    leading zeros in the octets and the prefix too, as the API server's ParseCIDRSloppy takes
    them in legacy fields (203.0.113.000/025 is 203.0.113.0/25). Raises ValueError saying why
    not."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type_name(value)}")
    match = CIDR_TEXT.fullmatch(value)
    if match is None:
        raise ValueError("it is not address/prefix")
    address = parse_ipv4(match.group(1), sloppy)
    if address is None:
        raise ValueError(f"{shown(match.group(1))} is not a valid IPv4 address")
    prefix = match.group(2)
    if int(prefix) > 32 or (not sloppy and prefix.startswith("0") and prefix != "0"):
        raise ValueError(f"the prefix /{prefix} is not 0..32")
    return ipaddress.IPv4Network((address, int(prefix)), strict=strict)


def parse_network(value: Any, where: str, what: str, problems: Problems,
                  default: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    if value is None:
        return default
    try:
        net = parse_cidr(value)
    except ValueError as exc:
        problems.add(where, f"{what} {shown(value)} is not a valid IPv4 CIDR: {exc}",
                     "write it as address/prefix with no host bits set, e.g. 172.16.0.0/16")
        return default
    if net.prefixlen < MIN_CIDR_PREFIX:
        problems.add(where, f"{what} {net} is wider than a /{MIN_CIDR_PREFIX}",
                     "use a private range such as 10.0.0.0/8, 172.16.0.0/12 or "
                     "192.168.0.0/16")
        return default
    for special, name in SPECIAL_RANGES:
        if net.overlaps(special):
            problems.add(where, f"{what} {net} overlaps {name}",
                         "use a private range such as 10.0.0.0/8, 172.16.0.0/12 or "
                         "192.168.0.0/16")
            return default
    return net
