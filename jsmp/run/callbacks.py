"""Callbacks the training recipe always adds (not optional: they are part of a run's outputs)."""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from jsmp.errors import UserError
from jsmp.files import read_json, write_text_atomic
from jsmp.processes import pid_alive

log = logging.getLogger(__name__)


def _scalar(v) -> float:
    return float(v.item() if hasattr(v, "item") else v)


class MetricsJson(L.Callback):
    """Writes `metrics.json` in the run dir after every validation run and at the end.

    Keys: every logged metric's latest value under its own name (`val/utility`, ...),
    the `val/*` metrics and `monitor` at the best epoch under `best/<name>` (best = highest
    `monitor`, or lowest with `mode='min'`),
    fixed reference values given as `extra` (e.g. `val/utility_ideal`), plus `epoch`, `global_step`, `best_epoch` and `status` (running, completed, failed, or pruned: stopped by a
    sweep's pruner). The `extra` values are also logged with every validation's metrics: TensorBoard
    draws `val/utility_ideal` as a flat line beside `val/utility`, the HParams table shows it as a column.
    `pid`, `pid_start` and `host` name the process that writes it, so `run_status` can tell a
    `running` file whose writer was killed. Written first when fitting starts (status running);
    a resumed run starts from the run's earlier file (its values until the next validation).
    """

    def __init__(self, path: str | os.PathLike, monitor: str = "val/utility", extra: dict | None = None,
                 mode: str = "max"):
        self.path = Path(path)
        self.sign = {"max": 1.0, "min": -1.0}[mode]
        self.extra = dict(extra or {})
        self.monitor = monitor
        self.best: dict[str, float] = {}
        self.best_epoch: int | None = None
        self.status = "running"
        self.error: str | None = None
        self.previous: dict = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.previous = read_json(self.path) or {}
        self.previous.pop("error", None)
        write_json(self.path, {**self.previous, **self.extra, "status": "running", **writer()})

    def _latest(self, trainer: L.Trainer) -> dict[str, float]:
        return {k: _scalar(v) for k, v in sorted(trainer.callback_metrics.items()) if not k.endswith("_step")}

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for k, v in self.extra.items():  # logged with the epoch's metrics, at their step
            pl_module.log(k, float(v))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # (on_validation_end runs after the module has logged this epoch's metrics)
        if trainer.sanity_checking:
            return
        latest = self._latest(trainer)
        value = latest.get(self.monitor)
        if value is not None and not math.isnan(value) and (
            self.best_epoch is None or self.sign * value > self.sign * self.best.get(self.monitor, -self.sign * math.inf)
        ):
            self.best = {k: v for k, v in latest.items() if (k.startswith("val/") and k not in self.extra) or k == self.monitor}
            self.best_epoch = trainer.current_epoch
        self.write(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.status = "completed"
        self.write(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        from optuna import TrialPruned

        self.status = "pruned" if isinstance(exception, TrialPruned) else "failed"
        self.error = f"{type(exception).__name__}: {exception}"
        self.write(trainer)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:  # resuming: keep the best epoch seen before
        self.best, self.best_epoch = dict(state["best"]), state["best_epoch"]

    def write(self, trainer: L.Trainer) -> dict:
        """metrics.json as it stands now (snapshot), written; returns it."""
        out = self.snapshot(trainer)
        write_json(self.path, out)
        return out

    def snapshot(self, trainer: L.Trainer) -> dict:
        """What metrics.json holds now: the earlier file's values, the latest metrics, the references, the best epoch's."""
        out = {
            **self.previous,
            **self._latest(trainer),
            **self.extra,  # (exact: the logged copies are float32)
            **{f"best/{k}": v for k, v in self.best.items()},
            "epoch": trainer.current_epoch,
            "global_step": trainer.global_step,
            "best_epoch": self.best_epoch,
            "status": self.status,
            **writer(),
        }
        if self.error:
            out["error"] = self.error
        return out


class EpochLog(L.Callback):
    """One log line (train.log and the console) per `every` epochs, and for the last one:
    the epoch's metrics (train/* then `monitor` then the other val/* and test/*), the best
    `monitor` so far and the epoch's wall time. Global rank 0 only.

        epoch 3: train/loss=0.6921 val/utility=12.3 val/acc=0.51 val/auc=0.52 val/loss=0.693 | best val/utility=14.1 (epoch 1) | 2.4 s
    """

    SKIP = ("_step", "_best", "_oracle", "_ideal", "_instrument", "hp_metric")  # (the references are in the done line)

    def __init__(self, monitor: str = "val/utility", mode: str = "max", every: int = 1):
        self.monitor, self.sign, self.every = monitor, {"max": 1.0, "min": -1.0}[mode], max(1, int(every))
        self.best: tuple[int, float] | None = None
        self.pending: tuple[int, float] | None = None  # (epoch, seconds) waiting for its train/* metrics
        self.start = 0.0

    # an epoch's train/* are logged in LightningModule.on_train_epoch_end, after the callbacks' hook:
    # its line is written when the next epoch starts, or when training ends
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer, last=False)
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.pending = (trainer.current_epoch, time.perf_counter() - self.start)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer, last=True)

    def _flush(self, trainer: L.Trainer, last: bool) -> None:
        if self.pending is None:
            return
        (epoch, seconds), self.pending = self.pending, None
        metrics = {k: _scalar(v) for k, v in trainer.callback_metrics.items() if not k.endswith(self.SKIP)}
        value = metrics.get(self.monitor)
        if value is not None and math.isfinite(value) and (self.best is None or self.sign * value > self.sign * self.best[1]):
            self.best = (epoch, value)
        if trainer.is_global_zero and (last or epoch % self.every == 0):
            log.info("%s", self.line(epoch, metrics, seconds))

    def line(self, epoch: int, metrics: dict[str, float], seconds: float) -> str:
        """The epoch's line; epochs count from 0, as Lightning's bar, checkpoints and metrics.json do."""
        order = sorted(metrics, key=lambda k: (not k.startswith("train/"), k != self.monitor, k))
        shown = " ".join(f"{k}={metrics[k]:.4g}" for k in order)
        best = f" | best {self.monitor}={self.best[1]:.4g} (epoch {self.best[0]})" if self.best else ""
        return f"epoch {epoch}: {shown}{best} | {seconds:.1f} s"

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:  # resuming: the best so far stays the run's
        self.best = None if state["best"] is None else tuple(state["best"])


@rank_zero_only
def write_json(path: Path, obj: dict) -> None:
    """Atomically write `obj` to `path` (once, from global rank 0 under DDP)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux /proc), None if unknown: with
    the pid it tells a recycled pid from the writer."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def writer() -> dict:
    """Who writes a metrics.json: {pid, pid_start, host}."""
    return {"pid": os.getpid(), "pid_start": _start_time(os.getpid()), "host": socket.gethostname()}


def run_status(run_dir: str | os.PathLike) -> str | None:
    """The status of the run in `run_dir` from its metrics.json: completed, failed, running,
    or killed (`running`, but its writer process, on this host, is gone); None when there
    is no metrics.json. A run written on another host is reported as its file says."""
    m = read_json(Path(run_dir) / "metrics.json")
    if m is None:
        return None
    status = m.get("status")
    pid = m.get("pid")
    if status == "running" and m.get("host") == socket.gethostname() and isinstance(pid, int):
        start = m.get("pid_start")
        if not pid_alive(pid) or (start is not None and _start_time(pid) not in (None, start)):
            return "killed"
    return status


class DivergedError(UserError):
    """Training produced a non-finite loss or weights."""


class NaNGuard(L.Callback):
    """Stops a diverging run before a broken model reaches a checkpoint.

    Diverged: a non-finite training loss, a training loss above `max_factor` x the first step's
    loss (taken at the initial weights), or a non-finite weight (checked before each validation).
    The error names the epoch, step and cause.

    The step losses stay on the device (reading one forces a host sync, which on a GPU would set
    the pace of a fast model's steps): they are kept and checked together, with one read, every
    `every` steps (None: the trainer's log_every_n_steps), at each epoch's end, before each
    validation and before any checkpoint is saved, so a diverged model is never checkpointed.
    """

    def __init__(self, max_factor: float = 20.0, every: int | None = None):
        if every is not None and (not isinstance(every, int) or every < 1):
            raise UserError(f"diverge_check_every must be an integer >= 1 or null, got {every!r}")
        self.max_factor, self.every = max_factor, every
        self.first_loss: float | None = None
        self.pending: list[tuple[int, int, torch.Tensor]] = []  # (epoch, step, loss) not yet checked

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        self.pending.append((trainer.current_epoch, trainer.global_step, loss.detach()))
        if len(self.pending) >= (self.every or trainer.log_every_n_steps or 1):
            self.check(trainer)

    def check(self, trainer: L.Trainer) -> None:
        """Reads the pending losses (one host sync) and fails at the first diverged one."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        values = torch.stack([loss.float() for _, _, loss in pending]).tolist()
        for (epoch, step, _), value in zip(pending, values):
            if not math.isfinite(value):
                self._fail(trainer, f"train loss is {value}", epoch, step)
            if self.first_loss is None:
                self.first_loss = value
            elif self.max_factor and value > self.max_factor * abs(self.first_loss):
                self._fail(trainer, f"train loss {value:.4g} is over {self.max_factor:g}x its first value "
                           f"{self.first_loss:.4g}", epoch, step)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self.check(trainer)  # (Lightning calls this before the file is written: a failure here writes nothing)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.check(trainer)
        # the last optimizer step of an epoch can break the weights after its loss was computed
        params = list(pl_module.named_parameters())
        finite = torch.stack([torch.isfinite(p).all() for _, p in params]).tolist() if params else []
        bad = [n for (n, _), ok in zip(params, finite) if not ok]
        if bad:
            self._fail(trainer, f"non-finite weights in {bad[0]}" + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""))

    def state_dict(self) -> dict:
        # (Lightning takes this before on_save_checkpoint checks the pending losses: the first may be among them)
        if self.first_loss is None and self.pending:
            self.first_loss = float(self.pending[0][2])
        return {"first_loss": self.first_loss}

    def load_state_dict(self, state: dict) -> None:
        self.first_loss = state["first_loss"]

    @staticmethod
    def _fail(trainer: L.Trainer, what: str, epoch: int | None = None, step: int | None = None) -> None:
        lrs = [group["lr"] for opt in trainer.optimizers for group in opt.param_groups]
        hint = f"; lower model.optimizer.lr (now {lrs[0]:g})" if lrs else ""
        epoch = trainer.current_epoch if epoch is None else epoch
        step = trainer.global_step if step is None else step
        raise DivergedError(f"training diverged at epoch {epoch}, step {step}: {what}{hint}")
