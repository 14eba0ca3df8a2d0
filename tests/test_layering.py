"""The layering of the package, read from the code: imports only go down the order that
docs/architecture.md gives, and no modules import each other in a circle.

Every import counts, at module level or inside a function: an import moved into a function to
dodge a cycle is still that cycle.  The one exception, for cycles only: an import under
``if TYPE_CHECKING:`` never runs, so two classes that name each other in annotations (a chip and
its snapshot) may sit in modules that load one way.  It still counts for the layer order: a lower
layer does not even name a higher layer's types.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import cimsim

PKG = Path(cimsim.__file__).parent
DOC = PKG.parent / "docs" / "architecture.md"


def _layers() -> dict[str, int]:
    """``{top-level module or folder of cimsim: rank}`` from the ```layers block of the doc
    (one line per rank, lowest first; names on one line share a rank)."""
    m = re.search(r"```layers\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert m, f"{DOC} has no ```layers block"
    ranks: dict[str, int] = {}
    for rank, line in enumerate(ln for ln in m.group(1).splitlines() if ln.strip()):
        for name in line.split("#")[0].split():
            ranks[name] = rank
    return ranks


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(mod: str, path: Path, node: ast.ImportFrom) -> list[str]:
    """Modules of cimsim an ``from ... import ...`` statement loads."""
    if node.level:
        base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("cimsim"):
        return []
    out = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        out.append(sub if sub in MODULES else target)
    return out


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the statements under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def _imports(mod: str, *, annotations: bool) -> set[str]:
    """Modules of cimsim that ``mod`` imports; with ``annotations=False`` only those that run."""
    path = MODULES[mod]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = set() if annotations else _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            found.update(_resolve(mod, path, node))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("cimsim."))
    return {m for m in found if m in MODULES and m != mod}


GRAPH = {m: _imports(m, annotations=True) for m in MODULES}
RUNTIME = {m: _imports(m, annotations=False) for m in MODULES}


def _top(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_has_a_layer() -> None:
    ranks = _layers()
    missing = sorted({_top(m) for m in MODULES} - set(ranks))
    assert not missing, f"give these a rank in the ```layers block of {DOC.name}: {missing}"


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_imports_only_go_down(mod: str) -> None:
    ranks = _layers()
    me = _top(mod)
    up = sorted(o for o in GRAPH[mod] if _top(o) != me and ranks[_top(o)] > ranks[me])
    assert not up, f"{mod} (layer {me}) imports {up}, of a higher layer"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_cycles() -> None:
    cycles = _cycles(RUNTIME)
    assert not cycles, "modules importing each other in a circle (function-level imports included): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_no_folder_cycles() -> None:
    folders: dict[str, set[str]] = {}
    for m, deps in RUNTIME.items():
        folders.setdefault(_top(m), set()).update(_top(d) for d in deps if _top(d) != _top(m))
    cycles = _cycles(folders)
    assert not cycles, "folders importing each other in a circle: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_type_checking_imports_count_for_layers_not_cycles() -> None:
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from x import y\nimport z\n")
    skipped = _type_checking_only(tree)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert {n.names[0].name for n in imports if id(n) in skipped} == {"y"}
