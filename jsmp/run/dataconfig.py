"""The `data` config group's typed schema and how the recipe builds its DataModule.

conf/data/jsmp.yaml and sincos.yaml extend the schemas this module registers with Hydra's
ConfigStore when it is imported (as jsmp.run.cli, hence train.py and tune.py, does: import it
before composing the config any other way), so a wrong type (`data.batch_size=abc`) or an
unknown key (`+data.bogus=1`) fails when the config is composed; train.py and tune.py report it
in one line (jsmp.run.cli.check_compose). `jsmp_data` turns the flat `data` settings into
JsmpDataModule's typed groups, and finds the default synthetic store (`data.store: null`),
generating it on first use: the 2021 layout's (`data=jsmp`) or the 2024 layout's (`data=rtmdf`),
whose settings default to the generators' specs (SynthSpec, RtmdfSpec: the one place they are stated).

It also registers the resolvers `${jsmp.score:TASK}` (the task's score: val/utility for `action`,
val/r2 for `regression`), which conf/config.yaml's `monitor` and `optimized_metric` use, and
`${jsmp.study:NAME,TASK}` (conf/hparams_search/'s study names).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from jsmp.batches.config import TASK_SCORES, LoaderConfig, RowsConfig
from jsmp.data import synthetic, synthetic_rtmdf
from jsmp.data.stores import resolve_store, synth_spec
from jsmp.data.synthetic import SynthSpec
from jsmp.data.synthetic_rtmdf import RtmdfSpec
from jsmp.errors import UserError
from jsmp.inputs.windows import WindowSpec

if TYPE_CHECKING:  # (imported where used: composing a config does not need it)
    from jsmp.batches.datamodule import JsmpDataModule

log = logging.getLogger(__name__)

def task_score(task: str) -> str:
    """`${jsmp.score:TASK}`: the validation metric that scores `data.task` (TASK_SCORES)."""
    if task not in TASK_SCORES:
        raise UserError(f"data.task must be one of {list(TASK_SCORES)}, got {task!r}")
    return TASK_SCORES[task]


def task_study(name: str, task: str) -> str:
    """`${jsmp.study:NAME,TASK}`: a search's study name: NAME for the action task, NAME-TASK otherwise, so a
    search of another task's score never continues (and mixes into) the study of the first."""
    task_score(task)
    return name if task == "action" else f"{name}-{task}"


for _name, _resolver in (("jsmp.score", task_score), ("jsmp.study", task_study)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)


@dataclass
class SyntheticConfig:
    """The default synthetic data set of the 2021 layout, used when `data.store` is null (defaults:
    jsmp.data.synthetic.SynthSpec's)."""

    layout: str = "jsmp"
    """Which generator: jsmp (the 2021 layout, this one) or rtmdf (RtmdfSyntheticConfig)."""
    days: int = SynthSpec.days
    """Days generated."""
    rows_per_day: int = SynthSpec.rows_per_day
    """Mean rows per day (the real file's: 4780)."""
    seed: int = SynthSpec.seed
    """Generator seed."""


@dataclass
class RtmdfSyntheticConfig:
    """The default synthetic data set of the 2024 layout, used when `data.store` is null (defaults:
    jsmp.data.synthetic_rtmdf.RtmdfSpec's)."""

    layout: str = "rtmdf"
    """Which generator: rtmdf (the 2024 layout, this one) or jsmp (SyntheticConfig)."""
    days: int = RtmdfSpec.days
    """Dates (date_id) generated."""
    times: int = RtmdfSpec.times
    """time_ids per date (the real data: 849, later 968)."""
    symbols: int = RtmdfSpec.symbols
    """Instruments (symbol_id) over the whole set (the real data: 39); each date has the ones active then."""
    seed: int = RtmdfSpec.seed
    """Generator seed."""
    drift: float = RtmdfSpec.drift
    """Radians per date by which the features' relation to the target turns (docs/rtmdf-data.md); 0: stationary."""
    market: float = RtmdfSpec.market
    """Mean loading of each instrument's state on a market factor shared by all, in [0, 1); 0: independent instruments
    (the default data before the market factor, byte for byte)."""
    sectors: int = RtmdfSpec.sectors
    """Sector factors (instrument i in sector i % sectors); 0: none."""


@dataclass
class StoreConfig:
    """Which store a run reads (the first keys of `data=jsmp`, as they are in the config)."""

    _target_: str = "jsmp.run.dataconfig.jsmp_data"
    """What builds the DataModule from these settings."""
    store: str | None = None
    """Store directory (docs/store.md); None: the default synthetic store, in `data_dir`."""
    data_dir: str = "data"
    """Where the default synthetic store is generated on first use and reused afterwards."""
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    """The default synthetic store's generator settings."""


@dataclass
class JsmpDataConfig(LoaderConfig, RowsConfig, StoreConfig):
    """`data=jsmp`: the rows of a jsmp store (jsmp.batches.datamodule.JsmpDataModule); the
    groups' keys side by side, as users type them (`data.fill`, `data.batch_size`)."""

    verify: bool = True
    """Check the store's shard checksums against its manifest before training."""
    window: WindowSpec = field(default_factory=WindowSpec)
    """The windows served when the model class sets `sequence = True` (docs/sequence-models.md)."""


@dataclass
class RtmdfDataConfig(JsmpDataConfig):
    """`data=rtmdf`: a store of the 2024 layout (instruments side by side, responder targets), by
    default the built-in synthetic one; the same keys as `data=jsmp` (conf/data/rtmdf.yaml sets the
    task, targets and weights), with that layout's generator settings."""

    synthetic: RtmdfSyntheticConfig = field(default_factory=RtmdfSyntheticConfig)
    """The default synthetic store's generator settings."""
    days_per_batch: int = 1
    """Dates per training and validation batch of day samples (a model with `sample = "day"`, e.g. model=axial;
    jsmp.batches.days); data.batch_size counts rows and serves the other models."""


@dataclass
class SinCosDataConfig:
    """`data=sincos`: the sine -> cosine toy (jsmp.batches.sincos.SinCosDataModule)."""

    _target_: str = "jsmp.batches.sincos.SinCosDataModule"
    points: int = 200
    """Time steps of the one sequence."""
    periods: float = 6.0
    """t spans [0, periods * 2π]."""
    train_frac: float = 0.5
    """The leading fraction of the steps that trains; the rest tests."""


# the ConfigStore's `data` group: conf/data/*.yaml name these in their defaults
SCHEMAS = {"schema_jsmp": JsmpDataConfig, "schema_rtmdf": RtmdfDataConfig, "schema_sincos": SinCosDataConfig}
for _name, _node in SCHEMAS.items():
    ConfigStore.instance().store(group="data", name=_name, node=_node)


def write_synthetic(spec: SynthSpec | RtmdfSpec, path: Path) -> Path:
    """Generate `spec` into a store at `path` with its layout's generator."""
    return (synthetic if isinstance(spec, SynthSpec) else synthetic_rtmdf).write_store(spec, path)


def jsmp_data(**settings) -> JsmpDataModule:
    """The JsmpDataModule of the `data` settings (JsmpDataConfig's keys, RtmdfDataConfig's for the
    2024 layout: Hydra's target for `data=jsmp` and `data=rtmdf`). With `store` None the default
    synthetic store is generated first if absent."""
    from jsmp.batches.datamodule import JsmpDataModule
    from jsmp.store.store import is_store

    schema = RtmdfDataConfig if (settings.get("synthetic") or {}).get("layout") == "rtmdf" else JsmpDataConfig
    try:
        cfg: JsmpDataConfig = OmegaConf.to_object(OmegaConf.merge(schema, settings))
    except OmegaConfBaseException as e:  # (train.py reports these at compose time: jsmp.run.cli)
        raise UserError(f"data.{e.full_key}: {str(e).strip().splitlines()[0]}") from None
    task_score(cfg.task)  # a bad data.task fails before a store is generated
    store = resolve_store(cfg.store, cfg.data_dir, asdict(cfg.synthetic))
    if cfg.store is None and not is_store(store):
        log.info("generating the default synthetic data set into %s", store)
        write_synthetic(synth_spec(asdict(cfg.synthetic)), store)
    return JsmpDataModule.from_settings(store, vars(cfg))
