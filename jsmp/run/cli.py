"""Glue between Hydra entry points and the recipes: user errors become one line + exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from jsmp.errors import EXIT_USAGE, UserError, report
from jsmp.run import dataconfig  # noqa: F401  (registers the `data` schemas with Hydra's ConfigStore)

# keys an older jsmp had, and where they are now
MOVED = {f"model.{k}": f"model.optimizer.{k} (the optimizer class: model/optimizer=NAME, see conf/model/optimizer/)"
         for k in ("lr", "weight_decay", "momentum")}


def run_task(task: Callable[[DictConfig], float], cfg: DictConfig) -> float:
    """Run `task(cfg)`. In a single run a UserError exits 2 with one line; in a multirun it
    is raised so the sweeper can record the trial as failed and go on."""
    try:
        return task(cfg)
    except UserError as err:
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        report(err)
        sys.exit(EXIT_USAGE)


def check_compose(argv: list[str], config_dir: Path, config_name: str = "config") -> None:
    """Compose the config that Hydra's command line `argv` asks for, as Hydra will, and check
    each typed group against its schema (jsmp/run/dataconfig.py): a wrong type or an unknown
    key, added with `+` too, is a UserError naming the key, before Hydra would report it in
    several lines (exit 1). Costs one compose; Hydra's own flags (--help, ...) are left to it."""
    from hydra import initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import OmegaConfBaseException

    args, _ = get_args_parser().parse_known_args(argv)
    if not args.overrides or args.help or args.hydra_help or args.info or args.shell_completion \
            or args.config_path or args.config_dir or args.experimental_rerun:
        return
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            # as for a multirun: sweep overrides (data.fold=0,1) are left to the sweep, the rest applied
            cfg = GlobalHydra.instance().hydra.compose_config(args.config_name or config_name, args.overrides,
                                                               run_mode=RunMode.MULTIRUN)
        for key in ("data",):  # the groups with a schema: keys added with `+` bypass it
            schema = OmegaConf.get_type(cfg.get(key))
            if schema not in (None, dict):
                OmegaConf.merge(schema, OmegaConf.to_container(cfg[key]))
    except ConfigCompositionException as e:
        cause = e.__cause__
        if isinstance(cause, OmegaConfBaseException) and cause.full_key:
            key = cause.full_key
            hint = f"; it moved to {MOVED[key]}" if key in MOVED else ""
            raise UserError(f"{key}: {_first_line(cause)}{hint}") from None
        text = str(e).split("\nConfig search path")[0]  # (Hydra's listing of where it looked)
        raise UserError(" ".join(text.split())) from None
    except OmegaConfBaseException as e:
        raise UserError(f"{key}.{e.full_key}: {_first_line(e)}") from None


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0]
