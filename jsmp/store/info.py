"""`python -m jsmp.data info DIR`: a store's size, day structure, groups, zero weights, NaNs and source."""

from __future__ import annotations

import numpy as np

from jsmp.store.store import Store


def nan_counts(store: Store) -> np.ndarray:
    """(n_features,) int64 NaN count per feature: from the manifest when ingest recorded it, else one streaming pass."""
    if "nan_counts" in store.manifest:
        return np.asarray(store.manifest["nan_counts"], dtype=np.int64)
    total = np.zeros(store.n_features, dtype=np.int64)
    for block in store.iter_blocks([(0, store.n_rows)]):
        total += np.isnan(block).sum(0)
    return total


def describe(store: Store, top: int = 10) -> str:
    """The report `info` prints, as text."""
    per_day = np.diff(store.day_offsets)
    zero_w = float((np.asarray(store.side("weight")) == 0).mean()) if store.has("weight") else None  # a lags store has none
    nan_share = nan_counts(store) / store.n_rows
    order = np.argsort(-nan_share, kind="stable")[:top]
    src = store.source
    lines = [
        f"store     {store.path}",
        f"rows      {store.n_rows:,}",
        f"days      {store.n_days:,} (dates {store.days[0]}..{store.days[-1]})",
        f"features  {store.n_features} ({store.features[0]} .. {store.features[-1]})",
        *([f"groups    {len(store.group_values):,} by {store.group} (time order {', '.join(store.time)})"] if store.group else []),
        f"rows/day  min {per_day.min():,}  median {np.median(per_day):,.0f}  max {per_day.max():,}",
        *([f"weight 0  {zero_w:.1%} of rows"] if zero_w is not None else []),
        f"NaN share (top {len(order)} features):",
        *(f"  {store.features[j]:<12} {nan_share[j]:.2%}" for j in order),
        f"source    {src.get('kind', '?')} {src.get('path', '')}".rstrip(),
        f"checksum  {src.get('checksum', '?')}",
    ]
    return "\n".join(lines)
