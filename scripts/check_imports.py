"""Checks that the package's imports run one way: `python scripts/check_imports.py` lists every import of a layer
above the importing module's own (or of a sibling package on the same layer) and every import circle, counting
imports inside functions too; exit status 1 if there is any. tests/test_imports.py runs it in the suite."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Lowest first. A module may import its own package and any package on a lower layer.
LAYERS = [
    ["zoo", "zoo.registry", "zoo.utils"],
    ["zoo.config", "zoo.structures", "zoo.ops"],
    ["zoo.task"],
    ["zoo.models", "zoo.data", "zoo.evaluation", "zoo.tta"],
    ["zoo.components"],
    ["zoo.engine"],
    ["zoo.apis"],
    ["zoo.tables"],
    ["zoo.cli"],
    ["zoo.__main__"],
]


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for path in sorted((root / "zoo").rglob("*.py")):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The zoo modules ``name`` imports anywhere in its file (``from pkg import module`` counts as the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "zoo"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "zoo":
                continue
            submodules = {f"{target}.{alias.name}" for alias in node.names} & set(known)
            found |= submodules or {target}
    return {m for m in found if m in known and m != name}


def layer_of(name: str) -> tuple[int, str]:
    """(layer index, the layer's package the module belongs to), by the longest matching package."""
    best = (-1, "")
    for index, packages in enumerate(LAYERS):
        for package in packages:
            if (name == package or name.startswith(package + ".")) and len(package) > len(best[1]):
                best = (index, package)
    if best[0] < 0:
        raise ValueError(f"{name} belongs to no layer in scripts/check_imports.py: add its package to LAYERS")
    return best


def upward(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for name, targets in sorted(graph.items()):
        level, package = layer_of(name)
        for target in sorted(targets):
            their_level, their_package = layer_of(target)
            if their_level > level or (their_level == level and their_package != package and their_package != "zoo"):
                found.append(f"{name} imports {target} ({their_package} is not below {package})")
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def problems(root: Path = ROOT) -> list[str]:
    known = modules(root)
    graph = {name: imports(name, path, known) for name, path in known.items()}
    return upward(graph) + [f"import circle: {' -> '.join(c)}" for c in circles(graph)]


if __name__ == "__main__":
    found = problems()
    print("\n".join(found) or f"{len(modules())} modules: no upward import, no import circle")
    sys.exit(1 if found else 0)
