"""Which labelled rows `python -m jsmp.evaluate` scores: a source (the run's store, another store, or a
labelled train.csv/Parquet read through jsmp.data.reader) and the days taken from it (all of them, the
run's own validation days, or a CV fold's), with the rows before them that sequence models look back on.
A 2024-layout (grouped) run's validation rows are its training DataModule's validation batches
(validation_batches)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from omegaconf import DictConfig, OmegaConf

from jsmp.batches.datamodule import JsmpDataModule, RowBatches
from jsmp.batches.splits import Split, choose
from jsmp.data.reader import Layout, Reader
from jsmp.data.stores import config_store
from jsmp.errors import UserError
from jsmp.inputs.columns import require_columns
from jsmp.predict.grouped import GroupedMember
from jsmp.predict.rows import Member
from jsmp.store.store import Store, is_store

LABELS = ["date", "weight", "resp"]  # the columns scoring needs beside the features


@dataclass
class Rows:
    """Labelled rows to score, after the rows that precede them for windows (`first` of them).

    date (m,) int64 and x (m, F) float32 raw features (the Predictor's `features` order) cover
    context and scored rows; weight and resp (m - first,) float32 only the scored ones."""

    date: np.ndarray
    x: np.ndarray
    weight: np.ndarray
    resp: np.ndarray
    first: int
    what: str
    """Where they come from, for the report: e.g. `store data/synth-... fold 4 validation days`."""

    @property
    def scored_date(self) -> np.ndarray:
        return self.date[self.first :]


class Source(Protocol):
    """A labelled source by day: `days` (n_days,) ascending dates, `offsets` (n_days + 1,) their
    first rows; `take(a, b)` -> (date, weight, resp, x) of rows [a, b), x in `features` order."""

    days: np.ndarray
    offsets: np.ndarray
    name: str

    def take(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...


class StoreSource:
    """A jsmp store, read only where asked (memory-mapped)."""

    def __init__(self, path: Path, features: list[str]):
        self.store = Store(path)
        require_columns(self.store.features, features, f"store {path}")
        self.cols = [self.store.features.index(f) for f in features]
        self.days, self.offsets, self.name = self.store.days, self.store.day_offsets, f"store {path}"

    def take(self, a, b):
        s = self.store
        x = np.concatenate([block[:, self.cols] for block in s.iter_blocks([(a, b)])]) if b > a else \
            np.zeros((0, len(self.cols)), np.float32)
        return (np.asarray(s.side("date")[a:b], np.int64), np.asarray(s.side("weight")[a:b]),
                np.asarray(s.side("resp")[a:b]), x)


class FileSource:
    """A labelled CSV(.gz)/Parquet file in the train.csv layout, read whole and checked by jsmp.data.reader."""

    def __init__(self, path: Path, features: list[str]):
        reader = Reader(path)

        def select(columns: list[str], where: str) -> Layout:
            if "resp" not in columns:
                raise UserError(f"{where}: no resp column, so no labels to score against; expected a labelled file in the "
                                f"train.csv layout (date, weight, resp, feature_*); for test files use python -m jsmp.predict")
            require_columns(columns, [*LABELS, *features], where, "the model or the score needs")
            return Layout(columns, list(features), [c for c in [*LABELS, "ts_id"] if c in columns], [])

        blocks = list(reader.blocks(reader.layout(select)))
        self.date = np.concatenate([b.side["date"] for b in blocks]).astype(np.int64)
        self.weight = np.concatenate([b.side["weight"] for b in blocks])
        self.resp = np.concatenate([b.side["resp"] for b in blocks])
        self.x = np.concatenate([b.x for b in blocks])
        self.days, starts = np.unique(self.date, return_index=True)  # dates never decrease (the reader checks)
        self.offsets = np.r_[starts, len(self.date)]
        self.name = str(path)

    def take(self, a, b):
        return self.date[a:b], self.weight[a:b], self.resp[a:b], self.x[a:b]


def open_source(path: Path, features: list[str]) -> Source:
    """A store dir or a labelled file."""
    if path.is_dir():
        if not is_store(path):
            raise UserError(f"--data {path}: a directory but not a jsmp store (no manifest.json)")
        return StoreSource(path, features)
    if not path.exists():
        raise UserError(f"--data {path}: no such file or store")
    return FileSource(path, features)


def take_days(src: Source, day_index: np.ndarray, lookback: int, what: str) -> Rows:
    """The rows of the consecutive days `day_index`, after the whole days that hold the `lookback`
    rows before them (context for windows that cross days)."""
    a, b = int(src.offsets[day_index[0]]), int(src.offsets[day_index[-1] + 1])
    start = int(src.offsets[np.searchsorted(src.offsets, max(0, a - lookback), side="right") - 1])
    date, weight, resp, x = src.take(start, b)
    return Rows(date, x, weight[a - start :], resp[a - start :], a - start, what)


def config(run_dir: Path) -> DictConfig:
    return OmegaConf.load(run_dir / "config.yaml")


def split_of(cfg: DictConfig, days: np.ndarray, fold: int | None, where: str) -> Split:
    """The training and validation day indices `cfg` (a run's config.yaml) gives a source with `days`;
    `fold` (not None) picks that fold of its data.cv instead of its own split."""
    d = cfg.get("data")
    if d is None or "cv" not in d:
        raise UserError(f"{where}: not a run on jsmp data (no data.cv in its config.yaml)")
    plain = OmegaConf.to_container(d, resolve=True)
    return choose(days, plain["frac"], plain["keep"], plain["split"], plain["cv"],
                  plain["fold"] if fold is None else fold, plain.get("min_date"))


def span(days: np.ndarray, index: np.ndarray) -> str:
    return f"{len(index)} days, dates {int(days[index[0]])}..{int(days[index[-1]])}"


def trained_from(run_dir: Path) -> Path | None:
    """The working directory the run was trained from (Hydra's `runtime.cwd` in its .hydra/hydra.yaml;
    a `cv_objective` fold's is its parent run's): what a relative `data.store` was relative to."""
    for d in (run_dir, run_dir.parent):
        f = d / ".hydra" / "hydra.yaml"
        if f.is_file():
            cwd = OmegaConf.select(OmegaConf.load(f), "hydra.runtime.cwd")
            return Path(cwd) if cwd else None
    return None


def own_store(cfg: DictConfig, run_dir: Path) -> Path | None:
    """The store the run trained on (None: not a store run); a relative `data.store` taken from where it trained."""
    store = config_store(cfg)
    if store is not None and not store.is_absolute() and (cwd := trained_from(run_dir)) is not None:
        store = cwd / store
    return store


def choose_rows(members: list[Member], features: list[str], data: str | None, fold: int | None,
                lookback: int) -> tuple[Rows, list[str]]:
    """The rows to score and notes for the report.

    data None: the members' own store (the one their config.yaml names; they must share it) and,
    without `fold`, the validation days that no member trained on (a run's own; the last fold's for
    the folds of a CV); `fold` K: fold K's validation days of the first member's data.cv. With
    `data`, all its rows, or with `fold` that fold's days of it. Notes name the members that trained
    on some of the scored days (their scores there are in-sample)."""
    cfgs = [config(m.run_dir) for m in members]
    where = [str(m.run_dir / "config.yaml") for m in members]
    if data is not None:
        src = open_source(Path(data), features)
        index = np.arange(len(src.days)) if fold is None else split_of(cfgs[0], src.days, fold, where[0]).val
        what = "all rows" if fold is None else f"fold {fold} validation days"
        return take_days(src, index, lookback, f"{src.name}, {what} ({span(src.days, index)})"), []
    stores = [own_store(c, m.run_dir) for c, m in zip(cfgs, members)]
    for w, s in zip(where, stores):
        if s is None:
            raise UserError(f"{w}: not a run on a jsmp store (no data.store); pass --data")
        if not is_store(s):
            raise UserError(f"{w}: its store {s} (data.store, or data.data_dir for the synthetic default) is not there; "
                            f"pass --data STORE")
    if len({s.resolve() for s in stores}) > 1:
        raise UserError(f"the runs were trained on different stores ({', '.join(sorted({str(s) for s in stores}))}); "
                        f"pass --data to score them on the same rows")
    src = StoreSource(stores[0], features)
    splits = [split_of(c, src.days, None, w) for c, w in zip(cfgs, where)]
    trained = [set(s.train.tolist()) for s in splits]
    if fold is not None:
        index, what = split_of(cfgs[0], src.days, fold, where[0]).val, f"fold {fold} validation days"
    else:
        unseen = {tuple(s.val.tolist()) for s in splits if not any(t & set(s.val.tolist()) for t in trained)}
        if len(unseen) != 1:
            why = "no run's validation days are unseen by every other run" if not unseen else \
                "the runs' validation days differ and several are unseen by all"
            raise UserError(f"{why}; pass --fold K (that CV fold's validation days) or --data")
        index = np.asarray(unseen.pop())
        what = "validation days" if len(members) == 1 else "validation days no member trained on"
    notes = [f"note: member {k} ({m.name}) trained on {len(t & set(index.tolist()))} of these days (in-sample for it)"
             for k, (m, t) in enumerate(zip(members, trained)) if t & set(index.tolist())]
    return take_days(src, index, lookback, f"{src.name}, {what} ({span(src.days, index)})"), notes


def validation_batches(member: GroupedMember) -> tuple[JsmpDataModule, RowBatches, str]:
    """(the set-up DataModule, its validation batches, where they come from) of a 2024-layout run: the
    JsmpDataModule its config.yaml's `data` settings build over its own store, set up (checksums
    verified) as training set it up, so the batches hold exactly the inputs, labels and weights its
    val/r2 was computed on. A store that no longer gives the run's preprocess.json (other features,
    fill values or window: changed since training) is refused in one line."""
    where = member.run_dir / "config.yaml"
    cfg = config(member.run_dir)
    store = own_store(cfg, member.run_dir)
    if store is None or not is_store(store):
        raise UserError(f"{where}: its store {store} (data.store, or data.data_dir for the synthetic default) is not there; "
                        f"a 2024-layout run is scored on its own validation rows, so its store must be where it trained")
    dm = JsmpDataModule.from_settings(store, OmegaConf.to_container(cfg.data, resolve=True))
    dm.connect(type(member.model))
    quiet = logging.getLogger(dm.__module__)  # setup's warnings are about training (few batches an epoch)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        dm.setup()
    finally:
        quiet.setLevel(level)
    if dm.spec != member.prep:
        raise UserError(f"store {store}: its rows no longer make the inputs this run was trained on (its features, fill "
                        f"values or window differ from {member.run_dir / 'preprocess.json'}): the store changed since training")
    return dm, dm.val_set, f"store {store}, validation days ({span(dm.store.days, dm.split.val)})"
