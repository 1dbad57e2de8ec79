"""data.resident=true: batches gathered from tensors on the training device equal the memory-mapped
path's, rows and windows, 2021 and grouped (2024) stores, every batch of an epoch; a training run's
metrics are identical either way."""

import functools
import json

import lightning as L
import numpy as np
import pytest
import torch

from jsmp.batches.config import LoaderConfig, RowsConfig
from jsmp.batches.datamodule import JsmpDataModule
from jsmp.batches.resident import ResidentLoader, wanted
from jsmp.errors import UserError
from jsmp.inputs.windows import WindowSpec
from jsmp.models.mlp import MLP

RTMDF_ROWS = RowsConfig(task="regression", targets=["responder_6", "responder_7"], sample_weight="weight", fill="ffill",
                        lags=True)


class Sequence:
    sequence = True


def _module(store, rows, resident, window=None):
    dm = JsmpDataModule(store, rows, LoaderConfig(batch_size=64, eval_batch_size=200, resident=resident),
                        WindowSpec(**(window or {"length": 8, "shuffle_block": 16})))
    if window is not None:
        dm.connect(Sequence)
    dm.setup()
    return dm


def _assert_same_epochs(a: JsmpDataModule, b: JsmpDataModule, loader: str, epoch: int):
    la, lb = getattr(a, loader)(), getattr(b, loader)()
    assert isinstance(lb, ResidentLoader) and not isinstance(la, ResidentLoader)
    la.batch_sampler.set_epoch(epoch)
    lb.batch_sampler.set_epoch(epoch)
    ba, bb = list(la), list(lb)
    assert len(ba) == len(bb) == len(lb) > 1
    for x, y in zip(ba, bb):
        assert list(x) == list(y)
        for k in x:
            assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape and torch.equal(x[k], y[k]), k


@pytest.mark.parametrize("window", [None, {"length": 8, "shuffle_block": 16},
                                    {"length": 5, "cross_days": False, "shuffle_block": 1}])
@pytest.mark.parametrize("layout", ["2021", "2024"])
def test_resident_batches_equal_the_memory_mapped_ones(tiny_store, tiny_rtmdf_store, layout, window):
    store, rows = (tiny_store, RowsConfig(targets=["resp", "resp_1"])) if layout == "2021" else (tiny_rtmdf_store, RTMDF_ROWS)
    mapped, resident = _module(store, rows, "false", window), _module(store, rows, "true", window)
    for epoch in (0, 1):
        _assert_same_epochs(mapped, resident, "train_dataloader", epoch)
    _assert_same_epochs(mapped, resident, "val_dataloader", 0)
    if window is not None:  # windows reach rows before the first target: held too, padding zeroed
        x = next(iter(resident.val_dataloader()))
        assert x["x"].ndim == 3 and (x["x"][~x["mask"]] == 0).all()


def test_resident_auto_is_off_on_cpu_and_bad_values_are_one_line_errors(tiny_store):
    assert not wanted("auto", torch.device("cpu"), 1)
    assert wanted("true", torch.device("cpu"), 1 << 40) and not wanted("false", torch.device("cpu"), 1)
    dm = _module(tiny_store, RowsConfig(), "auto")
    assert not isinstance(dm.train_dataloader(), ResidentLoader)
    assert isinstance(_module(tiny_store, RowsConfig(), True).train_dataloader(), ResidentLoader)  # a YAML bool
    with pytest.raises(UserError, match=r"^data.resident must be one of \['auto', 'true', 'false'\], got 'yes'$"):
        JsmpDataModule(tiny_store, loader=LoaderConfig(resident="yes"))


def test_resident_holds_only_the_rows_the_split_reaches(tiny_store):
    dm = _module(tiny_store, RowsConfig(frac=0.5), "true")
    data = dm.resident_batches(dm.train_set, torch.device("cpu"))
    rows = dm.train_set.rows
    assert data.lo == rows.min() and len(data.features) == rows.max() - rows.min() + 1
    np.testing.assert_array_equal(data.features.numpy(), dm.train_set.features(np.arange(rows.min(), rows.max() + 1)))


@pytest.mark.parametrize("model", ["mlp", "lstm"])
def test_a_resident_training_run_has_identical_metrics(tiny_store, tmp_path, train_app, model):
    args = [f"data.store={tiny_store}", f"model={model}", "trainer.max_epochs=2", "data.batch_size=256", "logger=none",
            "data.window.length=4"]
    runs = {r: train_app(*args, f"data.resident={r}", run=r) for r in ("false", "true")}
    for p in runs.values():
        assert p.returncode == 0, p.stderr[-2000:]
    m = {r: json.loads((tmp_path / r / "metrics.json").read_text()) for r in runs}
    for d in m.values():
        for k in ("pid", "pid_start", "host"):
            d.pop(k)
    assert m["true"] == m["false"] and m["true"]["status"] == "completed" and m["true"]["epoch"] == 2
    assert "train/loss" in m["true"] and "val/loss" in m["true"]


def test_each_epoch_shuffles_anew_under_lightning(tiny_store):
    """Lightning calls set_epoch on loader.batch_sampler.sampler, the BatchIndexSampler itself, so epoch 1's
    first batch is the sampler's (seed, 1) order, not epoch 0's again."""

    class FirstBatch(L.Callback):
        def __init__(self):
            self.x = {}

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if batch_idx == 0:
                self.x[trainer.current_epoch] = batch["x"].clone()

    data = JsmpDataModule(tiny_store, loader=LoaderConfig(batch_size=64), verify=False)
    data.connect(MLP)
    data.setup("fit")
    seen = FirstBatch()
    model = MLP(**data.model_kwargs(), hidden=[4], activations="relu", optimizer=functools.partial(torch.optim.SGD, lr=1e-9))
    L.Trainer(max_epochs=2, limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, callbacks=[seen], use_distributed_sampler=False).fit(model, datamodule=data)
    assert not torch.equal(seen.x[0], seen.x[1])
    sampler = data.train_dataloader().batch_sampler
    sampler.set_epoch(1)
    assert torch.equal(seen.x[1], data.train_set[next(iter(sampler))]["x"])


class DayModel:
    sample = "day"


@pytest.mark.parametrize("days_per_batch", [1, 3])
def test_resident_day_samples_equal_the_memory_mapped_ones(tiny_rtmdf_store, days_per_batch):
    dms = []
    for resident in ("false", "true"):
        dm = JsmpDataModule(tiny_rtmdf_store, RTMDF_ROWS, LoaderConfig(resident=resident), days_per_batch=days_per_batch)
        dm.connect(DayModel)
        dm.setup()
        dms.append(dm)
    for epoch in (0, 1):
        _assert_same_epochs(*dms, "train_dataloader", epoch)
    _assert_same_epochs(*dms, "val_dataloader", 0)
    batch = next(iter(dms[1].train_dataloader()))
    assert batch["x"].shape[0] == days_per_batch and not batch["mask"].all()  # absent cells there: zeros read
    assert (batch["x"][~batch["mask"]] == 0).all() and (batch["y"][~batch["mask"]] == 0).all()
