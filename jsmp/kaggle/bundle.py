"""`jsmp kaggle bundle`: a folder to upload as a Kaggle dataset (docs/kaggle.md), written to a temp sibling
and renamed into place when complete:

    kaggle.json         the manifest: competition (2024 or 2021), runs (checkpoint paths, in ensemble order),
                        their sources, target, online learning, torch threads, jsmp version, wheels
    runs/K-NAME/        each run: config.yaml, preprocess.json, checkpoints/CKPT and its CKPT.sha256
    wheels/             jsmp's wheel and its dependencies' (jsmp.kaggle.wheels)
    submission.py       the notebook's script: jsmp.kaggle.serve.main(its folder)
    SHA256SUMS          every file's SHA-256 (`sha256sum -c SHA256SUMS` in the folder)

The runs are opened as the submission will open them (jsmp.predict.Predictor: checkpoints verified against
their checksums and loaded, config.yaml, preprocess.json, one layout, one target), so a run that would fail
on Kaggle fails here, in one line. A checkpoint's bytes are copied as verified, with their checksum.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from jsmp import __version__, checkpoint
from jsmp.files import atomic_path, claim_destination, replace_dir
from jsmp.inputs.spec import PREPROCESS
from jsmp.kaggle import wheels
from jsmp.kaggle.serve import MANIFEST, VERSION
from jsmp.predict.online import OnlineConfig
from jsmp.predict.predictor import Predictor
from jsmp.predict.steps import StepPredictor

SUMS = "SHA256SUMS"
SCRIPT = '''"""Kaggle submission of a jsmp bundle ({competition} competition: {describe}), written by
`jsmp kaggle bundle` (docs/kaggle.md). With this folder added to the notebook as a dataset, no internet:

    !pip install --no-index --no-deps /kaggle/input/BUNDLE/wheels/*.whl
    %run /kaggle/input/BUNDLE/submission.py
"""

import sys
from pathlib import Path

try:
    from jsmp.kaggle.serve import main
except ModuleNotFoundError as e:  # the image lacks one of jsmp's modules: name it, in one line
    print(f"error: this Python has no module {{e.name!r}}, which jsmp needs to serve; bundle again with "
          f"`jsmp kaggle bundle ... --wheels hydra-core omegaconf antlr4-python3-runtime {{e.name}}` "
          f"(its pip name may differ)", file=sys.stderr)
    raise SystemExit(2) from None

main(Path(__file__).resolve().parent)
'''


def is_bundle(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def copy_run(member, dest: Path) -> Path:
    """Member `member`'s config.yaml, preprocess.json and checkpoint (its bytes verified, its checksum
    written beside it) into `dest`; returns the checkpoint's new path."""
    ckpt = dest / "checkpoints" / member.checkpoint.name
    checkpoint.write(ckpt, checkpoint.read_verified(member.checkpoint))
    for name in ("config.yaml", PREPROCESS):
        shutil.copy2(member.run_dir / name, dest / name)
    return ckpt


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def write_sums(folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    (folder / SUMS).write_text("".join(f"{sha256(p)}  {p.relative_to(folder).as_posix()}\n" for p in files))


def bundle(
    runs: Sequence[str],
    out: str,
    names: Sequence[str] = wheels.DEPENDENCIES,
    online: OnlineConfig | None = None,
    threads: int = 1,
) -> dict:
    """Write the bundle of `runs` (run dirs, checkpoint files, multirun dirs: one Predictor, an ensemble when
    several) to folder `out` (absent, empty or an earlier bundle), with the wheels of jsmp and `names`;
    `online`: learn online while serving (2024 runs); `threads`: torch's while serving. Returns the manifest."""
    out_dir = Path(claim_destination(out, "--out", "kaggle bundle", is_bundle, inputs=runs, directory=True))
    root, pins = wheels.source_root(), [wheels.pinned(n) for n in names]
    predictor = Predictor(list(runs), online=online, threads=None)
    with atomic_path(out_dir, lambda tmp, dst: replace_dir(tmp, dst, is_bundle, "--out")) as tmp:
        tmp.mkdir()
        ckpts = [
            copy_run(m, tmp / "runs" / f"{i}-{re.sub(r'[^A-Za-z0-9._-]+', '_', m.run_dir.name)}")
            for i, m in enumerate(predictor.members)
        ]
        built = wheels.build(tmp / "wheels", root, pins)
        competition = "2024" if isinstance(predictor, StepPredictor) else "2021"
        (tmp / "submission.py").write_text(SCRIPT.format(competition=competition, describe=describe(predictor)))
        manifest = {
            "version": VERSION,
            "competition": competition,
            "runs": [c.relative_to(tmp).as_posix() for c in ckpts],
            "sources": [str(m.checkpoint.resolve()) for m in predictor.members],
            "target": getattr(predictor, "target", "action"),
            "online": dataclasses.asdict(online) if online is not None else None,
            "threads": threads,
            "jsmp": __version__,
            "wheels": built,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        write_sums(tmp)
    return manifest


def describe(predictor: Predictor) -> str:
    """The models in words, without the paths of this machine."""
    kinds = [type(m.model).__name__ for m in predictor.members]
    return kinds[0] if len(kinds) == 1 else f"an ensemble of {len(kinds)} runs ({', '.join(kinds)})"
