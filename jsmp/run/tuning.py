"""Replaying a sweep's best trial: `python train.py +best=logs/train/sweeps/mlp/best.yaml [overrides]`."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from jsmp.errors import UserError

# overrides of a trial that would turn the replay into a sweep again
SWEEP_KEYS = ("hparams_search", "hydra.")


def best_overrides(path: str | Path) -> list[str]:
    """The command-line overrides the best trial of a sweep ran with (from its best.yaml)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"+best={path}: no such file (a sweep writes best.yaml into its sweep dir)")
    best = OmegaConf.load(path)
    if not OmegaConf.is_list(best.get("overrides")):
        raise UserError(f"{path}: expected an `overrides` list (a sweep's best.yaml), got keys {sorted(best)}")
    return [str(o) for o in best.overrides if not str(o).lstrip("+~").startswith(SWEEP_KEYS)]


def expand_best(argv: list[str]) -> list[str]:
    """`argv` with each `+best=PATH` replaced by that trial's overrides (later arguments still win)."""
    out = []
    for arg in argv:
        key, _, value = arg.partition("=")
        out += best_overrides(value) if key.lstrip("+") == "best" and value else [arg]
    return out
