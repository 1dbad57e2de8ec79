"""Config files a user copies into conf/ (a search file into conf/hparams_search/, an experiment), checked as
Hydra reads them, so three mistakes Hydra reports misleadingly, or not at all, are one line naming the file:

- **The package header.** Hydra reads `# @package VALUE` only from the top of the file: blank lines may come
  first, and further `# @KEY VALUE` lines, but its header ends at the first other line, an ordinary comment
  included (hydra/plugins/config_source.py, ConfigSource._get_header_dict, given the file's first 512
  characters). A header after a comment is ignored: the file's keys land under its group
  (`hparams_search.hydra.sweeper`), which Hydra reports, if at all, as "Could not override
  'hydra/sweeper@hparams_search.hydra.sweeper'". Anything after VALUE on that line (`# @package _global_
  # note`) is a ValueError, "Too many components".
- **Relative defaults.** In a group's file, `override GROUP: NAME` in the defaults list names a group
  relative to the file's own: in conf/hparams_search/, `override hydra/sweeper: optuna` (the form of a
  primary config, as in Hydra's Optuna example's config.yaml) means `hparams_search/hydra/sweeper`, which
  Hydra reports as "No match in the defaults list". The absolute form is `override /hydra/sweeper: optuna`.
- **A missing option.** `hparams_search`, `experiment` and `debug` are `optional` in conf/config.yaml, and
  Hydra skips a missing option of an optional group without a word: a misspelt or misplaced search file
  (`my_search.yml`, `configs/hparams_search/`) trained once instead of searching.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

from jsmp.errors import UserError

# Hydra reads a config file's header from its first this many characters (FileConfigSource.load_config)
HEADER_CHARS = 512
PACKAGE_LINE = re.compile(r"^\s*#\s*@package\b(.*)$", re.M)


def check_group_files(config_dir: str | Path, overrides: list[str]) -> None:
    """Check each option of a group of `config_dir` that an override selects (`hparams_search=NAME`,
    `experiment=A,B`, `hydra/launcher=NAME`): its file as check_group_file does, and that it exists at all,
    since Hydra skips a missing option of an `optional` group (experiment, hparams_search, debug) without a
    word, so `hparams_search=my_serach` would train once instead of searching. A UserError names the first
    option at fault (its path resolved: conf/..., not the package's link jsmp/conf/... in a clone). With
    `hydra.searchpath` on the command line an option may live in another folder: only the files here are checked."""
    config_dir = Path(config_dir).resolve()
    elsewhere = any(o.lstrip("+").startswith("hydra.searchpath") for o in overrides)
    for group, value in selected_options(overrides):
        path = config_dir / group / f"{value}.yaml"
        if path.is_file():
            check_group_file(path, group, config_dir)
        elif not elsewhere and (config_dir / group).is_dir() and not _repository(config_dir).config_exists(f"{group}/{value}"):
            options = sorted(_repository(config_dir).get_group_options(group))
            yml = f" ({path.with_suffix('.yml').name} is not read: Hydra reads .yaml files)" \
                if path.with_suffix(".yml").is_file() else ""
            raise UserError(f"{group}={value}: no {path}{yml}; expected one of {', '.join(options)}")


def selected_options(overrides: list[str]) -> Iterator[tuple[str, str]]:
    """(group or key, option) for each value that `overrides` set (one, or a list: `experiment=[a,b]`) or
    sweep over (choice sweeps; a glob's options are Hydra's to find)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return  # (a malformed override: Hydra's own message reports it)
    for o in parsed:
        if o.is_delete() or (o.is_sweep_override() and not o.is_choice_sweep()) or \
                o.value_type == ValueType.GLOB_CHOICE_SWEEP:
            continue
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
        for option in [v for value in values for v in (value if isinstance(value, list) else [value])]:
            if isinstance(option, str) and option:
                yield o.key_or_group, option


def check_group_file(path: Path, group: str, config_dir: Path) -> None:
    """A UserError, one line naming `path` (the option of `group` in `config_dir`) and each of its problems: a
    `# @package` line Hydra does not read as its header, `hydra:` keys without one, a relative `override
    GROUP: NAME` default naming no group under `group`."""
    from hydra.plugins.config_source import ConfigSource

    text = path.read_text()
    try:
        header = ConfigSource._get_header_dict(text[:HEADER_CHARS])
    except ValueError as e:
        raise UserError(f"{path}: its header: {e}; expected the one line `# @package _global_` "
                        f"(nothing after the package) before any other line") from None
    problems = []
    declared = PACKAGE_LINE.search(text)
    if declared and header["package"] is None:
        line = text[:declared.start()].count("\n") + 1
        problems.append(f"Hydra ignores its `# @package{declared[1].rstrip()}` (line {line}): the header must come "
                        f"before any other line, comments included; make it the file's first line")
    elif header["package"] is None and "hydra" in _top_keys(text):
        problems.append(f"it sets `hydra:` keys but has no `# @package _global_` header, so they would land under "
                        f"{group}.hydra, where Hydra ignores them; make `# @package _global_` its first line")
    relative = [(key, name) for key, name in _overrides(text)
                if not key.startswith("/") and not _group_exists(config_dir, f"{group}/{key.split('@')[0]}")]
    if relative:
        (key, name), fixed = relative[0], ", ".join(f"`override /{k}: {n}`" for k, n in relative)
        problems.append(f"its defaults name groups relative to {group}/ (`override {key}: {name}` means the group "
                        f"{group}/{key.split('@')[0]}, which does not exist); a group file names them from the "
                        f"config root: write {fixed}")
    if problems:
        raise UserError(f"{path}: {'; and '.join(problems)}")


def _group_exists(config_dir: Path, group: str) -> bool:
    return (config_dir / group).is_dir() or _repository(config_dir).group_exists(group)


@functools.cache
def _repository(config_dir: Path):
    """Hydra's view of the configs composing from `config_dir`: it, Hydra's own (hydra/sweeper, ...) and the
    ConfigStore (the plugins' groups, registered by their scan)."""
    from hydra._internal.config_repository import ConfigRepository
    from hydra._internal.utils import create_config_search_path
    from hydra.core.plugins import Plugins

    Plugins.instance()
    return ConfigRepository(create_config_search_path(str(config_dir)))


def _top_keys(text: str) -> dict:
    """The file's top-level mapping; empty when it is none or not YAML (the compose reports that)."""
    try:
        top = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return top if isinstance(top, dict) else {}


def _overrides(text: str) -> Iterator[tuple[str, str]]:
    """(GROUP, NAME) of each `override GROUP: NAME` entry of the file's defaults list."""
    defaults = _top_keys(text).get("defaults")
    for entry in defaults if isinstance(defaults, list) else []:
        for key, name in entry.items() if isinstance(entry, dict) else []:
            if isinstance(key, str) and key.split()[0] == "override" and len(key.split()) == 2:
                yield key.split()[1], name
