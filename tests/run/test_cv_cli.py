"""`python train.py -m data.fold=0,1,2` (in this process): one run per purged CV fold, each on its own days."""

import json

from conftest import train_in_process
from jsmp.batches.splits import purged_fold
from jsmp.store.store import Store


def test_multirun_over_folds(tiny_store, tmp_path):
    p = train_in_process(["-m", f"hydra.sweep.dir={tmp_path}/sweep", f"data.store={tiny_store}", "data.fold=0,1,2",
                          "data.cv.folds=3", "data.cv.gap_days=2", "data.fill=ffill", "trainer.fast_dev_run=true"],
                         env={"JSMP_ROOT": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-3000:]
    n_days = Store(tiny_store).n_days
    for k in range(3):
        # job dirs are named <job number>_<model>_<overrides> (conf/hydra/default.yaml)
        [run] = [d for d in (tmp_path / "sweep").iterdir() if d.name.startswith(f"{k}_mlp_")]
        assert f"data.fold={k}" in run.name.split("_", 2)[2].split(","), run.name
        assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
        log = (run / "train.log").read_text()
        split = purged_fold(n_days, k, folds=3, gap_days=2)
        assert f"on {len(split.train)} days" in log and f"on {len(split.val)} days" in log, log
