"""A report's numbers: one row per task x method x config over its seeds, aggregate scores, and the
focus method's probability of improvement. The statistics themselves come from `harness.stats`."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from harness.normalization import NormalizationTable
from harness.report_runs import RunRecord
from harness.stats import iqm_with_ci, probability_of_improvement, spread

# The first-order methods' phases, in pipeline order; other methods' phases (replay sampling,
# teacher training, ...) follow in the order they first appear.
PHASES = ("sim_forward", "render", "actor_forward", "sim_backward", "render_backward", "actor_update", "critic_update")
# A run stops at its first evaluation past the budget, so its last record sits a little beyond it.
AT_TOLERANCE = 0.01


def phase_names(rows: list[dict]) -> list[str]:
    """PHASES first, then every other phase any row recorded; phases no row spent time in are dropped."""
    seen = [p for r in rows for p in r["phase_s_per_iteration"] if p not in PHASES]
    names = list(PHASES) + list(dict.fromkeys(seen))
    return [p for p in names if any(r["phase_s_per_iteration"].get(p, 0.0) > 0 for r in rows)]


def time_to_reach(run: RunRecord, threshold: float) -> tuple[float, int] | None:
    """(training seconds, env steps) of the run's first evaluation at or above `threshold`."""
    for r in run.records:
        if r["eval_return_mean"] >= threshold:
            return r["train_wall_s"], r["env_steps"]
    return None


def return_at(run: RunRecord, seconds: float) -> float | None:
    """The evaluation return the run had after `seconds` of training: its last evaluation at or
    before that time (1% tolerance); None when the run trained for less than that."""
    if not run.records or run.records[-1]["train_wall_s"] < seconds * (1 - AT_TOLERANCE):
        return None
    return [r for r in run.records if r["train_wall_s"] <= seconds * (1 + AT_TOLERANCE)][-1]["eval_return_mean"]


def label(row: dict, rows: list[dict]) -> str:
    """`method`, or `method (config)` when one method appears with several configs."""
    configs = {r["config"] for r in rows if r["method"] == row["method"]}
    return row["method"] if len(configs) == 1 else f"{row['method']} ({row['config']})"


def _spread(prefix: str, values: list[float], method: str, reps: int) -> dict[str, float]:
    """`prefix`_mean, _std, _iqm, _iqm_ci_low, _iqm_ci_high over seeds (NaN when there are none)."""
    return {f"{prefix}_{k}": v for k, v in spread(values, method, reps=reps).items()}


def _group(runs: list[RunRecord]) -> dict[tuple, list[RunRecord]]:
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[run.key].append(run)
    return dict(sorted(groups.items()))


def summarise(runs: list[RunRecord], norm: NormalizationTable, reps: int, threshold: float | None = None,
              at: list[tuple[str, float]] = ()) -> list[dict]:
    """One row per (task, method, config): complete seeds in `_members`, incomplete ones listed by status."""
    rows = []
    for (task, method, config), members in _group(runs).items():
        done = sorted((m for m in members if m.complete), key=lambda m: m.spec["seed"])
        not_done = [m for m in members if not m.complete]
        finals = np.array([m.records[-1]["eval_return_mean"] for m in done])
        row: dict = {
            "task": task, "method": method, "config": config, "budget": members[0].spec["budget"],
            "seeds": [m.spec["seed"] for m in done],
            "not_complete": [f"seed {m.spec['seed']}: {m.run.get('status')}"
                             + (f" ({m.run['failure']['message']})" if m.run.get("failure") else "") for m in not_done],
            "_members": done,
        }
        row.update(_spread("final", finals.tolist(), method, reps))
        row["final_normalized_mean"] = float(np.mean(norm.normalize(task, finals))) if finals.size and norm.has(task) else math.nan
        row["train_return_mean"] = float(np.mean([m.records[-1]["train_return_mean"] for m in done if m.records[-1].get("train_return_mean") is not None] or [math.nan]))
        row["env_steps_max"] = max((m.records[-1]["env_steps"] for m in done), default=0)
        row["train_wall_s_max"] = max((m.records[-1]["train_wall_s"] for m in done), default=0.0)
        total_steps = sum(m.records[-1]["env_steps"] for m in done)
        total_train = sum(m.records[-1]["train_wall_s"] for m in done)
        iterations = sum(m.records[-1].get("iteration", 0) for m in done)
        row["s_per_1k_steps"] = 1000.0 * total_train / total_steps if total_steps else math.nan
        row["s_per_iteration"] = total_train / iterations if iterations else math.nan
        recorded = list(dict.fromkeys(p for m in done for p in m.records[-1].get("phase_s", {})))
        row["phase_s_per_iteration"] = {
            p: sum(m.records[-1].get("phase_s", {}).get(p, 0.0) for m in done) / iterations if iterations else 0.0 for p in recorded
        }
        row["cpu_rss_peak_mb"] = max((m.records[-1].get("cpu_rss_peak_mb", math.nan) for m in done), default=math.nan)
        row["gpu_mem_peak_mb"] = max((m.records[-1].get("gpu_mem_peak_torch_mb", math.nan) for m in done), default=math.nan)
        level = threshold if threshold is not None else norm.threshold(task)
        row["threshold"] = level
        hits = [time_to_reach(m, level) for m in done] if level is not None else []
        reached = [h for h in hits if h is not None]
        row["threshold_reached"] = f"{len(reached)}/{len(done)}" if level is not None else ""
        row["time_to_threshold_min"] = float(np.mean([h[0] for h in reached]) / 60.0) if reached else math.nan
        row["steps_to_threshold"] = float(np.mean([h[1] for h in reached])) if reached else math.nan
        row["_hits"] = hits
        for name, seconds in at:
            values = [v for v in (return_at(m, seconds) for m in done) if v is not None]
            row[f"return_at_{name}"] = values
            row.update(_spread(f"return_at_{name}", values, method, reps))
        rows.append(row)
    return rows


def aggregate_scores(rows: list[dict], norm: NormalizationTable) -> tuple[dict[str, np.ndarray], list[str]]:
    """Normalised final scores per method label as (seeds, tasks) over the tasks every method has."""
    notes = []
    by_label: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for row in rows:
        if row["_members"] and norm.has(row["task"]):
            by_label[label(row, rows)][row["task"]] = list(norm.normalize(row["task"], [m.records[-1]["eval_return_mean"] for m in row["_members"]]))
    if not by_label:
        return {}, ["no normalisation entry for these tasks: no aggregate scores"]
    tasks = sorted(set.intersection(*(set(t) for t in by_label.values())))
    scores = {}
    for name, per_task in by_label.items():
        counts = {len(per_task[t]) for t in tasks}
        if len(counts) != 1:
            notes.append(f"{name}: different seed counts per task ({sorted(counts)}); left out of the aggregate")
            continue
        scores[name] = np.array([per_task[t] for t in tasks]).T
    return scores, notes


def improvement_of_focus(scores: dict[str, np.ndarray], focus: str, reps: int) -> tuple[dict, str | None]:
    """P(focus > other) with its CI, keyed `focus,other`, for each config of the focus method (when a
    report holds several, e.g. both renderers) against every other method; the focus method's configs
    are not compared with one another. When other methods have scores but the focus method has none,
    no comparison and the reason why instead."""
    mine = [name for name in scores if name.split(" ")[0] == focus]
    if not mine:
        reason = f"none: the focus method {focus} (--focus) has no scores in the aggregate" if len(scores) > 1 else None
        return {}, reason
    poi = {f"{a},{b}": probability_of_improvement(scores[a], scores[b], reps=reps) for a in mine for b in scores if b not in mine}
    return poi, None


@dataclass
class Aggregate:
    """The across-method numbers: IQM [CI] of normalised final scores per method label, the focus
    method's probabilities of improvement (or why there are none), and what was left out and why."""

    iqm: dict[str, tuple[float, tuple[float, float]]]
    poi: dict[str, tuple[float, tuple[float, float]]]
    poi_note: str | None
    notes: list[str]


def aggregate(rows: list[dict], norm: NormalizationTable, focus: str, reps: int) -> Aggregate:
    scores, notes = aggregate_scores(rows, norm)
    iqm = iqm_with_ci(scores, reps=reps) if scores else {}
    poi, poi_note = improvement_of_focus(scores, focus, reps)
    return Aggregate(iqm, poi, poi_note, notes)
