"""The report's text: summary.md (tables, per-seed lines, aggregate statistics, notes, figures) and
summary.csv (the rows' numbers), from rows and aggregates computed elsewhere."""

from __future__ import annotations

import json
import math
from pathlib import Path

from harness.io import write_text_atomic
from harness.normalization import NormalizationTable
from harness.report_aggregate import Aggregate, label, phase_names
from harness.report_figures import CURVE_POINTS, LOG_AXIS_SPAN
from harness.report_runs import RunRecord


def write_summary(out: Path, runs: list[RunRecord], rows: list[dict], agg: Aggregate, figures: list[str], *, command: str,
                  machine_note: str, norm: NormalizationTable, reps: int, at: list[tuple[str, float]],
                  comparison: list[str] = ()) -> None:
    """summary.md and summary.csv in `out`; `comparison`: what the runs share and where they differ
    (observation, hosts, calibration; harness.report_fairness), said after the header."""
    import pandas as pd

    lines = _header(runs, rows, command, machine_note, norm, reps) + [line for c in comparison for line in (c, "")] + _main_table(rows) + _at_table(rows, at)
    lines += _per_seed(rows) + _phase_table(rows) + _aggregate_lines(agg)
    incomplete = [f"{r['task']} {r['method']} ({r['config']}) {n}" for r in rows for n in r["not_complete"]]
    lines += ["", "Failed, interrupted or unfinished runs (left out of every number above): " + ("; ".join(incomplete) or "none")]
    lines += agg.notes and ["", "Notes: " + "; ".join(agg.notes)]
    lines += _curves_note(rows) + [f"![{f}]({f})" for f in figures] + _videos(rows)
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    csv_rows = [{k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items() if not k.startswith("_")} for r in rows]
    write_text_atomic(out / "summary.csv", pd.DataFrame(csv_rows).to_csv(index=False))


def _num(value: float, fmt: str = ",.0f") -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def _spread_text(row: dict, prefix: str) -> tuple[str, str]:
    """("mean ± std", "IQM [low, high]") of a spread (harness.stats.spread) stored in `row` under `prefix`."""
    return (f"{_num(row[f'{prefix}_mean'])} ± {_num(row[f'{prefix}_std'])}",
            f"{_num(row[f'{prefix}_iqm'])} [{_num(row[f'{prefix}_iqm_ci_low'])}, {_num(row[f'{prefix}_iqm_ci_high'])}]")


def _header(runs: list[RunRecord], rows: list[dict], command: str, machine_note: str, norm: NormalizationTable, reps: int) -> list[str]:
    machines = sorted({f"{m.run.get('machine', {}).get('cpu', '?')} ({m.run.get('machine', {}).get('cpu_count', '?')} cores)"
                       + (f", GPU {m.run['machine']['gpu']}" if m.run.get("machine", {}).get("gpu") else "") for m in runs})
    gits = sorted({str(m.run.get("machine", {}).get("git")) for m in runs})
    return [
        f"# Report: {', '.join(sorted({r['task'] for r in rows}))}",
        "",
        f"Made by: `{command}`",
        "",
        f"Machine: {machine_note + '; ' if machine_note else ''}{'; '.join(machines)}. Code: {', '.join(gits)}.",
        "",
        f"Final return = deterministic-policy evaluation return (one full episode per eval env) at the last "
        f"evaluation of each run; mean ± sample std (ddof 1) and IQM [95% stratified-bootstrap CI, {reps} resamples, rliable] over "
        f"seeds. With fewer than 4 seeds the IQM trims nothing (it is the mean) and the bootstrap CI lies inside the seeds' "
        f"range: read it as that range, not as a confidence interval. Training return = the paper's plotted quantity: the mean return of the stochastic training policy's last 100 "
        f"finished episodes at the end (mean over seeds; curves_train_return.png over time). Wall-clock is training only "
        f"(evaluation excluded). Normalised score: {norm.describe()}.",
        "",
    ]


def _main_table(rows: list[dict]) -> list[str]:
    lines = [
        "| task | method | config | budget | seeds | final return | IQM [95% CI] | normalised | training return | to threshold (reached, min, env steps) | env steps | s / 1k steps | s / iter | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        to_threshold = (f"≥{_num(r['threshold'])}: {r['threshold_reached']}, {_num(r['time_to_threshold_min'], '.1f')} min, "
                        f"{_num(r['steps_to_threshold'])}") if r["threshold"] is not None else "—"
        lines.append(
            f"| {r['task']} | {r['method']} | {r['config']} | {r['budget']} | {','.join(map(str, r['seeds'])) or '—'} | "
            f"{' | '.join(_spread_text(r, 'final'))} | {_num(r['final_normalized_mean'], '.2f')} | {_num(r['train_return_mean'])} | {to_threshold} | "
            f"{_num(r['env_steps_max'])} | {_num(r['s_per_1k_steps'], '.2f')} | {_num(r['s_per_iteration'], '.2f')} | {_num(r['cpu_rss_peak_mb'])} |"
        )
    return lines


def _at_table(rows: list[dict], at: list[tuple[str, float]]) -> list[str]:
    """Evaluation return at each `--at` wall-clock (absent without `--at`)."""
    if not at:
        return []
    lines = ["", "Evaluation return at equal training wall-clock (each run's last evaluation at or before that time; "
             "— where a run trained for less): mean ± std, IQM [95% CI], per seed", "",
             "| task | method | config | " + " | ".join(f"at {name}" for name, _ in at) + " |", "|---" * (len(at) + 3) + "|"]
    for r in rows:
        cells = []
        for name, _ in at:
            values = r[f"return_at_{name}"]
            cells.append("—" if not values else ", ".join(_spread_text(r, f"return_at_{name}")) + f" ({', '.join(_num(v) for v in values)})")
        lines.append(f"| {r['task']} | {r['method']} | {r['config']} | " + " | ".join(cells) + " |")
    return lines


def _per_seed(rows: list[dict]) -> list[str]:
    lines = ["", "Per seed: final return, and time to the threshold (training minutes, env steps):", ""]
    for r in rows:
        for m, hit in zip(r["_members"], r["_hits"] or [None] * len(r["_members"])):
            where = f"{hit[0] / 60:.1f} min, {hit[1]:,} steps" if hit else "not reached"
            lines.append(f"- {r['task']} {label(r, rows)} seed {m.spec['seed']}: {m.records[-1]['eval_return_mean']:,.0f} "
                         f"after {m.records[-1]['train_wall_s'] / 60:.1f} min / {m.records[-1]['env_steps']:,} steps; threshold: {where}")
    return lines


def _videos(rows: list[dict]) -> list[str]:
    """One GIF per (task, method, config): the final policy of its lowest seed that recorded one."""
    lines = []
    for r in rows:
        member = next((m for m in sorted(r["_members"], key=lambda m: m.spec["seed"]) if m.video), None)
        if member is not None:
            path = (member.copy_path / member.video.name).as_posix()
            lines.append(f"| {r['task']} | {label(r, rows)} | seed {member.spec['seed']} | ![{r['task']} {label(r, rows)}]({path}) |")
    if not lines:
        return []
    return ["", "Final policies (deterministic, one episode, the task's camera; harness/video.py):", "",
            "| task | method | run | video |", "|---|---|---|---|", *lines]


def _phase_table(rows: list[dict]) -> list[str]:
    names = phase_names(rows)
    lines = ["", "Per-iteration phase time [s] (mean over seeds; an iteration is one `iterate` call of the method):", "",
             "| task | method | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for r in rows:
        if r["_members"]:
            lines.append(f"| {r['task']} | {label(r, rows)} | " + " | ".join(f"{r['phase_s_per_iteration'].get(p, 0.0):.3f}" for p in names) + " |")
    return lines


def _aggregate_lines(agg: Aggregate) -> list[str]:
    lines = []
    if agg.iqm:
        lines += ["", "Aggregate IQM of normalised final scores [95% CI]: "
                  + "; ".join(f"{k} {v[0]:.2f} [{v[1][0]:.2f}, {v[1][1]:.2f}]" for k, v in agg.iqm.items())]
    if agg.poi:
        lines += ["", "Probability of improvement: " + "; ".join(f"P({k.replace(',', ' > ')}) = {v[0]:.2f} [{v[1][0]:.2f}, {v[1][1]:.2f}]"
                                                           for k, v in agg.poi.items())]
    elif agg.poi_note:
        lines += ["", f"Probability of improvement: {agg.poi_note}."]
    return lines


def _curves_note(rows: list[dict]) -> list[str]:
    """How the curve figures put seeds of different lengths on one grid, and where each seed ends."""
    x_ends = {f"{label(r, rows)}": sorted(m.records[-1]["env_steps"] for m in r["_members"]) for r in rows if r["_members"]}
    return ["", f"Curves: seeds are interpolated onto a common grid of {CURVE_POINTS} points up to the longest run (geometric "
            f"from the first evaluation after 0, on a log axis, where the shortest run ends over {LOG_AXIS_SPAN:g}x earlier than the longest); a run "
            "contributes up to its last evaluation only, so where runs end at different points the right end rests on fewer "
            "seeds (last env steps per seed: " + "; ".join(f"{k}: {', '.join(f'{s:,}' for s in v)}" for k, v in x_ends.items()) + ").", ""]
