"""The wheels of a bundle (docs/kaggle.md#wheels): jsmp's own, built from this clone's sources, and those of
dependencies a Kaggle image may lack, at the versions installed here, so that
`pip install --no-index --no-deps BUNDLE/wheels/*.whl` needs no network. `--no-deps`: exactly these wheels
go in, and jsmp's requirements are not resolved against the image, whose versions may be older than
jsmp's pins (optuna, numba) though serving runs on them (it never imports optuna).

DEPENDENCIES, the default: Hydra and OmegaConf (a run's config.yaml names its model class; jsmp.predict
reads it with them) and OmegaConf's parser runtime. Kaggle's images ship torch, lightning, numpy, pandas,
pyarrow, polars and numba but not Hydra; submission.py names a module the image lacks in one line: bundle
again with `--wheels ... X`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import jsmp
from jsmp.errors import UserError

DEPENDENCIES = ("hydra-core", "omegaconf", "antlr4-python3-runtime")
SOURCES = ("pyproject.toml", "README.md", "conf", "jsmp", "hydra_plugins")  # what jsmp's wheel is built from
PURE = ("-py3-none-any.whl", "-py2.py3-none-any.whl")  # wheels for any Python and platform


def source_root() -> Path:
    """The clone jsmp is imported from (its pyproject.toml names jsmp); a UserError for an installed wheel."""
    root = Path(jsmp.__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or 'name = "jsmp"' not in pyproject.read_text():
        raise UserError(
            f"jsmp's wheel: jsmp is imported from {root / 'jsmp'}, not a clone; run `jsmp kaggle bundle` from "
            f"a clone's environment (make install), which builds the wheel from its sources"
        )
    return root


def pip(args: list[str], what: str) -> None:
    """`python -m pip ARGS` (this environment's pip and index); its failure: one line naming `what`."""
    p = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if p.returncode:
        last = next(
            (line.strip() for line in reversed(p.stderr.splitlines()) if line.strip()), f"exit code {p.returncode}"
        )
        raise UserError(f"{what}: pip could not build it ({last})")


def pinned(name: str) -> str:
    """`NAME==VERSION` of the distribution installed here."""
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        raise UserError(
            f"--wheels {name}: not installed in this environment; expected a distribution it has "
            f"(pip list), whose installed version is bundled"
        ) from None


def build(dest: Path, root: Path, pins: list[str]) -> list[str]:
    """jsmp's wheel from clone `root` (source_root) and those of `pins` (`NAME==VERSION`: pinned) into `dest`;
    returns the file names, sorted."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jsmp-wheel-") as tmp:  # a copy: no build/ or egg-info in the clone
        for name in SOURCES:
            src = root / name
            if src.is_dir():
                shutil.copytree(src, Path(tmp) / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(src, Path(tmp) / name)
        pip(["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dest), tmp], "jsmp's wheel")
    if pins:
        pip(["wheel", "-q", "--no-deps", "-w", str(dest), *pins], f"--wheels {' '.join(pins)}")
    return sorted(f.name for f in dest.glob("*.whl"))


def platform_wheels(files: list[str]) -> list[str]:
    """The wheels among `files` built for this Python and platform only (Kaggle's must match them)."""
    return [f for f in files if not f.endswith(PURE)]
