"""Distributed data parallel on CPU (gloo): rank shares and the synced utility metric."""

import json

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import run_cli
from jsmp.batches.sampler import BatchIndexSampler
from jsmp.metrics import UtilityMetric, utility_score

N_DAYS = 20


def _data():
    rng = np.random.default_rng(0)
    n = 3001  # odd: ranks get unequal evaluation shares
    day = np.sort(rng.integers(0, N_DAYS, n))
    return day, rng.lognormal(size=n), rng.normal(0.001, 0.01, n), (rng.random(n) < 0.55).astype(float)


def _worker(rank, world, port, out):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    day, w, r, a = _data()
    m = UtilityMetric(N_DAYS)
    for pos in BatchIndexSampler(len(day), 256, shuffle=False, rank=rank, world_size=world):
        m.update(*(torch.from_numpy(v[pos]) for v in (day, w, r, a)))
    u, o = m.compute()
    out[rank] = (float(u), float(o))
    dist.destroy_process_group()


def test_synced_utility_equals_single_process():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(2, port, out), nprocs=2, join=True)
    day, w, r, a = _data()
    expected = utility_score(day, w, r, a)
    assert out[0][0] == pytest.approx(expected, rel=1e-9) and out[1][0] == pytest.approx(expected, rel=1e-9)
    assert out[0][1] == pytest.approx(utility_score(day, w, r, r > 0), rel=1e-9)


def test_rank_shares_disjoint_and_complete():
    for shuffle in (True, False):
        shares = [np.concatenate(list(BatchIndexSampler(1001, 64, shuffle, seed=3, rank=k, world_size=2))) for k in (0, 1)]
        assert len(np.intersect1d(*shares)) == 0
        covered = len(np.union1d(*shares))
        assert covered == (1000 if shuffle else 1001)  # training drops the remainder, evaluation keeps all
        if shuffle:
            assert len(shares[0]) == len(shares[1])


def test_train_py_ddp_cpu_two_processes(tiny_store, tmp_path):
    run = tmp_path / "ddp"
    p = run_cli(["train.py", f"hydra.run.dir={run}", "trainer=ddp_cpu", f"data.store={tiny_store}",
                 "trainer.max_epochs=1", "data.batch_size=64"], env={"JSMP_ROOT": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "completed" and "val/utility" in m
    assert sorted(x.name for x in tmp_path.iterdir() if x.is_dir()) == ["ddp"]  # one run dir for both ranks
    # each rank stepped through half of the epoch (its own share), not all of it
    from jsmp.run.dataconfig import jsmp_data

    dm = jsmp_data(store=str(tiny_store))
    dm.setup()
    assert m["global_step"] == -(-(len(dm.train_set) // 2) // 64)
