"""The `jsmp` console script (jsmp/cli.py, jsmp/run/cli.py), run as a user runs it: a subprocess in a
working directory that is not the clone."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import ROOT

JSMP = Path(sys.executable).parent / "jsmp"  # the console script `make install` puts beside python
COMMANDS = ["train", "tune", "eval", "predict", "data", "bench", "kaggle"]


def run(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`ARGS...` in `cwd`, JSMP_ROOT unset unless `env` sets it."""
    e = {k: v for k, v in os.environ.items() if k != "JSMP_ROOT"}
    return subprocess.run([str(a) for a in args], cwd=cwd, env={**e, "PYTHONUNBUFFERED": "1", **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def imported_after(code: str, cwd: Path) -> set[str]:
    """Which of the heavy libraries `code` (run in a fresh interpreter) imports."""
    probe = (f"import sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\n"
             "print('loaded:', *[m for m in ('torch', 'lightning', 'numpy', 'pandas', 'hydra') if m in sys.modules], file=sys.stderr)")
    p = run([sys.executable, "-c", probe], cwd)
    (line,) = [line for line in p.stderr.splitlines() if line.startswith("loaded:")]
    return set(line.split()[1:])


def test_help_lists_the_commands_and_the_root_rule(tmp_path):
    p = run([JSMP, "--help"], tmp_path)
    assert p.returncode == 0 and p.stderr == ""
    listed = [line.split()[0] for line in p.stdout.split("commands:\n")[1].split("\n\n")[0].splitlines()]
    assert listed == COMMANDS
    assert "$JSMP_ROOT if it is set, else under the working directory" in " ".join(p.stdout.split())
    assert run([sys.executable, "-m", "jsmp", "--help"], tmp_path).stdout == p.stdout  # python -m jsmp: the same
    assert imported_after("from jsmp.cli import main; main(['--help'])", tmp_path) == set()


def test_no_command_is_usage_on_stderr_exit_2(tmp_path):
    p = run([JSMP], tmp_path)
    assert p.returncode == 2 and p.stdout == "" and p.stderr.startswith("usage: jsmp COMMAND")


def test_unknown_command_is_one_line_exit_2(tmp_path):
    p = run([JSMP, "trian", "model=mlp"], tmp_path)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == "error: unknown command 'trian'; expected one of train, tune, eval, predict, data, bench, kaggle (jsmp --help)\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["train", "tune"])
def test_hydra_help_lists_the_shipped_config_groups_without_torch(command, tmp_path):
    p = run([JSMP, command, "--help"], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.startswith(f"{command} is powered by Hydra.")
    listing = p.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    groups = dict(line.split(": ", 1) for line in listing.splitlines() if ": " in line)
    conf = ROOT / "jsmp" / "conf"
    for group in ("model", "model/optimizer", "logger", "trainer", "experiment"):
        assert groups[group] == ", ".join(sorted(f.stem for f in (conf / group).glob("*.yaml"))), group
    if command == "tune":  # tune = train hparams_search=<model>: the composed config shows the search (the task's score)
        assert "optimized_metric: ${jsmp.score:${oc.select:data.task,action}}_best" in p.stdout
    loaded = imported_after(f"from jsmp.cli import main; main(['{command}', '--help'])", tmp_path)
    assert "hydra" in loaded and not loaded & {"torch", "lightning", "pandas"}


def test_fast_help_lists_groups_as_hydra_does():
    """jsmp.run.cli's help speed-up (one repository copy) changes no listed group or option."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from jsmp.run.cli import CONF_DIR, _one_repository_for_help

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        with _one_repository_for_help():
            fast = hydra.format_config_groups(lambda group: True)
        assert fast == hydra.format_config_groups(lambda group: True)
    sweepers = next(line for line in fast.splitlines() if line.startswith("hydra/sweeper: "))
    assert "jsmp_optuna" in sweepers.split(": ")[1].split(", ") and "\nmodel/optimizer: " in fast


def test_root_is_jsmp_root_else_cwd_for_jsmp_and_the_clone_for_train_py(tmp_path):
    def root(cmd: list, env: dict | None = None) -> str:
        p = run([*cmd, "--cfg", "job", "--resolve"], tmp_path, env)
        assert p.returncode == 0, p.stderr[-2000:]
        return OmegaConf.create(p.stdout).paths.root_dir

    assert root([JSMP, "train"]) == str(tmp_path)
    assert root([JSMP, "tune"], {"JSMP_ROOT": "runs"}) == str(tmp_path / "runs")  # made absolute for child processes
    assert root([sys.executable, ROOT / "train.py"]) == str(ROOT)
    assert root([sys.executable, ROOT / "tune.py"], {"JSMP_ROOT": str(tmp_path / "x")}) == str(tmp_path / "x")


def test_data_bench_predict_are_the_modules_commands(tmp_path):
    p = run([JSMP, "data", "synth", "--store", "tiny", "--days", "4", "--rows-per-day", "20", "--seed", "1"], tmp_path)
    assert p.returncode == 0 and p.stdout == "wrote tiny\n", p.stderr
    assert (tmp_path / "tiny" / "manifest.json").is_file()
    info = run([JSMP, "data", "info", "tiny"], tmp_path)
    assert info.returncode == 0 and info.stdout == run([sys.executable, "-m", "jsmp.data", "info", "tiny"], tmp_path).stdout
    assert "days" in info.stdout
    bad = run([JSMP, "data", "info", "nowhere"], tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and bad.stderr.startswith("error: ")
    bench = run([JSMP, "bench", "--help"], tmp_path)
    assert bench.returncode == 0 and bench.stdout == run([sys.executable, "-m", "jsmp.bench", "--help"], tmp_path).stdout
    predict = run([JSMP, "predict", "--help"], tmp_path)
    assert predict.returncode == 0 and "--run RUN" in predict.stdout and "--batch" in predict.stdout


def test_eval_runs_jsmp_evaluate_or_says_it_is_missing(tmp_path):
    p = run([JSMP, "eval", "--help"], tmp_path)
    if importlib.util.find_spec("jsmp.evaluate") is None:
        assert p.returncode == 2
        assert p.stderr == "error: jsmp eval: this jsmp installation has no jsmp.evaluate.cli (install a jsmp version that has it)\n"
    else:
        assert p.returncode == 0 and "--run" in p.stdout, p.stderr[-2000:]


def test_train_lands_under_the_working_directory(tiny_store, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    p = run([JSMP, "train", f"data.store={tiny_store}", "trainer.max_epochs=1", "logger=none"], work)
    assert p.returncode == 0, p.stderr[-3000:]
    (run_dir,) = (work / "logs" / "train" / "runs").iterdir()
    assert (run_dir / "metrics.json").is_file() and list((run_dir / "checkpoints").glob("best*.ckpt"))
    cfg = OmegaConf.load(run_dir / "config.yaml")
    assert cfg.paths.root_dir == str(work) and cfg.paths.log_dir == str(work / "logs")
    assert sorted(f.name for f in work.iterdir()) == ["logs"]
