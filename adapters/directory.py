"""Loads the welfare directory file and fails loudly at start when it is invalid."""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from contracts.directory import WelfareDirectory

log = structlog.get_logger("brug.directory")


class DirectoryError(RuntimeError):
    pass


def load_directory(path: Path) -> WelfareDirectory:
    try:
        return WelfareDirectory.model_validate_json(path.read_bytes())
    except FileNotFoundError as error:
        raise DirectoryError(f"welfare directory not found: {path}") from error
    except ValueError as error:
        raise DirectoryError(f"welfare directory {path} is invalid:\n{error}") from error


class WatchedDirectory:
    """The directory file, read again whenever it changes, so an operator's fix (say, a
    municipality added to an organisation) applies to the next message and to replays
    without a restart. A change that does not validate is refused and logged; the last
    good version stays in use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = self._file_stamp()
        self._current = load_directory(path)

    def current(self) -> WelfareDirectory:
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            self._reload()
        return self._current

    def _reload(self) -> None:
        try:
            self._current = load_directory(self.path)
        except DirectoryError as error:
            log.error(
                "directory change refused; keeping the last good version",
                version=self._current.version,
                error=str(error).splitlines()[0],
            )
            return
        log.info("directory reloaded", version=self._current.version)

    def _file_stamp(self) -> tuple[int, int, int]:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return (0, 0, 0)
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
