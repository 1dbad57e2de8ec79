"""Hydra's sweep grammar -> Optuna distributions.

    interval(a, b)              FloatDistribution(a, b)   (IntDistribution if a and b are ints)
    int(interval(a, b))         IntDistribution(a, b)
    tag(log, interval(a, b))    the same with log=True
    range(a, b, step)           IntDistribution(a, b - step, step)   (Float... if any is a float;
                                b excluded, as in Python's range and Hydra's basic sweeper)
    choice(x, y, ...)           CategoricalDistribution([x, y, ...])
    anything else               a fixed value passed to every trial
"""

from __future__ import annotations

from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)


def to_distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override (`override.is_sweep_override()`)."""
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
            n = int((stop - start) / step - 1e-9)  # last value strictly below stop
            return FloatDistribution(start, start + n * step, step=step)
        n = (int(stop) - int(start) - 1) // int(step)
        return IntDistribution(int(start), int(start) + n * int(step), step=int(step))
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(value.start, value.end, log=log)
    raise ValueError(f"{key}: {override.input_line!r} is not a sweep Optuna can sample")


def parse_params(arguments: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """Override strings -> (searched: key -> distribution, fixed: key -> value as override text).

    A fixed key also given as a sweep is fixed (later overrides, e.g. the command line, win).
    """
    searched: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(arguments):
        key = override.get_key_element()
        if override.is_sweep_override():
            searched[key] = to_distribution(override)
            fixed.pop(key, None)
        else:
            fixed[key] = override.get_value_element_as_str()
            searched.pop(key, None)
    return searched, fixed


def override_text(key: str, value: Any) -> str:
    """`key=value` in Hydra's grammar for a sampled value (strings quoted when needed)."""
    if isinstance(value, str):
        plain = value.replace("_", "").replace("-", "").replace(".", "").replace("/", "").isalnum()
        return f"{key}={value}" if plain else f"{key}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    return f"{key}={value!r}"
