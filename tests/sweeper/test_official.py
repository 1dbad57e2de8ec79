"""Search files written for the official hydra-optuna-sweeper run on ours unchanged: one in the
shape of lightning-hydra-template's `hparams_search/*_optuna.yaml` (through train.py) and Hydra's
docs' sphere example (tests/sweeper/sphere_app, a plain Hydra app), both run in this process as their command
lines run them (conftest run_main; the sphere app also once as a user runs it)."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from omegaconf import OmegaConf

from conftest import ROOT, run_main, train_in_process
from hydra_plugins.jsmp_optuna_sweeper._loop import default_study_name, stable_sweep_dir
from hydra_plugins.jsmp_optuna_sweeper.space import override_text, parse_space

SPHERE = Path(__file__).parent / "sphere_app" / "sphere.py"

# lightning-hydra-template's search file shape, with jsmp's keys; its sweeper keys are the official plugin's
# (its lr interval narrowed from (0.0001, 0.1) to rates that never diverge: the sweep allows no failed trial)
LHT_SEARCH = """\
# @package _global_
defaults:
  - override /hydra/sweeper: optuna

optimized_metric: "val/utility_best"

hydra:
  mode: "MULTIRUN"
  sweeper:
    _target_: hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper
    storage: null
    study_name: null
    n_jobs: 1
    direction: maximize
    n_trials: 2
    sampler:
      _target_: optuna.samplers.TPESampler
      seed: 1234
      n_startup_trials: 10
    params:
      model.optimizer.lr: interval(0.0001, 0.002)
      data.batch_size: choice(256, 512)
      model.hidden: choice([64,32],[128,64])
"""


def study_trials(db: Path) -> tuple[list[str], list[optuna.trial.FrozenTrial]]:
    """The names of the studies in the SQLite file `db`, and the trials of its only one."""
    storage = f"sqlite:///{db}"
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    return names, optuna.load_study(study_name=names[0], storage=storage).get_trials()


def test_list_choices_reach_the_job_as_lists():
    space = parse_space(["model.hidden=choice([64,32],[128,64])", "tag=choice(a, '[1]', {k: 1})"])
    assert space.searched["model.hidden"].choices == ("[64,32]", "[128,64]")
    assert override_text("model.hidden", "[64,32]", space.literal["model.hidden"]) == "model.hidden=[64,32]"
    assert space.literal["tag"] == {"{k:1}"}
    assert override_text("tag", "{k:1}", space.literal["tag"]) == "tag={k:1}"
    assert override_text("tag", "[1]", space.literal["tag"]) == "tag='[1]'"  # a quoted string stays a string


@pytest.mark.parametrize("sweep_dir,study,expected", [
    ("multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}", "sphere", "multirun/sphere"),  # Hydra's default
    ("${paths.log_dir}/${task_name}/multiruns/${now:%Y-%m-%d}_${now:%H-%M-%S}", "lht-mlp",
     "${paths.log_dir}/${task_name}/multiruns/lht-mlp"),  # lightning-hydra-template's
    ("${paths.log_dir}/${task_name}/sweeps/${hydra.sweeper.study_name}", "mlp", None),  # stable already
])
def test_a_timestamped_sweep_dir_becomes_the_study_name(sweep_dir, study, expected):
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": sweep_dir}}})
    assert stable_sweep_dir(cfg, study) == expected


@pytest.mark.parametrize("choices,expected", [
    ({"hparams_search": "mnist_optuna", "model": "mlp", "experiment": None}, "mnist_optuna-mlp"),
    ({"hparams_search": "lstm", "model": "lstm", "experiment": "first/place"}, "lstm-first_place"),
    ({"hydra/sweeper": "optuna"}, "sphere"),
])
def test_default_study_name_follows_the_search(choices, expected):
    cfg = OmegaConf.create({"hydra": {"runtime": {"choices": choices}, "job": {"name": "sphere"}}})
    assert default_study_name(cfg) == expected


def test_importing_the_plugins_as_hydra_does_loads_no_optuna():
    code = ("import sys\nfrom hydra.core.plugins import Plugins\nnames = Plugins.instance().class_name_to_class\n"
            "print(sorted(n for n in names if 'optuna' in n), [m for m in ('optuna', 'sqlalchemy') if m in sys.modules])")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert p.stdout.strip() == str([
        "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper",
        "hydra_plugins.jsmp_optuna_sweeper.basic.JsmpBasicSweeper",  # (`-m`'s: jsmp_basic)
    ]) + " []"


def test_lht_search_file_runs_unchanged_and_resumes(tiny_store, tmp_path):
    conf = tmp_path / "myconf" / "hparams_search"
    conf.mkdir(parents=True)
    (conf / "lht.yaml").write_text(LHT_SEARCH)
    args = ["--config-dir", str(tmp_path / "myconf"), "hparams_search=lht", f"data.store={tiny_store}",
            "data.split.gap_days=1", "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "logger=none",
            "callbacks=none"]
    p = train_in_process([*args, "hydra.sweeper.n_trials=1"], {"JSMP_ROOT": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-3000:]
    # study_name: null -> named after the search and model; the timestamped sweep dir -> that name
    multiruns = tmp_path / "logs" / "train" / "multiruns"
    sweep = multiruns / "lht-mlp"
    assert [d.name for d in multiruns.iterdir()] == ["lht-mlp"]
    names, first = study_trials(sweep / "optuna.db")
    assert names == ["lht-mlp"] and len(first) == 1

    # the same command again (the file's n_trials: 2): the study continues
    p = train_in_process(args, {"JSMP_ROOT": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-3000:]
    names, trials = study_trials(sweep / "optuna.db")
    assert names == ["lht-mlp"] and len(trials) == 2 and trials[0].value == first[0].value
    assert [d.name for d in multiruns.iterdir()] == ["lht-mlp"]
    run_dirs = sorted(d for d in sweep.iterdir() if (d / "config.yaml").exists())
    assert len(run_dirs) == 2 and not [d for d in run_dirs if "optuna_trial" in d.name]
    for t in trials:  # each job got its list choice as a list, not the text '[64,32]'
        (run_dir,) = [d for d in run_dirs if d.name.startswith(f"{t.number}_") or d.name == str(t.number)]
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert cfg["model"]["hidden"] == json.loads(t.params["model.hidden"])
        assert cfg["data"]["batch_size"] == t.params["data.batch_size"]
    # optimization_results.yaml as the official plugin writes it
    best = max(trials, key=lambda t: t.value)
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text()) == {
        "name": "optuna", "best_params": best.params, "best_value": best.value}


def sphere(tmp_path: Path, *overrides: str, user: bool = False) -> subprocess.CompletedProcess:
    """`python sphere.py -m OVERRIDES` from tmp_path (Hydra's default dirs land there): in this process (the
    script run as __main__ with that command line), or (user) as a user runs it."""
    argv = [str(SPHERE), "-m", *overrides]
    if user:
        return subprocess.run([sys.executable, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)

    def main(argv: list[str]) -> None:
        cwd, sys_argv = Path.cwd(), sys.argv
        os.chdir(tmp_path)
        sys.argv = argv
        try:
            runpy.run_path(str(SPHERE), run_name="__main__")
        finally:
            os.chdir(cwd)
            sys.argv = sys_argv

    return run_main(main, argv)


def test_hydra_docs_sphere_example_runs_and_resumes(tmp_path):
    p = sphere(tmp_path, "hydra.sweeper.n_trials=5", user=True)
    assert p.returncode == 0, p.stderr[-3000:]
    sweep = tmp_path / "multirun" / "sphere"  # Hydra's multirun/<date>/<time>, stable
    names, trials = study_trials(sweep / "optuna.db")
    assert names == ["sphere"] and len(trials) == 5
    for t in trials:  # range(-5.5, 5.5, step=0.5) and choice(-5, 0, 5), as sampled
        assert t.value == t.params["x"] ** 2 + t.params["y"] ** 2
        assert t.params["y"] in (-5, 0, 5) and -5.5 <= t.params["x"] <= 5.0 and (t.params["x"] * 2).is_integer()
        assert (sweep / str(t.number) / ".hydra" / "overrides.yaml").exists()
    best = min(trials, key=lambda t: t.value)
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text()) == {
        "name": "optuna", "best_params": best.params, "best_value": best.value}
    p = sphere(tmp_path, "hydra.sweeper.n_trials=7")
    assert p.returncode == 0 and len(study_trials(sweep / "optuna.db")[1]) == 7, p.stderr[-3000:]


def test_a_failing_trial_stops_the_sweep_in_one_line(tmp_path):
    p = sphere(tmp_path, "hydra.sweeper.n_trials=3", "error=true", "hydra.sweeper.study_name=broken")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    run_dir = tmp_path / "multirun" / "broken" / "0"
    assert p.stderr.strip().splitlines()[-1] == (
        "error: hydra.sweeper.max_failure_rate=0.0: 1 of n_trials=3 trials failed, more than it allows; the sweep "
        f"stops. Trial 0 failed: RuntimeError: cfg.error is True (run dir {run_dir}, log {run_dir / 'sphere.log'}). "
        "To go on past failed trials, rerun with a higher hydra.sweeper.max_failure_rate (the study resumes)")
    # the job's log has the traceback the console is spared
    log = (run_dir / "sphere.log").read_text()
    assert "Traceback (most recent call last)" in log and log.rstrip().endswith("RuntimeError: cfg.error is True")


def test_a_job_hydra_cannot_compose_is_a_failed_trial(tmp_path):
    p = sphere(tmp_path, "hydra.sweeper.n_trials=2", "nokey=choice(1, 2)")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert p.stderr.strip().splitlines()[-1].startswith(
        "error: hydra.sweeper.max_failure_rate=0.0: 1 of n_trials=2 trials failed, more than it allows; the sweep "
        "stops. Trial 0 failed: ConfigCompositionException: Could not override 'nokey'. To append to your config use +nokey=")


def test_multi_objective_results_list_the_pareto_front(tmp_path):
    p = sphere(tmp_path, "--config-name", "two")
    assert p.returncode == 0, p.stderr[-3000:]
    sweep = tmp_path / "multirun" / "two"
    study = optuna.load_study(study_name="two", storage=f"sqlite:///{sweep / 'optuna.db'}")
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results == {"name": "optuna", "solutions": [{"params": t.params, "values": t.values} for t in study.best_trials]}
    assert len(study.trials) == 6 and results["solutions"]
