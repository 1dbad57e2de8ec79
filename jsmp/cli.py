"""`jsmp COMMAND ...` (the console script; `python -m jsmp COMMAND ...` is the same).

Each command is another module's `main(argv)`, imported only when it runs, so `jsmp --help`
imports neither Hydra nor torch.
"""

from __future__ import annotations

import importlib
import os
import sys

from jsmp.errors import EXIT_USAGE, UserError, exit_on_user_error

# command -> (module, function taking the remaining arguments, one-line summary)
COMMANDS = {
    "train": ("jsmp.run.cli", "train_main", "train a model; Hydra overrides as train.py takes them (-m, +best=..., --help)"),
    "tune": ("jsmp.run.cli", "tune_main", "hyper-parameter search with Optuna: train hparams_search=<model> (as tune.py)"),
    "eval": ("jsmp.evaluate.cli", "main", "score runs or a CV multirun on labelled data: utility, AUC, per-day P&L"),
    "predict": ("jsmp.predict.cli", "main", "replay a test file row by row (or --batch) and write a submission"),
    "data": ("jsmp.data.__main__", "run_and_exit", "build and inspect stores: synth, ingest, info, verify"),
    "bench": ("jsmp.bench.__main__", "main", "benchmarks: jsmp bench NAME"),
    "kaggle": ("jsmp.kaggle.cli", "main", "bundle runs for a Kaggle notebook (wheels, submission.py); dry-run it locally"),
}

HELP = f"""usage: jsmp COMMAND [ARGS...]      (python -m jsmp COMMAND ... is the same)

commands:
{chr(10).join(f"  {name:<9}{summary}" for name, (_, _, summary) in COMMANDS.items())}

`jsmp COMMAND --help` describes a command's arguments. train and tune take Hydra overrides,
e.g. `jsmp train model=lstm trainer.max_epochs=5`, `jsmp train -m data.fold=0,1,2,3,4`.
Tab completion of commands and overrides: eval "$(jsmp -sc install=bash)" (bash, zsh; docs/training.md).

Project root: data/ (generated and ingested stores) and logs/ (runs, sweeps) go under
$JSMP_ROOT if it is set, else under the working directory. Sweep trials, launcher jobs and
DDP ranks use the same root. (python train.py in a clone defaults to the clone instead.)
See docs/install.md."""


def main(argv: list[str] | None = None) -> int:
    """Run `jsmp ARGV`; returns the exit code (0 ok, 2 a usage mistake)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else EXIT_USAGE
    if argv[0] == "--version":
        from jsmp import __version__

        print(f"jsmp {__version__}")
        return 0
    if argv[0] in ("-sc", "--shell-completion"):
        return shell_completion(argv[1:])
    return exit_on_user_error(command)(argv[0])(argv[1:]) or 0


def shell_completion(argv: list[str]) -> int:
    """`jsmp -sc install=bash` (Hydra's `-sc`, see `jsmp train --hydra-help`): prints the shell's script
    for `jsmp`. That script runs `jsmp -sc query=bash` with COMP_LINE set to the line being typed:
    the second word completes as a command's name, the words after `jsmp train|tune` as Hydra's
    overrides (config groups and options, keys, values); other commands get none (file names)."""
    line = os.environ.get("COMP_LINE", "")
    words, query = line.split(), any(a.startswith("query") for a in argv)
    if query and len(words) + line.endswith(" ") <= 2:  # (the word being completed is the command's)
        typed = words[1] if len(words) == 2 else ""
        print(" ".join(name for name in COMMANDS if name.startswith(typed)))
        return 0
    name = words[1] if query else "train"  # (install, uninstall: Hydra's script for `jsmp`)
    if name in ("train", "tune"):
        command(name)(["-sc", *argv])
    return 0


def command(name: str):
    """The function that runs `jsmp NAME ...`, imported now; a UserError for an unknown or absent one."""
    if name not in COMMANDS:
        raise UserError(f"unknown command {name!r}; expected one of {', '.join(COMMANDS)} (jsmp --help)")
    module, function, _ = COMMANDS[name]
    try:
        return getattr(importlib.import_module(module), function)
    except ModuleNotFoundError as e:
        if e.name is None or not module.startswith(e.name):  # a missing dependency, not a missing command
            raise
        raise UserError(f"jsmp {name}: this jsmp installation has no {module} (install a jsmp version that has it)") from None
