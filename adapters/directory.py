"""Loads the welfare directory file and fails loudly at start when it is invalid."""

from __future__ import annotations

from pathlib import Path

from adapters.watched_file import WatchedFile
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


class WatchedDirectory(WatchedFile[WelfareDirectory]):
    """The directory file, read again whenever it changes, so an operator's fix (say, a
    municipality added to an organisation) applies to the next message and to replays."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path,
            load_directory,
            what="directory",
            refused=(DirectoryError,),
            logger="brug.directory",
            summary=lambda directory: {"version": directory.version},
        )
