"""Every code block of README.md and docs/*.md is checked, never run (tests/docblocks.py says how): YAML
composed as the file it claims to be, commands parsed by their own parsers and composed, make targets found.
A skipped block shows in pytest's summary (-ra) with its marker's reason."""

from __future__ import annotations

import argparse
import functools
import importlib
import io
import shutil
from contextlib import contextmanager, nullcontext, redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import pytest
import yaml
from docblocks import (
    LAUNCHERS,
    PYTHON,
    ROOT,
    SHELL_STATE,
    Block,
    all_blocks,
    blocks,
    check_python,
    claimed_file,
    commands,
    is_shell,
    make_commands,
    make_targets,
    program,
)

from jsmp.cli import COMMANDS
from jsmp.errors import UserError

CONF = ROOT / "conf"
HYDRA_COMMANDS = ("train", "tune")
# `jsmp NAME` -> "module:function" its arguments are parsed by (`python -m PACKAGE`: PACKAGE.cli / PACKAGE.__main__),
# jsmp.cli's own except where that ends the process (jsmp data's run_and_exit: its main)
ENTRY = {name: f"{module}:{'main' if function == 'run_and_exit' else function}"
         for name, (module, function, _) in COMMANDS.items() if name not in HYDRA_COMMANDS}
MODULES = {entry.split(":")[0].removesuffix(".cli").removesuffix(".__main__"): name for name, entry in ENTRY.items()}
BLOCKS = [b for b in all_blocks() if b.lang in ("yaml", "yml", "python") or is_shell(b)]


class _Parsed(Exception):
    """Raised once a command's argparse parser has parsed (parse_only): the command stops there."""


@contextmanager
def parse_only():
    """argparse's parse_args and parse_known_args raise _Parsed once the outermost call has parsed (a
    subparser's, made inside it, returns), so a command stops before it does anything."""
    parse_args, parse_known_args = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
    depth = [0]

    def stop_after(parse):
        def wrapper(self, *args, **kwargs):
            depth[0] += 1
            try:
                result = parse(self, *args, **kwargs)
            finally:
                depth[0] -= 1
            if depth[0] == 0:
                raise _Parsed
            return result

        return wrapper

    with mock.patch.multiple(argparse.ArgumentParser, parse_args=stop_after(parse_args),
                             parse_known_args=stop_after(parse_known_args)):
        yield


def _failure(run, stop_after_parsing: bool = False) -> str | None:
    """Why `run()` failed (a UserError, or an exit code != 0 with its last output line); None if it did not,
    or (`stop_after_parsing`) once an argparse parser has parsed."""
    out = io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(out), parse_only() if stop_after_parsing else nullcontext():
            code = run()
    except _Parsed:
        return None
    except UserError as e:
        return str(e)
    except SystemExit as e:
        code = e.code
    lines = out.getvalue().strip().splitlines()
    return f"exit {code}: {lines[-1] if lines else ''}" if code else None


def argparse_problem(name: str, argv: list[str]) -> str | None:
    """Why `jsmp NAME ARGV` does not parse (its own argparse parser, nothing run after it)."""
    if name not in ENTRY:
        return f"no command jsmp {name}"
    module, function = ENTRY[name].split(":")
    return _failure(lambda: getattr(importlib.import_module(module), function)(list(argv)), stop_after_parsing=True)


@functools.cache
def hydra_problem(name: str, argv: tuple[str, ...], conf: Path) -> str | None:
    """Why `jsmp NAME ARGV` (train.py / tune.py) would stop before training: Hydra's parser, the sweeper's
    command-line check, the group files it selects (jsmp.run.groupfiles), a compose against `conf`."""
    from hydra._internal.utils import get_args_parser

    from jsmp.run import cli
    from jsmp.run.groupfiles import check_group_files

    args = [a for a in argv if a.partition("=")[0].lstrip("+") != "best"]  # (+best=PATH: a sweep's file)
    args = cli.tune_argv(args) if name == "tune" else args
    sweeping = name == "tune" or any(a.startswith(("hparams_search=", "-m", "--multirun")) for a in args)

    def check() -> None:
        parsed = get_args_parser().parse_args(args)
        cli.sweeper().check_command_line(args, sweeping=sweeping)
        check_group_files(conf, parsed.overrides)
        cli.check_compose(args, conf)

    return _failure(check)


def command_problem(prog: str, args: list[str], conf: Path) -> str | None:
    """Why the command `PROG ARGS` of a doc would fail before doing its work; None when it passes."""
    if prog in SHELL_STATE:
        return None
    if prog in LAUNCHERS:  # (its own options are its own)
        rest = next((args[i:] for i, a in enumerate(args) if a.endswith(".py") or PYTHON.match(Path(a).name)), None)
        return command_problem(Path(rest[0]).name, rest[1:], conf) if rest else f"{prog} runs no python"
    if PYTHON.match(prog):
        if args[:1] == ["-m"] and len(args) > 1:
            module = args[1]
            if module == "jsmp":
                return command_problem("jsmp", args[2:], conf)
            return argparse_problem(MODULES[module], args[2:]) if module in MODULES else f"no module {module} to check"
        if args[:1] == ["-c"] and len(args) > 1:
            return check_python(args[1])
        prog, args = (Path(args[0]).name, args[1:]) if args else ("", [])
    if prog in ("train.py", "tune.py"):
        return hydra_problem(prog.removesuffix(".py"), tuple(args), conf)
    if prog == "jsmp":
        if args and args[0] in HYDRA_COMMANDS:
            return hydra_problem(args[0], tuple(args[1:]), conf)
        if not args or args[0].startswith("-"):
            from jsmp.cli import main

            return _failure(lambda: main(args), stop_after_parsing=True)
        return argparse_problem(args[0], args[1:])
    if prog == "make":
        unknown, runs = make_commands(args, make_targets())
        if unknown:
            return f"no Makefile target {', '.join(unknown)}"
        return next(filter(None, (command_problem(*program(run), conf) for run in runs)), None)
    return f"not a command this test checks: fix it, or mark the block <!-- doctest: skip {prog} (why) -->"


@pytest.fixture(scope="session")
def doc_conf(tmp_path_factory):
    """doc -> the config dir its commands compose against: conf/, or a copy of it holding the files the doc's
    YAML blocks claim to be."""
    made: dict[str, Path] = {}

    def conf_for(doc: str) -> Path:
        if doc not in made:
            files = [(f, b.text) for b in all_blocks() if b.doc == doc and b.lang in ("yaml", "yml")
                     and (f := claimed_file(b.text))]
            made[doc] = CONF
            if files:
                made[doc] = tmp_path_factory.mktemp("doc-conf") / "conf"
                shutil.copytree(CONF, made[doc])
                for name, text in files:
                    path = made[doc].parent / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text)
        return made[doc]

    return conf_for


def block_problems(block: Block, conf: Path) -> list[str]:
    """Each problem of `block` as `DOC:LINE: what`; the commands of its marker's programs are left out."""
    if block.lang == "python":
        return [f"{block.id}: {p}"] if (p := check_python(block.text)) else []
    if block.lang in ("yaml", "yml"):
        return [f"{block.id}: {p}"] if (p := yaml_problem(block.text, conf)) else []
    found = []
    for line, argv in commands(block):
        prog, args = program(argv)
        if prog not in block.skip_programs and (problem := command_problem(prog, args, conf)):
            found.append(f"{block.doc}:{line}: `{' '.join(argv)}`: {problem}")
    return found


def yaml_problem(text: str, conf: Path) -> str | None:
    """Why a YAML block does not load; one claiming to be conf/GROUP/NAME.yaml is composed as GROUP=NAME."""
    try:
        loaded = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        return f"not YAML: {' '.join(str(e).split())}"
    if not (name := claimed_file(text)):
        config_like = any(isinstance(d, dict) and "defaults" in d for d in loaded) or "@package" in text
        return "a config file that names no path: give it a leading `# conf/GROUP/NAME.yaml` line" \
            if config_like else None
    if (ROOT / name).is_file() and (ROOT / name).read_text() != text:
        return f"{name} is a shipped file: show it as it is, or name a file of your own"
    group, _, option = name.removeprefix("conf/").removesuffix(".yaml").rpartition("/")
    return hydra_problem("train", (f"{group}={option}",), conf) or space_problem(loaded[0])


def space_problem(config) -> str | None:
    """Why the sweeper would refuse a search file's `hydra.sweeper.params` (as its loop reads them)."""
    from hydra_plugins.jsmp_optuna_sweeper.space import parse_space

    params = ((config.get("hydra") or {}).get("sweeper") or {}).get("params") if isinstance(config, dict) else None
    try:
        parse_space([f"{k}={v}" for k, v in (params or {}).items()], n_from_params=len(params or {}))
    except Exception as e:  # (the plugin's SweepError)
        return f"{type(e).__name__}: {e}"
    return None


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_doc_block(block, doc_conf):
    if block.skip and not block.skip_programs:
        pytest.skip(f"{block.id}: {block.skip}")
    problems = block_problems(block, doc_conf(block.doc))
    assert not problems, "\n".join(problems)


BAD_DOC = '''
```yaml
# conf/hparams_search/late_header.yaml
# @package _global_
hydra:
  mode: MULTIRUN
```

```yaml
# @package _global_
# conf/hparams_search/relative.yaml
defaults:
  - override hydra/sweeper: optuna
```

```yaml
defaults:
  - submitit_slurm
```

```bash
python train.py model=nosuch
.venv/bin/python -m jsmp.predict --run RUN --data test.csv --bogus
jsmp data ingest train.csv            # --store missing
make nosuch
make tune ARGS="model=nosuch"
pip install jsmp
python -c "from jsmp.predict import Nothing"
```

```
$ jsmp eval --run RUN
scored ...
$ python tune.py model=mlp hydra.sweeper.n_trials=x
```

<!-- doctest: skip pip (installs) -->
```bash
pip install jsmp
.venv/bin/python train.py hparams_search=good
```

```yaml
# @package _global_

# conf/hparams_search/good.yaml
defaults:
  - override /hydra/sweeper: optuna
hydra:
  sweeper:
    n_trials: 3
    params:
      model.dropout: interval(0, 0.5)
```

```yaml
# @package _global_
# conf/hparams_search/bad_space.yaml
hydra:
  sweeper:
    params:
      model.dropout: interval(0.5)
```
'''


def test_the_checks_find_each_kind_of_mistake(tmp_path):
    """A doc with one mistake of each kind: each is reported, on its line, and the good lines pass."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "bad.md").write_text(BAD_DOC)
    found = blocks(tmp_path / "docs" / "bad.md", tmp_path)
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    for b in found:
        if name := claimed_file(b.text):
            (tmp_path / name).write_text(b.text)
    problems = [p for b in found for p in block_problems(b, conf)]
    expected = [
        ("docs/bad.md:2:", "Hydra ignores its `# @package _global_` (line 2)"),
        ("docs/bad.md:9:", "write `override /hydra/sweeper: optuna`"),
        ("docs/bad.md:16:", "a config file that names no path"),
        ("docs/bad.md:22:", "model=nosuch"),
        ("docs/bad.md:23:", "unrecognized arguments: --bogus"),
        ("docs/bad.md:24:", "the following arguments are required: --store"),
        ("docs/bad.md:25:", "no Makefile target nosuch"),
        ("docs/bad.md:26:", "model=nosuch: no "),
        ("docs/bad.md:27:", "doctest: skip pip"),
        ("docs/bad.md:28:", "jsmp.predict has no Nothing"),
        ("docs/bad.md:34:", "hydra.sweeper.n_trials"),
        ("docs/bad.md:56:", "hydra.sweeper.params.model.dropout=interval(0.5)"),
    ]
    assert len(problems) == len(expected), "\n".join(problems)
    for problem, (where, why) in zip(problems, expected):
        assert problem.startswith(where) and why in problem, problem
    assert [b.skip for b in found] == [None] * 5 + ["installs", None, None]
