#!/usr/bin/env python3
"""Counts the import cycles between the top-level modules of a Rust crate's src/.

Every `crate::<module>` path outside a comment is an edge from the file's top-level module to
<module>. Test code is left out (files named `tests.rs`, `*_tests.rs`, under a `tests/`
folder, `testing.rs`, and an in-file `#[cfg(test)] mod tests { ... }`): a test may start a
whole broker to exercise a module far below it. The strongly connected components of that graph with more than one module are the
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


def is_test_file(root: Path, path: Path) -> bool:
    rel = path.relative_to(root)
    return (path.name in ("tests.rs", "testing.rs") or path.name.endswith("_tests.rs")
            or "tests" in rel.parts[:-1])


def production_lines(path: Path) -> list[str]:
    """The file's lines up to an in-file test module (by convention the file's last item)."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == "#[cfg(test)]" and lines[i + 1].strip().startswith("mod tests {"):
            return lines[:i]
    return lines


def edges_of(root: Path) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted(root.rglob("*.rs")):
        if is_test_file(root, path):
            continue
        module = top_module(root, path)
        code = "\n".join(l for l in production_lines(path) if not l.strip().startswith("//"))
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
