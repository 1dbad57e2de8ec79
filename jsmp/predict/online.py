"""Online learning while serving a 2024-layout run (docs/inference.md): fine-tune the model on the
previous date's rows once their answers are revealed.

The 2024 API hands over, at each date's first time step, `lags_df`: the previous date's responders
of each (time_id, symbol_id). Those are the answers to the rows served on that previous date. The
`Learner` keeps what the model was fed on the current date (a uniform sample of at most `max_rows`
rows: their inputs, weights and keys), and when a new date D starts it labels the rows it kept of
date D - 1 from the `*_lag_1` columns of the run's targets (config.yaml `data.targets`), takes a
few optimizer steps of the model's own training loss on them, and forgets them. Causal by
construction: it only ever trains on rows it served before, of the date just before the current
one, and only those with a revealed answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from jsmp.errors import UserError
from jsmp.models.base import TradeModule


@dataclass(frozen=True)
class OnlineConfig:
    """steps: optimizer steps per date (each on a random minibatch of `batch_size` of the previous
    date's rows); lr: Adam's learning rate; budget_s: wall-clock seconds a date's fine-tune may take
    (it stops after the step that passes it); max_rows: rows kept per date (a uniform sample);
    seed: of that sample and the minibatches."""

    steps: int = 10
    lr: float = 5e-5  # on the synthetic data: 1.8x the frozen R² under drift, -1% without (docs/rtmdf.md)
    budget_s: float = 1.0
    max_rows: int = 20000
    batch_size: int = 1024
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "max_rows", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "steps" else 1):
                raise UserError(f"online learning: {name} must be an integer >= {0 if name == 'steps' else 1}, got {v!r}")
        for name in ("lr", "budget_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise UserError(f"online learning: {name} must be a number > 0, got {v!r}")


class Learner:
    """Fine-tunes `model` (in place) on the rows it served, once their labels `targets` are revealed.

    `keep(date, time, symbol, inputs, weight)` after each served time step (inputs: the batch the
    model saw, numpy, first axis the rows); `reveal(date, labels)` at the first time step of a new
    `date`, before it is served: labels(time, symbol, names) -> (n, len(names)) float32 (NaN: no
    answer) looks the `*_lag_1` columns up, or None when no lags came. `trained`: the (date, time,
    symbol) keys (n, 3) of the rows the last fine-tune used, `steps_taken` its optimizer steps.
    """

    def __init__(self, model: TradeModule, targets: list[str], cfg: OnlineConfig):
        self.model, self.cfg = model, cfg
        self.labels = [f"{t}_lag_1" for t in targets]
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.rng = np.random.default_rng(cfg.seed)
        self.kept: list[dict[str, np.ndarray]] = []
        self.n_kept = 0
        self.trained = np.empty((0, 3), dtype=np.int64)
        self.steps_taken = 0

    def keep(self, date: int, time_id: np.ndarray, symbol: np.ndarray, inputs: dict[str, np.ndarray],
             weight: np.ndarray) -> None:
        n = len(weight)
        keys = np.stack([np.full(n, date), time_id, symbol], axis=1).astype(np.int64)
        # a uniform sample without replacement: the max_rows rows of smallest random priority
        self.kept.append({"keys": keys, "weight": np.asarray(weight, np.float32), "priority": self.rng.random(n),
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
        self._train(inputs, torch.from_numpy(y[:, 0] if y.shape[1] == 1 else y), torch.from_numpy(rows["weight"]))
        return len(y)

    def _train(self, inputs: dict[str, torch.Tensor], y: torch.Tensor, weight: torch.Tensor) -> None:
        n, cfg = len(y), self.cfg
        start = time.perf_counter()
        self.model.train()
        try:
            with torch.enable_grad():
                for _ in range(cfg.steps):
                    if time.perf_counter() - start > cfg.budget_s:
                        break
                    pick = torch.from_numpy(self.rng.permutation(n)[: cfg.batch_size])
                    batch = {**{k: v[pick] for k, v in inputs.items()}, "y": y[pick], "sample_weight": weight[pick]}
                    loss = sum(self.model.losses(batch).values())
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    self.steps_taken += 1
        finally:
            self.model.eval()
