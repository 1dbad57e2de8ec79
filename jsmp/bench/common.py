"""Helpers shared by the benchmarks: child-process timing and peak memory, cached inputs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from jsmp.data.synthetic import SynthSpec


@dataclass
class ChildRun:
    wall_s: float
    peak_rss_mb: float
    returncode: int
    stdout: str


def run_child(code: str, env: dict | None = None) -> ChildRun:
    """Run `python -c code` in a fresh process; its own wall time and peak RSS (from wait4)."""
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env={**os.environ, **(env or {})}, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"benchmark child failed (exit {p.returncode}); code:\n{code}")
    return ChildRun(wall, usage.ru_maxrss / 1024, p.returncode, out)


def cache_dir() -> Path:
    """Where benchmarks keep generated inputs between invocations (JSMP_BENCH_DIR, default data/bench)."""
    d = Path(os.environ.get("JSMP_BENCH_DIR", Path(os.environ.get("JSMP_ROOT", ".")) / "data" / "bench"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def add_store_arguments(parser) -> None:
    """--days / --rows-per-day of the synthetic store a benchmark runs on (default: full size)."""
    real = SynthSpec.real_size()
    parser.add_argument("--days", type=int, default=real.days)
    parser.add_argument("--rows-per-day", type=int, default=real.rows_per_day)


def bench_data(store: str | os.PathLike, model_class: type, batch_size: int, window: int = 32, pin_memory: bool = False,
               rows=None):
    """The set-up JsmpDataModule a benchmark trains `model_class` on: `store` unverified, served
    as the model reads it (connect: windows of `window` rows for a sequence model, else rows);
    `rows` a RowsConfig (default: the 2021 defaults; rtmdf_rows() for the 2024 layout)."""
    from jsmp.batches.config import LoaderConfig
    from jsmp.batches.datamodule import JsmpDataModule
    from jsmp.inputs.windows import WindowSpec

    data = JsmpDataModule(store, rows=rows, loader=LoaderConfig(batch_size=batch_size, pin_memory=pin_memory),
                          window=WindowSpec(length=window), verify=False)
    data.connect(model_class)
    data.setup("fit")
    return data


def synthetic_store(days: int, rows_per_day: int, seed: int = 0) -> Path:
    """A synthetic store in cache_dir(), generated on first use (atomically) and reused after."""
    from jsmp.data.synthetic import SynthSpec, write_store
    from jsmp.store.store import is_store

    spec = SynthSpec(days=days, rows_per_day=rows_per_day, seed=seed)
    path = cache_dir() / spec.name
    if not is_store(path):
        print(f"generating {path} (once; cached for later runs)", flush=True)
        write_store(spec, path)
    return path


def rtmdf_rows(fill: str = "mean", lags: bool = True):
    """The RowsConfig of conf/data/rtmdf.yaml (regression on responder_6 weighted by `weight`, lag
    features), with mean fill by default: ffill would first write a forward-filled copy of the store."""
    from jsmp.batches.config import RowsConfig

    return RowsConfig(task="regression", targets=["responder_6"], sample_weight="weight", lags=lags, fill=fill)


def rtmdf_store(days: int, times: int, symbols: int, seed: int = 0) -> Path:
    """A synthetic 2024-layout store (jsmp.data.synthetic_rtmdf) in cache_dir(), generated on first use."""
    from jsmp.data.synthetic_rtmdf import RtmdfSpec, write_store
    from jsmp.store.store import is_store

    spec = RtmdfSpec(days=days, times=times, symbols=symbols, seed=seed)
    path = cache_dir() / spec.name
    if not is_store(path):
        print(f"generating {path} (once; cached for later runs)", flush=True)
        write_store(spec, path)
    return path
