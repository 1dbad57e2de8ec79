"""Splitting one batch's gather across threads: numpy releases the GIL while it copies rows."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

MIN_ROWS = 1024  # below this many rows per thread, a thread hand-off costs more than it saves
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _executor() -> ThreadPoolExecutor:
    """This process's pool (a forked DataLoader worker must not reuse its parent's threads)."""
    global _pool
    if _pool is None or _pool[0] != os.getpid():
        _pool = (os.getpid(), ThreadPoolExecutor(max_workers=os.cpu_count(), thread_name_prefix="jsmp-gather"))
    return _pool[1]


def for_slices(fn, n: int) -> None:
    """Call `fn(slice)` on consecutive slices covering range(n), in parallel: one slice per torch
    thread (`torch.get_num_threads()`, 1 inside DataLoader workers), each at least MIN_ROWS long.
    The calling thread runs the last slice itself."""
    k = max(1, min(torch.get_num_threads(), n // MIN_ROWS))
    bounds = np.linspace(0, n, k + 1).astype(int)
    slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    others = [_executor().submit(fn, s) for s in slices[:-1]]
    try:
        fn(slices[-1])
    finally:  # never return while a pool thread may still write into the caller's arrays
        for f in others:
            f.result()
