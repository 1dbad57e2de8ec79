"""Deterministic synthetic data shaped like the 2024 Jane Street "Real-Time Market Data Forecasting"
`train.parquet` (docs/rtmdf-data.md states the model; its R² ceilings: docs/results.md).

What it mimics: the column names and dtypes; instruments (`symbol_id`) side by side, one row per active
instrument per (`date_id`, `time_id`), rows in (date_id, time_id, symbol_id) order; instruments present
from the start, entering later (one in the middle of its first date) and leaving; fewer time_ids on the
early dates (849 of 968); features `feature_00..78` with NaN blocks at each date's start and on whole
instrument-dates, three per-instrument categorical codes (09..11); a positive, heavy-tailed `weight`
per instrument; `responder_0..8` clipped to [-5, 5], the target `responder_6`.

The planted signal: each instrument has a latent state `z`, an AR(1) process over its consecutive time
steps (PHI within a date, PHI_NIGHT from a date's last time_id to the next date's first), stationary
N(0, 1). Eight features see `z` through noise (LOADINGS); the responders are `beta * z` plus correlated
noise (RESPONDERS). `ideal` is E[responder_6 | the instrument's features up to and including this row]
(a Kalman filter, `kalman_means`), so the weighted R² of `ideal` is the ceiling of a model that reads
features (`ceilings` also gives it with every earlier date's responders known, as lag features reveal them).
With `drift` > 0 the features' view of `z` rotates slowly over dates (`feature_loadings`): a model frozen at
the end of training decays on later dates, while `ideal` (the filter with each date's true loadings) does not.

Generation streams date by date with one RNG stream, so memory stays at one date and the output is
identical for a seed whatever is written (a store, or Parquet files in the real layout).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from jsmp.data.schema import FEATURE_LIMIT, lag_name
from jsmp.errors import UserError
from jsmp.files import atomic_path, claim_destination, replace_dir
from jsmp.inputs.lags import is_lag_date
from jsmp.store.store import StoreWriter

N_FEATURES = 79
N_RESPONDERS = 9
TARGET = 6  # responder_6
FEATURES = [f"feature_{j:02d}" for j in range(N_FEATURES)]
RESPONDERS = [f"responder_{k}" for k in range(N_RESPONDERS)]
TRAIN_COLUMNS = ["date_id", "time_id", "symbol_id", "weight", *FEATURES, *RESPONDERS]  # the real file's, in order
KEY_DTYPES = {"date_id": "int16", "time_id": "int16", "symbol_id": "int8"}  # the real file's
STORE_SIDE = {"date": "int32", "time_id": "int32", "symbol_id": "int32", "weight": "float32",
              **dict.fromkeys(RESPONDERS, "float32"), "ideal": "float32", "ts_id": "int64"}

PHI = 0.95  # persistence of z from one time_id to the next within a date
PHI_NIGHT = 0.6  # ... from a date's last time_id to the next date's first
# feature -> correlation with z; each is scale * (loading * z + sqrt(1 - loading²) * N(0, 1))
LOADINGS = {0: 0.30, 3: -0.30, 6: 0.25, 7: -0.25, 15: 0.20, 21: -0.20, 60: 0.15, 70: -0.15}
# with drift, each informative feature's loading turns into its partner's (pure noise at date 0, in the same NaN
# blocks): on date d, feature j has a_j * cos(drift * d) and PARTNERS[j] has a_j * sin(drift * d)
PARTNERS = {0: 1, 3: 4, 6: 8, 7: 12, 15: 17, 21: 26, 60: 61, 70: 71}
CATEGORICAL = {9: 50, 10: 10, 11: 30}  # feature -> number of codes: one integer per instrument
NAN_START = [((0, 1, 2, 3, 4), 0.10), ((39, 42, 50, 53), 0.05)]  # missing for that share of each date's first time_ids
NAN_WHOLE = ((15, 17, 21, 26, 27, 31, 32, 33), 0.05)  # missing for a whole instrument-date with this probability
# responder_k = beta * z + sigma * (sqrt(rho) * u + sqrt(1 - rho) * v_k): u (the noise of responder_6) is
# shared, v_k each responder's own, all N(0, 1) per row; then clipped to [-5, 5].
RESPONDER_MODEL = {  # k: (beta, sigma, rho)
    0: (0.20, 0.90, 0.3), 1: (0.15, 0.95, 0.2), 2: (0.25, 0.90, 0.4),
    3: (0.30, 0.85, 0.5), 4: (0.25, 0.90, 0.3), 5: (0.40, 0.80, 0.6),
    6: (0.35, 0.85, 1.0), 7: (0.45, 0.80, 0.7), 8: (0.30, 0.90, 0.5),
}
EARLY = (0.4, 849 / 968)  # the first 40% of dates have this share of the time_ids (the real data: 849, later 968)
START_SHARE = 0.5  # of the instruments are there from the first row; the rest enter later
LEAVE_SHARE = 0.1  # of the instruments leave (after a date in the middle third onwards)
WEIGHT_SIGMA = (1.0, 0.5)  # log-normal weight: per instrument, then per row around it
CLIP = 5.0
PARTITIONS = 10  # train.parquet partitions write_parquet writes by default (the real file's: 10)


@dataclass(frozen=True)
class RtmdfSpec:
    """A synthetic data set: `days` dates of up to `times` time_ids, `symbols` instruments over the whole set;
    `drift` radians per date by which the features' loadings on z turn (0: a stationary relation)."""

    days: int = 200
    times: int = 60
    symbols: int = 20
    seed: int = 0
    drift: float = 0.0

    def __post_init__(self):
        for name, top in (("days", 2**15), ("times", 2**15), ("symbols", 2**7)):  # the real dtypes: int16, int16, int8
            v = getattr(self, name)
            if not (isinstance(v, int) and 1 <= v < top):
                raise ValueError(f"{name} must be an integer in [1, {top - 1}], got {v!r}")
        d = self.drift
        if isinstance(d, bool) or not isinstance(d, int | float) or not (0 <= d <= 1):
            raise ValueError(f"drift must be a number in [0, 1] (radians per date), got {d!r}")

    @classmethod
    def real_size(cls, seed: int = 0) -> RtmdfSpec:
        """The real data's size: 1,700 dates x 968 time_ids x 39 instruments (~47M rows, ~15 GB of features)."""
        return cls(days=1700, times=968, symbols=39, seed=seed)

    @property
    def name(self) -> str:
        return f"rtmdf-d{self.days}-t{self.times}-n{self.symbols}-s{self.seed}" + (f"-drift{self.drift:g}" if self.drift else "")


@dataclass(frozen=True)
class Schedule:
    """When each instrument trades, all (symbols,): it enters at (`enter_date`, `enter_time`) and trades
    through the end of `last_date`; `weight` its base weight, `codes` (symbols, 3) its categorical codes."""

    enter_date: np.ndarray
    enter_time: np.ndarray
    last_date: np.ndarray
    weight: np.ndarray
    codes: np.ndarray


def times_of(spec: RtmdfSpec) -> np.ndarray:
    """time_ids of each date, (days,) int64: fewer on the first 40% of dates (EARLY)."""
    t = np.full(spec.days, spec.times, dtype=np.int64)
    t[: int(EARLY[0] * spec.days)] = max(1, round(spec.times * EARLY[1]))
    return t


def schedule(spec: RtmdfSpec) -> Schedule:
    """The instruments' lives (from the RNG stream [seed, 0]): half (rounded up) from the start, the others entering
    on dates in the first two thirds (ids in order of entry; the first of them in the middle of its first
    date, the others at its start or at a random time_id), 10% of the instruments (picked among the starters,
    never symbol 0) leaving."""
    rng = np.random.default_rng([spec.seed, 0])
    n, times = spec.symbols, times_of(spec)
    start = max(1, math.ceil(START_SHARE * n))
    enter_date = np.zeros(n, dtype=np.int64)
    enter_time = np.zeros(n, dtype=np.int64)
    last_entry = min(spec.days - 1, max(1, 2 * spec.days // 3))
    enter_date[start:] = np.sort(rng.integers(min(1, last_entry), last_entry + 1, n - start))
    for s in range(start, n):
        t = times[enter_date[s]]
        mid = s == start or rng.random() < 0.5
        enter_time[s] = rng.integers(1, t) if mid and t > 1 else 0
    last_date = np.full(n, spec.days - 1, dtype=np.int64)
    leaving = min(start - 1, round(LEAVE_SHARE * n)) if spec.days > 1 else 0
    if leaving > 0:
        who = rng.choice(np.arange(1, start), leaving, replace=False)
        last_date[who] = rng.integers(spec.days // 3, max(spec.days // 3, spec.days - 2) + 1, leaving)
    weight = rng.lognormal(0.0, WEIGHT_SIGMA[0], n)
    codes = np.stack([rng.integers(0, k, n) for k in CATEGORICAL.values()], axis=1)
    return Schedule(enter_date, enter_time, last_date, weight, codes)


def active(sched: Schedule, date: int, times: int) -> np.ndarray:
    """(times, symbols) bool: which instruments have a row at each time_id of `date`."""
    t = np.arange(times)[:, None]
    entered = (sched.enter_date < date) | ((sched.enter_date == date) & (t >= sched.enter_time))
    return entered & (date <= sched.last_date)


def rows_per_date(spec: RtmdfSpec) -> np.ndarray:
    """Rows of each date, (days,) int64, without generating them."""
    sched = schedule(spec)
    return np.array([active(sched, d, t).sum() for d, t in enumerate(times_of(spec))], dtype=np.int64)


def feature_scales(rng: np.random.Generator) -> np.ndarray:
    """The first draw of a seed's date stream: every feature's scale, (79,) uniform in [0.5, 2]."""
    return rng.uniform(0.5, 2.0, N_FEATURES)


def feature_loadings(spec: RtmdfSpec, date: int) -> np.ndarray:
    """Every feature's correlation with z on `date`, (79,) float64: LOADINGS turned by the angle
    `spec.drift * date` towards their PARTNERS (at angle 0, and always without drift, exactly LOADINGS)."""
    angle = spec.drift * date
    loadings = np.zeros(N_FEATURES)
    loadings[list(LOADINGS)] = np.array(list(LOADINGS.values())) * math.cos(angle)
    loadings[list(PARTNERS.values())] = np.array(list(LOADINGS.values())) * math.sin(angle)
    return loadings


def _responder_model() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(beta, sigma, rho), each (9,) float64 (RESPONDER_MODEL)."""
    return tuple(np.array([RESPONDER_MODEL[k][i] for k in range(N_RESPONDERS)]) for i in range(3))


def feature_evidence(x: np.ndarray, scales: np.ndarray, loadings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What each row's observed features say about its z: (b, p), both (n,) float64, the log-likelihood
    of z being `b * z - p * z**2 / 2`. x: (n, 79) as generated (NaN: unobserved); scales and the
    loadings believed (`feature_loadings`): (79,). With k = loading / sqrt(1 - loading²), the signal of z
    in units of a feature's noise, a seen feature adds k to p's root and k * its standardised value to b."""
    k = loadings / np.sqrt(1 - loadings**2)
    informative = np.flatnonzero(loadings)
    u = x[:, informative].astype(np.float64) / (scales[informative] * np.sqrt(1 - loadings[informative] ** 2))
    seen = ~np.isnan(u)
    return np.where(seen, u, 0.0) @ k[informative], seen @ k[informative] ** 2


def responder_evidence(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What each row's responders (n, 9) say about its z, as (b, p) (n,): the Gaussian likelihood of
    y = beta * z + noise with the noise covariance of RESPONDER_MODEL (the clip is ignored: it moves
    fewer than 1e-6 of the values)."""
    beta, sigma, rho = _responder_model()
    shared = sigma * np.sqrt(rho)
    cov = np.outer(shared, shared) + np.diag(sigma**2 * (1 - rho))
    w = np.linalg.solve(cov, beta)
    return y.astype(np.float64) @ w, np.full(len(y), beta @ w)


class KalmanState:
    """The filter of every instrument's z over the time grid: posterior mean and variance, (symbols,) each.
    Instruments without rows yet stay at the stationary prior N(0, 1)."""

    def __init__(self, symbols: int):
        self.mean = np.zeros(symbols)
        self.var = np.ones(symbols)

    def copy(self) -> KalmanState:
        other = KalmanState(0)
        other.mean, other.var = self.mean.copy(), self.var.copy()
        return other

    def run_date(self, time_id: np.ndarray, symbol: np.ndarray, b: np.ndarray, p: np.ndarray, times: int) -> np.ndarray:
        """Step through one date's `times` time_ids, updating with its rows' evidence (b, p); rows in
        (time_id, symbol) order, all (n,). Returns E[z | evidence so far] after each row, (n,) float64."""
        out = np.empty(len(time_id))
        bounds = np.searchsorted(time_id, np.arange(times + 1))
        for t in range(times):
            phi = PHI_NIGHT if t == 0 else PHI
            self.mean *= phi
            self.var = phi * phi * self.var + (1 - phi * phi)
            rows = slice(bounds[t], bounds[t + 1])
            s = symbol[rows]
            prec = 1.0 / self.var[s] + p[rows]
            self.mean[s] = (self.mean[s] / self.var[s] + b[rows]) / prec
            self.var[s] = 1.0 / prec
            out[rows] = self.mean[s]
        return out


def kalman_means(spec: RtmdfSpec, date: np.ndarray, time_id: np.ndarray, symbol: np.ndarray,
                 b: np.ndarray, p: np.ndarray) -> np.ndarray:
    """E[z of each row | the evidence (b, p) of its instrument's rows up to and including it], (n,) float64,
    for rows of `spec`'s dates in (date, time_id, symbol) order (dates without rows are stepped through)."""
    state, times = KalmanState(spec.symbols), times_of(spec)
    out = np.empty(len(date))
    bounds = np.searchsorted(date, np.arange(spec.days + 1))
    for d in range(spec.days):
        rows = slice(bounds[d], bounds[d + 1])
        out[rows] = state.run_date(time_id[rows], symbol[rows], b[rows], p[rows], int(times[d]))
    return out


def iter_dates(spec: RtmdfSpec) -> Iterator[dict[str, np.ndarray]]:
    """Yield one dict per date: `x` (n, 79) float32 and the store's side columns (n,) (STORE_SIDE's names;
    `date` is the date_id), rows in (time_id, symbol_id) order."""
    sched = schedule(spec)
    rng = np.random.default_rng([spec.seed, 1])
    scales = feature_scales(rng)
    beta, sigma, rho = _responder_model()
    z = rng.standard_normal(spec.symbols)  # the state before the first time_id: stationary
    state = KalmanState(spec.symbols)
    ts = 0
    for d, times in enumerate(times_of(spec)):
        eps = rng.standard_normal((times, spec.symbols))
        zs = np.empty((times, spec.symbols))
        for t in range(times):
            phi = PHI_NIGHT if t == 0 else PHI
            z = phi * z + math.sqrt(1 - phi * phi) * eps[t]
            zs[t] = z
        time_id, symbol = np.nonzero(active(sched, d, int(times)))
        n, zr = len(time_id), zs[time_id, symbol]
        loadings = feature_loadings(spec, d)
        x = rng.standard_normal((n, N_FEATURES)) * np.sqrt(1 - loadings**2) + zr[:, None] * loadings
        x *= scales
        x[:, list(CATEGORICAL)] = sched.codes[symbol]
        for feats, share in NAN_START:
            x[np.ix_(time_id < math.ceil(share * times), feats)] = np.nan
        feats, prob = NAN_WHOLE
        x[np.ix_((rng.random(spec.symbols) < prob)[symbol], feats)] = np.nan
        x = x.astype(np.float32)
        u = rng.standard_normal(n)
        v = rng.standard_normal((n, N_RESPONDERS))
        y = np.clip(zr[:, None] * beta + sigma * (np.sqrt(rho) * u[:, None] + np.sqrt(1 - rho) * v), -CLIP, CLIP).astype(np.float32)
        weight = sched.weight[symbol] * np.exp(WEIGHT_SIGMA[1] * rng.standard_normal(n))
        ideal = state.run_date(time_id, symbol, *feature_evidence(x, scales, loadings), int(times))
        yield {
            "x": x,
            "date": np.full(n, d, dtype=np.int32),
            "time_id": time_id.astype(np.int32),
            "symbol_id": symbol.astype(np.int32),
            "weight": weight.astype(np.float32),
            **{r: y[:, k] for k, r in enumerate(RESPONDERS)},
            "ideal": (beta[TARGET] * ideal).astype(np.float32),
            "ts_id": np.arange(ts, ts + n, dtype=np.int64),
        }
        ts += n


def ideal_of(spec: RtmdfSpec, x: np.ndarray, date: np.ndarray, time_id: np.ndarray, symbol: np.ndarray,
             believed: np.ndarray | None = None) -> np.ndarray:
    """The `ideal` column recomputed from the rows' features alone, (n,) float64: rows of `spec` as
    generated (x (n, 79), the keys (n,), in (date, time_id, symbol) order), features possibly changed.
    `believed`: (79,) loadings assumed on every date (a frozen model's; with drift, wrong on other dates);
    None: each date's own (`feature_loadings`)."""
    scales = feature_scales(np.random.default_rng([spec.seed, 1]))
    bounds = np.searchsorted(date, np.arange(spec.days + 1))
    b, p = np.empty(len(date)), np.empty(len(date))
    for d in range(spec.days):
        rows = slice(bounds[d], bounds[d + 1])
        b[rows], p[rows] = feature_evidence(x[rows], scales, feature_loadings(spec, d) if believed is None else believed)
    return RESPONDER_MODEL[TARGET][0] * kalman_means(spec, date, time_id, symbol, b, p)


def ceilings(spec: RtmdfSpec, val_frac: float = 0.2) -> dict[str, float]:
    """Weighted zero-mean R² of responder_6 on the last `val_frac` of the dates (as data.split.val_frac),
    with the validation `rows`: `ideal` (the column); `ideal_lags` (the filter given also every earlier
    date's responders, what lag features reveal); `row` (the filter on the row's own features only, as a
    model without a window sees them); `frozen` (the filter believing, on every date, the loadings averaged
    over the dates before validation: what one fit over those dates learns, then frozen; `ideal` without drift)."""
    from jsmp.metrics import r2_score  # (torch: not for generating)

    first = spec.days - max(1, round(val_frac * spec.days))
    scales = feature_scales(np.random.default_rng([spec.seed, 1]))
    beta = RESPONDER_MODEL[TARGET][0]
    full = KalmanState(spec.symbols)  # given every earlier date's responders too
    frozen = KalmanState(spec.symbols)  # believing the training dates' mean loadings throughout
    frozen_loadings = np.mean([feature_loadings(spec, d) for d in range(first)], axis=0)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("y", "weight", "ideal", "ideal_lags", "row", "frozen")}
    for d, (times, day) in enumerate(zip(times_of(spec), iter_dates(spec))):
        key = day["time_id"], day["symbol_id"]
        b, p = feature_evidence(day["x"], scales, feature_loadings(spec, d))
        lags = full.copy().run_date(*key, b, p, int(times))
        by, py = responder_evidence(np.stack([day[r] for r in RESPONDERS], axis=1))
        full.run_date(*key, b + by, p + py, int(times))  # the date's responders, revealed after it
        stale = frozen.run_date(*key, *feature_evidence(day["x"], scales, frozen_loadings), int(times))
        if d >= first:
            for k, v in (("y", day[RESPONDERS[TARGET]]), ("weight", day["weight"]), ("ideal", day["ideal"]),
                         ("ideal_lags", beta * lags), ("row", beta * b / (1 + p)), ("frozen", beta * stale)):
                parts[k].append(v)
    d = {k: np.concatenate(v) for k, v in parts.items()}
    return {"rows": len(d["y"]), **{k: r2_score(d["y"], d[k], d["weight"]) for k in ("ideal", "ideal_lags", "row", "frozen")}}


def _progress(spec: RtmdfSpec, what: str):
    return tqdm(total=int(rows_per_date(spec).sum()), unit="row", unit_scale=True, desc=what, disable=None)


def synth_source(spec: RtmdfSpec) -> dict:
    """The manifest `source` of a store generated from `spec` (`drift` only when > 0: a stationary store's is
    as before the key existed)."""
    settings = {k: v for k, v in asdict(spec).items() if k != "drift" or v}
    return {"kind": "synthetic", "layout": "rtmdf", **settings, "checksum": f"synthetic:{spec.name}"}


def write_store(spec: RtmdfSpec, path: str | os.PathLike, shard_rows: int | None = None) -> Path:
    """Generate `spec` into a grouped store at `path` (instruments `symbol_id`, time order (date, time_id);
    atomically; `path` is checked first, see StoreWriter)."""
    kw = {"shard_rows": shard_rows} if shard_rows else {}
    with StoreWriter(path, FEATURES, STORE_SIDE, synth_source(spec), columns=TRAIN_COLUMNS, group="symbol_id",
                     time=["date", "time_id"], feature_limit=FEATURE_LIMIT, **kw) as w, _progress(spec, f"synthesising {Path(path).name}") as bar:
        for day in iter_dates(spec):
            w.append(day["x"], day)
            bar.update(len(day["date"]))
        return w.close()


IDEAL_FILE = "ideal.parquet"  # beside train.parquet: date_id, time_id, symbol_id, ideal
ROW_GROUP = 1 << 17  # rows buffered per Parquet row group (whole dates)


def is_synth_dir(path: Path) -> bool:
    """Whether `path` is a directory `write_parquet` wrote (it holds IDEAL_FILE)."""
    return path.is_dir() and (path / IDEAL_FILE).is_file()


def partition_of(spec: RtmdfSpec, partitions: int) -> np.ndarray:
    """The partition of each date, (days,) int64: min(partitions, days) runs of consecutive dates."""
    return np.arange(spec.days) * min(partitions, spec.days) // spec.days


class _ParquetFiles:
    """Parquet files under `root`, each written in row groups of about ROW_GROUP rows from the tables
    appended to it (whole tables: a date is never split) until `finish(name)`; `close()` finishes all."""

    def __init__(self, root: Path):
        self.root = root
        self.pending: dict[str, list] = {}
        self.writers: dict = {}

    def append(self, name: str, table) -> None:
        self.pending.setdefault(name, []).append(table)
        if sum(len(t) for t in self.pending[name]) >= ROW_GROUP:
            self._flush(name)

    def _flush(self, name: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.concat_tables(self.pending.pop(name))
        if name not in self.writers:
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            self.writers[name] = pq.ParquetWriter(self.root / name, table.schema)
        self.writers[name].write_table(table, row_group_size=max(1, len(table)))

    def finish(self, name: str) -> None:
        if name in self.pending:
            self._flush(name)
        if name in self.writers:
            self.writers.pop(name).close()

    def close(self) -> None:
        try:
            for name in [*self.pending, *self.writers]:
                self.finish(name)
        finally:
            for w in self.writers.values():  # left open by an error above
                w.close()


def _table(date_id: np.ndarray, time_id: np.ndarray, symbol_id: np.ndarray, columns: dict[str, np.ndarray]):
    """A pyarrow table of the keys (in the real dtypes: KEY_DTYPES), then `columns`."""
    import pyarrow as pa

    keys = {"date_id": date_id, "time_id": time_id, "symbol_id": symbol_id}
    return pa.table({**{k: np.asarray(v).astype(KEY_DTYPES[k]) for k, v in keys.items()}, **columns})


def _train_name(partition: int) -> str:
    return f"train.parquet/partition_id={partition}/part-0.parquet"


def write_parquet(spec: RtmdfSpec, out_dir: str | os.PathLike, partitions: int = PARTITIONS) -> Path:
    """Generate `spec` in the real layout under `out_dir`: `train.parquet/partition_id=K/part-0.parquet`
    (K = 0.., consecutive runs of dates: `partition_of`), `lags.parquet` (for each date whose previous date
    there is, jsmp.inputs.lags.is_lag_date: that date's rows with its date_id, their time_id, symbol_id and
    responders as `responder_N_lag_1`)
    and IDEAL_FILE (the keys and `ideal` of every train row, in the same order).

    `out_dir` may be absent, empty or a directory this function wrote, never anything else (one-line
    UserError naming `--out`); it is built in a temp directory and renamed into place when complete.
    """
    if partitions < 1:
        raise UserError(f"--partitions must be >= 1, got {partitions}")
    out_dir = Path(out_dir)
    claim_destination(out_dir, "--out", "synth rtmdf directory", is_synth_dir, directory=True)
    part = partition_of(spec, partitions)
    with atomic_path(out_dir, lambda tmp, dst: replace_dir(tmp, dst, is_synth_dir, "--out")) as tmp, \
            _progress(spec, f"writing {out_dir.name}") as bar:
        files, prev = _ParquetFiles(tmp), None
        try:
            for day in iter_dates(spec):
                d, keys = int(day["date"][0]), (day["date"], day["time_id"], day["symbol_id"])
                if d and part[d] != part[d - 1]:
                    files.finish(_train_name(part[d - 1]))
                files.append(_train_name(part[d]), _table(*keys, {
                    "weight": day["weight"], **{f: day["x"][:, j] for j, f in enumerate(FEATURES)}, **{r: day[r] for r in RESPONDERS}}))
                files.append(IDEAL_FILE, _table(*keys, {"ideal": day["ideal"]}))
                lagged = prev is not None and is_lag_date(prev[0], d)
                src, rows = (prev[1], slice(None)) if lagged else (day, slice(0))  # else none (the first date: the file's schema)
                files.append("lags.parquet", _table(np.full(len(src["date"][rows]), d), src["time_id"][rows], src["symbol_id"][rows],
                                                    {lag_name(r): src[r][rows] for r in RESPONDERS}))
                prev = d, day
                bar.update(len(day["date"]))
        finally:
            files.close()
    return out_dir
