"""The 1st-place model: a supervised autoencoder and an MLP, trained jointly.

    x0      = BatchNorm(x)                                    (B, F)
    enc     = swish(BN(Dense(noise(x0))))                     (B, encoder)   noise: Gaussian, training only
    decoded = Dense(Dropout(enc)) -> F                        MSE against x
    aux     = Dense(Dropout(swish(BN(Dense(decoded))))) -> T  auxiliary head, the task's loss
    logits  = MLP(Dropout(BN([x0, enc]))) -> T                main head, the task's loss (the model's output)

Training minimises bce + aux_bce + recon_mse (data.task=action; mse + aux_mse + recon_mse for
regression), each logged as train/<name>; see docs/models.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jsmp.errors import UserError
from jsmp.models.base import TradeModule
from jsmp.models.mlp import dense_layers


class GaussianNoise(nn.Module):
    """Adds N(0, std²) noise in training mode; the identity in eval mode."""

    def __init__(self, std: float):
        super().__init__()
        if std < 0:
            raise UserError(f"model.noise must be >= 0, got {std!r}")
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.std * torch.randn_like(x) if self.training and self.std else x


class AEMLP(TradeModule):
    """Rows x (B, n_features) -> outputs (B, n_targets) of the main head (logits or predictions: the task's).

    Needs n_features, n_days (and n_targets, optimizer, task: `**base`, see TradeModule) from the data.
    encoder: width of the encoding; noise: std of the noise on the normalised input;
    decoder_dropout; aux_hidden, aux_dropout: the auxiliary head; input_dropout: on
    [x0, enc]; hidden, dropout: widths and dropout rates (one per layer) of the main MLP.
    """

    def __init__(self, n_features: int, n_days: int, encoder: int = 96, noise: float = 0.035,
                 decoder_dropout: float = 0.038, aux_hidden: int = 96, aux_dropout: float = 0.424,
                 input_dropout: float = 0.104, hidden: list[int] = (896, 448, 448, 256),
                 dropout: list[float] = (0.492, 0.320, 0.272, 0.438), **base):
        super().__init__(n_days, **base)
        hidden, dropout = list(hidden), list(dropout)
        if len(dropout) != len(hidden):
            raise UserError(f"model.dropout has {len(dropout)} rates for {len(hidden)} hidden layers (model.hidden)")
        t = self.n_targets
        self.input_norm = nn.BatchNorm1d(n_features)
        self.encoder = nn.Sequential(GaussianNoise(noise), *dense_layers(n_features, [encoder], ["swish"], [0.0], True))
        self.decoder = nn.Sequential(nn.Dropout(decoder_dropout), nn.Linear(encoder, n_features))
        self.aux_head = nn.Sequential(*dense_layers(n_features, [aux_hidden], ["swish"], [aux_dropout], True),
                                      nn.Linear(aux_hidden, t))
        self.head = nn.Sequential(nn.BatchNorm1d(n_features + encoder), nn.Dropout(input_dropout),
                                  *dense_layers(n_features + encoder, hidden, ["swish"] * len(hidden), dropout, True),
                                  nn.Linear(hidden[-1] if hidden else n_features + encoder, t))

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, F) -> decoded (B, F), auxiliary outputs (B, T), main outputs (B, T)."""
        x0 = self.input_norm(x)
        enc = self.encoder(x0)
        decoded = self.decoder(enc)
        return decoded, self.aux_head(decoded), self.head(torch.cat([x0, enc], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(x)[2]

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        decoded, aux, out = self.heads(batch["x"])
        name = self.task.loss_name
        return {name: self.loss(out, batch), f"aux_{name}": self.loss(aux, batch), "recon_mse": F.mse_loss(decoded, batch["x"])}
