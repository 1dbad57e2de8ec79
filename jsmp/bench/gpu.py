"""`python -m jsmp.bench gpu`: the GPU path, MLP and LSTM, with the CPU figures beside.

One epoch (or `--steps`) of `Trainer.fit` per model on the full-size synthetic store, batches
gathered from the memmap as in a real run: on the GPU with `--precision` (bf16-mixed) and
pinned memory, and for `--cpu-steps` steps on the CPU as the baseline. Prints samples/s,
the GPU/CPU ratio and the peak GPU memory. Needs a CUDA GPU (prints the CPU rows without one).
"""

from __future__ import annotations

import argparse

import torch

from jsmp.batches.datamodule import JsmpDataModule
from jsmp.bench.common import add_store_arguments, bench_data, synthetic_store
from jsmp.bench.train import StepTimer, bench_model, bench_trainer
from jsmp.models.lstm import LSTM
from jsmp.models.mlp import MLP


def rate(model, data: JsmpDataModule, steps: int, accelerator: str, precision: str, warmup: int = 5) -> float:
    """Samples/s of `steps` training steps after `warmup` steps."""
    timer = StepTimer(warmup)
    bench_trainer(steps, [timer], accelerator=accelerator, precision=precision).fit(model, datamodule=data)
    return (steps - warmup) * data.loader.batch_size / (timer.t1 - timer.t0)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m jsmp.bench gpu", description=__doc__.splitlines()[0])
    add_store_arguments(p)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--precision", default="bf16-mixed")
    p.add_argument("--steps", type=int, default=0, help="GPU steps per model (default: one epoch)")
    p.add_argument("--cpu-steps", type=int, default=20, help="CPU baseline steps per model")
    a = p.parse_args(argv)
    gpu = torch.cuda.is_available()
    store = str(synthetic_store(a.days, a.rows_per_day))
    print(f"store {store}; batch {a.batch_size}; GPU: {torch.cuda.get_device_name() if gpu else 'none'}")
    print(f"{'model':<12} {'CPU samples/s':>14} {'GPU samples/s':>14} {'GPU/CPU':>8} {'GPU steps':>10} {'peak GPU MB':>12}")
    for name, cls in [("MLP", MLP), (f"LSTM W={a.window}", LSTM)]:
        data = bench_data(store, cls, a.batch_size, a.window, pin_memory=gpu)
        torch.manual_seed(0)
        cpu = rate(bench_model(cls, data), data, a.cpu_steps, "cpu", "32-true")
        if not gpu:
            print(f"{name:<12} {cpu:>14.0f} {'-':>14} {'-':>8} {'-':>10} {'-':>12}")
            continue
        steps = a.steps or len(data.train_dataloader())
        torch.cuda.reset_peak_memory_stats()
        g = rate(bench_model(cls, data), data, steps, "gpu", a.precision)
        peak = torch.cuda.max_memory_allocated() / 2**20
        print(f"{name:<12} {cpu:>14.0f} {g:>14.0f} {g / cpu:>8.1f} {steps:>10} {peak:>12.0f}")
    return 0
