"""Online learning while serving a 2024-layout run (docs/inference.md): fine-tune the model on the
previous date's served inputs once their answers are revealed.

The 2024 API hands over, at each date's first time step, `lags_df`: the previous date's responders
of each (time_id, symbol_id). Those are the answers to the rows served on that previous date. A
learner keeps what the model was fed on the current date, and when a new date D starts it labels
what it kept of date D - 1 from the `*_lag_1` columns of the run's targets (preprocess.json
`targets`: the run's `data.targets`), takes a few optimizer steps of the model's own training loss
on it, and forgets it. Two kinds share the steps, seeding, rollback and budget (OnlineLearner):
`Learner` for row and window runs (a uniform sample of at most `max_rows` rows, minibatches of
`batch_size`), `DayLearner` for day-sample runs (the whole date's grid, one day sample per step).
Causal by construction: it only ever trains on inputs it served before, of the date just before the
current one, and only those with a revealed answer.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from numbers import Integral, Real

import numpy as np
import torch

from jsmp.data.schema import lag_name
from jsmp.errors import UserError
from jsmp.inputs.daygrid import time_of_day
from jsmp.inputs.weights import SAMPLE_WEIGHTS
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
    """steps: optimizer steps per date (a row run: each on a random minibatch of `batch_size` of the
    previous date's rows; a day run: each on that date's whole day sample); lr: Adam's learning rate;
    budget_s: a guard on a date's fine-tune wall time (s): it stops after the step that passes it, and
    the learner counts the dates where it did (`budget_hit`); the default is never reached in normal
    use (half the 2024 API's 60 s per answer), so results do not depend on timing; max_rows: rows kept
    per date (a uniform sample); seed: of that sample, the minibatches and dropout, combined with each
    date (so a replay is reproducible bit for bit). A day run (DayLearner) ignores max_rows and
    batch_size: it keeps the whole date (at most its time grid x its instruments cells) and trains
    on it as one sample, as training does."""

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


class OnlineLearner:
    """What both kinds share: Adam on `model` (fine-tuned in place), the `*_lag_1` names of `targets`
    (`labels`), the seeded generators, and `_train`, the date's fine-tune with its budget and rollback.
    `trained`: the (date, time, symbol) keys (n, 3) of the rows (cells) the last fine-tune used,
    `steps_taken` its optimizer steps.

    Every random draw (a kept sample, the minibatches, dropout) comes from generators seeded by
    (cfg.seed, date), torch's global generator left as it was: the same calls give the same model.
    A fine-tune that leaves a loss, a weight or the outputs non-finite is undone (weights and Adam's
    state restored from a copy taken before it: one model and optimizer state_dict per date, ~3x the
    weights' size), with one warning line on stderr; `rolled_back` and `budget_hit` list the dates
    whose fine-tune was undone, or stopped by cfg.budget_s.
    """

    def __init__(self, model: TradeModule, targets: list[str], cfg: OnlineConfig, sample_weight: str | None = "weight"):
        self.model, self.cfg, self.sample_weight = model, cfg, sample_weight
        self.labels = [lag_name(t) for t in targets]
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.rolled_back: list[int] = []
        self.budget_hit: list[int] = []
        self.forget()

    def loss_weight(self, weight: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(n,) float32 each row's weight in the fine-tune's loss, as training weighed it (the run's
        data.sample_weight, InputSpec.sample_weight): from the competition weight (n,) and the revealed
        answers y (n, K); 1 when training was unweighted."""
        if self.sample_weight is None:
            return np.ones(len(weight), np.float32)
        return np.asarray(SAMPLE_WEIGHTS[self.sample_weight](weight, y), np.float32)

    def forget(self) -> None:
        """Drop what the last fine-tune trained on (`trained`, `steps_taken`)."""
        self.trained = np.empty((0, 3), dtype=np.int64)
        self.steps_taken = 0

    def rng(self, date: int, stream: int) -> np.random.Generator:
        """The generator of `date`'s draws of one kind (0: the kept sample, 1: the fine-tune)."""
        return np.random.default_rng([self.cfg.seed, date % 2**64, stream])

    def _train(self, date: int, draw: Callable[[np.random.Generator], dict[str, torch.Tensor]]) -> None:
        """cfg.steps Adam steps of the model's loss, each on the batch `draw(rng)` gives (rng: the date's
        fine-tune generator); undone when it leaves the model non-finite."""
        cfg, rng = self.cfg, self.rng(date, 1)
        before = copy.deepcopy(self.model.state_dict()), copy.deepcopy(self.optimizer.state_dict())
        bad, start = None, time.perf_counter()
        self.model.train()
        try:
            with torch.random.fork_rng(devices=[]), torch.enable_grad():
                torch.manual_seed(int(rng.integers(2**63)))  # dropout's draws
                for step in range(cfg.steps):
                    batch = draw(rng)
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


class Learner(OnlineLearner):
    """A row or window run's learner: fine-tunes on a sample of the rows it served.

    `keep(date, time, symbol, inputs, weight)` after each served time step (inputs: the batch the
    model saw, numpy, first axis the rows); `reveal(date, labels)` at the first time step of a new
    `date`, before it is served: labels(time, symbol, names) -> (n, len(names)) float32 (NaN: no
    answer) looks the `*_lag_1` columns up, or None when no lags came. Each row's loss weight is
    `loss_weight`: as training weighed it.
    """

    def __init__(self, model: TradeModule, targets: list[str], cfg: OnlineConfig, sample_weight: str | None = "weight"):
        super().__init__(model, targets, cfg, sample_weight)
        self.kept: list[dict[str, np.ndarray]] = []
        self.n_kept = 0
        self.kept_date, self.kept_rng = None, None  # the date being kept and its sampling generator

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
        self.forget()
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
        data = {k: torch.from_numpy(v) for k, v in rows.items() if k not in ("keys", "weight", "priority")}
        data["y"] = torch.from_numpy(y[:, 0] if y.shape[1] == 1 else y)
        data["sample_weight"] = torch.from_numpy(self.loss_weight(rows["weight"], y))

        def minibatch(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            pick = torch.from_numpy(rng.permutation(len(y))[: self.cfg.batch_size])
            return {k: v[pick] for k, v in data.items()}

        self._train(date, minibatch)
        return len(y)


class DayLearner(OnlineLearner):
    """A day-sample run's learner (jsmp.models.axial): fine-tunes on the whole day sample it served.

    `keep(date, t, time_id, symbol, x, weight)` after each served time step: its rank t on the run's time
    grid of `times` steps, the rows' keys (n,), the filled inputs x (n, F) the model was fed and their
    competition weights (n,). `reveal(date, labels)` at the first time step of a new `date` (labels as
    Learner's) lays what it kept of date - 1 out as one day sample (instruments in symbol_id order):
    x (1, T, N, F), time (1, T), mask (1, T, N) the cells served, y (1, T, N, K) the revealed answers,
    weight (1, T, N) the competition weight and sample_weight its loss weight (`loss_weight`: as training
    weighed it), both 0 (and y 0) where an answer or the weight is missing, day (1,) the date; then takes
    cfg.steps steps of the model's loss on it (the same batch each step: only dropout draws). cfg.max_rows and
    cfg.batch_size do not apply.
    """

    def __init__(self, model: TradeModule, targets: list[str], cfg: OnlineConfig, times: int,
                 sample_weight: str | None = "weight"):
        super().__init__(model, targets, cfg, sample_weight)
        self.times = times
        self.kept: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.kept_date: int | None = None

    def keep(self, date: int, t: int, time_id: np.ndarray, symbol: np.ndarray, x: np.ndarray,
             weight: np.ndarray) -> None:
        if date != self.kept_date:  # a day sample is one date
            self.kept, self.kept_date = [], date
        self.kept.append((t, np.asarray(time_id, np.int64), np.asarray(symbol, np.int64), np.array(x, np.float32),
                          np.asarray(weight, np.float32)))

    def day_sample(self, date: int, labels) -> dict[str, torch.Tensor] | None:
        """The kept day sample of `date` labelled by `labels`, None when no cell has an answer."""
        t = np.concatenate([np.full(len(k[1]), k[0]) for k in self.kept])
        time_id, symbol, x, weight = (np.concatenate([k[i] for k in self.kept]) for i in range(1, 5))
        y = labels(time_id, symbol, self.labels)
        ok = np.isfinite(y).all(axis=1) & np.isfinite(weight)
        if not (weight[ok] > 0).any():
            return None
        self.trained = np.stack([np.full(ok.sum(), date), time_id[ok], symbol[ok]], axis=1).astype(np.int64)
        symbols = np.unique(symbol)
        T, N, cell = self.times, len(symbols), t * len(symbols) + np.searchsorted(symbols, symbol)

        def grid(values: np.ndarray, dtype=np.float32) -> torch.Tensor:
            out = np.zeros((T * N, *values.shape[1:]), dtype)
            out[cell] = values
            return torch.from_numpy(out.reshape(1, T, N, *values.shape[1:]))

        y = np.where(ok[:, None], y, 0)
        weight = np.where(ok, weight, 0).astype(np.float32)
        return {"x": grid(x), "time": torch.from_numpy(time_of_day(np.arange(T), T))[None],
                "mask": grid(np.ones(len(t), bool), bool), "y": grid(y),
                "sample_weight": grid(np.where(ok, self.loss_weight(weight, y), 0)), "weight": grid(weight),
                "day": torch.tensor([date], dtype=torch.int64)}

    def reveal(self, date: int, labels=None) -> int:
        """Fine-tune on the kept day sample of date - 1 with the revealed labels; forget it. Returns the
        cells trained on (those with an answer)."""
        kept_date, self.kept_date = self.kept_date, None
        self.forget()
        batch = self.day_sample(date - 1, labels) if self.kept and kept_date == date - 1 and labels is not None else None
        self.kept = []
        if batch is None:
            return 0
        self._train(date, lambda rng: batch)
        return len(self.trained)


def summary(learners: list[OnlineLearner]) -> str:
    """How many dates the learners' fine-tunes were rolled back on and stopped by the budget (a date
    counts once however many ensemble members it happened to)."""
    rolled, hit = (set().union(*(getattr(learner, a) for learner in learners)) for a in ("rolled_back", "budget_hit"))
    return (f"online learning: rolled back on {len(rolled)} dates (non-finite), "
            f"budget {learners[0].cfg.budget_s:g} s hit on {len(hit)} dates")
