"""What `python -m jsmp.evaluate` writes: a new output dir (never an existing one's files) holding
eval.json (the summary), daily_pnl.csv (per-date P&L) and cumulative_pnl.png (the cumulative P&L of
the model with, for an ensemble, each member dashed, and of the model against the oracle), appearing
whole or not at all. For a 2024-layout run: eval.json, daily_r2.csv and daily_r2.png (the R² per date)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from jsmp.errors import UserError
from jsmp.evaluate.scoring import DailyR2
from jsmp.files import atomic_path, claim_destination, replace_dir

JSON, CSV, PNG = "eval.json", "daily_pnl.csv", "cumulative_pnl.png"
R2_CSV, R2_PNG = "daily_r2.csv", "daily_r2.png"  # a 2024-layout run's


def claim_out(out: str | None, run_dir: Path, inputs: list[Path]) -> Path:
    """The output dir, checked before any work: `out` (absent or an empty dir, not an input and
    not containing one), or by default the next free `<run_dir>/eval-<n>` (n = 1, 2, ...)."""
    if out is not None:
        return Path(claim_destination(out, "--out", "eval output", lambda p: False, inputs=inputs, directory=True))
    n = 1 + max((int(p.name[5:]) for p in run_dir.glob("eval-*") if p.name[5:].isdigit()), default=0)
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise UserError(f"{run_dir}: not writable, so the report cannot go to {run_dir}/eval-{n}; pass --out DIR")
    return run_dir / f"eval-{n}"


def daily_table(dates: np.ndarray, pnl: np.ndarray, oracle: np.ndarray, members: dict[str, np.ndarray]) -> str:
    """daily_pnl.csv: date, pnl, cumulative, oracle, oracle_cumulative, then member_<name> (each
    member's daily P&L) for an ensemble; P&L in the utility's units (sum of weight * resp * action)."""
    cols = {"date": dates, "pnl": pnl, "cumulative": np.cumsum(pnl), "oracle": oracle,
            "oracle_cumulative": np.cumsum(oracle), **{f"member_{k}": v for k, v in members.items()}}
    lines = [",".join(cols)]
    for i in range(len(dates)):
        lines.append(",".join([str(int(dates[i])), *(repr(float(v[i])) for k, v in cols.items() if k != "date")]))
    return "\n".join(lines) + "\n"


def plot(path: Path, dates: np.ndarray, pnl: np.ndarray, oracle: np.ndarray, members: dict[str, np.ndarray],
         title: str) -> None:
    """Cumulative P&L by date, two panels: the model (solid) with each member (dashed) on its own
    scale, and the model against the oracle (grey), whose scale is usually several times larger."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 7), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    name = "ensemble" if members else "model"
    for k, p in members.items():
        top.plot(dates, np.cumsum(p), linestyle="--", linewidth=1, label=f"member {k}")
    bottom.plot(dates, np.cumsum(oracle), color="0.6", label="oracle (trade when resp > 0)")
    for ax in (top, bottom):
        ax.plot(dates, np.cumsum(pnl), color="black", linewidth=2, label=name)
        ax.axhline(0, color="0.8", linewidth=0.8)
        ax.set_ylabel("cumulative P&L")
        ax.legend(loc="upper left", fontsize="small")
    top.set_title(title)
    bottom.set_xlabel("date (P&L per date: sum of weight × resp × action)")
    fig.savefig(path, dpi=100)


def r2_table(d: DailyR2, members: dict[str, np.ndarray]) -> str:
    """daily_r2.csv: date, r2 (that date's weighted zero-mean R²), rows, weight (Σ w of its rows), then
    member_<name> (each member's R² of the date) for an ensemble."""
    lines = [",".join(["date", "r2", "rows", "weight", *(f"member_{k}" for k in members)])]
    lines += [",".join([f"{int(t)},{float(r)!r},{int(n)},{float(w)!r}", *(repr(float(v[i])) for v in members.values())])
              for i, (t, r, n, w) in enumerate(zip(d.dates, d.daily, d.rows, d.weight))]
    return "\n".join(lines) + "\n"


def plot_r2(path: Path, d: DailyR2, title: str) -> None:
    """Each date's R² (bars, negative ones red) with the R² over all dates (a black line)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.bar(d.dates, d.daily, width=0.8, color=np.where(d.daily < 0, "tab:red", "tab:blue"), label="R² of the date")
    ax.axhline(d.r2, color="black", linewidth=1.5, label=f"R² over all dates ({d.r2:.4f})")
    ax.axhline(0, color="0.8", linewidth=0.8)
    ax.set_xlabel("date")
    ax.set_ylabel("weighted zero-mean R²")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    fig.savefig(path, dpi=100)


def write_report(out: Path, summary: dict, csv: str, draw, names: tuple[str, str] = (CSV, PNG)) -> None:
    """Write eval.json, the CSV `csv` and (by `draw(path)`) the PNG, named `names` (default daily_pnl.csv,
    cumulative_pnl.png), into a temp dir that becomes `out` whole."""
    with atomic_path(out, replace=lambda tmp, dst: replace_dir(tmp, dst, lambda p: False, "--out")) as tmp:
        tmp.mkdir()
        (tmp / JSON).write_text(json.dumps(summary, indent=1) + "\n")
        (tmp / names[0]).write_text(csv)
        draw(tmp / names[1])
