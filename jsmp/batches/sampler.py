"""Batch index samplers: each item is a sorted array of positions, gathered in one go."""

from __future__ import annotations

import numpy as np


class BatchIndexSampler:
    """Yields int64 arrays of positions in [0, n), `batch_size` at a time.

    Shuffled with a generator seeded by (seed, epoch), so an epoch's order is reproducible
    and differs across epochs (Lightning calls `set_epoch`). Under distributed training,
    each of `world_size` ranks takes an equal, disjoint share of the epoch. Positions
    within a batch are sorted so the memmap gather reads forward.

    With `block` > 1 the shuffle moves contiguous blocks of `block` positions (the order of
    the blocks is random, positions inside a block stay together), so a batch is a few
    runs of neighbouring rows: overlapping windows then read the same pages.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1, block: int = 1):
        if batch_size < 1 or block < 1:
            raise ValueError("batch_size and block must be >= 1")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.drop_last, self.rank, self.world_size, self.block = drop_last, rank, world_size, block
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> BatchIndexSampler:
        """Itself: Lightning calls `set_epoch` on `loader.batch_sampler.sampler` at each epoch's start
        (lightning.fabric.utilities.data._set_sampler_epoch); without it every epoch had epoch 0's order."""
        return self

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n, dtype=np.int64)
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.block == 1:
            return rng.permutation(self.n)
        starts = rng.permutation(-(-self.n // self.block)) * self.block
        order = (starts[:, None] + np.arange(self.block)).ravel()
        return order[order < self.n]

    def _rank_share(self) -> np.ndarray:
        """This rank's positions. Training (shuffle) shares are equal, dropping the remainder,
        so every rank takes the same number of steps; evaluation shares cover every row."""
        order = self._order()
        if self.world_size == 1:
            return order
        if not self.shuffle:
            return np.array_split(order, self.world_size)[self.rank]
        per_rank = self.n // self.world_size
        return order[self.rank * per_rank : (self.rank + 1) * per_rank]

    def __iter__(self):
        share = self._rank_share()
        stop = len(share) - len(share) % self.batch_size if self.drop_last else len(share)
        for i in range(0, stop, self.batch_size):
            yield np.sort(share[i : i + self.batch_size])

    def __len__(self) -> int:
        n = len(self._rank_share()) if self.world_size > 1 else self.n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
