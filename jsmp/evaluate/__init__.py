"""Scoring runs on labelled data (docs/evaluation.md): rows.py (which rows: the run's validation days, a
CV fold's, or another store/file), scoring.py (utility, AUC, accuracy, oracle, per-day P&L), report.py
(eval.json, daily_pnl.csv, cumulative_pnl.png in a new dir), cli.py (`python -m jsmp.evaluate`)."""

from jsmp.evaluate.cli import main

__all__ = ["main"]
