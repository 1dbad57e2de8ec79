"""What a person reads while and after a run trains: the HParams table, and a console without Lightning's noise.

The HParams table (TensorBoard; params of the CSV and MLflow loggers) gets a short, ordered set of
keys instead of the whole config (config.yaml keeps that): model, optimizer, lr, the model's own
sizes (hidden first), window, batch_size, frac, fill, targets, fold, seed, max_epochs, the
experiment, then every key the run's command line set (in a multirun: the keys it sweeps). Its
metrics are hp_metric, the optimized and monitored metrics and the model's `dashboard_metrics`
(their last logged values fill the table).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable

from omegaconf import DictConfig, OmegaConf

# run-dir plumbing, not hyper-parameters: left out of the table (and of multirun dir names, conf/hydra/default.yaml)
NOT_HPARAMS = re.compile(r"^(hydra|paths|logger|callbacks|debug|hparams_search|ckpt_path|optuna_trial|task_name|trainer\.(accelerator|devices"
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
    """(key, value) of this job's command-line overrides (Hydra's `overrides.task`), `+`/`~` stripped."""
    hc = _hydra()
    task = hc.overrides.task if hc is not None else []
    return [(k.lstrip("+~"), v) for k, _, v in (str(o).partition("=") for o in task)]


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
    paths.update({"model": "model", "model.optimizer": "optimizer"})  # group overrides (model=lstm, model/optimizer=sgd)
    for key, raw in _overrides():
        path = key.replace("/", ".")
        if NOT_HPARAMS.match(key) or path in paths:
            continue
        value = OmegaConf.select(cfg, path, default=raw)
        add(path, path, raw if OmegaConf.is_dict(value) else value)  # a group (trainer=gpu): its option's name
    return out


def hparams_metrics(cfg: DictConfig, model) -> list[str]:
    """The HParams table's metric columns: hp_metric, optimized_metric, monitor, then the model's
    `dashboard_metrics` (its final metrics), each once."""
    names = ["hp_metric", cfg.get("optimized_metric"), cfg.get("monitor"), *getattr(model, "dashboard_metrics", ())]
    return list(dict.fromkeys(n for n in names if n))


def sort_names(params: dict) -> dict[str, str]:
    """TensorBoard's HParams view sorts its columns by hparam name (tensorboard/plugins/hparams/
    backend_context.py): each key's name carries its rank ("03 lr"), its display name is the key."""
    width = len(str(len(params)))
    return {k: f"{i:0{width}d} {k}" for i, k in enumerate(params, 1)}


def log_hparams(loggers: Iterable, params: dict, metrics: list[str]) -> None:
    """`params` to every logger; TensorBoard's HParams view also gets `metrics` as its metric
    columns (their last logged values) and the keys in `params`' order."""
    from lightning.pytorch.loggers import TensorBoardLogger

    for logger in loggers:
        logger.log_hyperparams(params)  # TensorBoard (default_hp_metric: false): hparams.yaml only
        if isinstance(logger, TensorBoardLogger):
            _tensorboard_hparams(logger, params, metrics)


def _tensorboard_hparams(logger, params: dict, metrics: list[str]) -> None:
    """The three summaries of TensorBoard's hparams plugin (as torch.utils.tensorboard.summary.hparams
    writes them, plus display names), without logging placeholder metric values."""
    from lightning.pytorch.utilities import rank_zero_only
    from tensorboard.plugins.hparams import api_pb2, metadata
    from tensorboard.plugins.hparams import plugin_data_pb2 as pd

    if rank_zero_only.rank != 0:
        return
    names = sort_names(params)
    infos = [api_pb2.HParamInfo(name=names[k], display_name=k, type=_hparam_type(v)) for k, v in params.items()]
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=[
        api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m), display_name=m) for m in metrics])
    start = pd.SessionStartInfo()
    for k, v in params.items():
        field = {bool: "bool_value", str: "string_value"}.get(type(v), "number_value")
        setattr(start.hparams[names[k]], field, v)
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


def _hparam_type(v) -> int:
    from tensorboard.plugins.hparams import api_pb2

    if isinstance(v, bool):
        return api_pb2.DATA_TYPE_BOOL
    return api_pb2.DATA_TYPE_FLOAT64 if isinstance(v, (int, float)) else api_pb2.DATA_TYPE_STRING


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
