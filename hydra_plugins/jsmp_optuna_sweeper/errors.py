"""One-line errors for mistakes a user must fix (the house rule: `error: ...` on stderr, exit 2).

Hydra prints a traceback for any exception that leaves the sweeper (hydra/_internal/utils.py
`run_and_report`; a CompactHydraException gets one line but exit 1). It lets SystemExit through,
so the sweeper's entry points, wrapped in `exit_on_sweep_error`, print the message and exit 2.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from typing import TypeVar

EXIT_USAGE = 2

F = TypeVar("F", bound=Callable)


# Hydra's plugin scan executes every module of hydra_plugins again in its existing namespace
# (hydra/core/plugins.py, `exec_module` on the module in sys.modules): the class is made once, so that
# what a module imported before the scan raises (`from .errors import SweepError`) is what
# exit_on_sweep_error catches after it.
if "SweepError" not in globals():
    class SweepError(Exception):
        """A sweep setting or outcome the user must act on; the message names the key and what was expected."""


def redact(text: str) -> str:
    """`text` with the password of any `scheme://user:PASSWORD@` or `password=PASSWORD` in it as ***."""
    text = re.sub(r"(://[^:/@\s'\"]*):[^@\s]*@", r"\1:***@", str(text))
    return re.sub(r"((?:password|passwd)=)[^&\s'\"]*", r"\1***", text)


def exit_on_sweep_error(fn: F) -> F:
    """Decorate an entry point: a SweepError prints `error: MESSAGE` on stderr and exits 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SweepError as err:
            print(f"error: {redact(err)}", file=sys.stderr, flush=True)
            raise SystemExit(EXIT_USAGE) from None

    return wrapper  # type: ignore[return-value]
