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
N(0, 1). With `market` > 0 (and/or `sectors`) `z` = an instrument's loadings on shared factors (a market state,
one per sector: the same AR(1)) plus its own part (`factor_loadings`), so instruments move together. Eight
features see `z` through noise (LOADINGS); the responders are `beta * z` plus correlated noise (RESPONDERS).
`ideal` is E[responder_6 | every instrument's features up to and including this row's time step] (a Kalman
filter, `kalman_means`; over all instruments jointly, `JointState`, when there are factors), so the weighted R²
of `ideal` is the ceiling of a model that reads features (`ceilings` gives it and the per-instrument and per-row
ceilings, each also with every earlier date's responders known, as lag features reveal them).
With `drift` > 0 the features' view of `z` rotates slowly over dates (`feature_loadings`): a model frozen at
the end of training decays on later dates, while `ideal` (the filter with each date's true loadings) does not.

Generation streams date by date (the factors from streams of their own, [seed, 2] and [seed, 3], so `market=0`
and `sectors=0` draw exactly the data of before they existed), so memory stays at one date and the output is
identical for a seed whatever is written (a store, or Parquet files in the real layout).
"""

from __future__ import annotations

import copy
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
INSTRUMENT = "ideal_instrument"  # side column with factors: the per-instrument filter's prediction (`ideal` is the joint one)

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
SECTOR_LOADING = 0.4  # mean of an instrument's loading on its sector's factor (with `sectors` > 0)
LOADING_MAX = 0.95  # the largest length of an instrument's factor loadings: its own part keeps >= 1 - 0.95² of z's variance
PARTITIONS = 10  # train.parquet partitions write_parquet writes by default (the real file's: 10)


@dataclass(frozen=True)
class RtmdfSpec:
    """A synthetic data set: `days` dates of up to `times` time_ids, `symbols` instruments over the whole set;
    `drift` radians per date by which the features' loadings on z turn (0: a stationary relation); `market` the
    mean loading of each instrument's z on a market factor shared by all (0.7 by default), `sectors` how many sector
    factors (instrument i in sector i % sectors; market=0, sectors=0: independent instruments, the data of before)."""

    days: int = 200
    times: int = 60
    symbols: int = 20
    seed: int = 0
    drift: float = 0.0
    market: float = 0.7  # the default data rewards looking across instruments (docs/rtmdf-data.md); 0: the data of before
    sectors: int = 0

    def __post_init__(self):
        for name, top in (("days", 2**15), ("times", 2**15), ("symbols", 2**7)):  # the real dtypes: int16, int16, int8
            v = getattr(self, name)
            if not (isinstance(v, int) and 1 <= v < top):
                raise ValueError(f"{name} must be an integer in [1, {top - 1}], got {v!r}")
        d = self.drift
        if isinstance(d, bool) or not isinstance(d, int | float) or not (0 <= d <= 1):
            raise ValueError(f"drift must be a number in [0, 1] (radians per date), got {d!r}")
        m = self.market
        if isinstance(m, bool) or not isinstance(m, int | float) or not (0 <= m < 1):
            raise ValueError(f"market must be a number in [0, 1) (a mean loading), got {m!r}")
        if not (isinstance(self.sectors, int) and not isinstance(self.sectors, bool) and 0 <= self.sectors <= self.symbols):
            raise ValueError(f"sectors must be an integer in [0, symbols={self.symbols}], got {self.sectors!r}")

    @classmethod
    def real_size(cls, seed: int = 0) -> RtmdfSpec:
        """The real data's size: 1,700 dates x 968 time_ids x 39 instruments (~47M rows, ~15 GB of features)."""
        return cls(days=1700, times=968, symbols=39, seed=seed)

    @property
    def name(self) -> str:
        return (f"rtmdf-d{self.days}-t{self.times}-n{self.symbols}-s{self.seed}" + (f"-drift{self.drift:g}" if self.drift else "")
                + (f"-market{self.market:g}" if self.market else "") + (f"-sectors{self.sectors}" if self.sectors else ""))


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


def factor_loadings(spec: RtmdfSpec) -> np.ndarray | None:
    """Each instrument's loadings on the shared factors, (symbols, 1 + sectors) float64 (from the RNG stream
    [seed, 2]): on the market `market * (0.5 + U(0, 1))`, on its sector's (column 1 + i % sectors)
    `SECTOR_LOADING * (0.5 + U(0, 1))`, scaled down to length LOADING_MAX where longer. None without factors."""
    if not spec.market and not spec.sectors:
        return None
    rng, n = np.random.default_rng([spec.seed, 2]), spec.symbols
    lam = np.zeros((n, 1 + spec.sectors))
    lam[:, 0] = spec.market * (0.5 + rng.random(n))
    if spec.sectors:
        lam[np.arange(n), 1 + np.arange(n) % spec.sectors] = SECTOR_LOADING * (0.5 + rng.random(n))
    length = np.linalg.norm(lam, axis=1, keepdims=True)
    return lam * np.minimum(1.0, LOADING_MAX / np.maximum(length, LOADING_MAX))


def ar1(state: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Step AR(1) processes over one date's time_ids: `state` (k,) the values before the date (updated in place
    to its last time_id's), eps (times, k) N(0, 1) innovations; PHI_NIGHT into time_id 0, PHI after.
    Returns the path, (times, k) float64."""
    path = np.empty_like(eps)
    for t in range(len(eps)):
        phi = PHI_NIGHT if t == 0 else PHI
        state[:] = phi * state + math.sqrt(1 - phi * phi) * eps[t]
        path[t] = state
    return path


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


class JointState:
    """The filter of all instruments' z jointly, given their loadings `lam` (symbols, k) on k shared factors:
    the state is (the factors, each instrument's own part), z = `h` @ state with h (symbols, k + symbols) =
    [lam, diag(sqrt(1 - |lam_i|²))]; every part an AR(1) with PHI / PHI_NIGHT, stationary N(0, 1). `mean`
    (k + symbols,) and `cov` (k + symbols, k + symbols): the Gaussian posterior (exact: the model is linear)."""

    def __init__(self, lam: np.ndarray):
        self.h = np.concatenate([lam, np.diag(np.sqrt(1 - np.sum(lam**2, axis=1)))], axis=1)
        self.mean = np.zeros(self.h.shape[1])
        self.cov = np.eye(self.h.shape[1])

    def copy(self) -> JointState:
        other = copy.copy(self)  # `h` shared: it never changes
        other.mean, other.cov = self.mean.copy(), self.cov.copy()
        return other

    def run_date(self, time_id: np.ndarray, symbol: np.ndarray, b: np.ndarray, p: np.ndarray, times: int) -> np.ndarray:
        """As KalmanState.run_date: each row's evidence (b, p) on its z, all rows of a time step at once (as the
        measurement sqrt(p) * z + N(0, 1) = b / sqrt(p)). Returns E[z | evidence so far] after each time step, (n,)."""
        out = np.empty(len(time_id))
        bounds = np.searchsorted(time_id, np.arange(times + 1))
        diag = np.diag_indices_from(self.cov)
        for t in range(times):
            phi = PHI_NIGHT if t == 0 else PHI
            self.mean *= phi
            self.cov *= phi * phi
            self.cov[diag] += 1 - phi * phi
            rows = slice(bounds[t], bounds[t + 1])
            h = self.h[symbol[rows]]
            if len(h):
                root = np.sqrt(p[rows])
                g = root[:, None] * h
                c = np.divide(b[rows], root, out=np.zeros(len(root)), where=root > 0)
                gp = g @ self.cov
                gain = np.linalg.solve(gp @ g.T + np.eye(len(g)), gp)  # (G P G' + I)^-1 G P
                self.mean += gain.T @ (c - g @ self.mean)
                self.cov -= gp.T @ gain
                self.cov = (self.cov + self.cov.T) / 2
            out[rows] = h @ self.mean
        return out


def filter_state(spec: RtmdfSpec, joint: bool) -> KalmanState | JointState:
    """A filter at the start of `spec`'s dates: over all instruments jointly (`joint`, the ideal) or each
    instrument's own history alone; the same filter when `spec` has no factors (KalmanState)."""
    lam = factor_loadings(spec)
    return JointState(lam) if joint and lam is not None else KalmanState(spec.symbols)


def kalman_means(spec: RtmdfSpec, date: np.ndarray, time_id: np.ndarray, symbol: np.ndarray,
                 b: np.ndarray, p: np.ndarray, joint: bool = True) -> np.ndarray:
    """E[z of each row | the evidence (b, p) of the rows up to and including its time step: of all instruments
    (`joint`) or its own instrument's], (n,) float64, for rows of `spec`'s dates in (date, time_id, symbol)
    order (dates without rows are stepped through)."""
    state, times = filter_state(spec, joint), times_of(spec)
    out = np.empty(len(date))
    bounds = np.searchsorted(date, np.arange(spec.days + 1))
    for d in range(spec.days):
        rows = slice(bounds[d], bounds[d + 1])
        out[rows] = state.run_date(time_id[rows], symbol[rows], b[rows], p[rows], int(times[d]))
    return out


def iter_dates(spec: RtmdfSpec) -> Iterator[dict[str, np.ndarray]]:
    """Yield one dict per date: `x` (n, 79) float32 and the store's side columns (n,) (STORE_SIDE's names;
    `date` is the date_id, with factors also INSTRUMENT), rows in (time_id, symbol_id) order."""
    sched = schedule(spec)
    rng = np.random.default_rng([spec.seed, 1])
    scales = feature_scales(rng)
    beta, sigma, rho = _responder_model()
    z = rng.standard_normal(spec.symbols)  # the state before the first time_id: stationary
    lam = factor_loadings(spec)
    if lam is not None:
        factor_rng = np.random.default_rng([spec.seed, 3])
        factors, own = factor_rng.standard_normal(lam.shape[1]), np.sqrt(1 - np.sum(lam**2, axis=1))
    state, alone = filter_state(spec, joint=True), None if lam is None else KalmanState(spec.symbols)
    ts = 0
    for d, times in enumerate(times_of(spec)):
        zs = ar1(z, rng.standard_normal((times, spec.symbols)))
        if lam is not None:
            zs = own * zs + ar1(factors, factor_rng.standard_normal((times, lam.shape[1]))) @ lam.T
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
        evidence = feature_evidence(x, scales, loadings)
        ideal = state.run_date(time_id, symbol, *evidence, int(times))
        instrument = {} if alone is None else {INSTRUMENT: alone.run_date(time_id, symbol, *evidence, int(times))}
        yield {
            "x": x,
            "date": np.full(n, d, dtype=np.int32),
            "time_id": time_id.astype(np.int32),
            "symbol_id": symbol.astype(np.int32),
            "weight": weight.astype(np.float32),
            **{r: y[:, k] for k, r in enumerate(RESPONDERS)},
            "ideal": (beta[TARGET] * ideal).astype(np.float32),
            "ts_id": np.arange(ts, ts + n, dtype=np.int64),
            **{k: (beta[TARGET] * v).astype(np.float32) for k, v in instrument.items()},
        }
        ts += n


def ideal_of(spec: RtmdfSpec, x: np.ndarray, date: np.ndarray, time_id: np.ndarray, symbol: np.ndarray,
             believed: np.ndarray | None = None, joint: bool = True) -> np.ndarray:
    """The `ideal` column recomputed from the rows' features alone, (n,) float64: rows of `spec` as
    generated (x (n, 79), the keys (n,), in (date, time_id, symbol) order), features possibly changed.
    `believed`: (79,) loadings assumed on every date (a frozen model's; with drift, wrong on other dates);
    None: each date's own (`feature_loadings`). `joint`: over all instruments (`ideal`), else each instrument's
    own rows (INSTRUMENT)."""
    scales = feature_scales(np.random.default_rng([spec.seed, 1]))
    bounds = np.searchsorted(date, np.arange(spec.days + 1))
    b, p = np.empty(len(date)), np.empty(len(date))
    for d in range(spec.days):
        rows = slice(bounds[d], bounds[d + 1])
        b[rows], p[rows] = feature_evidence(x[rows], scales, feature_loadings(spec, d) if believed is None else believed)
    return RESPONDER_MODEL[TARGET][0] * kalman_means(spec, date, time_id, symbol, b, p, joint)


CEILINGS = ("row", "instrument", "ideal")  # what each predicts from: the row, its instrument's rows, all rows


def ceilings(spec: RtmdfSpec, val_frac: float = 0.2) -> dict[str, float]:
    """Weighted zero-mean R² of responder_6 on the last `val_frac` of the dates (as data.split.val_frac),
    with the validation `rows`, of E[responder_6 | ...] given: `row` the row's own features (a model without a
    window); `instrument` its instrument's features so far (the filter over its own history: the best any
    per-instrument model can do); `ideal` every instrument's features so far (the joint filter, the column;
    = `instrument` without factors); each `*_lags` given also every earlier date's responders (what lag
    features reveal; `row_lags`: its instrument's). `frozen`: the ideal filter believing, on every date, the
    loadings averaged over the dates before validation (what one fit over those dates learns, then frozen;
    `ideal` without drift). `day`: the ideal filter started afresh at each date's first time step, as a day
    sample starts a model (jsmp.batches.days): the ceiling of a day model without lags."""
    from jsmp.metrics import r2_score  # (torch: not for generating)

    first = spec.days - max(1, round(val_frac * spec.days))
    scales = feature_scales(np.random.default_rng([spec.seed, 1]))
    beta = RESPONDER_MODEL[TARGET][0]
    filters = {"instrument": KalmanState(spec.symbols), "ideal": filter_state(spec, joint=True)}
    lagged = {k: f.copy() for k, f in filters.items()}  # given every earlier date's responders too
    told = KalmanState(spec.symbols)  # each instrument's responders alone, up to the previous date's end
    frozen = filter_state(spec, joint=True)  # believing the training dates' mean loadings throughout
    frozen_loadings = np.mean([feature_loadings(spec, d) for d in range(first)], axis=0)
    parts: dict[str, list[np.ndarray]] = {}
    for d, (times, day) in enumerate(zip(times_of(spec), iter_dates(spec))):
        key, times = (day["time_id"], day["symbol_id"]), int(times)
        b, p = feature_evidence(day["x"], scales, feature_loadings(spec, d))
        by, py = responder_evidence(np.stack([day[r] for r in RESPONDERS], axis=1))
        decay = PHI_NIGHT * PHI ** day["time_id"]  # from the previous date's end to this row's time step
        mean, var = decay * told.mean[key[1]], decay**2 * told.var[key[1]] + 1 - decay**2
        means = {"row": b / (1 + p), "row_lags": (mean / var + b) / (1 / var + p),
                 **{k: f.run_date(*key, b, p, times) for k, f in filters.items()},
                 **{f"{k}_lags": f.copy().run_date(*key, b, p, times) for k, f in lagged.items()},
                 "frozen": frozen.run_date(*key, *feature_evidence(day["x"], scales, frozen_loadings), times),
                 "day": filter_state(spec, joint=True).run_date(*key, b, p, times)}
        for f in lagged.values():
            f.run_date(*key, b + by, p + py, times)  # the date's responders, revealed after it
        told.run_date(*key, by, py, times)
        if d >= first:
            for k, v in (("y", day[RESPONDERS[TARGET]]), ("weight", day["weight"]), *means.items()):
                parts.setdefault(k, []).append(v)
    v = {k: np.concatenate(a) for k, a in parts.items()}
    names = [*CEILINGS, *(f"{k}_lags" for k in CEILINGS), "frozen", "day"]
    return {"rows": len(v["y"]), **{k: r2_score(v["y"], beta * v[k], v["weight"]) for k in names}}


def _progress(spec: RtmdfSpec, what: str):
    return tqdm(total=int(rows_per_date(spec).sum()), unit="row", unit_scale=True, desc=what, disable=None)


def synth_source(spec: RtmdfSpec) -> dict:
    """The manifest `source` of a store generated from `spec` (`drift`, `market`, `sectors` only when > 0: a
    stationary store of independent instruments has the source of before the keys existed)."""
    settings = {k: v for k, v in asdict(spec).items() if k not in ("drift", "market", "sectors") or v}
    return {"kind": "synthetic", "layout": "rtmdf", **settings, "checksum": f"synthetic:{spec.name}"}


def write_store(spec: RtmdfSpec, path: str | os.PathLike, shard_rows: int | None = None) -> Path:
    """Generate `spec` into a grouped store at `path` (instruments `symbol_id`, time order (date, time_id);
    atomically; `path` is checked first, see StoreWriter)."""
    kw = {"shard_rows": shard_rows} if shard_rows else {}
    side = {**STORE_SIDE, INSTRUMENT: "float32"} if factor_loadings(spec) is not None else STORE_SIDE
    with StoreWriter(path, FEATURES, side, synth_source(spec), columns=TRAIN_COLUMNS, group="symbol_id",
                     time=["date", "time_id"], feature_limit=FEATURE_LIMIT, **kw) as w, _progress(spec, f"synthesising {Path(path).name}") as bar:
        for day in iter_dates(spec):
            w.append(day["x"], day)
            bar.update(len(day["date"]))
        return w.close()


IDEAL_FILE = "ideal.parquet"  # beside train.parquet: date_id, time_id, symbol_id, ideal (with factors, INSTRUMENT)
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
    and IDEAL_FILE (the keys and `ideal`, with factors also INSTRUMENT, of every train row, in the same order).

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
                files.append(IDEAL_FILE, _table(*keys, {k: day[k] for k in ("ideal", INSTRUMENT) if k in day}))
                lagged = prev is not None and is_lag_date(prev[0], d)
                src, rows = (prev[1], slice(None)) if lagged else (day, slice(0))  # else none (the first date: the file's schema)
                files.append("lags.parquet", _table(np.full(len(src["date"][rows]), d), src["time_id"][rows], src["symbol_id"][rows],
                                                    {lag_name(r): src[r][rows] for r in RESPONDERS}))
                prev = d, day
                bar.update(len(day["date"]))
        finally:
            files.close()
    return out_dir
