"""Recurrent models over windows of rows: x (B, W, F) -> nn.LSTM / nn.GRU -> Linear on the last step ->
outputs (B, n_targets). See docs/models.md and docs/sequence-models.md."""

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


class Recurrent(TradeModule):
    """Windows x (B, W, n_features) [+ mask (B, W)] -> outputs (B, n_targets), (B,) for one
    target, of the window's last row. Needs n_features, n_days (and n_targets, optimizer, task:
    `**base`, see TradeModule) from the data. A subclass names its torch layer in `cell`.

    `sequence = True` makes the data serve windows (data.window) and the mask. Left-padded windows
    (mask False at the start: a window's rows before its group's, or its day's, first row) are
    packed so the network reads only real rows; the head reads the top layer's state after the
    last row, the target. hidden: state width; layers: stacked layers; dropout: between layers.
    """

    sequence = True
    cell: type[nn.LSTM] | type[nn.GRU]

    def __init__(self, n_features: int, n_days: int, hidden: int = 64, layers: int = 2, dropout: float = 0.0,
                 **base):
        super().__init__(n_days, **base)
        if hidden < 1 or layers < 1:
            raise UserError(f"model.hidden and model.layers must be >= 1, got {hidden!r}, {layers!r}")
        if not 0 <= dropout < 1:
            raise UserError(f"model.dropout must be in [0, 1), got {dropout!r}")
        # registered as `lstm` / `gru`: the parameter names in checkpoints (those of LSTM runs before GRU joined)
        self.rnn_name = self.cell.__name__.lower()
        self.add_module(self.rnn_name, self.cell(n_features, hidden, num_layers=layers,
                                                 dropout=dropout if layers > 1 else 0.0, batch_first=True))
        self.head = nn.Linear(hidden, self.n_targets)

    def inputs(self, batch: dict) -> tuple:
        return batch["x"], batch.get("mask")

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None and not bool(mask.all()):
            lengths = mask.sum(1)
            x = pack_padded_sequence(left_to_right_padded(x, lengths), lengths.cpu(), batch_first=True,
                                     enforce_sorted=False)
        _, state = getattr(self, self.rnn_name)(x)
        h = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c); GRU: h. (layers, B, hidden)
        return self.head(h[-1]).squeeze(-1)


class LSTM(Recurrent):
    """The LSTM (model=lstm): Recurrent with nn.LSTM."""

    cell = nn.LSTM


class GRU(Recurrent):
    """The GRU (model=gru): Recurrent with nn.GRU."""

    cell = nn.GRU
