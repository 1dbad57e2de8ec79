"""Compiled loops (numba): the row gather that copies rows and fills their NaNs in one pass
over each row (`take_rows`), and the forward-fill rule (`ffill_row`, `ffill_rows`: per group
for a grouped store).

numpy needs a `take` per shard and then three more passes to fill (isnan, where, write
back); here a row is filled while it is in registers, and one call reads every shard, which
makes gather + fill faster than numpy's `take` alone (jsmp.bench loader). A batch's rows are
scattered over the memmap, so each one costs a trip to memory: the loop asks the CPU for the
rows `PREFETCH_ROWS` ahead (a software prefetch) so that those trips overlap. `take_rows`'
NaN -> value is the compiled twin of jsmp.inputs.fill.fill_nan (tests/store/test_store.py
checks they agree). Compiled on first use and cached next to this module.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.typed import List

PREFETCH_ROWS = 16  # how far ahead rows are prefetched (8 to 32 measured about as fast; 4 slower)
LINE_FLOATS = 16  # float32 values per 64-byte cache line


def shard_list(shards: list[np.ndarray]) -> List:
    """The shards (memory-mapped 2-D float32 arrays) as the list `take_rows` reads."""
    return List([np.asarray(s) for s in shards])


@intrinsic
def prefetch(typingctx, array, i, j):
    """Hints the CPU to bring the cache line holding array[i, j] into cache; no effect on results."""

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        arr = context.make_array(array_type)(context, builder, args[0])
        index = [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], signature.args[1:])]
        address = cgutils.get_item_pointer(context, builder, array_type, arr, index, wraparound=False)
        byte_ptr, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]),
                                            "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(address, byte_ptr), i32(0), i32(3), i32(1)])  # read, keep, data
        return context.get_dummy_value()

    return types.void(array, i, j), codegen


@numba.njit(nogil=True, cache=True, inline="always")
def prefetch_row(src: np.ndarray, r: int) -> None:
    """Prefetches every cache line of src[r] (a row need not start on a line)."""
    n_features = src.shape[1]
    for j in range(0, n_features, LINE_FLOATS):
        prefetch(src, r, j)
    prefetch(src, r, n_features - 1)


@numba.njit(nogil=True, cache=True)
def take_rows(shards, shard: np.ndarray, local: np.ndarray, out: np.ndarray, fill: np.ndarray,
              has_nan: np.ndarray) -> None:
    """out[i] = shards[shard[i]][local[i]]; in the rows where has_nan[i], NaNs become fill
    (n_features,) (`fill` may be empty when no has_nan is set). Any row order."""
    n, n_features = out.shape
    if n == 0:
        return
    current = shard[0]
    src = shards[current]  # fetched from the list only when the shard changes
    for i in range(min(PREFETCH_ROWS, n)):
        if shard[i] == current:
            prefetch_row(src, local[i])
    for i in range(n):
        ahead = i + PREFETCH_ROWS
        if ahead < n and shard[ahead] == current:  # rows of the next shard are not prefetched
            prefetch_row(src, local[ahead])
        if shard[i] != current:
            current = shard[i]
            src = shards[current]
        r = local[i]
        if has_nan[i]:
            for j in range(n_features):
                v = src[r, j]
                out[i, j] = fill[j] if v != v else v
        else:
            for j in range(n_features):
                out[i, j] = src[r, j]


@numba.njit(nogil=True, cache=True, inline="always")
def ffill_row(x: np.ndarray, last: np.ndarray, new_day: bool) -> None:
    """The forward-fill rule (`data.fill=ffill`, see docs/store.md), one row in place: a NaN in
    x (F,) takes last (F,), the feature's last value seen earlier on the same day (NaN: none
    yet); `last` then holds x's values. `new_day` forgets the earlier day first."""
    if new_day:
        last[:] = np.nan
    for j in range(x.shape[0]):
        v = x[j]
        if v != v:
            x[j] = last[j]
        else:
            last[j] = v


@numba.njit(nogil=True, cache=True)
def ffill_rows(x: np.ndarray, new_day: np.ndarray, group: np.ndarray, last: np.ndarray) -> None:
    """`ffill_row` down the rows of x (n, F) in place, each row against its own group's last
    values: group (n,) int index into last (G, F), which carries in and out (G = 1, group all 0:
    one group); new_day (n,) bool forgets every group's."""
    for i in range(x.shape[0]):
        if new_day[i]:
            last[:] = np.nan
        ffill_row(x[i], last[group[i]], False)
