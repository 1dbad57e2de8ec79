"""A bundle installs with no index into a fresh "Kaggle image" and its submission.py scores there.

The image: a venv whose site-packages reach, through a .pth file, links to this environment's installed
packages (torch, lightning, numpy, pandas, polars, ...) except jsmp and Hydra's stack (hydra, omegaconf,
antlr4 and the plugins on Hydra): what a Kaggle image holds and lacks for jsmp. It lacks optuna too, which
jsmp requires (>= 4.9, newer than an image's may be) but serving never imports: installed with --no-deps,
the bundle needs nothing it does not bring. pip runs with no configuration, no index and only the bundle's
wheels."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import polars as pl
import pytest

from conftest import run_main
from jsmp.data.synthetic_rtmdf import RtmdfSpec, write_parquet
from jsmp.kaggle.cli import main
from jsmp.kaggle.standin import dry_run
from jsmp.kaggle.standin.files import write_2024

ABSENT = ("jsmp", "__editable__", "hydra", "omegaconf", "antlr4", "optuna")  # site-packages entries the image lacks (prefixes)


def image(tmp_path: Path) -> Path:
    """A fresh venv over links to this environment's packages but those ABSENT; returns its python."""
    links = tmp_path / "image-packages"
    links.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith(ABSENT) and entry.suffix != ".pth":
            (links / entry.name).symlink_to(entry)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "venv"], check=True)
    python = tmp_path / "venv" / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "kaggle_image.pth").write_text(f"{links}\n")
    return python


def run(args: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """ARGS in `cwd` with no pip configuration or variables, no PYTHONPATH, no JSMP_ROOT (and ENV added)."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "KAGGLE_", "JSMP_")) and k != "PYTHONPATH"}
    p = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env={**keep, "PIP_CONFIG_FILE": os.devnull, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, (args, p.stdout[-2000:], p.stderr[-3000:])
    return p


@pytest.mark.slow
def test_the_bundle_installs_offline_and_scores_in_a_fresh_image(rtmdf_runs, tmp_path):
    bundle = tmp_path / "bundle"
    p = run_main(main, ["bundle", "--run", str(rtmdf_runs["gru"]), "--out", str(bundle)])  # the default --wheels
    assert p.returncode == 0, p.stderr
    names = sorted(f.name.split("-")[0] for f in (bundle / "wheels").glob("*.whl"))
    assert names == ["antlr4_python3_runtime", "hydra_core", "jsmp", "omegaconf"]
    python = image(tmp_path)
    assert run([python, "-c", "import torch, polars, lightning"], tmp_path).returncode == 0
    for module in ("hydra", "optuna"):
        missing = subprocess.run([python, "-c", f"import {module}"], capture_output=True, text=True)
        assert missing.returncode == 1 and f"No module named '{module}'" in missing.stderr

    def install(*wheels: Path) -> None:
        run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index", "--no-deps", *wheels],
            tmp_path)

    # jsmp alone: the script names the module the image lacks, in one line
    install(*(bundle / "wheels").glob("jsmp-*.whl"))
    p = subprocess.run([python, bundle / "submission.py"], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.splitlines() == [
        "error: this Python has no module 'hydra', which jsmp needs to serve; bundle again with `jsmp kaggle bundle "
        "... --wheels hydra-core omegaconf antlr4-python3-runtime hydra` (its pip name may differ)"]
    install(*sorted((bundle / "wheels").glob("*.whl")))
    site = run(
        [python, "-c", "import jsmp, hydra, omegaconf; print(jsmp.__file__, hydra.__file__, omegaconf.__file__)"],
        tmp_path,
    ).stdout.split()
    venv = tmp_path / "venv"
    assert all(Path(f).is_relative_to(venv) for f in site), site  # installed from the bundle, not reached elsewhere

    comp = write_2024(
        write_parquet(RtmdfSpec(days=30, times=8, symbols=6, seed=3), tmp_path / "synth", partitions=2)
        / "train.parquet",
        tmp_path / "comp",
        26,
        29,
    )
    standin = (
        Path(site[0]).parent / "kaggle" / "standin" / "api"
    )  # the installed wheel's stand-in API, as kaggle_evaluation
    work = tmp_path / "work"
    work.mkdir()
    run([python, bundle / "submission.py"], work, {"PYTHONPATH": str(standin), "JSMP_KAGGLE_DATA": str(comp)})
    here = dry_run(bundle, comp, tmp_path / "here")
    assert pl.read_parquet(work / "submission.parquet").equals(pl.read_parquet(here))
