"""Building objects from Hydra config, with user mistakes reported as one-line UserErrors."""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig

from jsmp.errors import UserError

# objects whose constructors check their arguments (a ValueError there is a config value mistake)
CHECKED_BY_CONSTRUCTOR = ("trainer", "logger")


def build(node: DictConfig, key: str, **kwargs):
    """`hydra.utils.instantiate(node, **kwargs)`; errors name the config key (`model`, `data`...)."""
    try:
        return instantiate(node, _convert_="all", **kwargs)  # plain lists/dicts: checkpoints stay weights-only loadable
    except InstantiationException as e:
        cause = e.__cause__
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, TypeError):  # unexpected/missing keyword: a config key mistake
            raise UserError(f"{key}: {_one_line(cause)}") from None
        if isinstance(cause, ImportError):  # a _target_ naming no module, or an optional library not installed
            raise UserError(f"{key}: {_one_line(cause)}") from None
        if key in CHECKED_BY_CONSTRUCTOR and isinstance(cause, (ValueError, MisconfigurationException)):
            raise UserError(f"{key}: {_one_line(cause)}") from None
        raise


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 300 else text[:297] + "..."


def model_class(cfg: DictConfig) -> type:
    """The class `model._target_` names (without building it); a one-line UserError when it names none."""
    target = cfg.model.get("_target_")
    try:
        return get_class(target)
    except (ImportError, ValueError, AttributeError) as e:
        raise UserError(f"model._target_={target}: {_one_line(e)}") from None
