"""Online learning while serving a 2024-layout run (docs/inference.md): fine-tune the model on the
previous date's rows once their answers are revealed.

The 2024 API hands over, at each date's first time step, `lags_df`: the previous date's responders
of each (time_id, symbol_id). Those are the answers to the rows served on that previous date. The
`Learner` keeps what the model was fed on the current date (a uniform sample of at most `max_rows`
rows: their inputs, weights and keys), and when a new date D starts it labels the rows it kept of
date D - 1 from the `*_lag_1` columns of the run's targets (preprocess.json `targets`: the run's `data.targets`), takes a
few optimizer steps of the model's own training loss on them, and forgets them. Causal by
construction: it only ever trains on rows it served before, of the date just before the current
one, and only those with a revealed answer.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, fields
from numbers import Integral, Real

import numpy as np
import torch

from jsmp.data.schema import lag_name
from jsmp.errors import UserError
from jsmp.models.base import TradeModule


def _integer(lo: int, hi: int):
    return lambda v: isinstance(v, Integral) and not isinstance(v, bool) and lo <= v <= hi


def _real(ok):
    return lambda v: isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) and ok(v)


# field: (accepts the value, what is expected). A date of the 2024 data has at most 39 x 968 = 37,752
# rows, so 100,000 keeps all of any date; 1,000 steps of a GRU already take ~110 s, past the API's 60 s
# per answer; Adam moves each weight by about lr per step, so lr > 1 can only wreck a trained model.
RULES = {
    "steps": (_integer(0, 1000), "an integer in 0..1000 (optimizer steps per date)"),
    "lr": (_real(lambda v: 0 < v <= 1), "a learning rate in (0, 1], e.g. 5e-5"),
    "budget_s": (_real(lambda v: v > 0), "a finite number of seconds > 0, e.g. 30"),
    "max_rows": (_integer(1, 100_000), "an integer in 1..100000 (rows kept per date)"),
    "batch_size": (_integer(2, 100_000), "an integer in 2..100000 (batch norm trains on 2 rows or more)"),
    "seed": (_integer(0, 2**63 - 1), "an integer in 0..2**63-1"),
}


@dataclass(frozen=True)
class OnlineConfig:
    """steps: optimizer steps per date (each on a random minibatch of `batch_size` of the previous
    date's rows); lr: Adam's learning rate; budget_s: a guard on a date's fine-tune wall time (s): it
    stops after the step that passes it, and the Learner counts the dates where it did (`budget_hit`);
    the default is never reached in normal use (half the 2024 API's 60 s per answer), so results do not
    depend on timing; max_rows: rows kept per date (a uniform sample); seed: of that sample, the
    minibatches and dropout, combined with each date (so a replay is reproducible bit for bit)."""

    steps: int = 10
    lr: float = 5e-5  # on the synthetic data: 1.8x the frozen R² under drift, -1% without (docs/results.md)
    budget_s: float = 30.0
    max_rows: int = 20000
    batch_size: int = 1024
    seed: int = 0

    def __post_init__(self):
        for f in fields(self):
            self.check(f.name, getattr(self, f.name), f"online learning: {f.name} {getattr(self, f.name)!r}")

    @staticmethod
    def check(name: str, value, label: str) -> None:
        """UserError `{label}: expected ...` unless `value` is a valid setting of field `name`."""
        accepts, expected = RULES[name]
        if not accepts(value):
            raise UserError(f"{label}: expected {expected}")


class Learner:
    """Fine-tunes `model` (in place) on the rows it served, once their labels `targets` are revealed.

    `keep(date, time, symbol, inputs, weight)` after each served time step (inputs: the batch the
    model saw, numpy, first axis the rows); `reveal(date, labels)` at the first time step of a new
    `date`, before it is served: labels(time, symbol, names) -> (n, len(names)) float32 (NaN: no
    answer) looks the `*_lag_1` columns up, or None when no lags came. `trained`: the (date, time,
    symbol) keys (n, 3) of the rows the last fine-tune used, `steps_taken` its optimizer steps.

    Every random draw (the kept sample, the minibatches, dropout) comes from generators seeded by
    (cfg.seed, date), torch's global generator left as it was: the same calls give the same model.
    A fine-tune that leaves a loss, a weight or the outputs non-finite is undone (weights and Adam's
    state restored from a copy taken before it: one model and optimizer state_dict per date, ~3x the
    weights' size), with one warning line on stderr; `rolled_back` and `budget_hit` list the dates
    whose fine-tune was undone, or stopped by cfg.budget_s.
    """

    def __init__(self, model: TradeModule, targets: list[str], cfg: OnlineConfig):
        self.model, self.cfg = model, cfg
        self.labels = [lag_name(t) for t in targets]
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.kept: list[dict[str, np.ndarray]] = []
        self.n_kept = 0
        self.kept_date, self.kept_rng = None, None  # the date being kept and its sampling generator
        self.trained = np.empty((0, 3), dtype=np.int64)
        self.steps_taken = 0
        self.rolled_back: list[int] = []
        self.budget_hit: list[int] = []

    def rng(self, date: int, stream: int) -> np.random.Generator:
        """The generator of `date`'s draws of one kind (0: the kept sample, 1: the fine-tune)."""
        return np.random.default_rng([self.cfg.seed, date % 2**64, stream])

    def keep(self, date: int, time_id: np.ndarray, symbol: np.ndarray, inputs: dict[str, np.ndarray],
             weight: np.ndarray) -> None:
        n = len(weight)
        if date != self.kept_date:
            self.kept_date, self.kept_rng = date, self.rng(date, 0)
        keys = np.stack([np.full(n, date), time_id, symbol], axis=1).astype(np.int64)
        # a uniform sample without replacement: the max_rows rows of smallest random priority
        self.kept.append({"keys": keys, "weight": np.asarray(weight, np.float32), "priority": self.kept_rng.random(n),
                          **{k: np.array(v) for k, v in inputs.items()}})
        self.n_kept += n
        if self.n_kept > 2 * self.cfg.max_rows:
            self.kept = [self._sample()]
            self.n_kept = self.cfg.max_rows

    def _sample(self) -> dict[str, np.ndarray]:
        rows = {k: np.concatenate([c[k] for c in self.kept]) for k in self.kept[0]}
        if len(rows["weight"]) > self.cfg.max_rows:
            pick = np.sort(np.argpartition(rows["priority"], self.cfg.max_rows)[: self.cfg.max_rows])
            rows = {k: v[pick] for k, v in rows.items()}
        return rows

    def reveal(self, date: int, labels=None) -> int:
        """Fine-tune on the kept rows of date - 1 with the revealed labels; forget all kept rows.
        Returns the rows trained on."""
        rows = self._sample() if self.kept else None
        self.kept, self.n_kept = [], 0
        self.trained, self.steps_taken = np.empty((0, 3), dtype=np.int64), 0
        if rows is None or labels is None:
            return 0
        rows = {k: v[rows["keys"][:, 0] == date - 1] for k, v in rows.items()}
        y = labels(rows["keys"][:, 1], rows["keys"][:, 2], self.labels)
        ok = np.isfinite(y).all(axis=1) & np.isfinite(rows["weight"])
        if ok.sum() < 2:  # batch norm cannot train on one row
            return 0
        rows = {k: v[ok] for k, v in rows.items()}
        y = y[ok]
        self.trained = rows["keys"]
        inputs = {k: torch.from_numpy(v) for k, v in rows.items() if k not in ("keys", "weight", "priority")}
        self._train(date, inputs, torch.from_numpy(y[:, 0] if y.shape[1] == 1 else y), torch.from_numpy(rows["weight"]))
        return len(y)

    def _train(self, date: int, inputs: dict[str, torch.Tensor], y: torch.Tensor, weight: torch.Tensor) -> None:
        """cfg.steps Adam steps on minibatches of the rows (n, ...) and labels y (n,) or (n, T) with
        weight (n,); undone when it leaves the model non-finite."""
        n, cfg, rng = len(y), self.cfg, self.rng(date, 1)
        before = copy.deepcopy(self.model.state_dict()), copy.deepcopy(self.optimizer.state_dict())
        bad, start = None, time.perf_counter()
        self.model.train()
        try:
            with torch.random.fork_rng(devices=[]), torch.enable_grad():
                torch.manual_seed(int(rng.integers(2**63)))  # dropout's draws
                for step in range(cfg.steps):
                    pick = torch.from_numpy(rng.permutation(n)[: cfg.batch_size])
                    batch = {**{k: v[pick] for k, v in inputs.items()}, "y": y[pick], "sample_weight": weight[pick]}
                    loss = sum(self.model.losses(batch).values())
                    if not torch.isfinite(loss):
                        bad = f"a non-finite loss ({loss.item()}) at step {step + 1}"
                        break
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    self.steps_taken += 1
                    if step + 1 < cfg.steps and time.perf_counter() - start > cfg.budget_s:
                        self.budget_hit.append(date)
                        break
        finally:
            self.model.eval()
        if bad is None and self.steps_taken:
            bad = self._non_finite(batch)
        if bad is not None:
            self.model.load_state_dict(before[0])
            self.optimizer.load_state_dict(before[1])
            self.rolled_back.append(date)
            print(f"warning: online learning, date {date}: the fine-tune on date {date - 1}'s answers gave {bad}; "
                  f"restored the model from before it (a smaller lr may help)", file=sys.stderr, flush=True)

    def _non_finite(self, batch: dict[str, torch.Tensor]) -> str | None:
        """What of the model is not finite (a weight or buffer, or its outputs on `batch`), None when all is."""
        for name, t in self.model.state_dict().items():
            if t.is_floating_point() and not torch.isfinite(t).all():
                return f"a non-finite {name}"
        with torch.inference_mode():
            if not torch.isfinite(self.model.predict_output(batch)).all():
                return "non-finite outputs"
        return None


def summary(learners: list[Learner]) -> str:
    """How many dates the learners' fine-tunes were rolled back on and stopped by the budget (a date
    counts once however many ensemble members it happened to)."""
    rolled, hit = (set().union(*(getattr(learner, a) for learner in learners)) for a in ("rolled_back", "budget_hit"))
    return (f"online learning: rolled back on {len(rolled)} dates (non-finite), "
            f"budget {learners[0].cfg.budget_s:g} s hit on {len(hit)} dates")
