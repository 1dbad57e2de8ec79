"""What a person reads while and after a run trains: the HParams table, and a console without Lightning's noise.

The HParams table (TensorBoard; params of the CSV and MLflow loggers) gets a short, ordered set of
keys instead of the whole config (config.yaml keeps that): model, optimizer, lr, the model's own
sizes (hidden first), window, batch_size, frac, fill, targets, fold, seed, max_epochs, the
experiment, tags, then every key the run's command line set (in a multirun: the keys it sweeps). Its
metrics are hp_metric, every task's `dashboard_metrics` and the data's reference metrics (their last
logged values fill the table). TensorBoard over all of logs/ reads the table's columns from one run:
every run declares the same ones (every built-in model's keys, every task's metrics) under names that
depend on the key alone, so runs of every task keep their values.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from jsmp.run.extras import run_tags
from jsmp.run.objective import Objective

# run-dir plumbing, not hyper-parameters: left out of the table (and of multirun dir names, conf/hydra/default.yaml)
NOT_HPARAMS = re.compile(r"^(hydra|paths|logger|callbacks|debug|hparams_search|ckpt_path|optuna_trial|task_name|extras|eval_after_fit|trainer\.(accelerator|devices"
                         r"|num_nodes|strategy|enable_\w+)|data\.(store|data_dir|verify|num_workers|pin_memory))([./]|$)")
# (short name, config path); the model's own keys go after lr
CURATED = (("model", "model._target_"), ("optimizer", "model.optimizer._target_"), ("lr", "model.optimizer.lr"))
AFTER_MODEL = (("window", "data.window.length"), ("batch_size", "data.batch_size"), ("frac", "data.frac"),
               ("fill", "data.fill"), ("targets", "data.targets"), ("fold", "data.fold"), ("seed", "seed"),
               ("max_epochs", "trainer.max_epochs"))


def _value(v):
    """A scalar TensorBoard and MLflow take: numbers, bools and strings as they are, the rest as text."""
    if OmegaConf.is_config(v):
        v = OmegaConf.to_container(v, resolve=True)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(str(_value(x)) for x in v) + "]"  # [118, 142], [resp]
    return v if isinstance(v, (int, float, str, bool)) else str(v)


def _class_name(target) -> str | None:
    return None if target is None else str(target).rsplit(".", 1)[-1]


def _hydra():
    """The running job's Hydra config (None outside a Hydra job)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _overrides() -> list[tuple[str, str]]:
    """(key, value) of this job's command-line overrides (Hydra's `overrides.task`), `+`/`~` and a group's
    `@package` stripped (`+logger@logger.mlflow=mlflow`: logger)."""
    hc = _hydra()
    task = hc.overrides.task if hc is not None else []
    return [(k.lstrip("+~").partition("@")[0], v) for k, _, v in (str(o).partition("=") for o in task)]


def _choice(group: str) -> str | None:
    hc = _hydra()
    return hc.runtime.choices.get(group) if hc is not None else None


def run_hparams(cfg: DictConfig, sequence: bool = False) -> dict:
    """The run's hyper-parameters for the HParams table, in reading order: short names for the
    curated keys (model and optimizer as class names), config paths (`model.dropout`) for the
    overridden keys they do not cover. `sequence`: the model reads windows (adds `window`)."""
    out, paths = {}, {}

    def add(name: str, path: str, value) -> None:
        if value is not None and name not in out:
            out[name], paths[path] = _value(value), name

    for name, path in CURATED:
        value = OmegaConf.select(cfg, path)
        add(name, path, _class_name(value) if path.endswith("_target_") else value)
    model = cfg.get("model") or {}
    own = [k for k in model if not str(k).startswith("_") and k != "optimizer"]
    for k in sorted(own, key=lambda k: k != "hidden"):  # hidden first, then the config's order
        add(k if k not in dict(CURATED + AFTER_MODEL) else f"model.{k}", f"model.{k}", model[k])
    for name, path in AFTER_MODEL:
        if name != "window" or sequence:
            add(name, path, OmegaConf.select(cfg, path))
    add("experiment", "experiment", _choice("experiment"))
    add("tags", "tags", ",".join(run_tags(cfg)) or None)  # (a preset's too)
    paths["tags"] = "tags"  # (the command line's `tags=...` is that column, none when empty)
    paths.update({"model": "model", "model.optimizer": "optimizer"})  # group overrides (model=lstm, model/optimizer=sgd)
    for key, raw in _overrides():
        path = key.replace("/", ".")
        if NOT_HPARAMS.match(key) or path in paths:
            continue
        value = OmegaConf.select(cfg, path, default=raw)
        add(path, path, raw if OmegaConf.is_dict(value) else value)  # a group (trainer=gpu): its option's name
    return out


def hparams_metrics(cfg: DictConfig, model) -> list[str]:
    """The HParams table's metric columns: hp_metric, then every task's metrics (metric_catalogue, the data's
    reference metrics beside the metric they bound), then this run's optimized_metric, monitor and
    `dashboard_metrics` not among them. The same list in every run of the built-in tasks, so a table over
    all of logs/ keeps each task's columns (TensorBoard takes the columns from one run's declaration)."""
    objective = Objective(cfg.optimized_metric).names if cfg.get("optimized_metric") else ()
    own = [*objective, cfg.get("monitor"), *getattr(model, "dashboard_metrics", ())]
    return list(dict.fromkeys(n for n in ["hp_metric", *metric_catalogue(), *own] if n))


# the data's reference metrics (RecipeData.reference_metrics: jsmp/batches/datamodule.py), each shown beside
# the metric its name extends (val/utility_ideal after val/utility)
REFERENCE_METRICS = ("val/utility_ideal", "val/r2_ideal", "val/r2_instrument")
# hp_metric holds each task's own score (utility, R², the toy's MSE): its column says so; the tasks' own
# `*_best` columns beside it split it
HP_METRIC_SHOWN = "hp_metric (utility | R² | MSE)"
HP_METRIC_CAPTION = ("each run's best optimized_metric: val/utility_best (action), val/r2_best (regression) or "
                     "the toy's lowest test/mse; compare it within one task, the columns beside it across tasks")


@functools.cache
def metric_catalogue() -> tuple[str, ...]:
    """Every built-in task's and model's `dashboard_metrics` (jsmp/models/tasks.py, the toy's): each one's
    first (its best score: val/utility_best, val/r2_best, test/mse) beside hp_metric, then the rest in
    that order, each reference metric after the metric it bounds."""
    from jsmp.models.tasks import TASKS

    lists = [t.dashboard_metrics for t in TASKS.values()]
    for node in _model_configs().values():
        module, _, name = str(node.get("_target_", "")).rpartition(".")
        try:
            metrics = getattr(getattr(importlib.import_module(module), name), "dashboard_metrics", None)
        except (ImportError, AttributeError, ValueError):  # (a user's config naming no class, or one not importable)
            continue
        lists += [metrics] if isinstance(metrics, (tuple, list)) and metrics else []
    out = list(dict.fromkeys([m[0] for m in lists] + [n for m in lists for n in m]))
    for ref in reversed(REFERENCE_METRICS):  # (each inserted right after its metric)
        base = max((m for m in out if ref.startswith(m + "_")), key=len, default=None)
        out.insert(out.index(base) + 1 if base else len(out), ref)
    return tuple(out)


# -- the HParams table's columns --------------------------------------------------------------
# TensorBoard's HParams view sorts its columns by name (tensorboard/plugins/hparams/backend_context.py):
# each key is named with its rank, "03 lr", and shown by its display name, "lr". The rank depends on the
# key alone (the built-in models' own keys share one, the command line's other keys come last), so a key
# is the same column in every run under logs/.
ORDER = ("model", "optimizer", "lr", "hidden", None, "window", "batch_size", "frac", "fill", "targets", "fold", "seed",
         "max_epochs", "experiment", "tags")  # None: the models' other keys
STRING, FLOAT, BOOL = "string_value", "number_value", "bool_value"
# declared types of the curated columns; the model keys' come from conf/model/ (hparam_catalogue)
CURATED_TYPES = {"model": STRING, "optimizer": STRING, "lr": FLOAT, "window": FLOAT, "batch_size": FLOAT, "frac": FLOAT,
                 "fill": STRING, "targets": STRING, "fold": FLOAT, "seed": FLOAT, "max_epochs": FLOAT, "experiment": STRING,
                 "tags": STRING}


def column_name(key: str) -> str:
    """The key's TensorBoard hparam name: its rank (two digits) and the key, "01 model", "05 dropout"."""
    rank = ORDER.index(key) if key in ORDER else ORDER.index(None) if key in hparam_catalogue() else len(ORDER)
    return f"{rank + 1:02d} {key}"


def _model_configs(folder: Path = Path(__file__).parents[1] / "conf" / "model") -> dict[str, dict]:
    """conf/model/*.yaml by file stem, as written (defaults unresolved): the mappings among them (a user's
    empty file or one that does not parse gives no columns; its run reports it)."""
    import yaml

    out = {}
    for p in sorted(folder.glob("*.yaml")):
        try:
            node = yaml.safe_load(p.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(node, dict):
            out[p.stem] = node
    return out


def _kind(v) -> str:
    return BOOL if isinstance(v, bool) else FLOAT if isinstance(v, (int, float)) else STRING


@functools.cache
def hparam_catalogue() -> dict[str, str]:
    """The columns every run declares, key -> value kind: the curated keys and every built-in model's own
    keys (a key whose values are lists in one model or differ in kind between models is text)."""
    kinds: dict[str, set] = {}
    for node in _model_configs().values():
        for k, v in node.items():
            if not str(k).startswith("_") and k not in ("defaults", "optimizer"):
                kinds.setdefault(k, set()).add(_kind(v))
    model = {k: s.pop() if len(s) == 1 else STRING for k, s in kinds.items() if k not in CURATED_TYPES}
    return {**CURATED_TYPES, **model}


def log_hparams(loggers: Iterable, params: dict, metrics: list[str]) -> None:
    """`params` to every logger; TensorBoard's HParams view also gets `metrics` as its metric
    columns (their last logged values) and the catalogue's columns (hparam_catalogue) beside `params`."""
    from lightning.pytorch.loggers import TensorBoardLogger

    for logger in loggers:
        logger.log_hyperparams(params)  # TensorBoard (default_hp_metric: false): hparams.yaml only
        if isinstance(logger, TensorBoardLogger):
            _tensorboard_hparams(logger, params, metrics)


def run_label(tb_dir: Path) -> str:
    """A run's Trial ID in the HParams table: what tells it apart first (the table cuts IDs after ~15
    characters), then where its dir lies from logs/ on: `0_mlp_data.fold=0 (train/multiruns/2026-03-01_10-00-00)`,
    `lstm 2026-03-01_10-00-00 (train/runs)` for the run dir 2026-03-01_10-00-00_lstm."""
    run = tb_dir.parent if tb_dir.name == "tensorboard" else tb_dir
    parts = run.resolve().parent.parts
    where = parts[len(parts) - parts[::-1].index("logs"):] if "logs" in parts else parts[-3:]
    stamp = re.fullmatch(r"(\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)_(.+)", run.name)  # a single run: <time>_<model>
    name = f"{stamp[2]} {stamp[1]}" if stamp else run.name
    return f"{name} ({Path(*where).as_posix()})" if where else name


def _tensorboard_hparams(logger, params: dict, metrics: list[str]) -> None:
    """The three summaries of TensorBoard's hparams plugin (as torch.utils.tensorboard.summary.hparams
    writes them, plus display names, the catalogue's columns and the run's label), without logging
    placeholder metric values. A value is written as its column's declared kind (64 as "64" in `hidden`,
    text since the MLP's is a list), so every run's cells fit the one declaration TensorBoard reads."""
    from lightning.pytorch.utilities import rank_zero_only
    from tensorboard.plugins.hparams import api_pb2, metadata
    from tensorboard.plugins.hparams import plugin_data_pb2 as pd

    if rank_zero_only.rank != 0:
        return
    kinds = {**hparam_catalogue(), **{k: _kind(v) for k, v in params.items() if k not in hparam_catalogue()}}
    types = {STRING: api_pb2.DATA_TYPE_STRING, FLOAT: api_pb2.DATA_TYPE_FLOAT64, BOOL: api_pb2.DATA_TYPE_BOOL}
    infos = [api_pb2.HParamInfo(name=column_name(k), display_name=k, type=types[kind]) for k, kind in kinds.items()]
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=[
        api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m), display_name=HP_METRIC_SHOWN if m == "hp_metric" else m,
                           description=HP_METRIC_CAPTION if m == "hp_metric" else "") for m in metrics])
    start = pd.SessionStartInfo(group_name=run_label(Path(logger.log_dir)))
    for k, v in params.items():
        v = str(v) if kinds[k] == STRING and not isinstance(v, str) else v
        setattr(start.hparams[column_name(k)], _kind(v), v)
    writer = logger.experiment._get_file_writer()
    for tag, data in ((metadata.EXPERIMENT_TAG, pd.HParamsPluginData(experiment=experiment)),
                      (metadata.SESSION_START_INFO_TAG, pd.HParamsPluginData(session_start_info=start)),
                      (metadata.SESSION_END_INFO_TAG, pd.HParamsPluginData(session_end_info=pd.SessionEndInfo(
                          status=api_pb2.STATUS_SUCCESS)))):
        writer.add_summary(_summary(tag, data))
    writer.flush()


def _summary(tag: str, data):
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata

    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR)
    return summary


# -- Lightning's noise ----------------------------------------------------------------------
NOISE = (
    "💡 Tip:",                                 # adverts for litlogger / litmodels
    "GPU available: False, used: False",      # nothing to say on a CPU machine
    "TPU available: False",
    "HPU available: False",
)
NOISY_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning 2.6 on torch >= 2.10
    r"The '\w+_dataloader' does not have many workers",   # by design: batches are gathered in-process
    r"The number of training batches \(\d+\) is smaller than the logging interval",  # jsmp warns itself
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(NOISE)


def quiet_lightning() -> None:
    """Filter the lines Lightning opens every run with that tell a user nothing (NOISE, NOISY_WARNINGS),
    and, when logging is configured (Hydra's console + train.log), drop the console handler the
    `lightning` package adds at import, which printed each of its lines twice. Idempotent."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in log.filters):
            log.addFilter(_DropNoise())
    for pattern in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    if logging.getLogger().handlers:
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            log = logging.getLogger(name)
            for h in [h for h in log.handlers if type(h) is logging.StreamHandler]:
                log.removeHandler(h)
            log.propagate = True
