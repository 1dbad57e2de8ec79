"""Which store a `data` config names: `data.store`, else the default synthetic store in
`data.data_dir`, named after its generator's spec (`data.synthetic`). Training
(jsmp/run/dataconfig.py, rundir.py) and `jsmp eval` (a run's own store) read it here.

The generators' specs (synthetic.py, synthetic_rtmdf.py) are the defaults of the `data.synthetic`
config schema (jsmp/run/dataconfig.py); neither imports torch, so composing a config needs none.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from jsmp.errors import UserError

if TYPE_CHECKING:
    from jsmp.data.synthetic import SynthSpec
    from jsmp.data.synthetic_rtmdf import RtmdfSpec


def synth_spec(synthetic: dict) -> SynthSpec | RtmdfSpec:
    """`data.synthetic` as its generator's spec (by `layout`: jsmp -> SynthSpec, rtmdf -> RtmdfSpec);
    bad values are a one-line UserError."""
    from jsmp.data.synthetic import SynthSpec
    from jsmp.data.synthetic_rtmdf import RtmdfSpec

    settings = dict(synthetic)
    layout = settings.pop("layout", "jsmp")  # configs saved before the key existed are 2021 ones
    specs = {"jsmp": SynthSpec, "rtmdf": RtmdfSpec}
    if layout not in specs:
        raise UserError(f"data.synthetic.layout must be one of {sorted(specs)}, got {layout!r}")
    try:
        return specs[layout](**settings)
    except (TypeError, ValueError) as e:
        raise UserError(f"data.synthetic: {e}") from None


def resolve_store(store: str | None, data_dir: str, synthetic: dict) -> Path:
    """The store to train on: `store` if given, else the default synthetic store in `data_dir`."""
    if store is not None:
        return Path(store)
    return Path(data_dir) / synth_spec(synthetic).name


def config_store(cfg: DictConfig) -> Path | None:
    """The store a run's config (`cfg.data`) names, as resolve_store finds it; None when its `data`
    has no `store` or `data_dir` (not a store run). A relative path is as the config gives it."""
    d = cfg.data
    if "store" not in d or "data_dir" not in d:
        return None
    synthetic = d.get("synthetic")
    return resolve_store(d.store, d.data_dir, OmegaConf.to_container(synthetic, resolve=True) if synthetic is not None else {})
