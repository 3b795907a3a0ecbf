"""kubectl's JSONPath: the template dialect of `-o jsonpath=` and `-o custom-columns=`.

Why a module of our own: kubectl's dialect is not the JSONPath of RFC 9535 or of the Python
libraries (jsonpath-ng, jsonpath-rw, python-jsonpath): it is a *template* — text with `{...}`
actions, `{range ...}{end}` loops, quoted string literals (`{"\\t"}`), results joined by spaces,
missing keys printing nothing — and none of them implements that (nor `..` returning only
containers, nor kubectl's slice and filter rules). So this module implements the grammar and
the semantics of client-go's util/jsonpath, which kubectl uses, with its error messages:

- the parser: text and actions; in an action `.field` (`\\.` escapes a dot), `[n]`, `[a:b:c]`,
  `[*]`, `['key']`, unions `[a,b]`, filters `[?(@.x op value)]` (`==`, `!=`, `<`, `<=`, `>`,
  `>=`, or existence), `..` recursive descent, `*`, quoted strings, numbers, `true`/`false`, and
  the identifiers `range` and `end`;
- evaluation: a missing key gives no result (kubectl's `--allow-missing-template-keys=true`),
  an index out of range is an error, comparisons follow Go's text/template (an int and a float
  are "incompatible types for comparison");
- printing: each action's results joined by one space, a map or list as compact JSON (keys
  sorted, `<`, `>` and `&` escaped as Go's encoding/json does), a string as it is, a JSON null
  as `null`, a float as Go's `%v` prints it.

Go iterates maps in random order; here a map's values come in key order (one of the orders
kubectl may print). Errors are `JSONPathError` with client-go's message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["JSONPath", "JSONPathError", "go_json", "go_sprint", "go_text"]


class JSONPathError(ValueError):
    """A template that does not parse, or fails on the data (client-go's message)."""


# --- the parse tree (client-go node.go) -------------------------------------------------------


@dataclass
class ListNode:
    nodes: list = field(default_factory=list)


@dataclass
class TextNode:
    text: str


@dataclass
class FieldNode:
    value: str


@dataclass
class IdentifierNode:
    name: str


@dataclass
class Param:
    value: int = 0
    known: bool = False
    derived: bool = False


@dataclass
class ArrayNode:
    params: tuple[Param, Param, Param]


@dataclass
class FilterNode:
    left: ListNode
    right: ListNode
    operator: str


@dataclass
class IntNode:
    value: int


@dataclass
class FloatNode:
    value: float


@dataclass
class BoolNode:
    value: bool


@dataclass
class WildcardNode:
    pass


@dataclass
class RecursiveNode:
    pass


@dataclass
class UnionNode:
    nodes: list[ListNode]


# --- the parser (client-go parser.go) ---------------------------------------------------------

EOF = ""
DICT_KEY = re.compile(r"^'([^']*)'$")
SLICE = re.compile(r"^(-?\d*)(:-?\d*)?(:-?\d*)?$")
FILTER = re.compile(r"^([^!<>=]+)([!<>=]+)(.+?)$", re.DOTALL)


class Parser:
    def __init__(self, name: str) -> None:
        self.name = name
        self.root = ListNode()
        self.input = ""
        self.pos = self.start = self.width = 0

    def parse(self, text: str) -> ListNode:
        self.input, self.root, self.pos = text, ListNode(), 0
        self.parse_text(self.root)
        return self.root

    # scanning
    def consume_text(self) -> str:
        value = self.input[self.start:self.pos]
        self.start = self.pos
        return value

    def next(self) -> str:
        if self.pos >= len(self.input):
            self.width = 0
            return EOF
        self.width = 1
        self.pos += 1
        return self.input[self.pos - 1]

    def peek(self) -> str:
        r = self.next()
        self.backup()
        return r

    def backup(self) -> None:
        self.pos -= self.width

    def rest(self) -> str:
        return self.input[self.pos:]

    # grammar
    def parse_text(self, cur: ListNode) -> None:
        while True:
            if self.rest().startswith("{"):
                if self.pos > self.start:
                    cur.nodes.append(TextNode(self.consume_text()))
                self.parse_left_delim(cur)
                return
            if self.next() == EOF:
                break
        if self.pos > self.start:
            cur.nodes.append(TextNode(self.consume_text()))

    def parse_left_delim(self, cur: ListNode) -> None:
        self.pos += 1
        self.consume_text()
        node = ListNode()
        cur.nodes.append(node)
        self.parse_inside_action(node)

    def parse_inside_action(self, cur: ListNode) -> None:
        while True:  # client-go recurses once per token; a loop does the same without depth
            rest = self.rest()
            if rest.startswith("}"):
                self.pos += 1
                self.consume_text()
                self.parse_text(self.root)
                return
            if rest.startswith("[?("):
                self.parse_filter(cur)
                continue
            if rest.startswith(".."):
                self.parse_recursive(cur)
                continue
            r = self.next()
            if r == EOF or r in "\r\n":
                raise JSONPathError("unclosed action")
            if r == " " or r in "@$":
                self.consume_text()
            elif r == "[":
                self.parse_array(cur)
            elif r in "\"'":
                self.parse_quote(cur, r)
            elif r == ".":
                self.parse_field(cur)
            elif r in "+-" or r.isdigit():
                self.backup()
                self.parse_number(cur)
            elif is_alphanumeric(r):
                self.backup()
                self.parse_identifier(cur)
            else:
                raise JSONPathError(f"unrecognized character in action: {go_rune(r)}")

    def parse_identifier(self, cur: ListNode) -> None:
        while True:
            r = self.next()
            if is_terminator(r):
                self.backup()
                break
        value = self.consume_text()
        if value in ("true", "false"):
            cur.nodes.append(BoolNode(value == "true"))
        else:
            cur.nodes.append(IdentifierNode(value))

    def parse_recursive(self, cur: ListNode) -> None:
        if cur.nodes and isinstance(cur.nodes[-1], RecursiveNode):
            raise JSONPathError("invalid multiple recursive descent")
        self.pos += 2
        self.consume_text()
        cur.nodes.append(RecursiveNode())
        if is_alphanumeric(self.peek()):
            self.parse_field(cur)

    def parse_number(self, cur: ListNode) -> None:
        if self.peek() in ("+", "-"):
            self.next()
        while True:
            r = self.next()
            if r != "." and not (r and r.isdigit()):
                self.backup()
                break
        value = self.consume_text()
        if re.fullmatch(r"[+-]?\d+", value):
            cur.nodes.append(IntNode(int(value)))
            return
        if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", value):
            cur.nodes.append(FloatNode(float(value)))
            return
        raise JSONPathError(f"cannot parse number {value}")

    def parse_array(self, cur: ListNode) -> None:
        while True:
            r = self.next()
            if r in (EOF, "\n"):
                raise JSONPathError("unterminated array")
            if r == "]":
                break
        text = self.consume_text()[1:-1]
        if text == "*":
            text = ":"
        parts = text.split(",")
        if len(parts) > 1:  # a union
            cur.nodes.append(UnionNode([parse_action("union", f"[{p.strip(' ')}]")
                                        for p in parts]))
            return
        key = DICT_KEY.match(text)
        if key:
            cur.nodes.extend(parse_action("arraydict", f".{key.group(1)}").nodes)
            return
        found = SLICE.match(text)
        if not found:
            raise JSONPathError(f"invalid array index {text}")
        groups = [found.group(i) or "" for i in (1, 2, 3)]
        params = (Param(), Param(), Param())
        for i in range(3):
            value = groups[i]
            if value:
                if i > 0:
                    value = value[1:]
                if i > 0 and value == "":
                    params[i].known = False
                else:
                    try:
                        params[i].value, params[i].known = int(value), True
                    except ValueError:
                        raise JSONPathError(f"array index {value} is not a number") from None
            elif i == 1:
                params[1].known, params[1].value = True, params[0].value + 1
                params[1].derived = True
        cur.nodes.append(ArrayNode(params))

    def parse_filter(self, cur: ListNode) -> None:
        self.pos += 3
        self.consume_text()
        begin = end = False
        pair = ""
        while True:
            r = self.next()
            if r in (EOF, "\n"):
                raise JSONPathError("unterminated filter")
            if r in "\"'":
                if not begin:
                    begin, pair = True, r
                    continue
                if self.input[self.pos - 2] != "\\" and r == pair:
                    end = True
            elif r == ")" and begin == end:
                break
        if self.next() != "]":
            raise JSONPathError("unclosed array expect ]")
        text = self.consume_text()[:-2]
        found = FILTER.match(text)
        if found is None:
            cur.nodes.append(FilterNode(parse_action("text", text), ListNode(), "exists"))
        else:
            cur.nodes.append(FilterNode(parse_action("left", found.group(1)),
                                        parse_action("right", found.group(3)), found.group(2)))

    def parse_quote(self, cur: ListNode, end: str) -> None:
        while True:
            r = self.next()
            if r in (EOF, "\n"):
                raise JSONPathError("unterminated quoted string")
            if r == end and self.input[self.pos - 2] != "\\":
                break
        value = self.consume_text()
        try:
            cur.nodes.append(TextNode(unquote_extend(value)))
        except ValueError as exc:
            raise JSONPathError(f"unquote string {value} error {exc}") from None

    def parse_field(self, cur: ListNode) -> None:
        self.consume_text()
        while self.advance():
            pass
        value = self.consume_text()
        cur.nodes.append(WildcardNode() if value == "*" else FieldNode(value.replace("\\", "")))

    def advance(self) -> bool:
        r = self.next()
        if r == "\\":
            self.next()
        elif is_terminator(r):
            self.backup()
            return False
        return True


def parse_action(name: str, text: str) -> ListNode:
    """The expression inside one `{...}`, parsed on its own (filters, unions, ['key'])."""
    return Parser(name).parse("{" + text + "}").nodes[0]


def is_terminator(r: str) -> bool:
    return r == EOF or r in " \t\r\n.,[]$@{}"


def is_alphanumeric(r: str) -> bool:
    return r == "_" or (r != EOF and (r.isalpha() or r.isdigit()))


def go_rune(r: str) -> str:
    """Go's %#U: U+002A '*'."""
    return f"U+{ord(r):04X} '{r}'"


SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                  "\\": "\\"}


def unquote_extend(s: str) -> str:
    """Go's strconv.Unquote, for single quotes as well (client-go's UnquoteExtend)."""
    if len(s) < 2 or s[0] != s[-1] or s[0] not in "\"'":
        raise ValueError("invalid syntax")
    quote, body = s[0], s[1:-1]
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == quote:
            raise ValueError("invalid syntax")
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError("invalid syntax")
        e = body[i + 1]
        i += 2
        if e in SIMPLE_ESCAPES:
            out.append(SIMPLE_ESCAPES[e])
        elif e in "'\"":
            if e != quote:
                raise ValueError("invalid syntax")
            out.append(e)
        elif e in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i:i + size]
            if len(digits) != size or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise ValueError("invalid syntax")
            out.append(chr(int(digits, 16)))
            i += size
        elif e in "01234567":
            digits = body[i - 1:i + 2]
            if len(digits) != 3 or not re.fullmatch(r"[0-7]{3}", digits) or int(digits, 8) > 255:
                raise ValueError("invalid syntax")
            out.append(chr(int(digits, 8)))
            i += 2
        else:
            raise ValueError("invalid syntax")
    return "".join(out)


# --- Go's printing of values ------------------------------------------------------------------


def go_json(value: Any, indent: str | None = None) -> str:
    """encoding/json's Marshal (or MarshalIndent with `indent`): map keys sorted, floats as Go
    writes them (1, not 1.0), <, > and & escaped."""
    return html_escape(_json(value, indent, ""))


def _json(value: Any, indent: str | None, prefix: str) -> str:
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [(json.dumps(str(k), ensure_ascii=False), _json(v, indent, prefix + (indent or "")))
                 for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))]
        if indent is None:
            return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
        inner = prefix + indent
        return ("{\n" + ",\n".join(f"{inner}{k}: {v}" for k, v in items) + "\n" + prefix + "}")
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        items = [_json(v, indent, prefix + (indent or "")) for v in value]
        if indent is None:
            return "[" + ",".join(items) + "]"
        inner = prefix + indent
        return "[\n" + ",\n".join(inner + v for v in items) + "\n" + prefix + "]"
    if isinstance(value, float):
        return go_json_float(value)
    return json.dumps(value, ensure_ascii=False)


def go_json_float(value: float) -> str:
    """encoding/json's float64: shortest digits, %f between 1e-6 and 1e21, else %e (e-7)."""
    if value != value or value in (float("inf"), float("-inf")):
        raise JSONPathError(f"json: unsupported value: {go_float(value)}")
    if value == 0:
        return "0"
    digits, point = shortest_digits(abs(value))
    sign = "-" if value < 0 else ""
    if 1e-6 <= abs(value) < 1e21:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{sign}{digits}{'0' * (point - len(digits))}"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    exp = point - 1
    head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{head}e{'-' if exp < 0 else '+'}{abs(exp)}"


def html_escape(text: str) -> str:
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def go_float(value: float) -> str:
    """Go's %v of a float64: strconv's 'g' with the shortest digits, which switches to %e when
    the exponent is below -4 or at least 6 (1e+06, 1.5, 0.0001, 1e-05)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits, point = shortest_digits(abs(value))
    exp = point - 1
    if exp < -4 or exp >= 6:
        head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{head}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def shortest_digits(value: float) -> tuple[str, int]:
    """(digits, decimal point position) of repr(value): 0.05 -> ("5", -1), 1e6 -> ("1", 7)."""
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) + (int(exponent) if exponent else 0)
    if whole == "0":
        stripped = frac.lstrip("0")
        point = -(len(frac) - len(stripped)) + (int(exponent) if exponent else 0)
        digits = stripped
    digits = digits.rstrip("0") or "0"
    return digits, point


def go_text(value: Any) -> str:
    """fmt.Fprint of a scalar as client-go's evalToText prints it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    return str(value)


def go_sprint(value: Any) -> str:
    """fmt.Sprint of JSON-like data, as custom-columns prints a cell: map[k:v], [a b], <nil>."""
    if value is None:
        return "<nil>"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_sprint(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_sprint(v) for v in value) + "]"
    return go_text(value)


# --- evaluation (client-go jsonpath.go) -------------------------------------------------------

MISSING = object()  # "no value": what Go's invalid reflect.Value is


def go_type(value: Any) -> str:
    """The Go type name client-go's errors print for unstructured data."""
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "interface {}"


def children(value: Any) -> list:
    """What `*` and `..` step into: a map's values (in key order), a list's items, a string's
    bytes (Go indexes a string by byte)."""
    if isinstance(value, dict):
        return [value[k] for k in sorted(value)]
    if isinstance(value, list):
        return list(value)
    if isinstance(value, str):
        return list(value.encode())
    return []


class JSONPath:
    """One parsed template: `JSONPath(text).execute(data)` is what kubectl prints."""

    def __init__(self, template: str, allow_missing_keys: bool = True,
                 output_json: bool = False) -> None:
        self.template = template
        self.allow_missing_keys = allow_missing_keys
        self.output_json = output_json
        self.nodes = Parser("jsonpath").parse(template).nodes

    def execute(self, data: Any) -> str:
        return "".join(self.print_results(r) for r in self.find_results(data))

    def find_results(self, data: Any) -> list[list]:
        self.begin_range = self.in_range = self.end_range = 0
        self.last_end: int | None = None
        return self._find(data, 0)

    def _find(self, data: Any, start: int) -> list[list]:
        full: list[list] = []
        i = start
        nodes = self.nodes
        while i < len(nodes):
            results = self.walk([data], nodes[i])
            if 0 < self.end_range <= self.in_range:  # an `end`: this block is done
                self.end_range -= 1
                self.last_end = i
                break
            if self.begin_range > 0:  # a `range`: the nodes after it, for each result
                self.begin_range -= 1
                self.in_range += 1
                if results:
                    for value in results:
                        full.extend(self._find(value, i + 1))
                else:  # still walk the block once, to find its end
                    self._find(None, i + 1)
                self.in_range -= 1
                for k in range(i + 1, len(nodes)):
                    if k == self.last_end:
                        i = k
                        break
                i += 1
                continue
            full.append(results)
            i += 1
        return full

    def print_results(self, results: list) -> str:
        if self.output_json:
            return go_json(results, indent="    ") + "\n"
        texts = [go_json(r) if isinstance(r, (dict, list)) else go_text(r) for r in results]
        return " ".join(texts)

    # walking one node over a list of values
    def walk(self, values: list, node: Any) -> list:
        if isinstance(node, ListNode):
            return self.eval_list(values, node)
        if isinstance(node, TextNode):
            return [node.text]
        if isinstance(node, FieldNode):
            return self.eval_field(values, node)
        if isinstance(node, ArrayNode):
            return self.eval_array(values, node)
        if isinstance(node, FilterNode):
            return self.eval_filter(values, node)
        if isinstance(node, (IntNode, FloatNode, BoolNode)):
            return [node.value for _ in values]
        if isinstance(node, WildcardNode):
            return [c for v in values if v is not None for c in children(v)]
        if isinstance(node, RecursiveNode):
            return self.eval_recursive(values)
        if isinstance(node, UnionNode):
            return [r for part in node.nodes for r in self.eval_list(values, part)]
        if isinstance(node, IdentifierNode):
            return self.eval_identifier(values, node)
        raise JSONPathError(f"unexpected Node {node}")

    def eval_list(self, values: list, node: ListNode) -> list:
        for child in node.nodes:
            values = self.walk(values, child)
        return values

    def eval_identifier(self, values: list, node: IdentifierNode) -> list:
        if node.name == "range":
            self.begin_range += 1
            return values
        if node.name == "end":
            if self.in_range > 0:
                self.end_range += 1
                return []
            raise JSONPathError("not in range, nothing to end")
        raise JSONPathError(f"unrecognized identifier {node.name}")

    def eval_field(self, values: list, node: FieldNode) -> list:
        results = []
        for value in values:
            if isinstance(value, dict) and node.value in value:
                results.append(value[node.value])
        if not results and values and not self.allow_missing_keys:
            raise JSONPathError(f"{node.value} is not found")
        return results

    def eval_array(self, values: list, node: ArrayNode) -> list:
        result: list = []
        for value in values:
            if value is None:
                continue
            if not isinstance(value, list):
                raise JSONPathError(f"{go_type(value)} is not array or slice")
            length = len(value)
            first, last, step = (Param(p.value, p.known, p.derived) for p in node.params)
            if not first.known:
                first.value = 0
            if first.value < 0:
                first.value += length
            if not last.known:
                last.value = length
            if last.value < 0 or (last.value == 0 and last.derived):
                last.value += length
            if last.value == first.value:
                return result  # zero elements asked for (client-go returns at once)
            if first.value >= length or first.value < 0:
                raise JSONPathError(f"array index out of bounds: index {first.value}, "
                                    f"length {length}")
            if last.value > length or last.value < 0:
                raise JSONPathError(f"array index out of bounds: index {last.value - 1}, "
                                    f"length {length}")
            if first.value > last.value:
                raise JSONPathError(f"starting index {first.value} is greater than ending "
                                    f"index {last.value}")
            stride = 1
            if step.known:
                if step.value <= 0:
                    raise JSONPathError("step must be > 0")
                stride = step.value
            result.extend(value[first.value:last.value:stride])
        return result

    def eval_recursive(self, values: list) -> list:
        result = []
        for value in values:
            if value is None:
                continue
            found = children(value)
            if found:
                result.append(value)
                result.extend(self.eval_recursive(found))
        return result

    def eval_filter(self, values: list, node: FilterNode) -> list:
        results = []
        for value in values:
            if not isinstance(value, list):
                shown = "<nil>" if value is None else go_sprint(value)
                raise JSONPathError(f"{shown} is not array or slice and cannot be filtered")
            for item in value:
                if node.operator == "exists":
                    try:
                        lefts = self.eval_list([item], node.left)
                    except JSONPathError:
                        lefts = []
                    if lefts:
                        results.append(item)
                    continue
                lefts = self.eval_list([item], node.left)
                if not lefts:
                    continue
                if len(lefts) > 1:
                    raise JSONPathError("can only compare one element at a time")
                rights = self.eval_list([item], node.right)
                if not rights:
                    continue
                if len(rights) > 1:
                    raise JSONPathError("can only compare one element at a time")
                if compare(node.operator, lefts[0], rights[0]):
                    results.append(item)
        return results


# Go text/template's comparisons (client-go's fork of funcs.go)


def basic_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    raise JSONPathError("invalid type for comparison")


def equal(a: Any, b: Any) -> bool:
    if basic_kind(a) != basic_kind(b):
        raise JSONPathError("incompatible types for comparison")
    return a == b


def less(a: Any, b: Any) -> bool:
    kind = basic_kind(a)
    if kind != basic_kind(b):
        raise JSONPathError("incompatible types for comparison")
    if kind == "bool":
        raise JSONPathError("invalid type for comparison")
    return a < b


def compare(operator: str, a: Any, b: Any) -> bool:
    if operator == "==":
        return equal(a, b)
    if operator == "!=":
        return not equal(a, b)
    if operator == "<":
        return less(a, b)
    if operator == "<=":
        return less(a, b) or equal(a, b)
    if operator == ">":
        return not (less(a, b) or equal(a, b))
    if operator == ">=":
        return not less(a, b)
    raise JSONPathError(f"unrecognized filter operator {operator}")
