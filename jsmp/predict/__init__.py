"""Stage 6, inference (docs/inference.md): model.py (a run's checkpoint, loaded weights-only, and its
input contract; the runs a multirun dir stands for), predictor.py (Predictor: one run or an ensemble,
the one name for rows.py's RowPredictor (2021: rows one at a time or all at once) and steps.py's
StepPredictor (2024: one time step per call, grouped.py's per-instrument members, online.py's
learning)), submission.py (test file in, submission.csv out), cli.py (`python -m jsmp.predict`)."""

from jsmp.predict.cli import main
from jsmp.predict.model import find_checkpoint, load_model, member_runs
from jsmp.predict.predictor import Predictor
from jsmp.predict.rows import RowPredictor
from jsmp.predict.steps import StepPredictor
from jsmp.predict.submission import read_all, read_test, run_batch, run_online

__all__ = ["Predictor", "RowPredictor", "StepPredictor", "find_checkpoint", "load_model", "main", "member_runs", "read_all",
           "read_test", "run_batch", "run_online"]
