"""Deterministic synthetic data shaped like the Kaggle JSMP `train.csv` (docs/jsmp.md).

What it mimics: the column order and dtypes; `feature_0` = ±1; features
roughly N(0, 2.5²) with a few clipped constants; NaN blocks at each day's start and around
midday in the real feature groups; rows per day that vary (a few tiny days); ~17% zero
weights, heavy-tailed otherwise; `resp_1..4` as growing horizons with `resp` close to
`resp_4`.

The planted signal is weak: a latent state `s` follows an AR(1) process over consecutive
rows in `ts_id` order (across days). Each row's features see `s` through heavy noise and
the returns depend on `s`, so the current row and the rows before it both carry
information. The ideal action `s > 0` (the sign of the expected return) is recorded beside
the features (`ideal` in a store, a sidecar `.ideal.npy` next to a CSV) so benchmarks can
report the utility of knowing `s`. No model sees `s`, so that ideal is not reachable: the
Bayes-optimal rules below (`posterior_mean`) trade on what the features reveal about `s`
and give each model's honest ceiling (`python -m jsmp.bench ceilings`, docs/results.md).

Generation streams day by day with one RNG stream, so memory stays at one day and the
output is identical for a seed whatever is written.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import accumulate
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from jsmp.data import schema
from jsmp.errors import UserError
from jsmp.files import atomic_path, claim_destination
from jsmp.store.store import StoreWriter

# Real NaN groups (feature numbers) and the share of a day's rows missing at its start and midday.
NAN_GROUPS = [
    ((7, 8, 17, 18, 27, 28), 0.10, 0.065),
    ((72, 78, 84, 90, 96, 102, 108, 114), 0.09, 0.057),
    ((21, 22, 31, 32), 0.02, 0.014),
    ((11, 12), 0.017, 0.012),
]
CLIPPED = {3: -3.172, 41: -3.172, 64: 3.05}  # features whose tail is clipped to a constant
PHI = 0.95  # persistence of the latent state from one row to the next
SIGNAL = 0.2  # expected return per unit of latent state, relative to the return noise
INFORMATIVE = 40  # features 1..40 see the latent state
LOADING = 0.09  # each informative feature's correlation with the latent state
RESP_SCALE = (0.0015, 0.0021, 0.0059, 0.0165)  # std of resp_1..4 (horizons 1, 1.4, 3.9, 11)


@dataclass(frozen=True)
class SynthSpec:
    """A synthetic data set: `days` days of about `rows_per_day` rows each (day_sizes), from `seed`."""

    days: int = 500
    rows_per_day: int = 1000
    seed: int = 0

    def __post_init__(self):
        if self.days < 1 or self.rows_per_day < 1:
            raise ValueError("days and rows_per_day must be >= 1")

    @classmethod
    def real_size(cls, seed: int = 0) -> SynthSpec:
        """The real train.csv's size: 500 days of 4,780 rows on average (~2.4M rows)."""
        return cls(days=500, rows_per_day=4780, seed=seed)

    @property
    def name(self) -> str:
        return f"synthetic-d{self.days}-r{self.rows_per_day}-s{self.seed}"


def day_sizes(spec: SynthSpec) -> np.ndarray:
    """Rows in each day: log-normal around `rows_per_day`, with ~1% tiny days."""
    rng = np.random.default_rng([spec.seed, 0])
    sizes = spec.rows_per_day * rng.lognormal(-0.08, 0.4, spec.days)
    tiny = rng.random(spec.days) < 0.01
    if spec.days > 2:
        tiny[2] = True  # like the real day 2
    sizes[tiny] *= rng.uniform(0.006, 0.05, tiny.sum())
    return np.maximum(sizes.round().astype(np.int64), 2)


def _draw_features(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The first draws of a seed's day stream: loadings and feature scales, both (130,) float32."""
    loadings = np.zeros(schema.N_FEATURES, dtype=np.float32)
    loadings[1 : INFORMATIVE + 1] = LOADING * rng.choice([-1.0, 1.0], INFORMATIVE)
    return loadings, rng.uniform(1.8, 3.2, schema.N_FEATURES).astype(np.float32)


def feature_model(spec: SynthSpec) -> tuple[np.ndarray, np.ndarray]:
    """(loadings, feat_scale), both (130,) float32: feature j is
    `feat_scale[j] * (loadings[j] * s + sqrt(1 - loadings[j]**2) * noise)`, noise ~ N(0, 1)."""
    return _draw_features(np.random.default_rng([spec.seed, 1]))


def iter_days(spec: SynthSpec) -> Iterator[dict[str, np.ndarray]]:
    """Yield one dict per day: `x` (n, 130) float32 and the side arrays (n,), incl. `ideal`."""
    sizes = day_sizes(spec)
    rng = np.random.default_rng([spec.seed, 1])
    loadings, feat_scale = _draw_features(rng)
    noise_scale = np.sqrt(1.0 - loadings**2).astype(np.float32)
    state = 0.0
    ts = 0
    innov = np.sqrt(1 - PHI**2)
    for d, n in enumerate(sizes):
        eps = rng.standard_normal(n) * innov
        s = np.fromiter(accumulate(eps, lambda a, e: PHI * a + e, initial=state), float, n + 1)[1:]
        state = s[-1]
        x = rng.standard_normal((n, schema.N_FEATURES), dtype=np.float32)
        x *= noise_scale
        x += s[:, None].astype(np.float32) * loadings
        x *= feat_scale
        x[:, 0] = rng.choice(np.float32([-1, 1]), n)
        for f, c in CLIPPED.items():
            x[:, f] = np.maximum(x[:, f], c) if c < 0 else np.minimum(x[:, f], c)
        for feats, start_share, mid_share in NAN_GROUPS:
            k0 = int(round(n * start_share))
            k1 = int(round(n * mid_share))
            mid = int(n * rng.uniform(0.45, 0.55))
            cols = list(feats)
            x[:k0, cols] = np.nan
            x[mid : mid + k1, cols] = np.nan
        # Returns over four horizons: cumulative increments that each depend on s.
        incs = [sc * (SIGNAL * s + rng.standard_normal(n)) for sc in np.diff(np.r_[0, np.square(RESP_SCALE)]) ** 0.5]
        resp_k = np.cumsum(incs, axis=0)
        resp = resp_k[2] + 0.9 * incs[3] + 0.001 * rng.standard_normal(n)
        weight = rng.lognormal(-0.3, 1.4, n) * (rng.random(n) >= 0.17)
        yield {
            "x": x,
            "date": np.full(n, d, dtype=np.int32),
            "weight": weight.astype(np.float32),
            "resp_1": resp_k[0].astype(np.float32),
            "resp_2": resp_k[1].astype(np.float32),
            "resp_3": resp_k[2].astype(np.float32),
            "resp_4": resp_k[3].astype(np.float32),
            "resp": resp.astype(np.float32),
            "ts_id": np.arange(ts, ts + n, dtype=np.int64),
            "ideal": (s > 0).astype(np.int8),
        }
        ts += n


def row_evidence(x: np.ndarray, spec: SynthSpec) -> tuple[np.ndarray, np.ndarray]:
    """What each row's observed features say about its latent state `s`: (b, p), both (n,) float64,
    the log-likelihood of `s` being `b * s - p * s**2 / 2` (p: precision, b: precision x estimate).

    x: (n, 130) features as generated; NaNs are unobserved. A feature at its clip constant says
    only that its value lies beyond the clip: that censored likelihood enters by its quadratic
    expansion around s = 0 (exact up to terms of order LOADING**3).
    """
    loadings, feat_scale = (a.astype(np.float64) for a in feature_model(spec))
    noise = np.sqrt(1.0 - loadings**2)
    k = loadings / noise  # in units of each feature's noise, u = x / (feat_scale * noise) = k * s + N(0, 1)
    u = x.astype(np.float64) / (feat_scale * noise)
    seen = ~np.isnan(u)
    clipped = {f: x[:, f] == np.float32(c) for f, c in CLIPPED.items()}
    for f, rows in clipped.items():
        seen[:, f] &= ~rows
    b = np.where(seen, u, 0.0) @ k
    p = seen @ k**2
    for f, rows in clipped.items():
        side = 1.0 if CLIPPED[f] > 0 else -1.0  # u >= its clip (min(x, c) clipped it) or u <= it
        t = -side * CLIPPED[f] / (feat_scale[f] * noise[f])  # the censoring reads z <= t at s = 0
        mills = math.exp(-t * t / 2) / (math.sqrt(2 * math.pi) * 0.5 * math.erfc(-t / math.sqrt(2)))
        b += rows * (k[f] * side * mills)
        p += rows * (k[f] ** 2 * mills * (mills + t))
    return b, p


def posterior_mean(b: np.ndarray, p: np.ndarray, window: int = 1) -> np.ndarray:
    """E[s_t | the evidence (b, p) of rows t-window+1 .. t] for every row t, (n,) float64.

    b, p: (n,) from `row_evidence`, rows in ts_id order (the state runs on across days). A Kalman
    filter over each window, started from the stationary prior N(0, 1) (rows before the first
    carry no evidence); `window=1` is the row's own features. The expected return has the sign
    of `s` (SIGNAL > 0), so trading iff this is > 0 is the Bayes-optimal rule on those inputs.
    """
    if window < 1:
        raise UserError(f"the window must hold >= 1 row, got {window}")
    n = len(b)
    mean, var = np.zeros(n), np.ones(n)
    for k in range(window):
        src = np.arange(n) - (window - 1 - k)
        bk, pk = (np.where(src >= 0, a[np.maximum(src, 0)], 0.0) for a in (b, p))
        if k:
            mean, var = PHI * mean, PHI**2 * var + (1 - PHI**2)
        prec = 1.0 / var + pk
        mean, var = (mean / var + bk) / prec, 1.0 / prec
    return mean


def _progress(spec: SynthSpec, what: str):
    return tqdm(total=int(day_sizes(spec).sum()), unit="row", unit_scale=True, desc=what, disable=None)


def synth_source(spec: SynthSpec) -> dict:
    """The manifest `source` of a store generated from `spec`."""
    return {"kind": "synthetic", **asdict(spec), "checksum": f"synthetic:{spec.name}"}


def write_store(spec: SynthSpec, path: str | os.PathLike, shard_rows: int | None = None) -> Path:
    """Generate `spec` into a store at `path` (atomically; `path` is checked first, see StoreWriter)."""
    side = {**schema.SIDE_DTYPES, "ideal": "int8"}
    kw = {"shard_rows": shard_rows} if shard_rows else {}
    with StoreWriter(path, schema.FEATURE_COLUMNS, side, synth_source(spec), columns=schema.TRAIN_COLUMNS,
                     feature_limit=schema.FEATURE_LIMIT, **kw) as w, _progress(
        spec, f"synthesising {Path(path).name}"
    ) as bar:
        for day in iter_days(spec):
            w.append(day["x"], day)
            bar.update(len(day["date"]))
        return w.close()


def ideal_path(csv: str | os.PathLike) -> Path:
    """The sidecar holding a generated CSV's ideal actions: `FILE.ideal.npy`."""
    return Path(f"{csv}.ideal.npy")


def is_synth_csv(path: Path) -> bool:
    """Whether `path` is a CSV this generator wrote (a file with its `.ideal.npy` sidecar)."""
    return path.is_file() and ideal_path(path).is_file()


def write_csv(spec: SynthSpec, path: str | os.PathLike, test_layout: bool = False) -> Path:
    """Generate `spec` as a Kaggle-layout CSV at `path`, with the ideal actions in `path + '.ideal.npy'`
    (`test_layout`: as example_test.csv, without the resp columns).

    `path` may be absent or a CSV generated earlier (one with its sidecar), never another file
    (one-line UserError naming `--out`). Both files are written through temps, the sidecar
    renamed first: a CSV with no sidecar is never left by this function.
    """
    import pandas as pd

    path = Path(path)
    if (path.is_file() or path.is_symlink()) and not is_synth_csv(path):
        raise UserError(f"--out {path}: an existing file that synth did not write (no {ideal_path(path).name} beside it); "
                        f"synth replaces only its own CSVs. Choose another --out, or move that file away first")
    claim_destination(path, "--out", "synth CSV", is_synth_csv)
    claim_destination(ideal_path(path), "--out", "synth CSV's ideal actions", Path.is_file)
    ideal = []
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f, _progress(spec, f"writing {path.name}") as bar:
            for i, day in enumerate(iter_days(spec)):
                cols = {c: day[c] for c in (schema.TEST_COLUMNS[:2] if test_layout else schema.TRAIN_COLUMNS[:7])}
                cols.update({name: day["x"][:, j] for j, name in enumerate(schema.FEATURE_COLUMNS)})
                cols["ts_id"] = day["ts_id"]
                pd.DataFrame(cols).to_csv(f, header=i == 0, index=False)
                ideal.append(day["ideal"])
                bar.update(len(day["date"]))
        with atomic_path(ideal_path(path)) as side, open(side, "wb") as f:
            np.save(f, np.concatenate(ideal))
    return path
