"""The `logger:` config group -> Lightning loggers (conf/logger/; docs/training.md#loggers)."""

from __future__ import annotations

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning_utilities.core.imports import module_available
from omegaconf import DictConfig, OmegaConf

from jsmp.errors import UserError
from jsmp.run.config import build

# loggers whose library is an optional extra of jsmp (pyproject.toml): class name -> (module, extra)
OPTIONAL = {"MLFlowLogger": ("mlflow", "mlflow"), "WandbLogger": ("wandb", "wandb")}


def build_loggers(node: DictConfig | None) -> list:
    """Lightning loggers from `cfg.logger`: one logger node (`_target_: ...`, conf/logger/tensorboard.yaml),
    a mapping of named logger nodes (lightning-hydra-template's shape, conf/logger/many.yaml; null
    entries are skipped), or null/empty: none. Errors name the key (`logger.csv: ...`)."""
    if not node:
        return []
    if "_target_" in node:
        return [_build(node, "logger")]
    return [_build(sub, f"logger.{name}") for name, sub in node.items() if sub is not None]


def _build(node: DictConfig, key: str):
    """One logger; a one-line UserError naming the extra when its optional library is missing."""
    cls = str(node.get("_target_", "")).rsplit(".", 1)[-1]
    if cls in OPTIONAL:
        module, extra = OPTIONAL[cls]
        if not module_available(module):
            raise UserError(f"{key}: {cls} needs the `{module}` module, which is not installed; "
                            f"install jsmp's optional extra: pip install 'jsmp[{extra}]'")
    return build(node, key)


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger (conf/logger/wandb.yaml) that finishes its wandb run when the fit ends, so
    the next job of an in-process multirun or search gets a run of its own (Lightning's leaves it open
    and the next logger reuses it); `tags` a list of labels or one (`tags=baseline`, as jsmp's `tags`)."""

    def __init__(self, *args, tags=None, **kwargs):
        if tags is not None:
            kwargs["tags"] = [str(t) for t in tags] if isinstance(tags, (list, tuple)) or OmegaConf.is_list(tags) \
                else [str(tags)]
        super().__init__(*args, **kwargs)

    def finalize(self, status: str) -> None:
        super().finalize(status)
        if self._experiment is not None:
            self._experiment.finish(exit_code=1 if status == "failed" else 0)  # ("finished": stopped by a signal)
            self._experiment = None
