"""Typed errors for people: each names the file, the line or field, and the fix."""

from __future__ import annotations

import errno
from pathlib import Path


class StudioError(Exception):
    """Base class: the message is shown as-is by the UI and the CLI."""


class InputError(StudioError):
    """A file or value a person gave us is wrong; nothing was written."""

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None, fix: str | None = None
    ):
        self.file, self.line, self.fix = file, line, fix
        where = ""
        if file:
            where = f"{file}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        text = where + message
        if fix:
            text += f" — fix: {fix}"
        super().__init__(text)


class StoreBusyError(StudioError):
    """Another process held the database for longer than we were willing to wait."""


class ConflictError(StudioError):
    """Optimistic versioning: somebody else saved in between."""


class NotFoundError(StudioError):
    """A user, item, run or release that does not exist."""


class PermissionDenied(StudioError):
    """The signed-in account's role does not allow this action (checked in core, not only by the page list)."""


class SignInError(StudioError):
    """A sign-in, a session or a token was refused: wrong password, rate limit, expiry, unknown account."""


class RateLimited(SignInError):
    """Too many failed sign-ins for one account: refused until ``retry_after_s`` have passed."""

    def __init__(self, message: str, retry_after_s: float):
        self.retry_after_s = retry_after_s
        super().__init__(message)


class ArtifactError(StudioError):
    """A release artifact is missing, incomplete or does not match its manifest."""


class StorageError(StudioError):
    """The disk or folder under the database (or a file DuckDB was asked to read) refused: full, read-only,
    not permitted. Nothing was written."""


def storage_error(exc: BaseException, where: str | Path) -> StorageError | None:
    """The sentence a person can act on for a storage failure from DuckDB or the OS (matched on errno or
    on DuckDB's message, which carries the OS's text), or None when ``exc`` is something else."""
    text = str(exc)
    errno_ = getattr(exc, "errno", None)
    folder = Path(where).parent if Path(where).suffix else Path(where)
    if errno_ == errno.ENOSPC or "No space left on device" in text:
        return StorageError(
            f"the disk holding {folder} is full — free some space there (or set HS_DATA/HS_DB to a disk "
            "with room) and try again; nothing was written"
        )
    if errno_ == errno.EROFS or "Read-only file system" in text:
        return StorageError(
            f"the database folder {folder} is on a read-only file system — set HS_DATA (or HS_DB) to a "
            "writable folder"
        )
    if errno_ in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return StorageError(
            f"no permission to write the database in {folder} — make the folder writable for this user or "
            "set HS_DATA (or HS_DB) to one that is"
        )
    if "file system operations are disabled by configuration" in text:
        return StorageError(
            f"{where}: the database may only read files in the import folders (HS_IMPORT_DIRS) and the "
            "uploads — put the file there or load it with `python -m core ingest FILE`"
        )
    if "Out of Memory" in text or isinstance(exc, MemoryError):
        return StorageError(
            f"{where}: not enough memory to finish — close other jobs or load the file in smaller parts"
        )
    return None
