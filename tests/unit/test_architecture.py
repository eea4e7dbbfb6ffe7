"""The import rules of docs/ARCHITECTURE.md, checked on the source tree."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "core": {"streamlit"},
    "models": {"streamlit", "duckdb", "core", "polars"},
    "pages": {"duckdb", "torch", "models"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports(layer):
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files, f"{layer}/ has no Python files"
    bad = {
        str(f.relative_to(ROOT)): sorted(imported_roots(f) & FORBIDDEN[layer])
        for f in files
        if imported_roots(f) & FORBIDDEN[layer]
    }
    assert not bad, f"{layer}/ breaks the import rules: {bad}"


def test_app_imports_only_allowed():
    assert not imported_roots(ROOT / "app.py") & FORBIDDEN["pages"]


def test_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import duckdb\nfrom models.lstm import LSTMConfig\n")
    assert imported_roots(bad) == {"duckdb", "models"}
