"""conf/debug/: fdr, overfit, limit and profiler presets, through train.py (in-process: conftest train_in_process)."""

import csv
import hashlib
import json
from pathlib import Path

import lightning as L

from conftest import train_in_process


class BatchHashes(L.Callback):
    """Records a hash of every training batch's x per epoch into `path` (JSON: {epoch: [hash, ...]})."""

    def __init__(self, path: str):
        self.path, self.seen = Path(path), {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.setdefault(trainer.current_epoch, []).append(hashlib.sha1(batch["x"].numpy().tobytes()).hexdigest())
        self.path.write_text(json.dumps(self.seen))


def debug_run(root: Path, store: Path, *overrides: str):
    """`python train.py debug=... OVERRIDES` with JSMP_ROOT=root and Hydra's own run dir; -> (process, run dir)."""
    p = train_in_process([f"data.store={store}", *overrides], env={"JSMP_ROOT": str(root)})
    runs = sorted((root / "logs" / "debug" / "runs").glob("*"))
    return p, runs[-1] if runs else None


def test_fdr_runs_one_batch_into_logs_debug(tiny_store, tmp_path):
    p, run = debug_run(tmp_path, tiny_store, "debug=fdr", "data.batch_size=256")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert not (tmp_path / "logs" / "train").exists()  # debug runs stay apart from real ones
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "completed" and m["global_step"] == 1
    assert "val/utility" in m and "train/loss" in m
    assert not list(run.rglob("*.ckpt"))  # (Lightning saves none under fast_dev_run)


def test_overfit_trains_the_same_batches_and_the_loss_falls(tiny_store, tmp_path):
    hashes = tmp_path / "batches.json"
    p, run = debug_run(tmp_path, tiny_store, "debug=overfit", "data.batch_size=256", "logger=csv",
                       f"+callbacks.hashes._target_={__name__}.BatchHashes", f"+callbacks.hashes.path={hashes}")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
    seen = json.loads(hashes.read_text())
    assert len(seen) == 20 and all(v == seen["0"] for v in seen.values()) and len(set(seen["0"])) == 3
    with (run / "csv" / "metrics.csv").open() as f:
        loss = [float(r["train/loss"]) for r in csv.DictReader(f) if r["train/loss"]]
    assert len(loss) == 20 and all(b < a for a, b in zip(loss, loss[1:])) and loss[-1] < 0.8 * loss[0]
    assert not list(run.rglob("*.ckpt"))


def test_limit_runs_few_batches_for_three_epochs(tiny_store, tmp_path):
    p, run = debug_run(tmp_path, tiny_store, "debug=limit", "data.batch_size=32", "logger=none")
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "completed" and m["epoch"] == 3 and m["global_step"] == 3 * 10


def test_profiler_writes_its_report_into_the_run_dir(tiny_store, tmp_path):
    p, run = debug_run(tmp_path, tiny_store, "debug=profiler", "data.batch_size=256", "logger=none")
    assert p.returncode == 0, p.stderr[-3000:]
    report = (run / "fit-profiler.txt").read_text()
    assert "run_training_batch" in report and "Total" in report
