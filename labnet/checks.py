"""Small, reusable validation helpers that collect problems instead of stopping at the first."""

from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Any

from labnet.errors import SpecError, SpecErrors
from labnet.yamlsrc import Located, where_of

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


class Problems:
    """Collects every problem of one validation pass; `raise_if_any` reports them together."""

    def __init__(self) -> None:
        self.errors: list[SpecError] = []

    def add(self, where: str, problem: str, hint: str = "") -> None:
        self.errors.append(SpecError(where, problem, hint))

    def extend(self, error: SpecError | SpecErrors) -> None:
        self.errors.extend(error.errors if isinstance(error, SpecErrors) else [error])

    def raise_if_any(self) -> None:
        if self.errors:
            raise SpecErrors(self.errors) if len(self.errors) > 1 else self.errors[0]

    def __bool__(self) -> bool:
        return bool(self.errors)


def check_fields(obj: Located, allowed: set[str], what: str, problems: Problems) -> None:
    """Unknown (often misspelt) fields are errors, with the nearest known name as a hint."""
    for key in obj:
        if key in allowed:
            continue
        near = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
        known = ", ".join(sorted(allowed))
        hint = f"did you mean {near[0]!r}?" if near else f"known fields: {known}"
        problems.add(obj.where(key), f"unknown field {key!r} in {what}", hint)


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
    value = obj.get(key)
    if value is None:
        if required:
            problems.add(obj.where(), f"{what} is missing {key!r}")
        return empty_map(obj.source)
    if not isinstance(value, Located):
        problems.add(obj.where(key), f"{what}.{key} must be a mapping, not {type_name(value)}")
        return empty_map(obj.source, obj.key_lines.get(key, 0))
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
        problems.add(obj.where(key), f"{what}.{key} must be a whole number, not {value!r}")
        return default
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        problems.add(obj.where(key), f"{what}.{key} is {value}, outside {lo}..{hi}")
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
        problems.add(item.where("protocol"), f"{what}: protocol {protocol!r} is not supported",
                     protocol_hint)
        return None
    return number, protocol


def check_dns_label(name: Any, where: str, what: str, problems: Problems) -> bool:
    if not isinstance(name, str) or len(name) > 63 or not DNS1123_LABEL.match(name):
        problems.add(where, f"{what} {name!r} is not a valid DNS-1123 label",
                     "use at most 63 lower-case letters, digits and '-', starting and ending "
                     "with a letter or digit")
        return False
    return True


def check_dns_subdomain(name: Any, where: str, what: str, problems: Problems) -> bool:
    if not isinstance(name, str) or len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        problems.add(where, f"{what} {name!r} is not a valid DNS-1123 subdomain",
                     "use lower-case letters, digits, '-' and '.', starting and ending with a "
                     "letter or digit")
        return False
    return True


def check_labels(labels: Any, where_obj: Any, what: str, problems: Problems) -> dict[str, str]:
    """Kubernetes label maps: qualified names and values of at most 63 characters."""
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        problems.add(where_of(where_obj), f"{what} must be a mapping of label names to values")
        return {}
    result: dict[str, str] = {}
    for key, value in labels.items():
        where = where_of(labels, key)
        name = str(key).rsplit("/", 1)[-1]
        if not isinstance(key, str) or len(name) > 63 or not LABEL_NAME.match(name):
            problems.add(where, f"{what}: {key!r} is not a valid label name")
            continue
        if isinstance(value, bool) or value is None or not isinstance(value, (str, int, float)):
            problems.add(where, f"{what}: the value of {key!r} must be a string",
                         "quote it, e.g. \"true\"")
            continue
        text = str(value)
        if len(text) > 63 or not LABEL_VALUE.match(text):
            problems.add(where, f"{what}: {text!r} is not a valid label value")
            continue
        result[key] = text
    return result


def parse_network(value: Any, where: str, what: str, problems: Problems,
                  default: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    if value is None:
        return default
    try:
        net = ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        problems.add(where, f"{what} {value!r} is not a valid IPv4 CIDR: {exc}",
                     "write it as address/prefix with no host bits set, e.g. 172.16.0.0/16")
        return default
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified:
        problems.add(where, f"{what} {net} is a loopback, multicast, link-local or unspecified "
                     "range", "use a private range such as 10.0.0.0/8, 172.16.0.0/12 or "
                     "192.168.0.0/16")
    return net


def parse_address(value: Any, where: str, what: str, problems: Problems
                  ) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        problems.add(where, f"{what} {value!r} is not a valid IPv4 address")
        return None
