"""The packages form one layered graph with no cycle, between packages or inside one.

Read from the bottom up:

    heuristics                      re-rankers, the sections config, the config-file reader
    bandits      -> heuristics      knob policies, the decision log, learning, off-policy evaluation
    ranker       -> bandits, ...    labels, union, features, LightGBM designs, artifacts;
                                    ranker.rerank: the one rerank pipeline on top of the rest of ranker
    service      -> ranker, ...     the HTTP API over the pipeline
    simulator    -> ranker, ...     a world with a known click model, driving the same pipeline
    sectionrank  -> everything      the command line

Every import counts, wherever it is written (module top, inside a function, under ``TYPE_CHECKING``): a
lazy import is still a dependency. ``from pkg import name`` depends on ``pkg/__init__.py`` unless `name` is
a submodule, so a module that takes a name from its own package's ``__init__`` (which imports the module
back) closes a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

#: Each package and the packages it may import.
LAYERS: Mapping[str, frozenset[str]] = {
    "heuristics": frozenset(),
    "bandits": frozenset({"heuristics"}),
    "ranker": frozenset({"heuristics", "bandits"}),
    "service": frozenset({"heuristics", "bandits", "ranker"}),
    "simulator": frozenset({"heuristics", "bandits", "ranker"}),
    "sectionrank": frozenset({"heuristics", "bandits", "ranker", "service", "simulator"}),
}
#: Subpackages that sit on top of the rest of their package: nothing else in the package imports them.
TOP_SUBPACKAGES = ("ranker.rerank",)


# --- the import graph -------------------------------------------------------------------------------------


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules_of(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of `packages` under `root`, by dotted name (a package by its own name)."""
    return {
        module_name(root, path): path
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
    }


def imports_of(name: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    """The known modules that module `name` (at `path`) imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                targets.add(submodule if submodule in known else module)
    resolved = set()
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    known = modules_of(root, packages)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted: every import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def package_edges(graph: Mapping[str, set[str]]) -> dict[tuple[str, str], list[str]]:
    """(importing package, imported package) -> the module imports behind that edge."""
    edges: dict[tuple[str, str], list[str]] = {}
    for source, targets in graph.items():
        for target in targets:
            a, b = source.split(".")[0], target.split(".")[0]
            if a != b:
                edges.setdefault((a, b), []).append(f"{source} -> {target}")
    return edges


# --- the checker, on trees built to break it --------------------------------------------------------------


def write_tree(root: Path, files: Mapping[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # a direct cycle inside a package
        (
            {"p/__init__.py": "", "p/a.py": "from p.b import x\n", "p/b.py": "from p.a import y\n"},
            [["p.a", "p.b"]],
        ),
        # a cycle through a function-level import
        (
            {"p/__init__.py": "", "p/a.py": "import p.b\n", "p/b.py": "def f():\n    from p import a\n"},
            [["p.a", "p.b"]],
        ),
        # a name taken from the package's own __init__, which imports the module back
        (
            {"p/__init__.py": "from p.a import A\n", "p/a.py": "from p import helper\n", "p/helper.py": ""},
            [],
        ),
        (
            {"p/__init__.py": "from p.a import A\nB = 1\n", "p/a.py": "from p import B\nA = 1\n"},
            [["p", "p.a"]],
        ),
        # a relative import closing a cycle
        (
            {"p/__init__.py": "", "p/a.py": "from .b import x\n", "p/b.py": "from .a import y\n"},
            [["p.a", "p.b"]],
        ),
        # a cycle between packages
        (
            {
                "p/__init__.py": "",
                "p/a.py": "import q.b\n",
                "q/__init__.py": "",
                "q/b.py": "from p.a import z\n",
            },
            [["p.a", "q.b"]],
        ),
        # an import under TYPE_CHECKING still counts
        (
            {
                "p/__init__.py": "",
                "p/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.b import B\n",
                "p/b.py": "from p.a import A\n",
            },
            [["p.a", "p.b"]],
        ),
    ],
)
def test_checker_finds_every_kind_of_cycle(tmp_path, files, expected):
    root = write_tree(tmp_path, files)
    packages = sorted({relative.split("/")[0] for relative in files})
    assert cycles(import_graph(root, packages)) == expected


def test_checker_finds_an_upward_package_import(tmp_path):
    root = write_tree(
        tmp_path,
        {"heuristics/__init__.py": "import ranker.model\n", "ranker/__init__.py": "", "ranker/model.py": ""},
    )
    edges = package_edges(import_graph(root, ["heuristics", "ranker"]))
    assert edges == {("heuristics", "ranker"): ["heuristics -> ranker.model"]}
    assert "ranker" not in LAYERS["heuristics"]


# --- the house ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(ROOT, LAYERS)


def test_every_top_level_package_has_a_layer():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"tests", "benchmarks"}
    assert packages == set(LAYERS)


def test_layers_form_a_dag():
    assert cycles({name: set(allowed) for name, allowed in LAYERS.items()}) == []


def test_packages_import_only_the_layers_below(graph):
    upward = {
        edge: sorted(modules)
        for edge, modules in package_edges(graph).items()
        if edge[1] not in LAYERS[edge[0]]
    }
    assert upward == {}


def test_no_import_cycle_between_or_inside_packages(graph):
    assert cycles(graph) == []


@pytest.mark.parametrize("subpackage", TOP_SUBPACKAGES)
def test_top_subpackage_is_imported_by_nothing_below_it(graph, subpackage):
    package = subpackage.split(".")[0]
    offenders = sorted(
        f"{source} -> {target}"
        for source, targets in graph.items()
        if source.split(".")[0] == package and not (source + ".").startswith(subpackage + ".")
        for target in targets
        if (target + ".").startswith(subpackage + ".")
    )
    assert offenders == []


@pytest.mark.parametrize(("limit", "where"), [(600, "source"), (800, "tests")])
def test_modules_stay_small(limit, where):
    files = (
        [path for package in LAYERS for path in (ROOT / package).rglob("*.py")]
        if where == "source"
        else list((ROOT / "tests").rglob("*.py"))
    )
    assert files
    too_long = {
        str(path.relative_to(ROOT)): n for path in files if (n := len(path.read_text().splitlines())) > limit
    }
    assert too_long == {}
