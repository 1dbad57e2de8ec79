"""What a person reads: the HParams table read back from TensorBoard's event files, run dir names,
train.log's epoch lines, the progress bar, Lightning's noise filtered, the toy's own metric, the
few-batches warning and a pruned trial's status."""

import json
import logging
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
        assert columns == ["model", "optimizer", "lr", "hidden", "activations", "dropout", "batch_norm", "batch_size",
                           "frac", "fill", "targets", "seed", "max_epochs", "data.split.gap_days"]
        assert values["model"] == "MLP" and values["optimizer"] == "SGD" and values["hidden"] == "[118, 142]"
        assert values["lr"] == pytest.approx(yaml.safe_load((run / "config.yaml").read_text())["model"]["optimizer"]["lr"])
        assert (values["batch_size"], values["max_epochs"], values["data.split.gap_days"]) == (512, 2, gap)
        assert metric_tags == ["hp_metric", "val/utility_best", "val/utility", "val/auc", "val/acc", "val/loss", "train/loss"]
        m = json.loads((run / "metrics.json").read_text())
        assert last["hp_metric"] == pytest.approx(m["val/utility_best"]) and last["val/auc"] == pytest.approx(m["val/auc"])
        assert list(yaml.safe_load((run / "tensorboard" / "hparams.yaml").read_text()))[:4] == ["model", "optimizer", "lr", "hidden"]
        # train.log: one line per epoch with the epoch's metrics and the best so far
        log = (run / "train.log").read_text()
        lines = re.findall(r"\] - (epoch \d+: .*)", log)
        assert [line.split(":")[0] for line in lines] == ["epoch 0", "epoch 1"]
        assert f"val/utility={m['val/utility']:.4g} " in lines[1] and f"best val/utility={m['best/val/utility']:.4g}" in lines[1]
        assert "train/loss=" in lines[0] and lines[0].index("train/loss") < lines[0].index("val/utility")
    err = p.stdout + p.stderr
    bar = re.findall(r"Epoch \d+: 100%[^\]]*it/s, ([^\]]*)\]", err)  # the bar's metrics (its postfix)
    assert bar and all(re.fullmatch(r"val/utility=[-\d.]+", b) for b in bar), bar
    for noise in ("💡", "GPU available: False", "TPU available", "LeafSpec", "INFO: ", "does not have many workers",
                  "smaller than the logging interval"):
        assert noise not in err, noise
    assert err.count("| Name ") == 2  # the model summary stays, once per job


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
    assert columns == ["model", "optimizer", "lr", "hidden", "seed", "max_epochs", "experiment"]
    assert values["experiment"] == "sincos" and metric_tags == ["hp_metric", "test/mse", "train/mse"]
    assert last["hp_metric"] == pytest.approx(m["best/test/mse"]) and last["hp_metric"] > 0  # the lowest test/mse


def test_run_hparams_add_the_overrides_they_do_not_cover(tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    cfg = compose_cfg(["model=lstm", "model.hidden=8", "data.window.length=8", "data.cv.gap_days=3", "data.store=/x",
                       "model.optimizer.lr=0.01", "trainer.accelerator=cpu", "+trainer.gradient_clip_val=0.5"])
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
