"""The sequence benchmarks run end to end on a small store (figures are checked by hand, not here), through
`python -m jsmp.bench`'s main in this process (the benchmarks start their own child processes where they measure one)."""

import re

import pytest

from conftest import run_main
from jsmp.bench.__main__ import main

SMALL = ["--days", "20", "--rows-per-day", "300"]


@pytest.mark.parametrize("name,args,lines", [
    ("loader", ["--batch-size", "256", "--batches", "3", "--repeat", "1"], [r"^rows\s+\d+\s+\d+\s+[\d.]+", r"^windows W=32\s+\d+",
                                                                         r"^groups W=32\s+\d+"]),
    ("train", ["--batch-size", "128", "--mlp-steps", "4", "--lstm-steps", "3", "--window", "4"],
     [r"^MLP\s+\d+\s+\d+\s+\d+\s+[\d.]+", r"^LSTM W=4\s+\d+"]),
    ("memory", ["--steps", "2", "--batch-size", "64", "--hidden", "8", "--windows", "2", "4"],
     [r"^\s+2\s+[\d.]+ GB", r"^\s+4\s+[\d.]+ GB", r"RSS\(W=4\) / RSS\(W=2\) = [\d.]+"]),
    ("hugepages", ["--batch-size", "128", "--lstm-steps", "3", "--mlp-steps", "4", "--window", "4", "--repeat", "1"],
     [r"^LSTM W=4\s+off\s+\d+\s+\d+\s+[\d.]+ GB", r"^LSTM W=4\s+on\s+\d+", r"^MLP\s+on\s+\d+",
      r"^LSTM W=4\s+on / off: speed [\d.]+x, peak RSS [\d.]+x"]),
    ("rtmdf", ["--times", "20", "--symbols", "6", "--steps", "2", "--batch-size", "64", "--window", "4"],
     [r"^MLP\s+[\d.]+ GB\s+[\d.]+ GB\s+[\d.]+ GB", r"^GRU W=4\s+[\d.]+ GB", r"^target: peak anonymous memory <= 4 GB"]),
])
def test_benchmark_prints_its_table(tmp_path, monkeypatch, name, args, lines):
    small = SMALL if name != "rtmdf" else SMALL[:2]  # (rtmdf: --days, --times, --symbols)
    monkeypatch.setenv("JSMP_BENCH_DIR", str(tmp_path))
    p = run_main(main, [name, *small, *args])
    assert p.returncode in (0, 1), p.stderr[-3000:]  # 1: a target missed (timings on a busy CI box)
    for pattern in lines:
        assert re.search(pattern, p.stdout, re.M), (pattern, p.stdout)
    assert ("MISSED" in p.stdout) == (p.returncode == 1)
