"""The package's import graph by room: circles, floors, and imports that run against the flow.

    python scripts/import_floors.py            # floors table; exit 1 on a circle
    python scripts/import_floors.py --modules  # the same for single modules

A room is a subpackage (`audit`, `scoring` ...) or a top-level module (`storage`, `taxonomy` ...).
Every import counts, also one inside a function (a lazy import is still a dependency). A room's
floor is 0 when it imports no other room, else one more than the highest floor it imports; with no
circle every import points to a lower floor, so "upward imports" are exactly the imports inside a
circle. tests/test_import_floors.py asserts there is none.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "valuecsv_ray"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imported(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The package modules `name` imports (absolute and relative; `from pkg import module` too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            # `from pkg import module` depends on the module; `from module import name` on the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE + ".") and target != name:
                yield target


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph(by_room: bool = True) -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    edges: dict[str, set[str]] = {}
    for name, path in found.items():
        src = room(name) if by_room else name
        edges.setdefault(src, set())
        for target in imported(name, path, known):
            dst = room(target) if by_room else target
            if dst != src and not (by_room and dst == "__init__"):
                edges[src].add(dst)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def floors(edges: dict[str, set[str]]) -> dict[str, int]:
    """0 for a node importing nothing, else 1 + the highest floor it imports (needs no circle)."""
    done: dict[str, int] = {}

    def floor(v: str) -> int:
        if v not in done:
            done[v] = 1 + max((floor(w) for w in edges.get(v, ())), default=-1)
        return done[v]

    for v in edges:
        floor(v)
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", action="store_true", help="single modules instead of rooms")
    args = ap.parse_args(argv)
    edges = graph(by_room=not args.modules)
    found = circles(edges)
    for component in found:
        print("circle: " + " <-> ".join(component))
    if found:
        return 1
    levels = floors(edges)
    for level in range(max(levels.values()) + 1):
        names = sorted(n for n, f in levels.items() if f == level)
        print(f"floor {level}: {', '.join(names)}")
    n_edges = sum(len(v) for v in edges.values())
    print(f"{len(edges)} {'modules' if args.modules else 'rooms'}, {n_edges} imports between them, "
          "0 circles, 0 upward imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
