"""The layering rules in pyproject.toml ([tool.importlinter]) hold for the code as it is."""

from __future__ import annotations

import ast
import re
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


_STATUS_SET_NAMES = re.compile(r"ENDED|ENDINGS|GONE|FINAL|TERMINAL", re.IGNORECASE)


def _literal_collection(value: ast.expr) -> bool:
    if isinstance(value, ast.Set | ast.Tuple | ast.List):
        return True
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id in {"set", "frozenset", "tuple"}
        and any(_literal_collection(arg) for arg in value.args)
    )


def _written_out_status_sets(module: Path) -> set[str]:
    found = set()
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            named = isinstance(target, ast.Name) and _STATUS_SET_NAMES.search(target.id)
            if named and _literal_collection(value):
                found.add(f"{module.relative_to(REPO)}: {ast.unparse(target)}")
    return found


def test_no_set_of_ended_statuses_is_written_out_beside_the_domain() -> None:
    """ "The referral has ended" is defined once, in domain/status_machine.py; elsewhere such
    a set may only be derived from it (e.g. the strings an SQL filter needs)."""
    written_out = {
        found
        for package in ("contracts", "adapters", "services", "deploy")
        for module in (REPO / package).rglob("*.py")
        for found in _written_out_status_sets(module)
    }
    assert not written_out, written_out


def test_services_declare_kafka_handlers_only_on_the_service_router() -> None:
    """A bare ``KafkaRouter()`` gives its subscribers FastStream's ACK_FIRST (auto commit,
    and one partition's records at once with workers): ``service_router()`` carries the
    broker's policy, so it is the only way a service makes one."""
    bare = {
        str(module.relative_to(REPO))
        for module in (REPO / "services").rglob("*.py")
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name | ast.Attribute)
        and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == "KafkaRouter"
    }
    assert not bare, bare
