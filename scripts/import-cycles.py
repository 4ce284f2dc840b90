#!/usr/bin/env python3
"""Counts the import cycles between the top-level modules of a Rust crate's src/.

Every `crate::<module>` path outside a comment is an edge from the file's top-level module to
<module>. The strongly connected components of that graph with more than one module are the
cycles; ARCHITECTURE.md's rule is that none spans more than one module. Prints each cycle and
then every module's edges; exits 1 if any cycle is found.

    python3 scripts/import-cycles.py [src]
"""

import re
import sys
from collections import defaultdict
from pathlib import Path


def top_module(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts[0] if parts else "crate"


def edges_of(root: Path) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted(root.rglob("*.rs")):
        module = top_module(root, path)
        code = "\n".join(l for l in path.read_text().splitlines() if not l.strip().startswith("//"))
        for target in re.findall(r"crate::([a-z_][a-z0-9_]*)", code):
            if target != module:
                edges[module].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, the ones of two modules or more."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
                found.append(sorted(component))

    nodes = set(edges) | {w for targets in edges.values() for w in targets}
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    edges = edges_of(root)
    found = cycles(edges)
    for component in found:
        print(f"cycle of {len(component)} modules: {' '.join(component)}")
    if not found:
        print("no import cycle between top-level modules")
    for module in sorted(edges):
        print(f"  {module} -> {' '.join(sorted(edges[module]))}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
