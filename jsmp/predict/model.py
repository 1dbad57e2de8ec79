"""A training run's model for inference: its checkpoint (find_checkpoint) loaded weights-only into the
class config.yaml names (load_model), from the hyper-parameters that class accepts; the runs a multirun
or CV dir stands for (member_runs); a run opened whole, model and input contract (open_run, run_spec)
(docs/inference.md)."""

from __future__ import annotations

import inspect
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from jsmp import checkpoint
from jsmp.batches.config import RowsConfig
from jsmp.errors import UserError
from jsmp.inputs.spec import PREPROCESS, InputSpec
from jsmp.models.base import TradeModule

log = logging.getLogger(__name__)


def find_checkpoint(run: str | os.PathLike) -> tuple[Path, Path]:
    """(run dir, checkpoint) for a run dir (its best checkpoint, else last.ckpt) or a checkpoint file."""
    run = Path(run)
    if run.is_file():
        return (run.parent.parent if run.parent.name == "checkpoints" else run.parent), run
    if not run.is_dir():
        raise UserError(f"{run}: no such run dir or checkpoint file")
    found = sorted((run / "checkpoints").glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime) or \
        [p for p in [run / "checkpoints" / "last.ckpt"] if p.is_file()]
    if not found:
        raise UserError(f"{run}: no checkpoint in this run dir (expected checkpoints/best-*.ckpt or checkpoints/last.ckpt; "
                        f"train with the model_checkpoint callback, or pass a .ckpt file)")
    return run, found[-1]


def member_runs(run: str | os.PathLike) -> list[Path]:
    """The runs `run` stands for: itself when it is a checkpoint file or a run dir (with
    checkpoints/ or config.yaml); for a multirun or CV dir (Hydra's `-m` dir with jobs 0/, 1/, ...,
    or a `cv_objective` run's fold-0/, fold-1/, ...) the run dirs inside it, in numeric order (not
    Hydra's own .hydra/, which holds a config.yaml too)."""
    run = Path(run)
    if run.is_dir() and not (run / "checkpoints").is_dir() and not (run / "config.yaml").is_file():
        inside = [d for d in run.iterdir() if d.is_dir() and not d.name.startswith(".") and (d / "config.yaml").is_file()]
        if inside:
            return sorted(inside, key=lambda d: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", d.name)])
    return [run]


def model_kwargs(cls: type, hparams: dict) -> dict:
    """The hyper-parameters `cls(...)` accepts: those its __init__ names, and where that takes
    **kwargs (handed on to the base class, the models' convention) those of the bases up to one
    without **kwargs; all of them when every __init__ up to TradeModule takes **kwargs.

    So a checkpoint from before or after a constructor change (e.g. `lr, weight_decay` that
    moved into the optimizer's config) builds the model of today."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return {k: v for k, v in hparams.items() if k in names and k != "self"}
        if klass is TradeModule:
            break
    return dict(hparams)


def load_model(ckpt: Path, target: str) -> TradeModule:
    """The model class `target` with the checkpoint's hyper-parameters and weights, in eval mode.

    The checkpoint is checked against its recorded checksum and loaded weights-only (jsmp.checkpoint.load):
    one that holds any other object than tensors and plain containers is refused instead of running its
    unpickling code."""
    state = checkpoint.load(ckpt)
    if not isinstance(state, dict) or not {"state_dict", "hyper_parameters"} <= set(state):
        raise UserError(f"{ckpt}: expected a Lightning checkpoint with state_dict and hyper_parameters")
    try:
        cls = get_class(target)
    except Exception as e:  # hydra raises ImportError/ValueError variants
        raise UserError(f"config.yaml model._target_: cannot import {target!r} ({e})") from None
    if not (isinstance(cls, type) and issubclass(cls, TradeModule)):
        raise UserError(f"config.yaml model._target_: {target!r} is not a jsmp model (TradeModule)")
    # built for inference, without an optimizer (TradeModule): checkpoints from before it became a
    # config node hold its name, lr, ... among the hyper-parameters
    hparams = {k: v for k, v in state["hyper_parameters"].items() if k != "optimizer"}
    kwargs = model_kwargs(cls, hparams)
    if dropped := sorted(set(state["hyper_parameters"]) - set(kwargs)):
        log.info("%s: hyper-parameters %s are not arguments of %s; left out", ckpt, ", ".join(dropped), target)
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as e:
        raise UserError(f"{ckpt}: its hyper_parameters do not build {target} ({e}); expected a checkpoint of that model") from None
    model = cls(**kwargs)
    model.load_state_dict(state["state_dict"])
    return model.eval()


@dataclass(frozen=True)
class OpenRun:
    """One run, opened for serving: its dir, checkpoint, input contract (preprocess.json) and model."""

    run_dir: Path
    checkpoint: Path
    spec: InputSpec
    model: TradeModule


def run_config(run_dir: Path) -> DictConfig:
    """The config.yaml train.py wrote into the run dir (the model class it names)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise UserError(f"{path}: not found; expected the run dir that train.py wrote around the checkpoint")
    return OmegaConf.load(path)


def legacy_contract(cfg: DictConfig, hparams) -> tuple[list[str], str, str | None]:
    """(targets, task, sample_weight) of a run whose preprocess.json is version 1 (it did not record them): its
    config.yaml data.targets and data.sample_weight and its checkpoint's task (the defaults of their time when absent)."""
    return (list(OmegaConf.select(cfg, "data.targets") or RowsConfig().targets), hparams.get("task", "action"),
            OmegaConf.select(cfg, "data.sample_weight", default=RowsConfig().sample_weight))


def open_run(run: str | os.PathLike) -> OpenRun:
    """The run (dir or checkpoint file) with its model loaded and its preprocess.json read (a version-1
    file upgraded from config.yaml and the checkpoint's hyper-parameters)."""
    run_dir, ckpt = find_checkpoint(run)
    cfg = run_config(run_dir)
    model = load_model(ckpt, cfg.model._target_)
    spec = InputSpec.load(run_dir / PREPROCESS, legacy=lambda: legacy_contract(cfg, model.hparams))
    return OpenRun(run_dir, ckpt, spec, model)


def run_spec(run: str | os.PathLike) -> InputSpec:
    """The preprocess.json of `run` (dir or checkpoint file) without loading its model (a version-1
    file's task read from the checkpoint's hyper-parameters)."""
    run_dir, ckpt = find_checkpoint(run)

    def legacy():
        state = checkpoint.load(ckpt)
        return legacy_contract(run_config(run_dir), state.get("hyper_parameters", {}) if isinstance(state, dict) else {})

    return InputSpec.load(run_dir / PREPROCESS, legacy=legacy)
