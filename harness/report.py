"""`harness report`: tables, statistics and figures from run folders (every number from `metrics.jsonl`).

What it writes into `--out`:
- `summary.md` / `summary.csv`: per task x method x config, the final evaluation return (mean ± std
  over seeds), its IQM with a 95% stratified-bootstrap CI (rliable), the time and env steps to reach
  the task's threshold, seconds per 1k env steps, peak memory, and which runs failed or are missing;
- `curves_steps.png`, `curves_wallclock.png`: deterministic evaluation return vs env steps and vs
  training wall-clock (evaluation excluded), mean and 95% bootstrap CI over seeds (seaborn);
- `iqm.png`: IQM of normalised scores with CIs; `poi.png`: probability that the focus method
  (`--focus`, default D.Va) beats each other method;
- `phases.png`: seconds per iteration by phase; `grad_norms.png`: the actor gradient norm before
  clipping over training, per seed (log scale; exploding gradients show here);
- `reconstruction_<task>_<method>_<config>.png`: for world-model methods (DreamerV3), the model's
  open-loop prediction of replayed frames next to the truth and their difference, from the
  lowest seed of the group that wrote `reconstruction.npz` (its last evaluation);
- `runs/`: a copy of each run's `run.json`, `metrics.jsonl` (and `reconstruction.npz`), so the
  report can be recomputed.
Scores are normalised with the versioned table `results/normalization.json` (random 0, reference 1).

This module only orders the work: reading run folders (`report_runs`), numbers (`report_aggregate`,
statistics in `harness.stats`), figures (`report_figures`) and text (`report_tables`). None of them
imports a simulator or torch.
"""

from __future__ import annotations

from pathlib import Path

from harness.io import staged_folder
from harness.normalization import NormalizationTable, load_normalization
from harness.report_aggregate import aggregate, summarise
from harness.report_figures import plot_curves, plot_grad_norms, plot_iqm, plot_poi, plot_reconstructions
from harness.report_fairness import calibrated as calibrated_runs
from harness.report_fairness import check_comparable, host_lines, preset_lines, shared_description
from harness.report_figures import plot_phases as _plot_phases  # the name tests/test_cli_validation.py patches to fail half-way
from harness.report_runs import RunRecord, copy_run_files, load_runs
from harness.report_tables import write_summary
from harness.stats import DEFAULT_REPS

__all__ = ["write_report"]

DEFAULT_FOCUS = "dva"


def write_report(paths: list[str | Path], out: str | Path, command: str, machine_note: str = "",
                 threshold: float | None = None, reps: int = DEFAULT_REPS, normalization: str | Path | None = None,
                 at: list[tuple[str, float]] = (), focus: str = DEFAULT_FOCUS, allow_mixed: bool = False,
                 calibrated: bool = False) -> Path:
    """The report of the runs under `paths`, written whole into `out` or not at all (ValueError on bad
    input, and on runs that are not a like-for-like comparison unless `allow_mixed`, harness.report_fairness)."""
    import matplotlib

    matplotlib.use("Agg")

    runs = load_runs(paths)
    mixed = check_comparable(runs, allow_mixed)
    header = shared_description(runs) + host_lines(runs) + preset_lines(runs)
    if mixed:
        header.append("**Mixed comparison (--allow-mixed): these runs differ in more than their method.** " + " ".join(f"{line}." for line in mixed))
    if calibrated:
        runs, note = calibrated_runs(runs)
        header.append(note)
    norm = load_normalization(normalization)
    rows = summarise(runs, norm, reps, threshold, at)
    if not any(r["_members"] for r in rows):
        raise ValueError("no complete run to report: " + "; ".join(f"{r['method']} {n}" for r in rows for n in r["not_complete"]))
    with staged_folder(out) as stage:
        _write_report_files(runs, rows, norm, stage, command, machine_note, reps, at, focus, header)
    return Path(out)


def _write_report_files(runs: list[RunRecord], rows: list[dict], norm: NormalizationTable, out: Path, command: str,
                        machine_note: str, reps: int, at: list[tuple[str, float]], focus: str, header: list[str]) -> None:
    copy_run_files(runs, out)
    figures = plot_curves(rows, out) + [f for f in [_plot_phases(rows, out)] if f] + plot_reconstructions(rows, out)
    grad_figure = plot_grad_norms(rows, out)
    if grad_figure:
        figures.append(grad_figure)
    agg = aggregate(rows, norm, focus, reps)
    if agg.iqm:
        figures.append(plot_iqm(agg.iqm, out))
    if agg.poi:
        figures.append(plot_poi(agg.poi, out))
    write_summary(out, runs, rows, agg, figures, command=command, machine_note=machine_note, norm=norm, reps=reps, at=at,
                  comparison=header)
