"""The import rules of docs/ARCHITECTURE.md, checked on the source tree."""

import ast
import re
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


# the audit log is append-only: no source file may change or remove its rows (core.release.audit)
AUDIT_TAMPERING = re.compile(
    r"\b(UPDATE\s+audit_log|DELETE\s+FROM\s+audit_log|TRUNCATE\s+(TABLE\s+)?audit_log)\b", re.I
)
SOURCE_LAYERS = ("core", "pages", "models", "bench")


def audit_tampering(path: Path) -> list[str]:
    return [m.group(0) for m in AUDIT_TAMPERING.finditer(path.read_text())]


def test_no_source_updates_or_deletes_audit_rows():
    files = [ROOT / "app.py", *(f for layer in SOURCE_LAYERS for f in sorted((ROOT / layer).rglob("*.py")))]
    bad = {str(f.relative_to(ROOT)): audit_tampering(f) for f in files if audit_tampering(f)}
    assert not bad, f"the audit log is append-only: {bad}"


def test_audit_checker_sees_tampering(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        'sql = """DELETE  FROM audit_log WHERE 1"""\ncon.execute("update audit_log set actor = ?")\n'
    )
    assert audit_tampering(bad) == ["DELETE  FROM audit_log", "update audit_log"]
