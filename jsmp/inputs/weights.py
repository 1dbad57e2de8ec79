"""Each row's weight in the loss (`data.sample_weight`), one rule for training (jsmp.batches.labels) and
online learning while serving (jsmp.predict.online)."""

from __future__ import annotations

import numpy as np

# name -> per-row loss weight from (the competition weight (n,), the target returns (n, T))
SAMPLE_WEIGHTS = {
    "abs_resp_mean": lambda weight, resp: np.abs(resp).mean(1),  # big moves count more
    "weight": lambda weight, resp: weight,  # the competition's row weight
}
