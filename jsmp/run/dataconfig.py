"""The `data` config group's typed schema and how the recipe builds its DataModule.

conf/data/jsmp.yaml and sincos.yaml extend the schemas this module registers with Hydra's
ConfigStore when it is imported (as jsmp.run.cli, hence train.py and tune.py, does: import it
before composing the config any other way), so a wrong type (`data.batch_size=abc`) or an
unknown key (`+data.bogus=1`) fails when the config is composed; train.py and tune.py report it
in one line (jsmp.run.cli.check_compose). `jsmp_data` turns the flat `data` settings into
JsmpDataModule's typed groups, and finds the default synthetic store (`data.store: null`),
generating it on first use.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from jsmp.batches.config import LoaderConfig, RowsConfig
from jsmp.batches.windows import WindowSpec
from jsmp.errors import UserError

if TYPE_CHECKING:  # (imported where used: composing a config needs neither)
    from jsmp.batches.datamodule import JsmpDataModule
    from jsmp.data.synthetic import SynthSpec

log = logging.getLogger(__name__)


@dataclass
class SyntheticConfig:
    """The default synthetic data set (jsmp.data.synthetic.SynthSpec), used when `data.store` is null."""

    days: int = 500
    """Days generated."""
    rows_per_day: int = 1000
    """Mean rows per day."""
    seed: int = 0
    """Generator seed."""


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
SCHEMAS = {"schema_jsmp": JsmpDataConfig, "schema_sincos": SinCosDataConfig}
for _name, _node in SCHEMAS.items():
    ConfigStore.instance().store(group="data", name=_name, node=_node)


def resolve_store(store: str | None, data_dir: str, synthetic: dict) -> Path:
    """The store to train on: `store` if given, else the default synthetic store in `data_dir`."""
    if store is not None:
        return Path(store)
    return Path(data_dir) / synth_spec(synthetic).name


def synth_spec(synthetic: dict) -> SynthSpec:
    """`data.synthetic` as the generator's SynthSpec; bad values are a one-line UserError."""
    from jsmp.data.synthetic import SynthSpec

    try:
        return SynthSpec(**synthetic)
    except (TypeError, ValueError) as e:
        raise UserError(f"data.synthetic: {e}") from None


def jsmp_data(**settings) -> JsmpDataModule:
    """The JsmpDataModule of the `data` settings (JsmpDataConfig's keys; Hydra's target for
    `data=jsmp`). With `store` None the default synthetic store is generated first if absent."""
    from jsmp.batches.datamodule import JsmpDataModule
    from jsmp.data.synthetic import write_store
    from jsmp.store.store import is_store

    try:
        cfg: JsmpDataConfig = OmegaConf.to_object(OmegaConf.merge(JsmpDataConfig, settings))
    except OmegaConfBaseException as e:  # (train.py reports these at compose time: jsmp.run.cli)
        raise UserError(f"data.{e.full_key}: {str(e).strip().splitlines()[0]}") from None
    store = resolve_store(cfg.store, cfg.data_dir, asdict(cfg.synthetic))
    if cfg.store is None and not is_store(store):
        log.info("generating the default synthetic data set into %s", store)
        write_store(synth_spec(asdict(cfg.synthetic)), store)
    rows = RowsConfig(**{f.name: getattr(cfg, f.name) for f in fields(RowsConfig)})
    loader = LoaderConfig(**{f.name: getattr(cfg, f.name) for f in fields(LoaderConfig)})
    return JsmpDataModule(store, rows, loader, cfg.window, cfg.verify)
