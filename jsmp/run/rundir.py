"""Run dirs are append-only history: a run never overwrites another run's files.

- A fresh run (`ckpt_path=null`) refuses a run dir that already holds a run (its
  `config.yaml`, `metrics.json`, `preprocess.json`, checkpoints or CV folds).
- A resume (`ckpt_path=last` or a path) is checked before anything is written: the checkpoint
  exists and is a readable Lightning checkpoint, its hyper-parameters match `model`, and the
  run dir's recorded `config.yaml` and `preprocess.json` match this invocation (features,
  fill, window, data split). The first invocation's files stay as they are; the resumed
  invocation's resolved config goes to `config.resume-<n>.yaml` and Hydra's own files to
  `.hydra-resume-<n>/`.

`RunDirGuard` (a Hydra callback, conf/hydra/default.yaml) runs these checks in `on_run_start`,
before Hydra writes `.hydra/` into the run dir, and points Hydra's `output_subdir` at
`.hydra-resume-<n>` for a resume. The training recipe runs them again (multirun jobs, CV
folds, calls without Hydra) and the checks that need the data (fill values, feature names).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from jsmp.data.stores import config_store
from jsmp.errors import EXIT_USAGE, UserError, report
from jsmp.inputs.spec import PREPROCESS

CONFIG = "config.yaml"
METRICS = "metrics.json"
RESUME_RE = re.compile(r"^(?:config\.resume-|\.hydra-resume-)(\d+)(?:\.yaml)?$")
# data keys that define what the model was trained on: a resume must not change them
DATA_KEYS = ("_target_", "frac", "keep", "split", "cv", "fold", "fill", "drop_zero_weight", "targets",
             "sample_weight", "min_date", "points", "periods", "train_frac")
WINDOW_KEYS = ("length", "cross_days")


JOB_NAME_MAX = 150  # characters of a multirun job's overrides kept in its dir name (a file name is at most 255 bytes)


def job_dir_name(overrides: str) -> str:
    """`${jsmp.job_name:${hydra.job.override_dirname}}`: a multirun job's overrides as a short, safe dir name
    (conf/hydra/default.yaml): characters other than letters, digits and `._=,+-` become `-` (a `/` in a value,
    optimized_metric=val/utility_best, would nest the dir), and past JOB_NAME_MAX characters the name is cut
    and ends in `~` + 8 hex digits of the whole string's SHA-256 (about 10 overrides hit the file-name limit).
    The full overrides stay in the job's .hydra/overrides.yaml and its HParams columns."""
    safe = re.sub(r"[^A-Za-z0-9._=,+-]", "-", overrides)
    if len(safe) <= JOB_NAME_MAX:
        return safe
    return f"{safe[:JOB_NAME_MAX - 9]}~{hashlib.sha256(overrides.encode()).hexdigest()[:8]}"


if not OmegaConf.has_resolver("jsmp.job_name"):
    OmegaConf.register_new_resolver("jsmp.job_name", job_dir_name)


def rank() -> int:
    """This process's global rank from the launcher's environment (0 when not distributed)."""
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def run_contents(run_dir: Path) -> list[str]:
    """What in `run_dir` shows that it holds a run (empty: it holds none). Hydra's `.hydra/`
    and the log alone do not count: an invocation refused before training writes only those."""
    run_dir = Path(run_dir)
    found = [n for n in (CONFIG, METRICS, PREPROCESS) if (run_dir / n).exists()]
    if any((run_dir / "checkpoints").glob("*.ckpt")):
        found.append("checkpoints/")
    found += sorted(f"{d.name}/" for d in run_dir.glob("fold-*") if d.is_dir() and run_contents(d))
    return found


def next_resume_number(run_dir: Path) -> int:
    """1 + the highest n of the run dir's `config.resume-<n>.yaml` and `.hydra-resume-<n>/`."""
    ns = [int(m.group(1)) for p in Path(run_dir).glob("*resume-*") if (m := RESUME_RE.match(p.name))]
    return max(ns, default=0) + 1


def hydra_resume_number(run_dir: Path) -> int:
    """The n of the `.hydra-resume-<n>/` Hydra writes this invocation's files to, when it is
    `run_dir`'s; else the next free n."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            hc = HydraConfig.get()
            m = RESUME_RE.match(str(hc.output_subdir or ""))
            if m and Path(hc.runtime.output_dir).resolve() == Path(run_dir).resolve():
                return int(m.group(1))
    except (ValueError, AttributeError):
        pass
    return next_resume_number(run_dir)


def _plain(node: Any) -> Any:
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    if isinstance(node, tuple):
        return list(node)
    return node


def _same(a: Any, b: Any) -> bool:
    a, b = _plain(a), _plain(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _differences(then: dict, now: dict, prefix: str, keys) -> list[str]:
    out = []
    for k in keys:
        if k in then and k in now and not _same(then[k], now[k]):
            out.append(f"{prefix}{k} was {_plain(then[k])!r}, now {_plain(now[k])!r}")
    return out


def _refuse(flag: str, where: str, diffs: list[str]) -> None:
    shown = "; ".join(diffs[:3]) + (f" (+{len(diffs) - 3} more)" if len(diffs) > 3 else "")
    raise UserError(f"{flag}: {where} does not match this invocation: {shown}; a resumed run keeps the "
                    f"model and data it was trained with (start a new hydra.run.dir to change them)")


# -- the checkpoint -------------------------------------------------------------------------
_CKPT_CACHE: dict[tuple, dict] = {}


def read_checkpoint(path: Path, flag: str) -> dict:
    """The checkpoint's `hyper_parameters` (and epoch), after checking it is a readable Lightning
    checkpoint that matches its recorded checksum (jsmp.checkpoint.load); one-line UserError if
    not. Cached per (path, size, mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _CKPT_CACHE:
        return _CKPT_CACHE[key]
    from jsmp import checkpoint

    try:
        ckpt = checkpoint.load(path)
    except UserError as e:
        raise UserError(f"{flag}: {e}; or resume from another checkpoint, e.g. checkpoints/best-*.ckpt") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "pytorch-lightning_version" not in ckpt:
        raise UserError(f"{flag}: {path} is not a Lightning checkpoint (no state_dict / pytorch-lightning_version)")
    out = {"hyper_parameters": dict(ckpt.get("hyper_parameters") or {}), "epoch": ckpt.get("epoch")}
    _CKPT_CACHE.clear()
    _CKPT_CACHE[key] = out
    return out


# -- the checks ----------------------------------------------------------------------------
@dataclass
class Resume:
    """A checked resume: the checkpoint, its hyper-parameters, the recorded preprocess (if any)
    and where the run's recorded files were found."""

    ckpt: Path
    hparams: dict
    preprocess: Any  # jsmp.inputs.spec.InputSpec | None
    preprocess_path: Path | None
    continues: bool  # the run dir already holds this run (its config.yaml): save config.resume-<n>.yaml


def checkpoint_path(ckpt_path: Any, run_dir: Path) -> Path | None:
    if ckpt_path is None:
        return None
    if str(ckpt_path) == "last":
        return Path(run_dir) / "checkpoints" / "last.ckpt"
    return Path(str(ckpt_path)).expanduser()


def is_sequence(cfg: DictConfig) -> bool:
    """Whether the model reads windows (jsmp.batches.contract.wants_windows)."""
    from jsmp.batches.contract import wants_windows
    from jsmp.run.config import model_class

    try:
        return wants_windows(model_class(cfg))
    except UserError:  # the build reports a bad _target_ later
        return False


def check_fresh(cfg: DictConfig, run_dir: Path) -> None:
    """A fresh run (no ckpt_path) must not land in a run dir that holds a run."""
    found = run_contents(run_dir)
    if found:
        where, key = f"hydra.run.dir={run_dir}", "hydra.run.dir"
        if in_multirun():  # (a job's dir, inside the sweep dir)
            where, key = f"the job dir {run_dir}", "hydra.sweep.dir"
        raise UserError(f"{where} already holds a run ({', '.join(found[:4])}); jsmp never "
                        f"overwrites a run: choose another {key}, or continue this one with ckpt_path=last")


def in_multirun() -> bool:
    """Whether this process runs a job of a multirun (`-m`, a sweep's trial)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def check_run_dir(cfg: DictConfig, run_dir: Path, store_check: bool = True) -> Resume | None:
    """All checks that need no data set-up. Returns the Resume to carry out, or None for a
    fresh run. Writes nothing. Raises a one-line UserError."""
    run_dir = Path(run_dir)
    ckpt_cfg = cfg.get("ckpt_path")
    if cfg.get("cv_objective"):
        if ckpt_cfg not in (None, "last"):
            raise UserError(f"ckpt_path={ckpt_cfg}: cv_objective=true resumes with ckpt_path=last only "
                            f"(each fold from its own fold-<k>/checkpoints/last.ckpt)")
        if ckpt_cfg is None and rank() == 0:
            check_fresh(cfg, run_dir)
        elif ckpt_cfg == "last" and not run_contents(run_dir):
            raise UserError(f"ckpt_path=last: {run_dir} holds no run to continue (no fold-<k>/ with a checkpoint)")
        return None
    ckpt = checkpoint_path(ckpt_cfg, run_dir)
    if ckpt is None:
        if rank() == 0:
            check_fresh(cfg, run_dir)
        return None
    flag = f"ckpt_path={ckpt_cfg}"
    if not ckpt.is_file():
        if str(ckpt_cfg) == "last":
            have = sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))
            if have:
                hint = f"checkpoints there: {', '.join(have[:3])}; pass one as ckpt_path=PATH"
            elif run_contents(run_dir):
                hint = ("the run saved none (it stopped before its first validation, or callbacks.model_checkpoint "
                        "was off); start it again in a new hydra.run.dir")
            else:
                hint = f"{run_dir} holds no run to continue (leave ckpt_path null to start one there)"
            raise UserError(f"ckpt_path=last: no checkpoint at {ckpt}; {hint}")
        raise UserError(f"{flag}: no such checkpoint file")
    model_now = _plain(cfg.model)
    # the recorded run: this run dir's, else the checkpoint's own run dir (resuming elsewhere)
    source = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None
    continues = (run_dir / CONFIG).is_file()
    recorded_dir = run_dir if continues or (run_dir / PREPROCESS).exists() else source
    rec_cfg_path = recorded_dir / CONFIG if recorded_dir is not None else None
    if rec_cfg_path is not None and rec_cfg_path.is_file():
        try:
            rec = OmegaConf.to_container(OmegaConf.load(rec_cfg_path), resolve=False)
        except Exception as e:  # noqa: BLE001 (OSError, YAML and OmegaConf errors alike)
            raise UserError(f"{rec_cfg_path}: not a readable YAML config ({str(e).splitlines()[0][:200]})") from None
        if not isinstance(rec, dict):
            raise UserError(f"{rec_cfg_path}: expected a mapping (the run's resolved config)")
        rec_model, rec_data = rec.get("model") or {}, rec.get("data") or {}
        now_data = _plain(cfg.data)
        diffs = _differences(rec_model, model_now, "model.", list(model_now))
        diffs += _differences(rec_data, now_data, "data.", DATA_KEYS)
        if is_sequence(cfg):
            diffs += _differences(rec_data.get("window") or {}, now_data.get("window") or {}, "data.window.", WINDOW_KEYS)
        if diffs:
            _refuse(flag, f"the run's {rec_cfg_path}", diffs)

    info = read_checkpoint(ckpt, flag)
    hp = info["hyper_parameters"]
    diffs = _differences(hp, model_now, "model.", [k for k in model_now if k != "_target_"])
    if diffs:
        _refuse(flag, f"the checkpoint {ckpt}", diffs)

    prep, prep_path = None, None
    if recorded_dir is not None and (recorded_dir / PREPROCESS).exists():
        from jsmp.inputs.spec import InputSpec
        from jsmp.predict.model import legacy_contract

        prep_path = recorded_dir / PREPROCESS
        prep = InputSpec.load(prep_path, legacy=lambda: legacy_contract(cfg, hp))
        if cfg.data.get("fill") is not None and cfg.data.fill != prep.fill:
            _refuse(flag, f"the run's {prep_path}", [f"data.fill was {prep.fill!r}, now {cfg.data.fill!r}"])
        if store_check:
            n = _store_features(cfg)
            if n is not None and n != len(prep.features):
                raise UserError(f"{flag}: the store {config_store(cfg)} has {n} features, but this run was trained on "
                                f"{len(prep.features)} ({prep_path}); resume with the store it was trained on")
    return Resume(ckpt, hp, prep, prep_path, continues)


def _store_features(cfg: DictConfig) -> int | None:
    """The store's feature count when it exists (None: no jsmp store, or not generated yet)."""
    from jsmp.batches.lags import lag_names
    from jsmp.store.store import Store, is_store

    path = config_store(cfg)
    if path is None or not is_store(path):
        return None
    store = Store(path)
    return store.n_features + (len(lag_names(store)) if cfg.data.get("lags") else 0)


def check_data(resume: Resume, prep, model_kwargs: dict, flag: str) -> None:
    """After data set-up: the data's n_features/n_days/n_targets match the checkpoint, and its
    preprocess (features, fill, fill values, window) matches the recorded preprocess.json."""
    diffs = [f"{k} was {resume.hparams[k]!r}, now {v!r}" for k, v in model_kwargs.items()
             if k in resume.hparams and resume.hparams[k] != v]
    if diffs:
        _refuse(flag, f"the checkpoint {resume.ckpt}", [f"the data's {d}" for d in diffs])
    rec = resume.preprocess
    if rec is None or prep is None or rec == prep:
        return
    if rec.features != prep.features:
        extra = sorted(set(prep.features) - set(rec.features))[:3]
        missing = sorted(set(rec.features) - set(prep.features))[:3]
        what = (f"{len(rec.features)} features then, {len(prep.features)} now"
                + (f", missing {missing}" if missing else "") + (f", new {extra}" if extra else "")
                + ("" if missing or extra else ", in another order"))
    elif rec.fill != prep.fill or rec.window != prep.window:
        what = f"fill {rec.fill!r}/window {rec.window} then, {prep.fill!r}/{prep.window} now"
    elif rec.fill_value == prep.fill_value:  # the store's feature limit (ingest --feature-limit), or its group
        what = f"feature_limit {rec.feature_limit:g}, group {rec.group} then; {prep.feature_limit:g}, {prep.group} now"
    else:
        i = next(i for i, (a, b) in enumerate(zip(rec.fill_value, prep.fill_value)) if a != b)
        what = (f"the fill value of {rec.features[i]} was {rec.fill_value[i]!r}, now {prep.fill_value[i]!r} "
                f"(the store's training days differ from the ones the model was trained on)")
    raise UserError(f"{flag}: this invocation's data does not match {resume.preprocess_path}: {what}; "
                    f"resume with the store and data settings the run was trained with")


# -- the Hydra callback --------------------------------------------------------------------
try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object


class RunDirGuard(_HydraCallback):
    """Hydra callback: in a single run, check the run dir before Hydra writes `.hydra/` into
    it (a refused run touches nothing), and send a resumed invocation's Hydra files to
    `.hydra-resume-<n>/` (the first invocation's `.hydra/` stays). Ranks other than 0 of a
    distributed run write no Hydra files at all."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(config)  # (as run_job does) for ${hydra:...} in the run dir
        run_dir = Path(os.path.abspath(str(OmegaConf.select(config, "hydra.run.dir"))))
        subdir = config.hydra.get("output_subdir")
        if rank() != 0:
            self._set_subdir(config, None)
            return
        try:
            check_run_dir(config, run_dir)
        except UserError as err:
            report(err)
            sys.exit(EXIT_USAGE)
        resuming = config.get("ckpt_path") is not None
        if resuming and subdir is not None and (run_dir / str(subdir)).exists():
            self._set_subdir(config, f".hydra-resume-{next_resume_number(run_dir)}")

    @staticmethod
    def _set_subdir(config: DictConfig, value: str | None) -> None:
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.output_subdir = value
