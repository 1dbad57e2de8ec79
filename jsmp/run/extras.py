"""What `jsmp train` does around the training recipe, as lightning-hydra-template's `extras` and `test`
(conf/config.yaml): `tags` checked, the composed config printed as a tree before training
(`extras.print_config=true`), the run's best checkpoint scored after it (`eval_after_fit=true`, as
`jsmp eval --run RUN_DIR`). jsmp/run/cli.py's task runs `run(train, cfg)`."""

from __future__ import annotations

import importlib.util
import io
import logging
import sys
from collections.abc import Callable
from contextlib import redirect_stdout
from typing import TextIO

from omegaconf import DictConfig, OmegaConf

from jsmp.errors import UserError

log = logging.getLogger(__name__)

# the tree's first branches, in this order (lightning-hydra-template's); the other keys follow in the config's order
ORDER = ("data", "model", "callbacks", "logger", "trainer", "paths", "extras")


def run(recipe: Callable[[DictConfig], float], cfg: DictConfig) -> float:
    """`recipe(cfg)` (jsmp.run.training.train) with the extras; returns its value. Rank 0 prints and scores."""
    from jsmp.run.rundir import rank

    run_tags(cfg)
    evaluate = bool(cfg.get("eval_after_fit"))
    if evaluate:
        check_eval_after_fit(cfg)
    if OmegaConf.select(cfg, "extras.print_config", default=False) and rank() == 0:
        print_config(cfg)
    value = recipe(cfg)
    if evaluate and rank() == 0:
        eval_run(cfg.paths.output_dir)
    return value


def run_tags(cfg: DictConfig) -> list[str]:
    """The run's labels, `tags=[a,b]` (or one, `tags=a`), as strings; a UserError for anything else."""
    tags = cfg.get("tags")
    if tags is None:
        return []
    if OmegaConf.is_list(tags) and all(isinstance(t, (str, int, float)) for t in tags):
        return [str(t) for t in tags]
    if isinstance(tags, (str, int, float)) and not isinstance(tags, bool):
        return [str(tags)]
    got = OmegaConf.to_container(tags) if OmegaConf.is_config(tags) else tags
    raise UserError(f"tags: expected a list of labels, e.g. tags=[baseline,fold0]; got {got!r}")


def check_eval_after_fit(cfg: DictConfig) -> None:
    """eval_after_fit=true scores the best checkpoint: a UserError, before training, when the run saves none."""
    if cfg.trainer.get("fast_dev_run"):
        raise UserError("eval_after_fit=true: trainer.fast_dev_run saves no checkpoint to score; drop one of them")
    if OmegaConf.select(cfg, "callbacks.model_checkpoint") is None:
        raise UserError("eval_after_fit=true scores the run's best checkpoint, but callbacks.model_checkpoint is off "
                        "(callbacks=none?); use callbacks=default, or drop eval_after_fit")


def eval_run(run_dir: str) -> None:
    """`jsmp eval --run RUN_DIR` in this process: its lines to the log (console and the run's log file),
    its files into RUN_DIR/eval-<n>/; its mistakes a UserError naming eval_after_fit."""
    from jsmp.evaluate.cli import main

    out = io.StringIO()
    try:
        with redirect_stdout(out):
            main.__wrapped__(["--run", str(run_dir)])  # (undecorated: a UserError is raised, not an exit)
    except UserError as e:
        raise UserError(f"eval_after_fit: {e}") from e
    finally:
        for line in out.getvalue().splitlines():
            log.info("eval_after_fit: %s", line)


def print_config(cfg: DictConfig, file: TextIO | None = None) -> None:
    """The config as a tree to `file` (stdout): rich's, in colour, on a terminal when rich is installed,
    else config_tree's plain text (as in a log file or a pipe)."""
    file = file or sys.stdout
    if not file.isatty() or importlib.util.find_spec("rich") is None:
        print(config_tree(cfg), file=file, flush=True)
        return
    import rich.console
    import rich.syntax
    import rich.text
    import rich.tree

    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    for key, text, group in _branches(cfg):
        if group:
            tree.add(rich.text.Text(key)).add(rich.syntax.Syntax(text, "yaml"))
        else:
            tree.add(rich.text.Text(f"{key}: {text}"))  # (as text: `[a, b]` is no markup)
    rich.console.Console(file=file).print(tree)


def config_tree(cfg: DictConfig) -> str:
    """The config as plain text: a branch per top-level key (ORDER's first), a group's YAML below it,
    a value beside it; interpolations resolved where they can be (in a job, all)."""
    lines = ["CONFIG"]
    branches = _branches(cfg)
    for i, (key, text, group) in enumerate(branches):
        last = i == len(branches) - 1
        lines.append(f"{'└' if last else '├'}── {key}" + ("" if group else f": {text}"))
        if group:
            lines += [f"{'    ' if last else '│   '}{line}" for line in text.splitlines()]
    return "\n".join(lines)


def _branches(cfg: DictConfig) -> list[tuple[str, str, bool]]:
    """(key, text, group) per top-level key of `cfg` but `hydra`, ORDER's first: a group's (a
    non-empty mapping's) text its YAML, a value's its YAML on one line (`[a, b]`, `null`)."""
    import yaml

    keys = [k for k in ORDER if k in cfg] + [str(k) for k in cfg if k not in ORDER and k != "hydra"]
    out = []
    for key in keys:
        node = cfg._get_node(key)
        group = OmegaConf.is_dict(node) and len(node) > 0
        container = OmegaConf.is_config(node)
        try:
            data = OmegaConf.to_container(node, resolve=True, enum_to_str=True) if container else cfg[key]
        except Exception:  # noqa: BLE001  (an interpolation that resolves only in a job: shown as written)
            data = OmegaConf.to_container(node, enum_to_str=True) if container else node._value()
        text = yaml.safe_dump(data, default_flow_style=not group, sort_keys=False, width=10**6)
        out.append((key, text.removesuffix("\n...\n").strip(), group))
    return out
