"""A configuration file read again whenever it changes, so an operator's edit applies to the
next message or request without a restart. A change that does not load is refused and
logged; the last good version stays in use."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog

T = TypeVar("T")


class WatchedFile(Generic[T]):
    """``load`` reads the file (raising one of ``refused`` when it is not valid); ``summary``
    names what a log line may say about a version (never its contents)."""

    def __init__(
        self,
        path: Path,
        load: Callable[[Path], T],
        *,
        what: str,
        refused: tuple[type[Exception], ...],
        summary: Callable[[T], dict[str, Any]],
        logger: str,
    ) -> None:
        self.path = path
        self._log = structlog.get_logger(logger)
        self._load = load
        self._what = what
        self._refused = refused
        self._summary = summary
        self._stamp = self._file_stamp()
        self._current = load(path)

    def current(self) -> T:
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            self._reload()
        return self._current

    def _reload(self) -> None:
        try:
            self._current = self._load(self.path)
        except self._refused as error:
            self._log.error(
                f"{self._what} change refused; keeping the last good version",
                error=str(error).splitlines()[0],
                **self._summary(self._current),
            )
            return
        self._log.info(f"{self._what} reloaded", **self._summary(self._current))

    def _file_stamp(self) -> tuple[int, int, int]:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return (0, 0, 0)
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
