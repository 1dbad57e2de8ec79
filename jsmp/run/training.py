"""The training recipe: config in, fitted model, checkpoints, TensorBoard and metrics.json out.

    data   = instantiate(cfg.data)          # a RecipeData (jsmp/batches/contract.py)
    data.connect(model class)               # windows when the model class sets `sequence`
    data.setup()                            # split by date, fill stats -> data.input_spec()
    model  = instantiate(cfg.model, **data.model_kwargs())   # n_features, n_days, n_targets, task
    trainer.fit(model, data)                # checkpoints, early stopping on cfg.monitor (val/utility or val/r2)
    return metrics[cfg.optimized_metric]    # for sweepers (with cv_objective: the mean over folds); a list
                                            # of names: a tuple (jsmp/run/objective.py)
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from jsmp.allocator import ENV, huge_pages_in_effect
from jsmp.batches.contract import RecipeData
from jsmp.checkpoint import CheckpointFiles
from jsmp.errors import UserError
from jsmp.files import write_text_atomic
from jsmp.inputs.spec import PREPROCESS
from jsmp.run import rundir
from jsmp.run.callbacks import EpochLog, MetricsJson, NaNGuard, write_json
from jsmp.run.config import build, model_class
from jsmp.run.dashboards import hparams_metrics, log_hparams, quiet_lightning, run_hparams
from jsmp.run.loggers import build_loggers
from jsmp.run.objective import Objective, ObjectiveCheck
from jsmp.run.pruning import trial_callbacks

log = logging.getLogger(__name__)


def check_accelerator(accelerator: str) -> None:
    """Fail early, in one line, when a GPU is asked for and none is visible."""
    if str(accelerator) in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator={accelerator} but no CUDA GPU is visible to torch "
            f"(torch {torch.__version__}); use trainer=cpu, or install a CUDA build: make install TORCH=torch"
        )


def train(cfg: DictConfig) -> float | tuple[float, ...]:
    """Train as `cfg` says: once, or once per CV fold with `cv_objective`; returns `cfg.optimized_metric`
    (a tuple, one value per name, when it is a list)."""
    quiet_lightning()
    log.info("huge pages for CPU tensors >= 2 MB: %s (%s=%s; see jsmp/allocator.py)",
             "on" if huge_pages_in_effect() else "off", ENV, os.environ.get(ENV, "unset"))
    return train_folds(cfg) if cfg.get("cv_objective") else train_once(cfg)


def check_trainer(trainer_cfg: DictConfig) -> None:
    """One-line errors for trainer keys Lightning would only trip over later (or silently accept)."""
    if trainer_cfg.get("fast_dev_run"):
        return
    epochs = trainer_cfg.get("max_epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise UserError(f"trainer.max_epochs must be an integer >= 1, got {epochs!r}")
    low = trainer_cfg.get("min_epochs")
    if low is not None and (isinstance(low, bool) or not isinstance(low, int) or low < 0):
        raise UserError(f"trainer.min_epochs must be null or an integer >= 0, got {low!r}")


def train_folds(cfg: DictConfig) -> float | tuple[float, ...]:
    """`cv_objective=true`: one run per fold of `data.cv`, in `<run dir>/fold-<k>/`; returns the
    mean of `optimized_metric` (each one's) over the folds and writes it, with each fold's value, to
    `<run dir>/metrics.json`. In a sweep the pruner follows the first fold only (the oldest,
    cheapest one): a trial it prunes never trains the other folds. With `ckpt_path=last`
    each fold that holds a run continues from its own last.ckpt; the others start."""
    folds = cfg.data.get("cv", {}).get("folds")
    if cfg.data.get("fold") is not None:
        raise UserError(f"cv_objective=true trains every fold of data.cv; leave data.fold null (got {cfg.data.fold})")
    if not isinstance(folds, int) or folds < 2:
        raise UserError(f"cv_objective=true needs data.cv.folds to be an integer >= 2, got {folds!r}")
    objective = Objective(cfg.optimized_metric)
    out_dir = Path(cfg.paths.output_dir)
    rundir.check_run_dir(cfg, out_dir)
    values = []  # (folds, names)
    for k in range(folds):
        fold_cfg = cfg.copy()
        fold_dir = out_dir / f"fold-{k}"
        with open_dict(fold_cfg):
            fold_cfg.cv_objective, fold_cfg.data.fold = False, k
            fold_cfg.paths.output_dir = str(fold_dir)
            fold_cfg.ckpt_path = "last" if cfg.get("ckpt_path") == "last" and rundir.run_contents(fold_dir) else None
            if k > 0:
                fold_cfg.optuna_trial = None
        values.append(objective.values(train_once(fold_cfg)))
        log.info("fold %d/%d: %s", k + 1, folds, objective.text(values[-1]))
    mean = np.mean(values, axis=0).tolist()
    write_json(out_dir / rundir.METRICS, {**dict(zip(objective.names, mean)), "folds": folds, "status": "completed",
                                           **{f"fold-{k}/{name}": v for k, fold in enumerate(values)
                                              for name, v in zip(objective.names, fold)}})
    log.info("%s (mean over %d folds)", objective.text(mean), folds)
    return objective.result(mean)


def train_once(cfg: DictConfig) -> float | tuple[float, ...]:
    """Train once as `cfg` says; returns `cfg.optimized_metric` (NaN if it was never logged: a
    validation that ran and did not log it fails the run, jsmp/run/objective.py).

    Everything is checked before anything is written into the run dir (jsmp/run/rundir.py): a
    fresh run needs a run dir without a run; a resume (`ckpt_path`) a readable checkpoint that
    matches the model, data and preprocess.json the run was trained with. A resume keeps the
    run's config.yaml and preprocess.json and saves its own config as config.resume-<n>.yaml.
    """
    objective = Objective(cfg.optimized_metric)
    out_dir = Path(cfg.paths.output_dir)
    resume = rundir.check_run_dir(cfg, out_dir)
    check_accelerator(cfg.trainer.get("accelerator", "cpu"))
    check_trainer(cfg.trainer)
    L.seed_everything(cfg.seed, workers=True)

    data = build(cfg.data, "data")
    if not isinstance(data, RecipeData):
        raise UserError(f"data: {type(data).__name__} does not offer what the recipe needs "
                        f"(jsmp.batches.contract.RecipeData: connect, model_kwargs, input_spec, reference_metrics)")
    data.connect(model_class(cfg))
    data.prepare_data()
    data.setup("fit")
    prep = data.input_spec()  # for jsmp.predict
    if resume is not None:
        rundir.check_data(resume, prep, data.model_kwargs(), f"ckpt_path={cfg.ckpt_path}")
    model = build(cfg.model, "model", **data.model_kwargs())

    mode = cfg.get("monitor_mode", "max")
    metrics_cb = MetricsJson(out_dir / rundir.METRICS, monitor=cfg.monitor, mode=mode, extra=data.reference_metrics())
    callbacks = [build(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items() if c is not None]
    loggers = build_loggers(cfg.get("logger"))
    # one train.log line per epoch; at most ~100 in all (the toy runs up to 10,000 epochs)
    epoch_log = EpochLog(cfg.monitor, mode, every=max(1, int(cfg.trainer.get("max_epochs") or 1) // 100))
    always = [NaNGuard(cfg.diverge_factor, cfg.get("diverge_check_every")), *trial_callbacks(cfg, objective), metrics_cb,
              ObjectiveCheck(objective, logged=metrics_cb.snapshot), epoch_log]
    # checkpoints written whole or not at all, with a checksum every loader verifies (jsmp/checkpoint.py)
    trainer: L.Trainer = build(cfg.trainer, "trainer", callbacks=[*callbacks, *always], logger=loggers or False,
                               plugins=[CheckpointFiles()])

    # checked: now write (rank 0): the resolved config, and the preprocess the model trains with
    if rank_zero_only.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        if resume is not None and resume.continues:
            name = f"config.resume-{rundir.hydra_resume_number(out_dir)}.yaml"
        else:
            name = rundir.CONFIG
        write_text_atomic(out_dir / name, OmegaConf.to_yaml(cfg, resolve=True))
        if prep is not None and not (out_dir / PREPROCESS).exists():  # (a resume's is checked equal)
            prep.save(out_dir / PREPROCESS)

    if resume is None or not resume.continues:
        # the HParams table: the run's meaningful keys (config.yaml has them all) and its final
        # metrics. (A resume keeps the run's first hparams: its own config is in config.resume-<n>.yaml.)
        log_hparams(trainer.loggers, run_hparams(cfg, rundir.is_sequence(cfg)), hparams_metrics(cfg, model))
    log.info("training %s on %s -> %s%s", type(model).__name__, type(data).__name__, out_dir,
             f" (resuming from {resume.ckpt})" if resume is not None else "")
    trainer.fit(model, datamodule=data, ckpt_path=None if resume is None else str(resume.ckpt))

    metrics = metrics_cb.write(trainer)
    log.info("%s", summary(metrics, cfg.monitor, getattr(trainer.checkpoint_callback, "best_model_path", "") or None))
    values = objective.read(metrics)
    log.info("%s", objective.text(values))
    return objective.result(values)


# shown after the monitored metric when the run logged them (the trade models do)
SUMMARY_EXTRAS = (("oracle", "val/utility_oracle"), ("ideal", "val/utility_ideal"), ("ideal", "val/r2_ideal"),
                  ("instrument", "val/r2_instrument"), ("auc", "val/auc"))


def summary(metrics: dict, monitor: str, ckpt: str | None) -> str:
    """The run's last line: `done: <monitor>=<last> best=<best epoch's>` and, when logged, oracle,
    ideal and auc (val/utility's references), then the best checkpoint."""
    parts = [f"{monitor}={_fmt(metrics.get(monitor))}", f"best={_fmt(metrics.get(f'best/{monitor}'))}"]
    parts += [f"{name}={_fmt(metrics[key])}" for name, key in SUMMARY_EXTRAS if key in metrics and key != monitor]
    return "done: " + " ".join(parts) + (f" (best checkpoint: {ckpt})" if ckpt else "")


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"
