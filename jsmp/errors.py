"""User-facing errors: one line on stderr, exit code 2, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

EXIT_USAGE = 2

F = TypeVar("F", bound=Callable)


class UserError(Exception):
    """A mistake in the user's input or config; the message names the file/key and what was expected."""


def report(err: UserError) -> None:
    print(f"error: {err}", file=sys.stderr, flush=True)


def exit_on_user_error(fn: F) -> F:
    """Decorate a CLI entry point: a UserError prints one line and exits with code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            report(err)
            sys.exit(EXIT_USAGE)

    return wrapper  # type: ignore[return-value]
