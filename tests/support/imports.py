"""The repository's import graph, read from source: who imports whom, the import
circles, and imports of another module's underscore names.

Every import counts, also one inside a function or under `TYPE_CHECKING`: a lazy
import still ties two modules together for a reader, and a circle hidden that way
is still a circle. `python -m tests.support.imports` prints the summary used as
evidence that the layout holds (tests/unit/test_layout.py asserts it).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.checkout import REPO

PACKAGES = ("failoverd", "chaos", "tests")


@dataclass
class ImportGraph:
    files: dict[str, Path] = field(default_factory=dict)  # module -> its file
    edges: dict[str, set[str]] = field(default_factory=dict)  # module -> modules it imports
    external: dict[str, set[str]] = field(default_factory=dict)  # module -> top-level others
    private: list[tuple[str, str, str]] = field(default_factory=list)  # (importer, module, name)

    def circles(self) -> list[list[str]]:
        """Strongly connected components of more than one module (Tarjan)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []

        def visit(v: str) -> None:
            index[v] = low[v] = len(index)
            stack.append(v)
            on_stack.add(v)
            for w in sorted(self.edges[v]):
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

        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 10 * len(self.files)))
        try:
            for v in sorted(self.files):
                if v not in index:
                    visit(v)
        finally:
            sys.setrecursionlimit(limit)
        return found


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_graph(root: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> ImportGraph:
    g = ImportGraph()
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            if all(part.isidentifier() for part in path.relative_to(root).with_suffix("").parts):
                g.files[module_name(path, root)] = path
    for mod, path in g.files.items():
        g.edges[mod], g.external[mod] = set(), set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = mod.split(".") if is_package else mod.split(".")[:-1]
                    here = here[: len(here) - node.level + 1]
                    base = ".".join(here + ([node.module] if node.module else []))
                targets = [
                    (f"{base}.{a.name}", None) if f"{base}.{a.name}" in g.files else (base, a.name)
                    for a in node.names
                ]
            else:
                continue
            for target, name in targets:
                parts = target.split(".")
                while parts and ".".join(parts) not in g.files:
                    parts.pop()
                if not parts:
                    g.external[mod].add(target.split(".")[0])
                    continue
                found = ".".join(parts)
                if found != mod:
                    g.edges[mod].add(found)
                if name and name.startswith("_") and not name.startswith("__"):
                    g.private.append((mod, found, name))
    return g


def summary(g: ImportGraph) -> str:
    lines = []
    for pkg in ("failoverd", "chaos"):
        top = [m for m in g.files if m.startswith(pkg + ".") and m.count(".") == 1]
        modules = [m for m in top if g.files[m].name != "__init__.py"]
        packages = [m for m in top if g.files[m].name == "__init__.py"]
        size, largest = max(
            (len(p.read_text().splitlines()), m) for m, p in g.files.items() if m.startswith(pkg)
        )
        lines.append(
            f"{pkg}: {len(modules)} top-level modules, {len(packages)} packages, "
            f"largest module {largest} ({size} lines)"
        )
    lines.append(f"import circles: {len(g.circles())}")
    lines += [f"  {' <-> '.join(c)}" for c in g.circles()]
    lines.append(f"underscore imports across modules: {len(g.private)}")
    lines += [f"  {a} imports {n} from {b}" for a, b, n in g.private]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(read_graph()))
