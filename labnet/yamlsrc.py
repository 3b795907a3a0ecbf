"""YAML loading that remembers where every value came from, so errors can say file:line.

Mappings load as `Located` dicts and sequences as `LocatedList`s; both know their source
and the line of each key or item. Duplicate keys are an error (PyYAML would silently keep
the last one, and Kubernetes rejects them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from labnet.errors import SpecError


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


def _make_loader(source: str) -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: Loader, node: yaml.MappingNode) -> Located:
        loader.flatten_mapping(node)
        result = Located(source=source, line=node.start_mark.line + 1)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise SpecError(
                    f"{source}:{key_node.start_mark.line + 1}", "a mapping key must be a scalar"
                )
            if key in result:
                raise SpecError(
                    f"{source}:{key_node.start_mark.line + 1}",
                    f"duplicate key {key!r}",
                    "each key may appear once in a mapping",
                )
            result[key] = loader.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result

    def construct_sequence(loader: Loader, node: yaml.SequenceNode) -> LocatedList:
        result = LocatedList(
            (loader.construct_object(child, deep=True) for child in node.value),
            source=source, line=node.start_mark.line + 1,
        )
        result.item_lines = [child.start_mark.line + 1 for child in node.value]
        return result

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    return Loader


def load_documents(text: str, source: str) -> list[Any]:
    """Every non-empty document of a (multi-document) YAML text."""
    try:
        docs = list(yaml.load_all(text, Loader=_make_loader(source)))  # noqa: S506 (SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise SpecError(where, f"YAML syntax error: {problem}", "fix the YAML syntax") from None
    except yaml.YAMLError as exc:
        raise SpecError(source, f"YAML error: {exc}") from None
    return [d for d in docs if d is not None]


def load_file(path: Path, what: str = "file") -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(str(path), f"{what} not found", "check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), f"cannot read {what}: {exc}") from None
    return load_documents(text, str(path))
