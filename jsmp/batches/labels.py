"""Training labels from a store's return columns (`resp*` in 2021 stores, `responder_*` in 2024 ones).

`data.task=action` (the 2021 competition): one binary target `column > 0` per column;
`data.targets=[resp, resp_1, resp_2, resp_3, resp_4]` gives five (the 1st-place recipe), and the
model trades when the mean probability is > 0.5. `data.task=regression` (2024): the column
values themselves, the first being the one scored (R²), the others auxiliary outputs.
`data.sample_weight` optionally weights each row's loss.
"""

from __future__ import annotations

import numpy as np

from jsmp.batches.config import TASK_SCORES
from jsmp.data.schema import is_target
from jsmp.errors import UserError
from jsmp.inputs.weights import SAMPLE_WEIGHTS
from jsmp.store.store import Store


class Labels:
    """Gathers labels for store rows.

    targets: store return columns (jsmp.data.schema.is_target: resp, resp_N in 2021 stores, responder_N in 2024 ones).
    sample_weight: None, or a name in SAMPLE_WEIGHTS. task: "action" (label `column > 0`) or
    "regression" (label = the column's value).
    `labels(rows)` -> {"y": (B,) float32 for one target, (B, T) for T > 1 targets,
    and "sample_weight": (B,) float32 when configured}.
    `.binary`: labels are 0/1; `.score_column`: the return column the utility or R² scores
    (`resp` when the store has it, else the first target).
    """

    def __init__(self, store: Store, targets=("resp",), sample_weight: str | None = None, task: str = "action"):
        if task not in TASK_SCORES:
            raise UserError(f"data.task must be one of {list(TASK_SCORES)}, got {task!r}")
        targets = [targets] if isinstance(targets, str) else list(targets)
        if not targets:
            raise UserError("data.targets: expected at least one return column, got an empty list")
        for t in targets:
            if not (isinstance(t, str) and is_target(t) and store.has(t)):
                have = sorted(c for c in store.side_names if is_target(c))
                raise UserError(f"data.targets: {t!r} is not a return column of store {store.path} (has {have})")
        if sample_weight is not None and sample_weight not in SAMPLE_WEIGHTS:
            raise UserError(f"data.sample_weight must be null or one of {sorted(SAMPLE_WEIGHTS)}, got {sample_weight!r}")
        self.targets, self.sample_weight, self.task = targets, sample_weight, task
        self.binary = task == "action"
        self.score_column = "resp" if store.has("resp") else targets[0]
        self.returns = [store.side(t) for t in targets]
        self.weight = store.side("weight")

    def __len__(self) -> int:
        return len(self.targets)

    def __call__(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        resp = np.stack([r.take(rows).astype(np.float32) for r in self.returns], axis=1)  # (B, T)
        y = (resp > 0).astype(np.float32) if self.binary else resp
        out = {"y": y[:, 0] if len(self) == 1 else y}
        if self.sample_weight is not None:
            w = SAMPLE_WEIGHTS[self.sample_weight](self.weight.take(rows).astype(np.float32), resp)
            out["sample_weight"] = w.astype(np.float32)
        return out
