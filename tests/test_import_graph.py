"""The modules of ``atdata_lite`` depend on each other one way: the import graph has no cycle.

The graph is built statically from the source files with :mod:`ast`, so every import counts:
module-level ones, those inside functions (imported late to keep start-up cheap) and those
under ``if TYPE_CHECKING:``. A cycle means a lower layer knows a higher one; the test prints
it, module by module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import atdata_lite

PACKAGE = "atdata_lite"
ROOT = Path(atdata_lite.__file__).parent


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``atdata_lite`` modules it imports anywhere in its source."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, is_package, node)
                # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one.
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
                targets = subs if len(subs) == len(node.names) else [base, *subs]
            for target in targets:
                # ``import a.b.c`` as a dotted name: the deepest module of ours it names.
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    graph[module].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_one_cycle(graph, set(c)) for c in components]


def _one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError("a strongly connected component always holds a cycle")


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    # Module level, relative.
    assert "atdata_lite.errors" in graph["atdata_lite.index.backend"]
    # Inside a function (the CLI imports its index lazily).
    assert any(m.startswith("atdata_lite.index") for m in graph["atdata_lite.cli.datasets"])


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_the_package():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles (each module imports the next):\n" + "\n".join(
        "  " + " -> ".join(c) for c in cycles
    )


def test_the_data_path_never_imports_the_index_transfer_or_cli():
    data_path = {
        "atdata_lite.samples",
        "atdata_lite.lenses",
        "atdata_lite.cid",
        "atdata_lite.sources",
        "atdata_lite.shards",
        "atdata_lite.stores",
        "atdata_lite.dataset",
    }
    upper = ("atdata_lite.index", "atdata_lite.transfer", "atdata_lite.cli")
    graph = import_graph()
    wrong = {m: sorted(t for t in graph[m] if t.startswith(upper)) for m in sorted(data_path)}
    assert not any(wrong.values()), {m: t for m, t in wrong.items() if t}


def test_the_backend_contract_names_no_implementation():
    graph = import_graph()
    # _versions is the contract's own vocabulary (version strings and their order), shared
    # by every implementation; it names none of them.
    assert graph["atdata_lite.index.backend"] <= {
        "atdata_lite.errors",
        "atdata_lite._records",
        "atdata_lite.index._versions",
    }
    assert graph["atdata_lite.index._versions"] <= {"atdata_lite.errors", "atdata_lite._text"}
