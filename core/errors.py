"""Typed errors for people: each names the file, the line or field, and the fix."""

from __future__ import annotations


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
