"""`python -m jsmp.bench train`: Lightning fit throughput vs a hand-written torch loop.

For the MLP (rows) and the LSTM (windows), in one process with one thread count:
- `fit`: `Trainer.fit` on the DataModule, batches gathered from the memmap as in a real run;
- `fit in memory`: `Trainer.fit` over the same batches, gathered beforehand and held in memory;
- `loop`: a plain torch loop (forward, BCE on logits, backward, step) over those in-memory batches.
Samples/s exclude the first `--warmup` steps of each. Targets: fit / loop >= 0.8 (MLP), >= 0.9 (LSTM).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import logging
import time

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from jsmp.batches.datamodule import JsmpDataModule
from jsmp.bench.common import add_store_arguments, bench_data, synthetic_store
from jsmp.models.lstm import LSTM
from jsmp.models.mlp import MLP

TARGETS = {"MLP": 0.8, "LSTM": 0.9}


def bench_model(model_class: type, data: L.LightningDataModule, **kwargs) -> L.LightningModule:
    """`model_class` built for `data` (its model_kwargs), training with Adam at lr 1e-3
    (conf/model/optimizer/adam.yaml's defaults)."""
    return model_class(**data.model_kwargs(), optimizer=functools.partial(torch.optim.Adam, lr=1e-3), **kwargs)


def bench_trainer(max_steps: int, callbacks=(), accelerator: str = "cpu", precision: str = "32-true") -> L.Trainer:
    """A one-device Trainer doing only training steps: no validation, logger, checkpoints or progress bar."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no per-fit banners
    return L.Trainer(accelerator=accelerator, devices=1, precision=precision, max_steps=max_steps,
                     limit_val_batches=0, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     use_distributed_sampler=False, num_sanity_val_steps=0, callbacks=list(callbacks))


class StepTimer(L.Callback):
    """Wall time from the start of step `warmup` to the end of the last step."""

    def __init__(self, warmup: int):
        self.warmup, self.t0, self.t1 = warmup, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.t1 = time.perf_counter()


class InMemory(L.LightningDataModule):
    """Serves a fixed list of batches (dicts of tensors) as one epoch."""

    def __init__(self, batches: list[dict]):
        super().__init__()
        self.batches = batches

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.batches, batch_size=None)


def fit_rate(model: L.LightningModule, data: L.LightningDataModule, steps: int, warmup: int, batch_size: int) -> float:
    """Samples/s of `Trainer.fit` for `steps` steps, after `warmup` steps."""
    timer = StepTimer(warmup)
    bench_trainer(steps, [timer]).fit(model, datamodule=data)
    return (steps - warmup) * batch_size / (timer.t1 - timer.t0)


def loop_rate(model: L.LightningModule, batches: list[dict], warmup: int) -> float:
    """Samples/s of a hand-written training loop over in-memory batches, after `warmup` steps."""
    opt = model.configure_optimizers()
    model.train()
    for i, batch in enumerate(batches):
        if i == warmup:
            t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(*model.inputs(batch)), batch["y"])
        loss.backward()
        opt.step()
    return sum(len(b["y"]) for b in batches[warmup:]) / (time.perf_counter() - t0)


def measure(make_model, data: JsmpDataModule, steps: int, warmup: int, repeat: int) -> dict[str, float]:
    """Best samples/s of each way of training over `repeat` rounds, run in a rotating order
    so that a change in the machine's load does not favour one of them."""
    batches = list(itertools.islice(data.train_dataloader(), steps))  # the first epoch's first batches
    ways = {
        "fit": lambda model: fit_rate(model, data, steps, warmup, data.loader.batch_size),
        "fit in memory": lambda model: fit_rate(model, InMemory(batches), steps, warmup, data.loader.batch_size),
        "loop": lambda model: loop_rate(model, batches, warmup),
    }
    best = dict.fromkeys(ways, 0.0)
    names = list(ways)
    for r in range(repeat):
        for name in names[r % 3 :] + names[: r % 3]:
            torch.manual_seed(0)
            best[name] = max(best[name], ways[name](make_model()))
    return best


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m jsmp.bench train", description=__doc__.splitlines()[0])
    add_store_arguments(p)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--mlp-steps", type=int, default=60)
    p.add_argument("--lstm-steps", type=int, default=16)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3, help="best of this many measurements of each")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    store = str(synthetic_store(a.days, a.rows_per_day))
    print(f"store {store}; batch {a.batch_size}; torch threads {torch.get_num_threads()}")
    rows = bench_data(store, MLP, a.batch_size)
    windows = bench_data(store, LSTM, a.batch_size, a.window)
    cases = [("MLP", lambda: bench_model(MLP, rows), rows, a.mlp_steps),
             (f"LSTM W={a.window}", lambda: bench_model(LSTM, windows), windows, a.lstm_steps)]
    print(f"{'model':<12} {'fit':>12} {'fit in memory':>14} {'loop':>12} {'fit/loop':>9} {'target':>7}  samples/s")
    ok = True
    for name, make_model, data, steps in cases:
        best = measure(make_model, data, steps, a.warmup, a.repeat)
        ratio = best["fit"] / best["loop"]
        target = TARGETS[name.split()[0]]
        ok &= ratio >= target
        print(f"{name:<12} {best['fit']:>12.0f} {best['fit in memory']:>14.0f} {best['loop']:>12.0f} {ratio:>9.2f} "
              f"{'>=' + str(target):>7}  {'ok' if ratio >= target else 'MISSED'}")
    return 0 if ok else 1
