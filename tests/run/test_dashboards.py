"""What a person reads: the HParams table read back from TensorBoard's event files, run dir names,
train.log's epoch lines, the progress bar, Lightning's noise filtered, the toy's own metric, the
few-batches warning and a pruned trial's status."""

import functools
import json
import logging
import math
import re
from types import SimpleNamespace

import optuna
import pytest
import yaml
from hydra.core.hydra_config import HydraConfig
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import backend_context, metadata

from conftest import compose_cfg, run_cli, train_in_process
from jsmp.batches.config import LoaderConfig, RowsConfig
from jsmp.batches.datamodule import JsmpDataModule
from jsmp.run.callbacks import MetricsJson
from jsmp.run.dashboards import run_hparams


def hparams_table(tb_dir):
    """(column names as TensorBoard's HParams view orders and shows them, metric tags, {column: value},
    last value of each scalar) from a run's event file."""
    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    backend_context._sort_and_reduce_to_hparams_limit(experiment)  # what the HParams plugin serves
    shown = {h.name: h.display_name for h in experiment.hparam_infos}
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    values = {shown[k]: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    last = {tag: acc.Scalars(tag)[-1].value for tag in acc.Tags()["scalars"]}
    return list(shown.values()), [m.name.tag for m in experiment.metric_infos], values, last


# every run's columns: the curated keys, every built-in model's own keys (after hidden, by name), the experiment
UNION = ["model", "optimizer", "lr", "hidden", "activations", "aux_dropout", "aux_hidden", "batch_norm", "decoder_dropout",
         "dropout", "encoder", "heads", "input_dropout", "layers", "loss", "noise", "window", "batch_size", "frac", "fill",
         "targets", "fold", "seed", "max_epochs", "experiment", "tags"]
# every task's metrics: hp_metric, each task's best score beside it, the rest, each reference after its metric
METRICS = ["hp_metric", "val/utility_best", "val/r2_best", "test/mse", "val/utility", "val/utility_ideal", "val/auc",
           "val/acc", "val/loss", "train/loss", "val/r2", "val/r2_ideal", "val/r2_instrument", "val/mse", "train/mse"]


def test_multirun_dirs_hparams_epoch_lines_bar_and_no_noise(tiny_store, tmp_path):
    sweep = tmp_path / "sweep"
    p = run_cli(["train.py", "-m", f"hydra.sweep.dir={sweep}", f"data.store={tiny_store}", "trainer.max_epochs=2",
                 "data.batch_size=512", "model/optimizer=sgd", "data.split.gap_days=1,2"], env={"JSMP_ROOT": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-3000:]
    # run dirs (and so TensorBoard's runs) named by job, model and overrides; model/optimizer left out (its `/`)
    names = sorted(d.name for d in sweep.iterdir() if d.is_dir())
    assert names == ["0_mlp_data.batch_size=512,data.split.gap_days=1,trainer.max_epochs=2",
                     "1_mlp_data.batch_size=512,data.split.gap_days=2,trainer.max_epochs=2"]
    for gap, name in zip((1, 2), names):
        run = sweep / name
        columns, metric_tags, values, last = hparams_table(run / "tensorboard")
        assert columns == [*UNION, "data.split.gap_days"]  # the swept key after every run's columns
        assert [c for c in columns if c in values] == ["model", "optimizer", "lr", "hidden", "activations", "batch_norm", "dropout",
                                                       "batch_size", "frac", "fill", "targets", "seed", "max_epochs",
                                                       "data.split.gap_days"]
        assert values["model"] == "MLP" and values["optimizer"] == "SGD" and values["hidden"] == "[118, 142]"
        assert values["lr"] == pytest.approx(yaml.safe_load((run / "config.yaml").read_text())["model"]["optimizer"]["lr"])
        assert (values["batch_size"], values["max_epochs"], values["data.split.gap_days"]) == (512, 2, gap)
        assert values["dropout"] == "0.0"  # text in every run: the AEMLP's is a list
        assert metric_tags == METRICS
        m = json.loads((run / "metrics.json").read_text())
        assert last["hp_metric"] == pytest.approx(m["val/utility_best"]) and last["val/auc"] == pytest.approx(m["val/auc"])
        assert last["val/utility_ideal"] == pytest.approx(m["val/utility_ideal"], rel=1e-6)  # the data's ceiling, logged
        assert "best/val/utility_ideal" not in m
        assert list(yaml.safe_load((run / "tensorboard" / "hparams.yaml").read_text()))[:4] == ["model", "optimizer", "lr", "hidden"]
        # train.log: one line per epoch with the epoch's metrics and the best so far (the ceiling: in the done line)
        lines = re.findall(r"\] - (epoch \d+: .*)", (run / "train.log").read_text())
        assert not any("_ideal" in line for line in lines)
        assert [line.split(":")[0] for line in lines] == ["epoch 0", "epoch 1"]
        assert f"val/utility={m['val/utility']:.4g} " in lines[1] and f"best val/utility={m['best/val/utility']:.4g}" in lines[1]
        assert "train/loss=" in lines[0] and lines[0].index("train/loss") < lines[0].index("val/utility")
    err = p.stdout + p.stderr
    bar = re.findall(r"Epoch \d+: 100%[^\]]*it/s, ([^\]]*)\]", err)  # the bar's metrics (its postfix)
    assert bar and all(re.fullmatch(r"val/utility=[-\d.]+", b) for b in bar), bar
    for noise in ("💡", "GPU available: False", "TPU available", "LeafSpec", "INFO: ", "does not have many workers",
                  "smaller than the logging interval"):
        assert noise not in err, noise
    assert len(re.findall(r"[|┃] Name ", err)) == 2  # the model summary stays, once per job (rich's when rich is installed)


def test_the_toy_reports_its_own_metric(tmp_path):
    p = train_in_process(["experiment=sincos", "trainer.max_epochs=3"], env={"JSMP_ROOT": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-3000:]
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    assert run.name.endswith("_sincos")  # <time>_<model>
    m = json.loads((run / "metrics.json").read_text())
    out = p.stdout + p.stderr
    done = next(line for line in out.splitlines() if "done:" in line)
    assert done.endswith(f"done: test/mse={m['test/mse']:.4g} best={m['best/test/mse']:.4g}") and "n/a" not in out
    columns, metric_tags, values, last = hparams_table(run / "tensorboard")
    assert columns == UNION and [c for c in columns if c in values] == ["model", "optimizer", "lr", "hidden", "seed",
                                                                        "max_epochs", "experiment"]
    assert values["experiment"] == "sincos" and values["hidden"] == "16" and metric_tags == METRICS
    assert last["hp_metric"] == pytest.approx(m["best/test/mse"]) and last["hp_metric"] > 0  # the lowest test/mse


def test_run_hparams_add_the_overrides_they_do_not_cover(tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    cfg = compose_cfg(["model=lstm", "model.hidden=8", "data.window.length=8", "data.cv.gap_days=3", "data.store=/x",
                       "model.optimizer.lr=0.01", "trainer.accelerator=cpu", "+trainer.gradient_clip_val=0.5",
                       "logger=many", "+logger@logger.mlflow=mlflow"])  # (a logger's `@package`: no column, no MLflow param)
    HydraConfig.instance().set_config(cfg)
    try:
        params = run_hparams(cfg, sequence=True)
    finally:
        HydraConfig.instance().cfg = None
    assert list(params) == ["model", "optimizer", "lr", "hidden", "layers", "dropout", "window", "batch_size", "frac",
                            "fill", "targets", "seed", "max_epochs", "data.cv.gap_days", "trainer.gradient_clip_val"]
    assert (params["model"], params["lr"], params["hidden"], params["window"]) == ("LSTM", 0.01, 8, 8)
    assert (params["data.cv.gap_days"], params["trainer.gradient_clip_val"]) == (3, 0.5)


@pytest.mark.parametrize("batch_size,warned", [(256, True), (64, False)])
def test_few_training_batches_warn_in_one_line(tiny_store, caplog, batch_size, warned):
    # half the tiny store's 30 days: 15 kept, 3 validate, 5 purged, 7 train (~450 rows)
    data = JsmpDataModule(tiny_store, RowsConfig(frac=0.5), LoaderConfig(batch_size=batch_size))
    with caplog.at_level(logging.WARNING, logger="jsmp.batches.datamodule"):
        data.setup("fit")
    rows, days = len(data.train_set), len(data.split.train)
    assert days == 7 and 64 * 4 <= rows < 256 * 3
    expected = (f"only {-(-rows // batch_size)} training batches per epoch ({rows} rows on 7 days, data.batch_size="
                f"{batch_size}): raise data.frac (now 0.5), lower data.split.gap_days (now 5) or lower data.batch_size")
    assert [r.getMessage() for r in caplog.records] == ([expected] if warned else [])


def _trainer():
    return SimpleNamespace(callback_metrics={}, current_epoch=3, global_step=7, sanity_checking=False)


@pytest.mark.parametrize("exception,status", [(optuna.TrialPruned("epoch 3: val/utility_best=0.1"), "pruned"),
                                              (RuntimeError("boom"), "failed")])
def test_a_pruned_trial_says_pruned(tmp_path, exception, status):
    cb = MetricsJson(tmp_path / "metrics.json")
    cb.on_exception(_trainer(), None, exception)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["status"] == status and m["error"] == f"{type(exception).__name__}: {exception}" and m["epoch"] == 3


def test_job_dir_names_are_safe_and_bounded():
    from jsmp.run.rundir import JOB_NAME_MAX, job_dir_name

    assert job_dir_name("data.fold=0,seed=1") == "data.fold=0,seed=1"  # short names as before
    assert job_dir_name("optimized_metric=val/utility_best") == "optimized_metric=val-utility_best"
    assert job_dir_name("data.targets=[resp,resp_1],tags=['a b']") == "data.targets=-resp,resp_1-,tags=--a-b--"
    long = ",".join(f"model.key_{k}=value/{k}" for k in range(30))
    name = job_dir_name(long)
    assert len(name) == JOB_NAME_MAX and name[-9] == "~" and "/" not in name
    assert name != job_dir_name(long.replace("value/29", "value/30"))  # cut alike, told apart by the hash


def test_a_multirun_with_a_dozen_long_overrides_and_a_slash_gets_one_bounded_dir(tiny_store, tmp_path):
    """About 10 overrides made Hydra's job dir name longer than a file name may be (OSError 36), and a `/` in a
    value nested it; the job dir is now one short safe name, its overrides whole in .hydra/overrides.yaml."""
    from jsmp.run.rundir import JOB_NAME_MAX

    sweep = tmp_path / "sweep"
    overrides = ["optimized_metric=val/utility_best", "callbacks.early_stopping.patience=7",
                 "callbacks.model_checkpoint.filename=best-of-the-long-run", "data.batch_size=512",
                 "data.eval_batch_size=8192", "data.split.gap_days=1", "data.split.val_frac=0.25", "model.dropout=0.125",
                 "model.activations=relu", "model.optimizer.lr=0.00123456789", "diverge_factor=30",
                 "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=2"]
    p = run_cli(["train.py", "-m", f"hydra.sweep.dir={sweep}", f"data.store={tiny_store}", *overrides, "seed=1,2"],
                env={"JSMP_ROOT": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-3000:]
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir())
    assert [d.name[:6] for d in jobs] == ["0_mlp_", "1_mlp_"]
    whole = ",".join(sorted(o.lstrip("+") for o in overrides))  # what Hydra's override_dirname joins (sorted)
    assert len(whole) > 255 and all(len(d.name) == 6 + JOB_NAME_MAX and "~" in d.name for d in jobs)
    for d, seed in zip(jobs, (1, 2)):
        assert (d / "metrics.json").is_file() and not d.name.endswith("=val")  # not nested at the `/`
        assert yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text())[-1] == f"seed={seed}"
        assert "optimized_metric=val/utility_best" in yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text())


def served_table(logs):
    """What TensorBoard's HParams tab gets for `tensorboard --logdir LOGS`, from its own backend: the columns
    (hparam display names, metric tags) and {Trial ID: {column: value}} for the request the tab sends first
    (every column with its default filter: "" for text, an unbounded interval for numbers)."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, get_experiment, list_session_groups

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logs))
    mux.Reload()
    backend = backend_context.Context(base_plugin.TBContext(
        logdir=str(logs), multiplexer=mux, data_provider=data_provider.MultiplexerDataProvider(mux, str(logs))))
    ctx = context.RequestContext()
    experiment = get_experiment.Handler(ctx, backend, "", api_pb2.GetExperimentRequest()).run()
    cols = [api_pb2.ColParams(hparam=h.name, **({"filter_regexp": ""} if h.type == api_pb2.DATA_TYPE_STRING else
                                                {"filter_interval": api_pb2.Interval(min_value=-math.inf, max_value=math.inf)}))
            for h in experiment.hparam_infos] + [api_pb2.ColParams(metric=m.name) for m in experiment.metric_infos]
    request = api_pb2.ListSessionGroupsRequest(col_params=cols, start_index=0, slice_size=100,
                                               allowed_statuses=[api_pb2.STATUS_SUCCESS, api_pb2.STATUS_UNKNOWN])
    groups = list_session_groups.Handler(ctx, backend, "", request).run().session_groups
    shown = {h.name: h.display_name for h in experiment.hparam_infos}
    rows = {g.name: {**{shown[k]: getattr(v, v.WhichOneof("kind")) for k, v in g.hparams.items()},
                     **{m.name.tag: m.value for m in g.metric_values}} for g in groups}
    return [h.display_name for h in experiment.hparam_infos], [m.name.tag for m in experiment.metric_infos], rows


def test_runs_of_every_task_share_one_hparams_table(tmp_path):
    """Runs of the 2021 action task, a 2024 regression multirun and the toy under one logs/: TensorBoard takes the
    columns from one run's declaration, and each run declares every task's columns under the same names, so
    whichever it takes, every run keeps its values (`experiment`, val/r2...) and Trial IDs start with the run."""
    from lightning.pytorch.loggers import TensorBoardLogger

    from jsmp.run.dashboards import column_name, log_hparams

    logs = tmp_path / "logs" / "train"
    runs = {  # run dir: (params, the run's metrics)
        "runs/2026-03-01_10-00-00_mlp": ({"model": "MLP", "lr": 0.001, "hidden": "[118, 142]", "seed": 42},
                                         {"hp_metric": 7.5, "val/utility_best": 7.5, "val/utility_ideal": 17.8}),
        "multiruns/2026-03-01_11-00-00/0_gru_model.layers=1": (
            {"model": "GRU", "lr": 0.001, "hidden": 64, "layers": 1, "experiment": "rtmdf_gru"},
            {"hp_metric": 0.02, "val/r2_best": 0.02, "val/r2_ideal": 0.21}),
        "runs/2026-03-01_12-00-00_sincos": ({"model": "SinCos", "hidden": 16, "experiment": "sincos"},
                                            {"hp_metric": 0.003, "test/mse": 0.004}),
    }
    for run, (params, metrics) in runs.items():
        logger = TensorBoardLogger(logs / run / "tensorboard", name="", version="", default_hp_metric=False)
        log_hparams([logger], params, METRICS)
        logger.log_metrics(metrics, step=3)
        logger.finalize("success")
    assert column_name("model") == "01 model" and column_name("experiment") == "14 experiment"  # one width
    columns, metric_tags, rows = served_table(tmp_path / "logs")
    assert columns == UNION and metric_tags == METRICS
    assert rows == {
        "mlp 2026-03-01_10-00-00 (train/runs)": {"model": "MLP", "lr": 0.001, "hidden": "[118, 142]", "seed": 42,
                                                 "hp_metric": 7.5, "val/utility_best": 7.5, "val/utility_ideal": pytest.approx(17.8)},
        "0_gru_model.layers=1 (train/multiruns/2026-03-01_11-00-00)": {
            "model": "GRU", "lr": 0.001, "hidden": "64", "layers": 1, "experiment": "rtmdf_gru",
            "hp_metric": pytest.approx(0.02), "val/r2_best": pytest.approx(0.02), "val/r2_ideal": pytest.approx(0.21)},
        "sincos 2026-03-01_12-00-00 (train/runs)": {"model": "SinCos", "hidden": "16", "experiment": "sincos",
                                                    "hp_metric": pytest.approx(0.003), "test/mse": pytest.approx(0.004)},
    }


def test_a_users_model_files_of_any_shape_leave_the_columns_to_the_others(tmp_path, monkeypatch):
    """conf/model/ may hold a variant (`defaults: [mlp]`, no _target_), an empty file, a class that does not import,
    or YAML that does not parse: the catalogues skip them (each run reports its own file), never a traceback."""
    from jsmp.run import dashboards

    shipped = dashboards._model_configs()
    (tmp_path / "variant.yaml").write_text("defaults: [mlp]\nhidden: [16]\nwidth: 3\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "absent.yaml").write_text("_target_: nosuch.Model\ndepth: 2\n")
    (tmp_path / "broken.yaml").write_text("hidden: [16\n")
    mine = dashboards._model_configs(tmp_path)
    assert sorted(mine) == ["absent", "variant"]
    monkeypatch.setattr(dashboards, "_model_configs", lambda: {**shipped, **mine})
    for cached in (dashboards.metric_catalogue, dashboards.hparam_catalogue):
        monkeypatch.setattr(dashboards, cached.__name__, functools.cache(cached.__wrapped__))
    assert dashboards.metric_catalogue()[:3] == ("val/utility_best", "val/r2_best", "test/mse")
    assert dashboards.hparam_catalogue()["width"] == dashboards.FLOAT and "depth" in dashboards.hparam_catalogue()
