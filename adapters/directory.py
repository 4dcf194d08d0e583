"""Loads the welfare directory file and fails loudly at start when it is invalid."""

from __future__ import annotations

from pathlib import Path

from contracts.directory import WelfareDirectory


class DirectoryError(RuntimeError):
    pass


def load_directory(path: Path) -> WelfareDirectory:
    try:
        return WelfareDirectory.model_validate_json(path.read_bytes())
    except FileNotFoundError as error:
        raise DirectoryError(f"welfare directory not found: {path}") from error
    except ValueError as error:
        raise DirectoryError(f"welfare directory {path} is invalid:\n{error}") from error
