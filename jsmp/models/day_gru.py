"""The GRU over day samples (model=day_gru): each instrument's day read by a stacked GRU along its time axis,
over its present cells only, served statefully one time_id at a time (docs/models.md#the-gru-over-whole-days).

Input: a day sample (docs/rtmdf.md, jsmp.batches): x (B, T, N, F), time of day (B, T) in [0, 1) and the
presence mask (B, T, N); outputs (B, T, N, n_targets), 0 at absent cells.
"""

from __future__ import annotations

import torch
from torch import nn

from jsmp.models.axial import DayModel, gru_along_time


class DayGRU(DayModel):
    """A DayModel (jsmp.models.axial): each cell's features and its time of day (F + 1) are read by an
    nn.GRU of `layers` layers along each instrument's day, over its present cells only (an instrument starts
    from the learned state h0 (layers, hidden) at its first row of the day; its state skips the steps it is
    absent), then a linear head. Instruments are read independently: no cross-instrument term. The output at
    step t reads no input after t and no absent cell's x. Needs n_features from the data.

    hidden: state width; layers: stacked layers; dropout: between layers; loss: as DayModel's.
    """

    config = "model=day_gru"

    def __init__(self, n_features: int, n_days: int, hidden: int = 64, layers: int = 1, dropout: float = 0.0,
                 loss: str = "mse", task: str = "regression", **base):
        super().__init__(n_days, hidden, layers, dropout, loss, task, **base)
        self.gru = nn.GRU(n_features + 1, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0,
                          batch_first=True)
        self.h0 = nn.Parameter(torch.zeros(layers, hidden))  # the learned state before an instrument's first step
        self.head = nn.Linear(hidden, self.n_targets)

    def body(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return gru_along_time(self.gru, z, mask, self.h0)

    def body_step(self, z: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g, new = self.gru(z[:, None], state.contiguous())
        return g[:, 0], new

    def initial_state(self, n: int) -> torch.Tensor:
        """(layers, n, hidden): h0 for each of n slots."""
        return self.h0.detach()[:, None].expand(-1, n, -1).clone()
