"""The axial model (model=axial): whole days, a GRU along each instrument's time axis and attention across
the instruments present at each time step, stacked (the 2024 first place's family, docs/models.md#axial).

Input: a day sample (docs/rtmdf.md, jsmp.batches): x (B, T, N, F), time of day (B, T) in [0, 1) and the
presence mask (B, T, N); outputs (B, T, N, n_targets), 0 at absent cells. DayModel, their base (the inputs, the
loss, validation, stepping for serving), is shared with jsmp.models.day_gru.
"""

from __future__ import annotations

import torch
from torch import nn

from jsmp.errors import UserError
from jsmp.models.base import TradeModule

LOSSES = ("mse", "r2")


def r2_loss(out: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """1 - the weighted zero-mean R² (jsmp.metrics.r2_score) of each target, averaged over targets: the mean
    over k of Σ w (y_k - out_k)² / Σ w y_k², for rows out, y (P, K) with weights (P,) (None: all 1). A target
    with Σ w y² = 0 counts 1, as r2_score scores it 0."""
    w = torch.ones(len(y), dtype=y.dtype, device=y.device) if weight is None else weight
    sse = (w[:, None] * (y - out) ** 2).sum(0)
    sst = (w[:, None] * y * y).sum(0)
    return torch.where(sst > 0, sse / sst.clamp_min(1e-30), torch.ones_like(sse)).mean()


def present_first(mask: torch.Tensor) -> torch.Tensor:
    """(S, T) bool -> (S, T) long: each row's present steps in time order, then its absent ones (a permutation
    of 0..T-1 per row: gather by it to pack a row's present steps at the front, scatter by it to undo)."""
    return torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices


def gru_over_present(gru: nn.GRU, seq: torch.Tensor, mask: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """`gru` along each row of seq (S, T, C) reading only its present steps (mask (S, T)), from state h0 (H,),
    or (layers, H) for a stacked GRU, before its first one -> (S, T, H), 0 at absent steps: a row's state
    skips its absent steps unchanged."""
    S, T, C = seq.shape
    state = h0.reshape(-1, 1, h0.shape[-1]).expand(-1, S, -1).contiguous()
    if bool(mask.all()):
        return gru(seq, state)[0]
    order = present_first(mask)[..., None]
    # the GRU is causal, so a row's outputs at its present steps (packed first) never read the absent tail after
    # them: no packing needed (pack_padded_sequence's backward on CPU grows with T², 25x slower at T = 968)
    out = gru(seq.gather(1, order.expand(S, T, C)), state)[0]
    return torch.zeros_like(out).scatter(1, order.expand_as(out), out) * mask[..., None]


def gru_along_time(gru: nn.GRU, z: torch.Tensor, mask: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """gru_over_present along each instrument's day of the cells z (B, T, N, C), mask (B, T, N) -> (B, T, N, H)."""
    B, T, N, C = z.shape
    seq = z.permute(0, 2, 1, 3).reshape(B * N, T, C)  # each instrument's day, causal
    g = gru_over_present(gru, seq, mask.permute(0, 2, 1).reshape(B * N, T), h0)
    return g.reshape(B, N, T, -1).permute(0, 2, 1, 3)


class AxialLayer(nn.Module):
    """One layer on h (B, T, N, H): a GRU along each instrument's time axis over its present cells only (an
    instrument starts from the learned state h0 at its first row of the day; its state skips the steps it is
    absent), then multi-head attention across the instruments present at each step; each sub-layer adds its
    output to h and applies a LayerNorm."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.h0 = nn.Parameter(torch.zeros(hidden))  # the learned state before an instrument's first step
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.norm_time, self.norm_cross = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h (B, T, N, H), mask (B, T, N) -> (B, T, N, H)."""
        B, T, N, H = h.shape
        h = self.norm_time(h + self.drop(gru_along_time(self.gru, h, mask, self.h0)))
        cells, present = h.reshape(B * T, N, H), mask.reshape(B * T, N)
        empty = ~present.any(-1)  # steps with no instrument: every key unmasked (no NaN), the output zeroed
        a, _ = self.attn(cells, cells, cells, key_padding_mask=~present & ~empty[:, None], need_weights=False)
        a = a.masked_fill(empty[:, None, None], 0.0)
        return self.norm_cross(h + self.drop(a.reshape(B, T, N, H)))

    def step(self, h: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step of forward() for the P instruments present: h (P, H) and their GRU states (P, H)
        -> (the layer's output (P, H), their new states (P, H))."""
        g, new = self.gru(h[:, None], state[None].contiguous())
        h = self.norm_time(h + self.drop(g[:, 0]))
        a, _ = self.attn(h[None], h[None], h[None], need_weights=False)
        return self.norm_cross(h + self.drop(a[0])), new[0]


class DayModel(TradeModule):
    """Day samples -> outputs (B, T, N, n_targets): each cell's predictions of the targets (0 where absent); the
    base of the models that read whole dates (Axial, jsmp.models.day_gru.DayGRU).

    Needs n_days (and n_targets, optimizer: `**base`, see TradeModule) from the data; the task is regression.
    `sample = "day"` makes the data serve day samples: x (B, T, N, F), mask (B, T, N), time (B, T), y (B, T, N, K),
    sample_weight, weight (B, T, N), day (B,). Each cell's input is its features and its time of day (F + 1);
    a subclass's `body` maps the cells to (B, T, N, hidden), reading no later step and no absent cell, and its
    `head` (Linear hidden -> n_targets) gives the outputs. `body_step` is its one time step for the instruments
    present, on the per-instrument state (layers, P, hidden) that `initial_state` starts, so that serving
    (jsmp.predict.days) steps through a date in O(1) per step.

    loss: `mse`, the regression task's weighted MSE (train/mse), or `r2`, 1 - each target's weighted zero-mean
    R², averaged over targets (train/r2_loss); both over the present cells, weighted by sample_weight.
    Validation scores the present cells as rows (val/r2 as the row models').
    """

    sample = "day"
    config: str  # how errors name the model: model=NAME
    head: nn.Linear

    def __init__(self, n_days: int, hidden: int, layers: int, dropout: float, loss: str, task: str, **base):
        super().__init__(n_days, task=task, **base)
        if task != "regression":
            raise UserError(f"{self.config} predicts the responders' values: it needs data.task=regression, got {task!r}")
        if hidden < 1 or layers < 1:
            raise UserError(f"model.hidden and model.layers must be >= 1, got {hidden!r}, {layers!r}")
        if not 0 <= dropout < 1:
            raise UserError(f"model.dropout must be in [0, 1), got {dropout!r}")
        if loss not in LOSSES:
            raise UserError(f"model.loss must be one of {list(LOSSES)}, got {loss!r}")
        self.loss_kind = loss

    def body(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Cells z (B, T, N, F + 1), 0 where absent, mask (B, T, N) bool -> (B, T, N, hidden)."""
        raise NotImplementedError

    def body_step(self, z: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step of body() for the P instruments present: z (P, F + 1), their states (layers, P, hidden)
        -> ((P, hidden), their new states)."""
        raise NotImplementedError

    def initial_state(self, n: int) -> torch.Tensor:
        """(layers, n, hidden): the state of n instrument slots before their first step of a date."""
        raise NotImplementedError

    def inputs(self, batch: dict) -> tuple:
        return batch["x"], batch["time"], batch["mask"]

    def forward(self, x: torch.Tensor, time: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, N, F), time (B, T), mask (B, T, N) bool -> (B, T, N, n_targets)."""
        mask = mask.bool()
        x = x.masked_fill(~mask[..., None], 0.0)  # an absent cell's x is never read (NaN included)
        t = time[:, :, None, None].expand(*x.shape[:3], 1).to(x.dtype)
        return self.head(self.body(torch.cat([x, t], dim=-1), mask)) * mask[..., None]

    def step(self, x: torch.Tensor, time: torch.Tensor | float, present: torch.Tensor,
             state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step of forward() for n instrument slots, O(1) in the date's length: x (n, F), time of day
        (n,) or a scalar, present (n,) bool, state (layers, n, hidden) (initial_state, then each step's) ->
        (outputs (n, n_targets), 0 where absent; the new state). Only the present slots' states advance (an
        absent one keeps its own)."""
        present = present.bool()
        if bool(present.all()):  # no slot to leave out
            t = torch.as_tensor(time, dtype=x.dtype, device=x.device).expand(len(x), 1)
            h, state = self.body_step(torch.cat([x, t], dim=-1), state)
            return self.head(h), state
        out = torch.zeros(len(x), self.n_targets, dtype=x.dtype, device=x.device)
        if not bool(present.any()):
            return out, state
        t = torch.as_tensor(time, dtype=x.dtype, device=x.device).expand(len(x))[present, None]
        h, new = self.body_step(torch.cat([x[present], t], dim=-1), state[:, present])
        state = state.clone()
        state[:, present] = new
        out[present] = self.head(h)
        return out, state

    def logits(self, batch: dict) -> torch.Tensor:
        """(P, n_targets): the outputs of the batch's P present cells, in (b, t, n) order (rows())."""
        return self(*self.inputs(batch))[batch["mask"].bool()]

    def rows(self, batch: dict) -> dict:
        """The present cells of a day-sample batch as a row batch: y (P, K), sample_weight, weight, day (P,),
        what the task's loss and metrics read, in logits()' order."""
        mask = batch["mask"].bool()
        rows = {k: batch[k][mask] for k in ("y", "sample_weight", "weight") if batch.get(k) is not None}
        if "day" in batch:
            rows["day"] = batch["day"][:, None, None].expand(mask.shape)[mask]
        return rows

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        out, rows = self.logits(batch), self.rows(batch)
        if self.loss_kind == "r2":
            return {"r2_loss": r2_loss(out, rows["y"], rows.get("sample_weight"))}
        return {self.task.loss_name: self.loss(out, rows)}

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.task.validate(self, self.logits(batch), self.rows(batch))


class Axial(DayModel):
    """The axial model (model=axial), a DayModel: each cell's features and its time of day are embedded
    (Linear -> hidden), then `layers` AxialLayers. The output at step t reads no input after t and no absent
    cell's x. Needs n_features from the data.

    hidden: width (a multiple of heads); heads: attention heads; dropout: after each sub-layer and on the
    attention weights; loss: as DayModel's.
    """

    config = "model=axial"

    def __init__(self, n_features: int, n_days: int, hidden: int = 64, layers: int = 2, heads: int = 4,
                 dropout: float = 0.0, loss: str = "mse", task: str = "regression", **base):
        super().__init__(n_days, hidden, layers, dropout, loss, task, **base)
        if heads < 1 or hidden % heads:
            raise UserError(f"model.heads must be >= 1 and model.hidden a multiple of it, got {hidden!r}, {heads!r}")
        self.embed = nn.Linear(n_features + 1, hidden)  # the features and the time of day
        self.blocks = nn.ModuleList(AxialLayer(hidden, heads, dropout) for _ in range(layers))
        self.head = nn.Linear(hidden, self.n_targets)

    def body(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.embed(z)
        for block in self.blocks:
            h = block(h, mask)
        return h

    def body_step(self, z: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, new = self.embed(z), torch.empty_like(state)
        for layer, block in enumerate(self.blocks):
            h, new[layer] = block.step(h, state[layer])
        return h, new

    def initial_state(self, n: int) -> torch.Tensor:
        """(layers, n, hidden): each layer's h0 for each of n slots."""
        return torch.stack([block.h0.detach().expand(n, -1) for block in self.blocks]).clone()
