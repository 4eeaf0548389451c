"""The import graph of the ``soak`` package: no cycles, and the CLI layer imported by the CLI only.

Every ``import`` counts, at module level, inside functions and under ``TYPE_CHECKING`` alike: a
cycle hidden in a function is still a cycle of the design. ``from a import b`` is an edge to the
module ``a.b`` where that is a module, else to ``a``.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

PACKAGES = ("soak", "soak.model", "soak.inprocess", "soak.inprocess.agent", "soak.inprocess.probes", "soak.analyzers",
            "soak.storage", "soak.workloads", "soak.workloads.reference", "soak.judging", "soak.judging.suppressions",
            "soak.reports", "soak.supervisor", "soak.cli", "soak.cli.commands")

LAYERS = (
    ("soak", "soak.errors", "soak.durations", "soak.model"),
    ("soak.inprocess", "soak.workloads", "soak.agent"),
    ("soak.analyzers", "soak.storage"),
    ("soak.judging",),
    ("soak.reports",),
    ("soak.supervisor",),
    ("soak.api", "soak.pytest_plugin"),
    ("soak.cli", "soak.__main__"),
)
"""The layers, bottom up: a module imports only from its own layer and those below. The model (plain
typed data) and the code that runs inside the measured process sit at the bottom; the CLI at the top."""


def _modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name, with its real source file."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin is not None, package
        init = Path(spec.origin)
        found[package] = init
        for path in init.parent.glob("*.py"):
            if path.stem != "__init__":
                found[f"{package}.{path.stem}"] = path
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    if target in modules:
                        imported.add(target)
                    elif base in modules:
                        imported.add(base)
        graph[name] = imported - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_package_has_no_import_cycles() -> None:
    graph = import_graph()
    assert "soak.api" in graph and "soak.reports.junit" in graph  # the scan sees the real package
    cycles = _cycles(graph)
    assert cycles == [], "\n".join(f"{group}: " + ", ".join(f"{m} -> {sorted(graph[m] & set(group))}" for m in group)
                                   for group in cycles)


def test_only_the_cli_imports_the_command_layer() -> None:
    graph = import_graph()
    outside = {name: sorted(i for i in imported if i == "soak.cli.commands" or i.startswith("soak.cli.commands."))
               for name, imported in graph.items()
               if not (name == "soak.cli" or name == "soak.cli.commands" or name.startswith("soak.cli.commands."))}
    assert {name: imports for name, imports in outside.items() if imports} == {}


def test_the_scan_finds_a_cycle_when_there_is_one() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def layer_of(module: str) -> int:
    """The layer of a module: that of the longest name in LAYERS it is, or is inside."""
    best, layer = -1, -1
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, layer = len(name), index
    assert layer >= 0, f"{module} is in no layer: add its room to LAYERS"
    return layer


def folder_of(module: str, graph: dict[str, set[str]]) -> str:
    """A module's folder: its package, or the module itself when it sits at the top of ``soak``
    (those are each a node of their own: ``soak.api`` and ``soak.errors`` are not one folder)."""
    package = module if _is_package(module) else module.rpartition(".")[0]
    return module if package == "soak" else package


def _is_package(module: str) -> bool:
    return module in PACKAGES


def test_no_import_points_up_the_layers() -> None:
    graph = import_graph()
    upward = sorted(f"{name} -> {other}" for name, imported in graph.items() for other in imported
                    if layer_of(other) > layer_of(name))
    assert upward == []


def test_the_model_and_the_measured_process_import_nothing_above_them() -> None:
    graph = import_graph()
    model = {name: sorted(i for i in imported if not i.startswith("soak.model"))
             for name, imported in graph.items() if name.startswith("soak.model")}
    assert {name: imports for name, imports in model.items() if imports} == {}
    allowed = ("soak.inprocess", "soak.workloads", "soak.errors", "soak.durations", "soak.agent")
    inside = {name: sorted(i for i in imported if not any(i == a or i.startswith(a + ".") for a in allowed))
              for name, imported in graph.items() if name.startswith("soak.inprocess")}
    assert {name: imports for name, imports in inside.items() if imports} == {}


def test_no_folder_level_import_cycle() -> None:
    graph = import_graph()
    folders: dict[str, set[str]] = {}
    for name, imported in graph.items():
        folder = folder_of(name, graph)
        folders.setdefault(folder, set()).update(folder_of(other, graph) for other in imported)
    for folder in folders:
        folders[folder].discard(folder)
    assert {"soak.reports", "soak.judging", "soak.inprocess.probes"} <= set(folders)  # the scan sees the folders
    cycles = _cycles(folders)
    assert cycles == [], "\n".join(f"{group}: " + ", ".join(f"{m} -> {sorted(folders[m] & set(group))}" for m in group)
                                   for group in cycles)
