"""lightning-hydra-template's habits (jsmp/run/extras.py, jsmp/cli.py): `tags=[a,b]`, `extras.print_config`,
`eval_after_fit`, tab completion of `jsmp train|tune` (Hydra's `-sc`), and `--info plugins` listing each sweeper once."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import ROOT, compose_cfg, process_state_kept, run_cli, run_main, train_in_process
from jsmp.errors import UserError
from jsmp.run.extras import config_tree, print_config, run_tags

JSMP = Path(sys.executable).parent / "jsmp"  # the console script


def complete(line: str, monkeypatch) -> list[str]:
    """What `jsmp -sc query=bash` answers (in this process) when the shell's line is `line`."""
    from jsmp.cli import main

    monkeypatch.setenv("COMP_LINE", line)
    p = run_main(main, ["-sc", "query=bash"])
    assert p.returncode == 0 and p.stderr == "", p.stderr
    return p.stdout.split()


@pytest.mark.parametrize("line,expected", [
    ("jsmp ", ["train", "tune", "eval", "predict", "data", "bench"]),
    ("jsmp t", ["train", "tune"]),
    ("jsmp train trainer.max_ep", ["trainer.max_epochs="]),
    ("jsmp train model=l", ["model=lstm"]),
    ("jsmp train model=lstm model.hid", ["model.hidden="]),  # (the keys of the chosen model)
    ("jsmp tune hydra.sweeper.n_t", ["hydra.sweeper.n_trials="]),  # (tune's search: the Optuna sweeper's keys)
    ("jsmp eval --r", []),  # (not a Hydra command: the shell completes file names)
])
def test_completion_answers_commands_groups_and_keys(line, expected, monkeypatch):
    got = complete(line, monkeypatch)
    assert got == expected if line != "jsmp " else got[:len(expected)] == expected


def test_completion_lists_a_groups_options_as_for_train_py(monkeypatch):
    options = complete("jsmp train model=", monkeypatch)
    assert {"model=mlp", "model=lstm", "model=gru"} <= set(options) and all(o.startswith("model=") for o in options)
    monkeypatch.setenv("COMP_LINE", "python train.py model=")
    assert train_in_process(["-sc", "query=bash"]).stdout.split() == options  # Hydra's own form


@pytest.mark.skipif(not JSMP.is_file(), reason="the jsmp console script is not installed")
def test_the_installed_bash_completion_completes_jsmp_train(tmp_path):
    script = ('eval "$(jsmp -sc install=bash)"\n'
              'COMP_LINE="jsmp train model=l"; COMP_POINT=${#COMP_LINE}; COMP_WORDS=($COMP_LINE); COMP_CWORD=2\n'
              'hydra_bash_completion; echo "${COMPREPLY[@]}"\n')
    env = {"PATH": f"{JSMP.parent}:/usr/bin:/bin", "JSMP_ROOT": str(tmp_path), "HOME": str(tmp_path)}
    p = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "model=lstm", p.stderr


def test_tags_need_no_plus_and_are_labels():
    assert run_tags(compose_cfg(["tags=[baseline,7]"])) == ["baseline", "7"]
    assert run_tags(compose_cfg(["tags=fold0"])) == ["fold0"]
    assert run_tags(compose_cfg([])) == []
    with pytest.raises(UserError, match=r"^tags: expected a list of labels, e.g. tags=\[baseline,fold0\]; got \[\{'a': 1\}\]$"):
        run_tags(compose_cfg(["tags=[{a:1}]"]))


@pytest.mark.parametrize(("override", "column"), [("tags=[baseline,fold0]", "baseline,fold0"), ("tags=fold0", "fold0"),
                                                  ("tags=7", "7"), ("tags=[]", None)])
def test_tags_on_the_command_line_reach_the_hparams_table(override, column):
    from hydra.core.hydra_config import HydraConfig

    from jsmp.run.dashboards import run_hparams

    cfg = compose_cfg([override])
    with process_state_kept():
        HydraConfig.instance().set_config(cfg)  # (the job's overrides: Hydra's)
        params = run_hparams(cfg)
    assert params.get("tags") == column


def test_config_tree_puts_the_groups_first_and_values_beside_their_keys():
    tree = config_tree(compose_cfg(["tags=[a,b]", "model=lstm", "model.hidden=8"])).splitlines()
    branches = [line[4:] for line in tree if line[:1] in "├└"]
    assert tree[0] == "CONFIG" and branches[:7] == ["data", "model", "callbacks", "logger", "trainer", "paths", "extras"]
    assert {"seed: 42", "tags: [a, b]", "eval_after_fit: false", "ckpt_path: null"} <= set(branches)
    assert branches[-1] == tree[-1][4:] and tree[-1].startswith("└── ")
    model = tree[tree.index("├── model") + 1:tree.index("├── callbacks")]
    assert "│   _target_: jsmp.models.lstm.LSTM" in model and "│   hidden: 8" in model


def test_print_config_tags_and_eval_after_fit_in_one_run(tiny_store, tmp_path, train_app):
    p = train_app(f"data.store={tiny_store}", "trainer.max_epochs=2", "logger=none", "tags=[a,b]",
                  "extras.print_config=true", "eval_after_fit=true")
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.startswith("CONFIG\n├── data\n│   _target_: jsmp.run.dataconfig.jsmp_data\n")
    assert f"│   store: {tiny_store}\n" in p.stdout and "├── tags: [a, b]\n" in p.stdout
    run = tmp_path / "run"
    assert OmegaConf.load(run / "config.yaml").tags == ["a", "b"]
    # the best checkpoint scored on the run's validation days: the utility training logged for its epoch
    scored = json.loads((run / "eval-1" / "eval.json").read_text())
    logged = json.loads((run / "metrics.json").read_text())
    assert scored["utility"] == pytest.approx(logged["best/val/utility"], rel=1e-5)
    assert scored["logged_val_utility"]["epoch"] == logged["best_epoch"]
    assert "eval_after_fit: utility " in (run / "train.log").read_text()


def test_eval_after_fit_of_a_cv_run_scores_the_ensemble_of_its_folds(tiny_store, tmp_path, train_app):
    p = train_app(f"data.store={tiny_store}", "trainer.max_epochs=1", "logger=none", "cv_objective=true",
                  "data.cv.folds=2", "data.cv.gap_days=1", "eval_after_fit=true")
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / ".hydra" / "config.yaml").is_file()  # (Hydra's own dir, which is no member)
    scored = json.loads((run / "eval-1" / "eval.json").read_text())
    assert [m["run"] for m in scored["members"]] == [str(run / "fold-0"), str(run / "fold-1")]


@pytest.mark.parametrize("override,message", [
    ("callbacks=none", "error: eval_after_fit=true scores the run's best checkpoint, but callbacks.model_checkpoint is off "
                       "(callbacks=none?); use callbacks=default, or drop eval_after_fit"),
    ("trainer.fast_dev_run=true", "error: eval_after_fit=true: trainer.fast_dev_run saves no checkpoint to score; "
                                  "drop one of them"),
])
def test_eval_after_fit_without_a_checkpoint_is_refused_before_training(override, message, tiny_store, tmp_path, train_app):
    p = train_app(f"data.store={tiny_store}", "logger=none", "eval_after_fit=true", override)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [message]
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_info_lists_each_sweeper_class_once():
    """Hydra's `--info plugins` lists every plugin class its scan found in a module's namespace: jsmp's Optuna
    sweeper is defined once (under the official plugin's name), and its basic sweeper has a name of its own."""
    p = run_cli(["train.py", "--info", "plugins"], env={"JSMP_ROOT": str(ROOT)}, timeout=120)
    listed = p.stdout.split("Sweeper:\n")[1].split("\n\n")[0].split()[1:]  # (after the ---- rule)
    code = ("from hydra.core.plugins import Plugins\nfrom hydra.plugins.sweeper import Sweeper\n"
            "print(*[f'{c.__module__}.{c.__name__}' for c in Plugins.instance().discover(Sweeper)])")
    classes = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                             check=True).stdout.split()
    assert classes == ["hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                       "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper",
                       "hydra_plugins.jsmp_optuna_sweeper.basic.JsmpBasicSweeper"]
    assert listed == ["BasicSweeper", "OptunaSweeper", "JsmpBasicSweeper"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_print_config_uses_rich_on_a_terminal(monkeypatch):
    pytest.importorskip("rich")  # (a dev dependency)
    monkeypatch.setenv("TERM", "xterm-256color")  # (rich leaves out colour for TERM=dumb, NO_COLOR, ...)
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    out = Terminal()
    print_config(compose_cfg(["tags=[a,b]"]), file=out)
    text = out.getvalue()
    assert "\x1b[" in text  # (coloured)
    lines = [re.sub(r"\x1b\[[\d;]*m", "", line).rstrip() for line in text.splitlines()]
    assert lines[:3] == ["CONFIG", "├── data", "│   └── _target_: jsmp.run.dataconfig.jsmp_data"]
    assert "├── tags: [a, b]" in lines and lines[-1] == "└── eval_after_fit: false"  # (a value is text, not markup)
