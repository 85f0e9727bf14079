"""Errors that reach the user as one readable line (never a traceback)."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; the CLI prints `message` and exits with `exit_code`."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
