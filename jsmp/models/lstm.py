"""The LSTM over windows of rows: x (B, W, F) -> nn.LSTM -> Linear on the last step -> logits (B, n_targets).

See docs/models.md.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from jsmp.errors import UserError
from jsmp.models.base import TradeModule


def left_to_right_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Move each sequence's last `lengths[b]` steps of x (B, W, F) to the front (for packing)."""
    W = x.shape[1]
    steps = (torch.arange(W, device=x.device) + (W - lengths)[:, None]).clamp(max=W - 1)
    return x.gather(1, steps[..., None].expand_as(x))


class LSTM(TradeModule):
    """Windows x (B, W, n_features) [+ mask (B, W)] -> logits (B, n_targets), (B,) for one
    target, of the window's last row. Needs n_features, n_days (and n_targets, optimizer:
    `**base`, see TradeModule) from the data.

    `sequence = True` makes the data serve windows (data.window) and the mask. Left-padded windows
    (mask False at the start, data.window.cross_days=false) are packed so the LSTM reads
    only real rows; the head reads the top layer's state after the last row, the target.
    The trade probability is the mean sigmoid over targets (`predict_proba`); the loss is BCE on logits.
    """

    sequence = True

    def __init__(self, n_features: int, n_days: int, hidden: int = 64, layers: int = 2, dropout: float = 0.0,
                 **base):
        super().__init__(n_days, **base)
        if hidden < 1 or layers < 1:
            raise UserError(f"model.hidden and model.layers must be >= 1, got {hidden!r}, {layers!r}")
        if not 0 <= dropout < 1:
            raise UserError(f"model.dropout must be in [0, 1), got {dropout!r}")
        self.lstm = nn.LSTM(n_features, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0,
                            batch_first=True)
        self.head = nn.Linear(hidden, self.n_targets)

    def inputs(self, batch: dict) -> tuple:
        return batch["x"], batch.get("mask")

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None and not bool(mask.all()):
            lengths = mask.sum(1)
            x = pack_padded_sequence(left_to_right_padded(x, lengths), lengths.cpu(), batch_first=True,
                                     enforce_sorted=False)
        _, (h, _) = self.lstm(x)
        return self.head(h[-1]).squeeze(-1)
