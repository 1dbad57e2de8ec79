"""Hydra's sweep grammar -> Optuna distributions.

    interval(a, b)              FloatDistribution(a, b)   (IntDistribution if a and b are ints)
    int(interval(a, b))         IntDistribution(a, b)
    tag(log, interval(a, b))    the same with log=True
    range(a, b, step)           IntDistribution(a, b, step)   (Float... if any is a float; b included when
                                a + k * step reaches it, as in the official plugin: Optuna's bounds are
                                inclusive; Hydra's basic sweeper, like Python's range, excludes b)
    choice(x, y, ...)           CategoricalDistribution([x, y, ...]); a list or dict choice
                                ([64,32]) is stored as its text and reaches the job as a list/dict
    anything else               a fixed value passed to every trial

train.py and tune.py import this module before Hydra starts, and Hydra's plugin scan imports it:
Optuna is imported inside the functions that build distributions only.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from hydra.errors import HydraException

from .errors import SweepError

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/extended/"
# a quoted string that reads like a sweep: the quotes make it a fixed value, surely a mistake
_LOOKS_LIKE_SWEEP = re.compile(r"^\s*(interval|range|choice|tag|shuffle|glob)\s*\(")
# where each flag of Hydra's command line takes the next argument as its value
_FLAGS_WITH_VALUE = {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir",
                     "--experimental-rerun", "-p", "--package", "-i", "--info"}


def to_distribution(override: Override, where: str = "") -> BaseDistribution:
    """The Optuna distribution of one sweep override (`override.is_sweep_override()`); a
    SweepError naming `where + key` for one Optuna cannot sample (e.g. a log scale from 0)."""
    try:
        return _distribution(override)
    except (ValueError, TypeError) as e:
        raise SweepError(f"{where}{override.input_line.strip()}: {_why(e)}") from None


def _why(e: Exception) -> str:
    text = str(e)
    if "`low > 0` must hold for `log=True`" in text:
        return "a log scale (tag(log, ...)) needs a low bound > 0, " + text.split("but ", 1)[-1].rstrip(".")
    if "`low <= high` must hold" in text:
        return "expected low <= high, " + text.split("but ", 1)[-1].rstrip(".")
    return text


def _distribution(override: Override) -> BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = override.value()
    key = override.get_key_element()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        bad = [c for c in choices if not isinstance(c, (str, int, float, bool, type(None)))]
        if bad:
            raise ValueError(f"{key}: choice() takes str, int, float, bool or null values, got {bad}")
        return CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if any(isinstance(v, float) for v in (start, stop, step)):
            # the last value at or below stop, in decimal as written (range(0, 1, 0.3): 0.9, not 0.8999999999999999,
            # which Optuna, checking the steps in decimal too, would cut to 0.6)
            low, steps = Decimal(str(start)), (Decimal(str(stop)) - Decimal(str(start))) / Decimal(str(step))
            if steps < 0:
                raise ValueError(f"range({start}, {stop}, {step}) is empty; expected START <= STOP for a positive STEP")
            return FloatDistribution(start, float(low + int(steps) * Decimal(str(step))), step=step)
        n = (int(stop) - int(start)) // int(step)
        if n < 0:
            raise ValueError(f"range({start}, {stop}, {step}) is empty; expected START <= STOP for a positive STEP")
        return IntDistribution(int(start), int(start) + n * int(step), step=int(step))
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(value.start, value.end, log=log)
    raise ValueError("not a sweep Optuna can sample (expected interval(), int(interval()), range(), "
                     "choice() or tag(log, ...))")


def parse_override(text: str, where: str = "") -> Override:
    """One override in Hydra's grammar; a SweepError naming `where + text` if it does not parse."""
    try:
        return OverridesParser.create().parse_override(text)
    except HydraException as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("See ")]
        why = lines[-1] if len(lines) > 1 else lines[0] if lines else "cannot be parsed"
        if "(" in text.partition("=")[2]:  # a sweep, or meant as one
            hint = (f"expected e.g. interval(LOW, HIGH), int(interval(LOW, HIGH)), choice(A, B), "
                    f"range(START, STOP, STEP), tag(log, interval(LOW, HIGH)); see {GRAMMAR}")
        else:
            hint = "quote a value holding = ? & or spaces for Hydra, e.g. \"key='VALUE'\" on the shell"
        raise SweepError(f"{where}{text}: {why} ({hint})") from None


def check_fixed(override: Override, where: str = "") -> None:
    """Refuse a quoted sweep ('interval(0, 1)'): Hydra reads it as one fixed string."""
    value = override.value()
    if isinstance(value, str) and not override.is_sweep_override() and _LOOKS_LIKE_SWEEP.match(value):
        key, bare = override.get_key_element(), value.strip()
        try:
            example = bare if parse_override(f"{key}={bare}").is_sweep_override() else None
        except SweepError:
            example = None
        example = example or "interval(LOW, HIGH)"
        raise SweepError(f"{where}{key}={override.get_value_element_as_str()}: a quoted string, not a search "
                         f"space; write it without the quotes, e.g. {key}={example} (on the shell, quote the "
                         f"whole argument: '{key}={example}')")


def check_overrides(argv: list[str], sweeping: bool = True) -> None:
    """Parse a command line's overrides as Hydra will and, when `sweeping`, refuse quoted sweeps:
    a SweepError in one line instead of Hydra's exception (tune.py and train.py call it first)."""
    skip = False
    for arg in argv:
        if skip or arg.startswith("-"):
            skip = not skip and arg in _FLAGS_WITH_VALUE
            continue
        if "=" in arg:
            override = parse_override(arg)
            if sweeping:
                check_fixed(override)


class Space(NamedTuple):
    """A search space: `searched` key -> distribution, `fixed` key -> value as override text, and
    `literal` key -> the choices of `searched[key]` that are override text (a list or dict choice,
    stored by Optuna as its text, e.g. "[64,32]"), passed to the job unquoted."""

    searched: dict[str, BaseDistribution]
    fixed: dict[str, str]
    literal: dict[str, frozenset[str]]


def parse_space(arguments: list[str], n_from_params: int = 0) -> Space:
    """Override strings -> their Space.

    A fixed key also given as a sweep is fixed (later overrides, e.g. the command line, win).
    The first `n_from_params` come from `hydra.sweeper.params` (errors name them so); a string
    that does not parse, a sweep Optuna cannot sample, or a quoted sweep is a SweepError.
    """
    space = Space({}, {}, {})
    for i, text in enumerate(arguments):
        where = "hydra.sweeper.params." if i < n_from_params else ""
        override = parse_override(text, where)
        key = override.get_key_element()
        space.literal.pop(key, None)
        if override.is_sweep_override():
            space.searched[key] = to_distribution(override, where)
            space.fixed.pop(key, None)
            if isinstance(override.value(), ChoiceSweep):
                structured = [Transformer.str(c) for c in override.sweep_iterator() if isinstance(c, (list, dict))]
                if structured:
                    space.literal[key] = frozenset(structured)
        else:
            check_fixed(override, where)
            space.fixed[key] = override.get_value_element_as_str()
            space.searched.pop(key, None)
    return space


def override_text(key: str, value: Any, literal: frozenset[str] = frozenset()) -> str:
    """`key=value` in Hydra's grammar for a sampled value: a value in `literal` (a list or dict
    choice's text) as it is, other strings quoted when needed."""
    if isinstance(value, str) and value in literal:
        return f"{key}={value}"
    if isinstance(value, str):
        plain = value.replace("_", "").replace("-", "").replace(".", "").replace("/", "").isalnum()
        return f"{key}={value}" if plain else f"{key}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    return f"{key}={value!r}"
