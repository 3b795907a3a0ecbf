"""Print labnet's internal import graph: modules, levels and arrows.

A module's level is 0 when it imports no other labnet module, else one more than the highest
level it imports (cycles are reported, not levelled). Imports inside functions count too: a
lazy import is still a dependency. Pure standard library; no labnet module is imported.

    python scripts/import_graph.py            # summary, levels, and every arrow
    python scripts/import_graph.py --summary  # the three figures only
    python scripts/import_graph.py --stages   # the same, modules folded into their stage
"""

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "labnet"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node, name, path.name == "__init__.py")
            # `from labnet.kernel import nsfs` names a module; `from labnet.plan import Plan`
            # names the module it comes from.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("labnet"):
                found.add(target)
    return found


def stage_of(name: str) -> str:
    """labnet.plan.types -> labnet.plan; top-level modules stay themselves."""
    parts = name.split(".")
    package = ".".join(parts[:2])
    return package if (ROOT.parent / Path(*package.split("."))).is_dir() else name


def fold(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    folded: dict[str, set[str]] = {}
    for name, deps in graph.items():
        stage = stage_of(name)
        folded.setdefault(stage, set()).update(stage_of(d) for d in deps)
    for stage, deps in folded.items():
        deps.discard(stage)
    return folded


def levels(graph: dict[str, set[str]]) -> tuple[dict[str, int], list[str]]:
    level: dict[str, int] = {}
    visiting: set[str] = set()
    cyclic: list[str] = []

    def visit(name: str) -> int:
        if name in level:
            return level[name]
        if name in visiting:
            cyclic.append(name)
            return 0
        visiting.add(name)
        deps = [visit(d) for d in graph[name] if d in graph]
        visiting.discard(name)
        level[name] = 1 + max(deps) if deps else 0
        return level[name]

    for name in graph:
        visit(name)
    return level, cyclic


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--stages", action="store_true",
                        help="fold each package (input, plan, kernel…) into one node")
    args = parser.parse_args()
    mods = modules()
    known = set(mods)
    graph = {name: imports_of(name, path, known) for name, path in mods.items()}
    if args.stages:
        graph = fold(graph)
    # The lazy `labnet` package facade is not a dependency of anything in it.
    for deps in graph.values():
        deps.discard("labnet")
    level, cyclic = levels(graph)
    arrows = sum(len(d) for d in graph.values())
    print(f"modules {len(graph)}  levels {max(level.values()) + 1}  arrows {arrows}"
          + (f"  cycles through {sorted(set(cyclic))}" if cyclic else ""))
    if args.summary:
        return 0
    for lvl in range(max(level.values()) + 1):
        names = sorted(n for n in graph if level[n] == lvl)
        print(f"\nlevel {lvl}: " + ", ".join(names))
    print()
    for name in sorted(graph):
        if graph[name]:
            print(f"{name} -> {', '.join(sorted(graph[name]))}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `| head`
        sys.exit(0)
