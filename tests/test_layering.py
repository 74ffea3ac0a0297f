"""The dependency direction stays as designed: deferred <- reactor <- protocols."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"deferred", "reactor", "protocols"}
ALLOWED = {
    "deferred": set(),               # imports nothing of ours
    "reactor": {"deferred"},         # the CLI finds protocols through entry points
    "protocols": {"deferred", "reactor"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(OURS))
def test_packages_import_only_downwards(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imports - ALLOWED[package] - {package})
        for path in sorted((ROOT / package).rglob("*.py"))
        if (imports := imported_packages(path)) - ALLOWED[package] - {package}
    }
    assert wrong == {}


# Parsers take bytes and give events: no I/O, so nothing of ours either.
SANS_IO = [
    "protocols/http/parser.py",
    "protocols/http/_digest.py",
    "protocols/http/_params.py",
    "protocols/http/cookies.py",
    "protocols/http/forms.py",
    "protocols/xmlrpc/_marshal.py",
    "protocols/ftp/_client_parsing.py",
    "protocols/ftp/commands.py",
    "protocols/_buffer.py",
]


@pytest.mark.parametrize("module", SANS_IO)
def test_parsers_import_neither_reactor_nor_deferred(module: str) -> None:
    assert imported_packages(ROOT / module) - {"protocols"} == set()
