"""The layering rules in pyproject.toml ([tool.importlinter]) hold for the code as it is."""

from __future__ import annotations

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
