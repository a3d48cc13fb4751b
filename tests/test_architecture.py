"""Dependencies point one way: the libraries never import the service or the simulator."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
LIBRARIES = ("ranker", "heuristics", "bandits")
FORBIDDEN = ("service", "simulator")


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("library", LIBRARIES)
def test_library_imports_neither_service_nor_simulator(library):
    files = sorted((ROOT / library).rglob("*.py"))
    assert files
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & set(FORBIDDEN)) for path in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}
