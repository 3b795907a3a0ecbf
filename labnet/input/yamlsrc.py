"""YAML loading that remembers where every value came from, so errors can say file:line.

Mappings load as `Located` dicts and sequences as `LocatedList`s; both know their source
and the line of each key or item. Duplicate keys are an error (PyYAML would silently keep
the last one, and Kubernetes rejects them); merge keys (`<<: *base`) work as in YAML 1.1,
the mapping's own keys overriding merged ones.

A lab file is input from anyone, so loading is bounded before anything is built from it
(as Kubernetes' YAML decoder refuses "excessive aliasing"): at most MAX_YAML_BYTES per file,
MAX_YAML_NODES values written, nesting at most MAX_YAML_DEPTH deep, and aliases may not make a
document much bigger than it is written (billion laughs): the values a document holds once
every alias is expanded may exceed the values written by at most max(ALIAS_EXTRA,
written). Each refusal is one `file:line: …` line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from labnet.errors import SpecError, one_line

MAX_YAML_BYTES = 2 * 1024 * 1024  # per file (the API server takes requests of up to 3 MiB)
MAX_YAML_NODES = 200_000  # values written in one file (a 1,000-pod lab needs ~50,000)
MAX_YAML_DEPTH = 64  # nesting, aliases expanded (a Deployment's deepest field is ~12 levels)
ALIAS_EXTRA = 10_000  # values aliases may add beyond what is written (or as many as written)
MERGE_TAG = "tag:yaml.org,2002:merge"


class Located(dict):
    """A mapping that knows the file and line of itself and of each of its keys."""

    def __init__(self, *args: Any, source: str = "<input>", line: int = 0) -> None:
        super().__init__(*args)
        self.source = source
        self.line = line
        self.key_lines: dict[Any, int] = {}

    def where(self, key: str | None = None) -> str:
        line = self.key_lines.get(key, self.line) if key is not None else self.line
        return f"{self.source}:{line}" if line else self.source


class LocatedList(list):
    def __init__(self, items: Any = (), source: str = "<input>", line: int = 0) -> None:
        super().__init__(items)
        self.source = source
        self.line = line
        self.item_lines: list[int] = []

    def where(self, index: int | None = None) -> str:
        line = self.line
        if index is not None and index < len(self.item_lines):
            line = self.item_lines[index]
        return f"{self.source}:{line}" if line else self.source


def where_of(value: Any, key: Any = None, fallback: str = "<input>") -> str:
    """Location of `value` (or of `value[key]`), whatever kind of object it is."""
    if isinstance(value, (Located, LocatedList)):
        return value.where(key)
    return fallback


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


def children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_expansion(root: Node, written: int, source: str) -> None:
    """Refuse a document whose aliases expand it far beyond what is written, or nest it too
    deeply, or refer to themselves, without ever expanding it (iterative, memoised)."""
    budget = written + max(ALIAS_EXTRA, written)
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    active: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            kids = children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            height[key] = 1 + max((height[id(k)] for k in kids), default=0)
            if size[key] > budget:
                raise SpecError(f"{source}:{line_of(node)}", f"YAML aliases expand this "
                                f"document to more than {budget} values, from {written} written",
                                "an alias bomb? use anchors and aliases sparingly")
            if height[key] > MAX_YAML_DEPTH:
                raise SpecError(f"{source}:{line_of(node)}", "YAML aliases nest this document "
                                f"deeper than {MAX_YAML_DEPTH} levels")
            continue
        if key in size:
            continue
        if key in active:
            raise SpecError(f"{source}:{line_of(node)}", "a YAML alias refers to the value "
                            "that holds it", "recursive values are not allowed")
        active.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in children(node) if id(kid) not in size)


def _make_loader(source: str) -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.depth = 0
            self.nodes = 0
            self.merged: dict[Node, int] = {}  # mapping -> how many of its pairs are merged

        def compose_node(self, parent: Node | None, index: Any) -> Node:
            self.depth += 1
            self.nodes += 1
            try:
                if self.depth > MAX_YAML_DEPTH or self.nodes > MAX_YAML_NODES:
                    line = self.peek_event().start_mark.line + 1
                    problem = (f"YAML nesting deeper than {MAX_YAML_DEPTH} levels"
                               if self.depth > MAX_YAML_DEPTH else
                               f"more than {MAX_YAML_NODES} YAML values in one file")
                    raise SpecError(f"{source}:{line}", problem,
                                    "a lab file or manifest needs far less")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def compose_document(self) -> Node:
            before = self.nodes
            node = super().compose_document()
            check_expansion(node, self.nodes - before, source)
            self.merged = {}
            return node

        def flatten_mapping(self, node: MappingNode) -> None:
            if node in self.merged:
                return
            own = sum(1 for key, _ in node.value if key.tag != MERGE_TAG)
            super().flatten_mapping(node)
            self.merged[node] = len(node.value) - own

        def construct_object(self, node: Node, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep)
            except (ValueError, OverflowError) as exc:  # a date like 2024-13-45, huge ints
                why = one_line(str(exc).split(";")[0], 200)
                raise SpecError(f"{source}:{line_of(node)}", f"YAML value cannot be read: {why}",
                                "quote it to make it a string") from None

    def construct_mapping(loader: Loader, node: MappingNode) -> Located:
        loader.flatten_mapping(node)
        merged = loader.merged.get(node, 0)
        result = Located(source=source, line=line_of(node))
        own: set = set()
        for position, (key_node, value_node) in enumerate(node.value):
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise SpecError(f"{source}:{line_of(key_node)}",
                                "a mapping key must be a string, number or boolean")
            if position >= merged:  # the mapping's own keys: each once, over merged ones
                if key in own:
                    raise SpecError(f"{source}:{line_of(key_node)}",
                                    f"duplicate key {one_line(repr(key), 200)}",
                                    "each key may appear once in a mapping")
                own.add(key)
            elif key in result:  # of merged mappings, the first one listed wins
                continue
            result[key] = loader.construct_object(value_node, deep=True)
            result.key_lines[key] = line_of(key_node)
        return result

    def construct_sequence(loader: Loader, node: SequenceNode) -> LocatedList:
        result = LocatedList(
            (loader.construct_object(child, deep=True) for child in node.value),
            source=source, line=line_of(node),
        )
        result.item_lines = [line_of(child) for child in node.value]
        return result

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    return Loader


def load_documents(text: str, source: str, lines: list[int] | None = None) -> list[Any]:
    """Every non-empty document of a (multi-document) YAML text; `lines`, when given, gets the
    first line of each."""
    if len(text) > MAX_YAML_BYTES:
        raise SpecError(f"{source}:1", f"more than {MAX_YAML_BYTES // (1024 * 1024)} MiB of "
                        "YAML", "split it into several manifest files")
    docs = []
    loader = None
    try:
        loader = _make_loader(source)(text)
        while loader.check_node():
            node = loader.get_node()
            data = loader.construct_document(node)
            if data is not None:
                docs.append(data)
                if lines is not None:
                    lines.append(line_of(node))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else f"{source}:1"
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise SpecError(where, f"YAML syntax error: {one_line(problem)}",
                        "fix the YAML syntax") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, such as NUL
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else 1
        char = exc.character
        shown = one_line(repr(chr(char) if isinstance(char, int) else char), 40)
        raise SpecError(f"{source}:{line}", f"YAML cannot hold the character {shown} "
                        f"({one_line(str(exc.reason), 200)})", "remove it, or write it as an "
                        "escape in a double-quoted string") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}:1", f"YAML error: {one_line(str(exc))}") from None
    except RecursionError:
        raise SpecError(f"{source}:1", "YAML nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    return docs


def read_text(path: Path, what: str = "file") -> str:
    """A file's UTF-8 text, refusing what is not a regular file or is too big (a FIFO or
    /dev/zero would otherwise block or fill the memory)."""
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise SpecError(str(path), f"{what} is not a regular file", "give a YAML file")
            data = f.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(str(path), f"{what} not found", "check the path") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise SpecError(str(path), f"cannot read {what}: {one_line(str(exc))}") from None
    if len(data) > MAX_YAML_BYTES:
        raise SpecError(f"{path}:1", f"{what} is larger than "
                        f"{MAX_YAML_BYTES // (1024 * 1024)} MiB",
                        "split it into several manifest files")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SpecError(f"{path}:{line}", f"cannot read {what}: not UTF-8 "
                        f"(byte {data[exc.start]:#04x})", "save it as UTF-8") from None


def load_file(path: Path, what: str = "file", lines: list[int] | None = None) -> list[Any]:
    return load_documents(read_text(path, what), str(path), lines)
