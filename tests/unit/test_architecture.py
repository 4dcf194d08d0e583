"""The layering rules in pyproject.toml ([tool.importlinter]) hold for the code as it is."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_rules_hold() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_service_folder_is_covered_by_the_independence_rule() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    independence = next(
        c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "independence"
    )
    service_folders = {
        f"services.{p.name}" for p in (REPO / "services").iterdir() if (p / "__init__.py").exists()
    }
    assert set(independence["modules"]) == service_folders


def _imported_roots(module: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_domain_imports_only_contracts_and_the_standard_library() -> None:
    allowed = set(sys.stdlib_module_names) | {"__future__", "contracts", "domain"}
    modules = sorted((REPO / "domain").rglob("*.py"))
    assert modules, "no domain package"
    strays = {
        f"{m.relative_to(REPO)}: {root}" for m in modules for root in _imported_roots(m) - allowed
    }
    assert not strays, strays
