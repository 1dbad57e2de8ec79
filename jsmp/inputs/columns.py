"""The missing-column message: one line naming what lacks which columns, for every input a model
reads (2021 rows and files, 2024 test_df / lags_df, a replay's source, labelled rows to score)."""

from __future__ import annotations

from collections.abc import Iterable

from jsmp.errors import UserError

SHOWN = 10  # columns named before "(+k more)"


def require_columns(have: Iterable[str], names: Iterable[str], what: str, needs: str = "the model needs",
                    hint: str = "") -> None:
    """A UserError `{what}: missing column(s) {needs}: a, b (+k more)[; hint]` naming, in order, the
    `names` that `have` (column names) lacks; nothing when none is missing."""
    have = set(have)
    if missing := [c for c in names if c not in have]:
        shown = ", ".join(missing[:SHOWN]) + (f" (+{len(missing) - SHOWN} more)" if len(missing) > SHOWN else "")
        raise UserError(f"{what}: missing column(s) {needs}: {shown}" + (f"; {hint}" if hint else ""))
