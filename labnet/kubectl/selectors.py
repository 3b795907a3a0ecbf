"""Label selectors (`-l`) and field selectors (`--field-selector`), as the API server parses
and matches them: the grammar, matching rules and messages of apimachinery's labels.Parse and
fields.ParseSelector. kubectl itself passes both strings to the API server; the server's
parse error comes back as one line, which `labnet get` prints as kubectl does
(`Error from server (BadRequest): Unable to find ... : <the parser's message>`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from labnet.gotext import go_quote

__all__ = ["FieldSelector", "LabelSelector", "SelectorError", "parse_field_selector",
           "parse_label_selector"]


class SelectorError(ValueError):
    """A selector the API server would refuse; str() is the server's message."""


# --- label selectors (apimachinery pkg/labels/selector.go) ------------------------------------

# tokens
ERROR, EOS, CLOSE, COMMA, NOT_EXISTS, DOUBLE_EQUALS, EQUALS, GREATER, IDENTIFIER, IN, LESS, \
    NOT_EQUALS, NOT_IN, OPEN = range(14)
STRING2TOKEN = {")": CLOSE, ",": COMMA, "!": NOT_EXISTS, "==": DOUBLE_EQUALS, "=": EQUALS,
                ">": GREATER, "in": IN, "<": LESS, "!=": NOT_EQUALS, "notin": NOT_IN,
                "(": OPEN}
SPECIAL = set("=!(),><")
WHITESPACE = set(" \t\r\n")
BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"

# content.IsLabelKey / IsLabelValue, with the API's messages
LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_KEY_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and "
                 "end with an alphanumeric character")
LABEL_VALUE_FMT = f"({LABEL_KEY_FMT})?"
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                   "'-', '_' or '.', and must start and end with an alphanumeric character")
DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                         "characters, '-' or '.', and must start and end with an alphanumeric "
                         "character")


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def label_key_problems(key: str) -> list[str]:
    errs: list[str] = []
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            if len(prefix.encode()) > 253:
                errs.append("prefix part must be no more than 253 bytes")
            if not re.fullmatch(DNS1123_SUBDOMAIN_FMT, prefix):
                errs.append("prefix part " + regex_error(DNS1123_SUBDOMAIN_MSG,
                                                         DNS1123_SUBDOMAIN_FMT, "example.com"))
    else:
        return ["a valid label key " + regex_error(LABEL_KEY_MSG, LABEL_KEY_FMT, "MyName",
                                                   "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name.encode()) > 63:
        errs.append("name part must be no more than 63 bytes")
    if not re.fullmatch(LABEL_KEY_FMT, name):
        errs.append("name part " + regex_error(LABEL_KEY_MSG, LABEL_KEY_FMT, "MyName", "my.name",
                                               "123-abc"))
    return errs


def label_value_problems(value: str) -> list[str]:
    errs = []
    if len(value.encode()) > 63:
        errs.append("must be no more than 63 bytes")
    if not re.fullmatch(LABEL_VALUE_FMT, value):
        errs.append(regex_error(LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value",
                                "12345"))
    return errs


def invalid(path: str, value: str, problems: list[str]) -> str:
    """field.Invalid(path, value, detail).Error()."""
    return f"{path}: Invalid value: {go_quote(value)}: {'; '.join(problems)}"


class Lexer:
    def __init__(self, text: str) -> None:
        self.s = text.encode()
        self.pos = 0

    def read(self) -> str:
        if self.pos < len(self.s):
            self.pos += 1
            return chr(self.s[self.pos - 1])
        return ""

    def unread(self) -> None:
        self.pos -= 1

    def lex(self) -> tuple[int, str]:
        ch = self.read()
        while ch and ch in WHITESPACE:
            ch = self.read()
        if not ch:
            return EOS, ""
        self.unread()
        if ch in SPECIAL:
            return self.special()
        return self.identifier()

    def identifier(self) -> tuple[int, str]:
        start = self.pos
        while True:
            ch = self.read()
            if not ch:
                break
            if ch in SPECIAL or ch in WHITESPACE:
                self.unread()
                break
        text = self.s[start:self.pos].decode(errors="replace")
        return STRING2TOKEN.get(text, IDENTIFIER), text

    def special(self) -> tuple[int, str]:
        buffer = ""
        last: tuple[int, str] | None = None
        while True:
            ch = self.read()
            if not ch:
                break
            if ch in SPECIAL:
                buffer += ch
                if buffer in STRING2TOKEN:
                    last = (STRING2TOKEN[buffer], buffer)
                elif last is not None:
                    self.unread()
                    break
            else:
                self.unread()
                break
        if last is None:
            return ERROR, f"error expected: keyword found '{buffer}'"
        return last


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # in, notin, =, ==, !=, exists, !, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator in ("in", "=", "=="):
            return present and value in self.values
        if self.operator in ("notin", "!="):
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("gt", "lt"):
            if not present or not re.fullmatch(r"[+-]?\d+", value or ""):
                return False
            number, limit = int(value), int(self.values[0])
            return number > limit if self.operator == "gt" else number < limit
        return False


def new_requirement(key: str, operator: str, values: list[str]) -> Requirement:
    """labels.NewRequirement: the key and every value checked, the errors aggregated."""
    errs = []
    if problems := label_key_problems(key):
        errs.append(invalid("key", key, problems))
    if operator in ("gt", "lt"):
        for i, value in enumerate(values):
            if not re.fullmatch(r"[+-]?\d+", value):
                errs.append(invalid(f"values[{i}]", value, ["for 'Gt', 'Lt' operators, the "
                                                            "value must be an integer"]))
    for i, value in enumerate(values):
        if problems := label_value_problems(value):
            errs.append(invalid(f"values[{i}][{key}]", value, problems))
    if errs:
        unique = list(dict.fromkeys(errs))
        raise SelectorError(unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]")
    return Requirement(key, operator, tuple(values))


class LabelParser:
    def __init__(self, text: str) -> None:
        lexer = Lexer(text)
        self.items: list[tuple[int, str]] = []
        while True:
            token = lexer.lex()
            self.items.append(token)
            if token[0] == EOS:
                break
        self.position = 0

    def lookahead(self, values: bool) -> tuple[int, str]:
        tok, lit = self.items[self.position]
        if values and tok in (IN, NOT_IN):
            tok = IDENTIFIER
        return tok, lit

    def consume(self, values: bool) -> tuple[int, str]:
        self.position += 1
        tok, lit = self.items[self.position - 1]
        if values and tok in (IN, NOT_IN):
            tok = IDENTIFIER
        return tok, lit

    def parse(self) -> list[Requirement]:
        requirements = []
        while True:
            tok, lit = self.lookahead(True)
            if tok in (IDENTIFIER, NOT_EXISTS):
                try:
                    requirements.append(self.requirement())
                except SelectorError as exc:
                    raise SelectorError(f"unable to parse requirement: {exc}") from None
                tok, lit = self.consume(True)
                if tok == EOS:
                    return requirements
                if tok == COMMA:
                    tok2, lit2 = self.lookahead(True)
                    if tok2 not in (IDENTIFIER, NOT_EXISTS):
                        raise SelectorError(f"found '{lit2}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            elif tok == EOS:
                return requirements
            else:
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of "
                                    "string'")

    def requirement(self) -> Requirement:
        key, operator = self.key_and_operator()
        if operator in ("exists", "!"):
            return new_requirement(key, operator, [])
        operator = self.operator()
        values = self.values() if operator in ("in", "notin") else self.exact_value()
        return new_requirement(key, operator, sorted(values))

    def key_and_operator(self) -> tuple[str, str]:
        operator = ""
        tok, lit = self.consume(True)
        if tok == NOT_EXISTS:
            operator = "!"
            tok, lit = self.consume(True)
        if tok != IDENTIFIER:
            raise SelectorError(f"found '{lit}', expected: identifier")
        if problems := label_key_problems(lit):
            raise SelectorError(invalid("<nil>", lit, problems))
        if self.lookahead(True)[0] in (EOS, COMMA) and operator != "!":
            operator = "exists"
        return lit, operator

    def operator(self) -> str:
        tok, lit = self.consume(False)
        found = {IN: "in", EQUALS: "=", DOUBLE_EQUALS: "==", GREATER: "gt", LESS: "lt",
                 NOT_IN: "notin", NOT_EQUALS: "!="}.get(tok)
        if found is None:
            raise SelectorError(f"found '{lit}', expected: {BINARY_OPERATORS}")
        return found

    def values(self) -> set[str]:
        tok, lit = self.consume(True)
        if tok != OPEN:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead(True)
        if tok in (IDENTIFIER, COMMA):
            found = self.identifiers()
            if self.consume(True)[0] != CLOSE:
                raise SelectorError(f"found '{lit}', expected: ')'")
            return found
        if tok == CLOSE:
            self.consume(True)
            return {""}
        raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        found: set[str] = set()
        while True:
            tok, lit = self.consume(True)
            if tok == IDENTIFIER:
                found.add(lit)
                tok2, lit2 = self.lookahead(True)
                if tok2 == COMMA:
                    continue
                if tok2 == CLOSE:
                    return found
                raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok == COMMA:
                if not found:
                    found.add("")
                tok2, _ = self.lookahead(True)
                if tok2 == CLOSE:
                    found.add("")
                    return found
                if tok2 == COMMA:
                    found.add("")
                continue
            raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        tok, _ = self.lookahead(True)
        if tok in (EOS, COMMA):
            return {""}
        tok, lit = self.consume(True)
        if tok == IDENTIFIER:
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


@dataclass(frozen=True)
class LabelSelector:
    """requirements ANDed; the empty selector selects everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)


def parse_label_selector(text: str) -> LabelSelector:
    """`a=b,c!=d,e in (f,g),h notin (i),j,!k`: what `kubectl get -l` sends the API server."""
    found = LabelParser(text).parse()
    return LabelSelector(tuple(sorted(found, key=lambda r: r.key)))


# --- field selectors (apimachinery pkg/fields/selector.go) ------------------------------------


@dataclass(frozen=True)
class FieldTerm:
    field: str
    value: str
    equal: bool


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[FieldTerm, ...] = ()

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all((fields.get(t.field, "") == t.value) == t.equal for t in self.terms)


def split_terms(text: str) -> list[str]:
    terms, start, in_slash = [], 0, False
    for i, c in enumerate(text):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def unescape_value(text: str) -> str:
    if not any(c in text for c in "\\,="):
        return text
    out, in_slash = [], False
    for c in text:
        if in_slash:
            if c not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
            continue
        if c == "\\":
            in_slash = True
        elif c in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: "
                                f"{ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(text: str) -> FieldSelector:
    """`metadata.name=x,metadata.namespace!=y` (`=`, `==`, `!=`; `\\,` `\\=` `\\\\` escape)."""
    terms = []
    if not text:
        return FieldSelector()
    for part in sorted(split_terms(text)):
        if not part:
            continue
        for i in range(len(part)):
            op = next((o for o in ("!=", "==", "=") if part.startswith(o, i)), None)
            if op:
                terms.append(FieldTerm(part[:i], unescape_value(part[i + len(op):]), op != "!="))
                break
        else:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
    return FieldSelector(tuple(terms))
