"""The lab's desired state: its settings (name, network, nodes, dns) and every Kubernetes
object it holds, as `up` set them and `apply`/`delete`/`scale` changed them since.

Kept in the state directory (desired.json) so that kubectl-like verbs work on a running lab;
each change is validated as a whole, exactly as a lab file is, before anything is built.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labnet.errors import SpecError
from labnet.input.labfile import parse_lab, read_lab_file
from labnet.input.yamlsrc import Located, LocatedList
from labnet.model import LabSpec
from labnet.state import StateDir

RUNNING = "<running lab>"


def located(value: Any, source: str) -> Any:
    """Plain JSON data as the located mappings the validators expect (no line numbers)."""
    if isinstance(value, dict):
        result = Located(source=source)
        for key, item in value.items():
            result[key] = located(item, source)
        return result
    if isinstance(value, list):
        return LocatedList((located(v, source) for v in value), source=source)
    return value


def object_key(obj: Any) -> tuple[str, str, str]:
    """(kind, namespace, name): what identifies an object, as for kubectl."""
    if not isinstance(obj, dict):
        return ("", "", "")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    kind = str(obj.get("kind", ""))
    namespace = "" if kind == "Namespace" else str(meta.get("namespace") or "default")
    return (kind, namespace, str(meta.get("name", "")))


def flatten(objects: list) -> list:
    """v1 List objects open up into their items."""
    result = []
    for obj in objects:
        if isinstance(obj, dict) and obj.get("kind") == "List" and isinstance(
                obj.get("items"), list):
            result += flatten(obj["items"])
        else:
            result.append(obj)
    return result


@dataclass
class Desired:
    settings: dict
    objects: list
    generations: dict[str, int] = field(default_factory=dict)
    source: str = RUNNING

    @classmethod
    def from_lab_file(cls, path: str | Path | None) -> Desired:
        lab_file = read_lab_file(path)
        lab_file.problems.raise_if_any()
        return cls(lab_file.settings(), flatten(lab_file.objects), {}, lab_file.source)

    @classmethod
    def load(cls, state: StateDir) -> Desired | None:
        try:
            data = json.loads((state.root / "desired.json").read_text())
        except FileNotFoundError:
            return None
        return cls(located(data["settings"], RUNNING), located(data["objects"], RUNNING),
                   dict(data.get("generations", {})))

    def save(self, state: StateDir) -> None:
        state.write("desired.json", json.dumps({
            "settings": self.settings, "objects": self.objects,
            "generations": self.generations}, sort_keys=True))

    def spec(self) -> LabSpec:
        settings = self.settings if isinstance(self.settings, Located) else located(
            self.settings, self.source)
        return parse_lab(settings, self.objects, self.source, generations=self.generations)

    # --- changes (validated by the caller through spec()) -----------------------------------

    def apply(self, objects: list) -> list[str]:
        """Create or replace each object; returns kubectl-like lines (created/configured/
        unchanged)."""
        said = []
        index = {object_key(o): i for i, o in enumerate(self.objects)}
        for obj in flatten(objects):
            key = object_key(obj)
            what = f"{key[0].lower()}/{key[2]}"
            if key in index:
                same = json.dumps(self.objects[index[key]], sort_keys=True) == json.dumps(
                    obj, sort_keys=True)
                self.objects[index[key]] = obj
                said.append(f"{what} {'unchanged' if same else 'configured'}")
            else:
                index[key] = len(self.objects)
                self.objects.append(obj)
                said.append(f"{what} created")
        return said

    def delete(self, keys: list[tuple[str, str, str]], where: str) -> list[str]:
        present = {object_key(o) for o in self.objects}
        missing = [k for k in keys if k not in present]
        if missing:
            kind, namespace, name = missing[0]
            raise SpecError(where, f"{kind} {namespace + '/' if namespace else ''}{name} not "
                            "found in the lab", "`labnet get` lists what is there")
        gone = set(keys)
        self.objects = [o for o in self.objects if object_key(o) not in gone]
        return [f"{k[0].lower()}/{k[2]} deleted" for k in keys]

    def find(self, kind: str, namespace: str, name: str) -> dict | None:
        return next((o for o in self.objects if object_key(o) == (kind, namespace, name)), None)
