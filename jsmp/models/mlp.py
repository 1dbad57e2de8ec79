"""The MLP: by default the seed's 130 -> h1 -> ReLU -> h2 -> Sigmoid -> 1 network (docs/models.md)."""

from __future__ import annotations

import torch
from torch import nn

from jsmp.errors import UserError
from jsmp.models.base import TradeModule

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "silu": nn.SiLU, "swish": nn.SiLU, "gelu": nn.GELU}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise UserError(f"model.activations: unknown activation {name!r} (expected one of {sorted(ACTIVATIONS)})")
    return ACTIVATIONS[name]()


def dense_layers(width: int, hidden: list[int], activations: list[str], dropouts: list[float],
                 batch_norm: bool) -> list[nn.Module]:
    """Linear(width -> h) [-> BatchNorm] -> activation [-> Dropout] for each width h in `hidden`."""
    layers: list[nn.Module] = []
    for h, act, p in zip(hidden, activations, dropouts, strict=True):
        if not 0 <= p < 1:
            raise UserError(f"model: dropout rates must be in [0, 1), got {p!r}")
        layers.append(nn.Linear(width, h))
        if batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(activation(act))
        if p:
            layers.append(nn.Dropout(p))
        width = h
    return layers


class MLP(TradeModule):
    """Rows x (B, n_features) -> outputs (B, n_targets) (logits or predictions: the task's), squeezed
    to (B,) for one target.

    Needs n_features, n_days (and n_targets, optimizer, task: `**base`, see TradeModule) from the data.
    hidden: widths of the hidden layers, any depth. activations: one name for every layer,
    or one per layer. dropout applies after each hidden activation; batch_norm before it.
    """

    def __init__(self, n_features: int, n_days: int, hidden: list[int] = (118, 142),
                 activations: str | list[str] = ("relu", "sigmoid"), dropout: float = 0.0,
                 batch_norm: bool = False, **base):
        super().__init__(n_days, **base)
        hidden = list(hidden)
        acts = [activations] * len(hidden) if isinstance(activations, str) else list(activations)
        if len(acts) != len(hidden):
            raise UserError(f"model.activations has {len(acts)} entries for {len(hidden)} hidden layers (model.hidden)")
        layers = dense_layers(n_features, hidden, acts, [dropout] * len(hidden), batch_norm)
        layers.append(nn.Linear(hidden[-1] if hidden else n_features, self.n_targets))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
