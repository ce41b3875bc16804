"""`harness report`: tables, statistics and figures from run folders (every number from `metrics.jsonl`).

What it writes into `--out`:
- `summary.md` / `summary.csv`: per task x method x config, the final evaluation return (mean ± std
  over seeds), its IQM with a 95% stratified-bootstrap CI (rliable), the time and env steps to reach
  the task's threshold, seconds per 1k env steps, peak memory, and which runs failed or are missing;
- `curves_steps.png`, `curves_wallclock.png`: deterministic evaluation return vs env steps and vs
  training wall-clock (evaluation excluded), mean and 95% bootstrap CI over seeds (seaborn);
- `iqm.png`: IQM of normalised scores with CIs; `poi.png`: probability that D.Va beats each method;
- `phases.png`: seconds per iteration by phase; `grad_norms.png`: the actor gradient norm before
  clipping over training, per seed (log scale; exploding gradients show here);
- `reconstruction_<task>_<method>_<config>.png`: for world-model methods (DreamerV3), the model's
  open-loop prediction of replayed frames next to the truth and their difference, from the
  lowest seed of the group that wrote `reconstruction.npz` (its last evaluation);
- `runs/`: a copy of each run's `run.json`, `metrics.jsonl` (and `reconstruction.npz`), so the
  report can be recomputed.
Scores are normalised with the versioned table `results/normalization.json` (random 0, reference 1).
"""

from __future__ import annotations

import json
import math
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.io import staged_folder, write_text_atomic
from harness.normalization import NormalizationTable, load_normalization
from harness.stats import DEFAULT_REPS, iqm_with_ci, probability_of_improvement

# The first-order methods' phases, in pipeline order; other methods' phases (replay sampling,
# teacher training, ...) follow in the order they first appear.
PHASES = ("sim_forward", "render", "actor_forward", "sim_backward", "render_backward", "actor_update", "critic_update")


def phase_names(rows: list[dict]) -> list[str]:
    """PHASES first, then every other phase any row recorded; phases no row spent time in are dropped."""
    seen = [p for r in rows for p in r["phase_s_per_iteration"] if p not in PHASES]
    names = list(PHASES) + list(dict.fromkeys(seen))
    return [p for p in names if any(r["phase_s_per_iteration"].get(p, 0.0) > 0 for r in rows)]
REQUIRED_RECORD_KEYS = ("env_steps", "train_wall_s", "eval_return_mean")
CURVE_POINTS = 60
LOG_AXIS_SPAN = 20.0  # a curve figure's x axis turns logarithmic when run lengths differ this much
FOCUS_METHOD = "dva"


@dataclass
class RunRecord:
    folder: Path
    run: dict
    records: list[dict]

    @property
    def spec(self) -> dict:
        return self.run["spec"]

    @property
    def config_name(self) -> str:
        return self.folder.parent.name  # the preset, or preset+hash when the config was overridden

    @property
    def key(self) -> tuple[str, str, str]:
        return self.spec["task"], self.run["method"], self.config_name

    @property
    def complete(self) -> bool:
        return self.run.get("status") == "complete" and bool(self.records)


def _load_run(run_json: Path) -> RunRecord:
    """A run folder's run.json and metrics.jsonl, checked field by field (ValueError naming file and field)."""
    folder = run_json.parent
    try:
        run = json.loads(run_json.read_text())
    except ValueError as err:
        raise ValueError(f"{run_json} is not valid JSON: {err}") from None
    spec = run.get("spec") if isinstance(run, dict) else None
    if not isinstance(spec, dict) or not {"task", "method", "seed", "preset"} <= set(spec) or "method" not in run:
        raise ValueError(f"{run_json} is not a harness run folder (run.json needs spec.task/method/seed/preset and method)")
    for where, value in (("spec.task", spec["task"]), ("spec.method", spec["method"]), ("spec.preset", spec["preset"]), ("method", run["method"])):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{run_json}: {where} must be a non-empty string, got {value!r}")
    if not _is_int(spec["seed"]) or spec["seed"] < 0:
        raise ValueError(f"{run_json}: spec.seed must be an integer >= 0, got {spec['seed']!r}")
    if "status" in run and not isinstance(run["status"], str):
        raise ValueError(f"{run_json}: status must be a string, got {run['status']!r}")
    records = []
    metrics = folder / "metrics.jsonl"
    if metrics.exists():
        for number, line in enumerate(metrics.read_text().splitlines(), start=1):
            try:
                record = json.loads(line)
            except ValueError:
                raise ValueError(f"{metrics}:{number} is not valid JSON (a torn write?)") from None
            records.append(_checked_record(record, f"{metrics}:{number}"))
        steps = [r["env_steps"] for r in records]
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"{metrics}: env_steps are not strictly increasing (duplicated or out-of-order records)")
    return RunRecord(folder, run, records)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_record(record, where: str) -> dict:
    """One metrics.jsonl record: an object whose env_steps is an integer >= 0, train_wall_s a finite
    number >= 0 and eval_return_mean a finite number."""
    if not isinstance(record, dict):
        raise ValueError(f"{where} is {type(record).__name__}, not a record (an object with {', '.join(REQUIRED_RECORD_KEYS)})")
    missing = [k for k in REQUIRED_RECORD_KEYS if k not in record]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}")
    for key in REQUIRED_RECORD_KEYS:
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{where} has a non-finite {key} ({value!r}); the report refuses NaN and non-numbers")
    if not _is_int(record["env_steps"]) or record["env_steps"] < 0:
        raise ValueError(f"{where}: env_steps must be an integer >= 0, got {record['env_steps']!r}")
    if record["train_wall_s"] < 0:
        raise ValueError(f"{where}: train_wall_s must be >= 0, got {record['train_wall_s']!r}")
    return record


def find_runs(paths: list[str | Path]) -> list[RunRecord]:
    runs = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise ValueError(f"{root} does not exist")
        for run_json in sorted(root.rglob("run.json")):
            if ".submitit" in run_json.parts:
                continue
            runs.append(_load_run(run_json))
    if not runs:
        raise ValueError(f"no run folders (run.json) under {', '.join(map(str, paths))}")
    seen: dict[tuple, Path] = {}
    for run in runs:
        ident = (*run.key, run.spec["seed"])
        if ident in seen:
            raise ValueError(f"the same run appears twice: {seen[ident]} and {run.folder}; report one of them")
        seen[ident] = run.folder
    return runs


# -- per-group numbers -------------------------------------------------------------------------------
def time_to_reach(run: RunRecord, threshold: float) -> tuple[float, int] | None:
    for r in run.records:
        if r["eval_return_mean"] >= threshold:
            return r["train_wall_s"], r["env_steps"]
    return None


# A run stops at its first evaluation past the budget, so its last record sits a little beyond it.
AT_TOLERANCE = 0.01


def return_at(run: RunRecord, seconds: float) -> float | None:
    """The evaluation return the run had after `seconds` of training: its last evaluation at or
    before that time (1% tolerance); None when the run trained for less than that."""
    if not run.records or run.records[-1]["train_wall_s"] < seconds * (1 - AT_TOLERANCE):
        return None
    return [r for r in run.records if r["train_wall_s"] <= seconds * (1 + AT_TOLERANCE)][-1]["eval_return_mean"]


def _spread(prefix: str, values: list[float], method: str, reps: int) -> dict[str, float]:
    """`prefix`_mean, _std, _iqm, _iqm_ci_low, _iqm_ci_high over seeds (NaN when there are none)."""
    if not values:
        return {f"{prefix}_{k}": math.nan for k in ("mean", "std", "iqm", "iqm_ci_low", "iqm_ci_high")}
    iqm, (low, high) = iqm_with_ci({method: np.array(values)}, reps=reps)[method]
    return {f"{prefix}_mean": float(np.mean(values)), f"{prefix}_std": float(np.std(values)),
            f"{prefix}_iqm": iqm, f"{prefix}_iqm_ci_low": low, f"{prefix}_iqm_ci_high": high}  # fmt: skip


def _spread_text(row: dict, prefix: str) -> tuple[str, str]:
    """("mean ± std", "IQM [low, high]") of a `_spread` in `row`."""
    return (f"{_num(row[f'{prefix}_mean'])} ± {_num(row[f'{prefix}_std'])}",
            f"{_num(row[f'{prefix}_iqm'])} [{_num(row[f'{prefix}_iqm_ci_low'])}, {_num(row[f'{prefix}_iqm_ci_high'])}]")


def _group(runs: list[RunRecord]) -> dict[tuple, list[RunRecord]]:
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[run.key].append(run)
    return dict(sorted(groups.items()))


def summarise(runs: list[RunRecord], norm: NormalizationTable, reps: int, threshold: float | None = None,
              at: list[tuple[str, float]] = ()) -> list[dict]:
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
        for label, seconds in at:
            values = [v for v in (return_at(m, seconds) for m in done) if v is not None]
            row[f"return_at_{label}"] = values
            row.update(_spread(f"return_at_{label}", values, method, reps))
        rows.append(row)
    return rows


def _label(row: dict, rows: list[dict]) -> str:
    """`method`, or `method (config)` when one method appears with several configs."""
    configs = {r["config"] for r in rows if r["method"] == row["method"]}
    return row["method"] if len(configs) == 1 else f"{row['method']} ({row['config']})"


def aggregate_scores(rows: list[dict], norm: NormalizationTable) -> tuple[dict[str, np.ndarray], list[str]]:
    """Normalised final scores per method label as (seeds, tasks) over the tasks every method has."""
    notes = []
    by_label: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for row in rows:
        if row["_members"] and norm.has(row["task"]):
            by_label[_label(row, rows)][row["task"]] = list(norm.normalize(row["task"], [m.records[-1]["eval_return_mean"] for m in row["_members"]]))
    if not by_label:
        return {}, ["no normalisation entry for these tasks: no aggregate scores"]
    tasks = sorted(set.intersection(*(set(t) for t in by_label.values())))
    scores = {}
    for label, per_task in by_label.items():
        counts = {len(per_task[t]) for t in tasks}
        if len(counts) != 1:
            notes.append(f"{label}: different seed counts per task ({sorted(counts)}); left out of the aggregate")
            continue
        scores[label] = np.array([per_task[t] for t in tasks]).T
    return scores, notes


# -- figures -----------------------------------------------------------------------------------------
def _curve_grid(members: list, x_key: str) -> tuple[np.ndarray, bool]:
    """The common x grid of one figure and whether its axis is logarithmic. Linear from 0 to the
    longest run; geometric (log axis) when the shortest run ends LOG_AXIS_SPAN times earlier than the
    longest, as on a steps axis where TD-MPC2's 10k control steps meet DAgger's 3.8M: on a linear
    grid of CURVE_POINTS points such a run gets one point and vanishes from the figure."""
    ends = [m.records[-1][x_key] for m in members]
    end = max(ends)
    if min(ends) > 0 and end / min(ends) > LOG_AXIS_SPAN:
        first = min(r[x_key] for m in members for r in m.records if r[x_key] > 0)
        return np.geomspace(first, end, CURVE_POINTS), True
    return np.linspace(0.0, end, CURVE_POINTS), False


def _curve_frame(rows: list[dict], x_key: str, scale: float):
    """Long-form (label, seed, x, return) on one common grid per figure (`_curve_grid`), and whether
    its x axis is logarithmic; a run contributes up to its own last evaluation, never beyond (no
    extrapolation), so the right end may rest on fewer seeds."""
    import pandas as pd

    members = [(r, m) for r in rows for m in r["_members"]]
    grid, log_axis = _curve_grid([m for _, m in members], x_key)
    frames = []
    for row, m in members:
        xs = np.array([r[x_key] for r in m.records], dtype=float)
        ys = np.array([r["eval_return_mean"] for r in m.records], dtype=float)
        inside = grid[grid <= xs[-1] + 1e-9]
        frames.append(pd.DataFrame({"method": _label(row, rows), "task": row["task"], "seed": m.spec["seed"],
                                    "x": inside / scale, "return": np.interp(inside, xs, ys)}))
    return pd.concat(frames, ignore_index=True), log_axis


def _plot_curves(rows: list[dict], out: Path) -> list[str]:
    import matplotlib.pyplot as plt
    import seaborn as sns

    files = []
    for x_key, scale, xlabel, name in (
        ("env_steps", 1e6, "environment steps [millions] (simulator control steps)", "curves_steps.png"),
        ("train_wall_s", 60.0, "training wall-clock [min] (evaluation excluded)", "curves_wallclock.png"),
    ):
        data, log_axis = _curve_frame(rows, x_key, scale)
        tasks = sorted(data["task"].unique())
        fig, axes = plt.subplots(1, len(tasks), figsize=(6.4 * len(tasks), 4.2), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            sns.lineplot(data=data[data["task"] == task], x="x", y="return", hue="method", errorbar=("ci", 95),
                         n_boot=1000, seed=0, ax=ax)
            ax.set_title(task)
            if log_axis:
                ax.set_xscale("log")
            ax.set_xlabel(xlabel + (", log scale" if log_axis else ""))
            ax.set_ylabel("evaluation return (mean, 95% CI over seeds)")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        files.append(name)
    return files


def _plot_grad_norms(rows: list[dict], out: Path) -> str | None:
    """Actor gradient norm before clipping over training (the paper's figure on exploding SHAC
    gradients): the mean over each evaluation window, per seed, log scale."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    frames = [
        pd.DataFrame({"method": _label(row, rows), "task": row["task"], "seed": m.spec["seed"],
                      "minutes": [r["train_wall_s"] / 60.0 for r in m.records if r.get("grad_norm_mean")],
                      "grad norm": [r["grad_norm_mean"] for r in m.records if r.get("grad_norm_mean")]})
        for row in rows for m in row["_members"]
    ]
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if data.empty:
        return None
    tasks = sorted(data["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.4 * len(tasks), 4.0), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        sns.lineplot(data=data[data["task"] == task], x="minutes", y="grad norm", hue="method", units="seed",
                     estimator=None, alpha=0.7, ax=ax)
        ax.set_yscale("log")
        ax.set_title(task)
        ax.set_xlabel("training wall-clock [min]")
        ax.set_ylabel("actor gradient norm before clipping (window mean)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "grad_norms.png", dpi=120)
    plt.close(fig)
    return "grad_norms.png"


def _plot_phases(rows: list[dict], out: Path) -> str | None:
    import matplotlib.pyplot as plt
    import pandas as pd

    if not phase_names(rows):
        return None  # no run recorded phase times
    table = pd.DataFrame({f"{_label(r, rows)}\n{r['task']}": r["phase_s_per_iteration"] for r in rows if r["_members"]}).T.fillna(0.0)
    fig, ax = plt.subplots(figsize=(7.0, 0.6 + 0.55 * len(table)))
    table[phase_names(rows)].plot.barh(stacked=True, ax=ax, colormap="tab20")
    ax.set_xlabel("seconds per iteration (training only)")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(out / "phases.png", dpi=120)
    plt.close(fig)
    return "phases.png"


def _plot_iqm(iqm: dict[str, tuple[float, tuple[float, float]]], out: Path) -> str:
    """rliable's interval-estimate plot of the aggregate IQM per method."""
    import matplotlib.pyplot as plt
    from rliable import plot_utils

    points = {k: np.array([v[0]]) for k, v in iqm.items()}
    cis = {k: np.array([[v[1][0]], [v[1][1]]]) for k, v in iqm.items()}
    fig, _ = plot_utils.plot_interval_estimates(points, cis, metric_names=["IQM"], algorithms=list(iqm),
                                                xlabel="normalised final score (95% CI)", subfigure_width=4.5,
                                                row_height=max(0.6, 1.6 / len(iqm)), xlabel_y_coordinate=-0.35 if len(iqm) < 3 else -0.1)
    fig.savefig(out / "iqm.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return "iqm.png"


def _plot_poi(poi: dict[str, tuple[float, tuple[float, float]]], out: Path) -> str:
    """rliable's probability-of-improvement plot; keys are `X,Y` (method names never contain commas)."""
    import matplotlib.pyplot as plt
    from rliable import plot_utils

    probs = {k: v[0] for k, v in poi.items()}
    cis = {k: np.array([v[1][0], v[1][1]]) for k, v in poi.items()}
    ax = plot_utils.plot_probability_of_improvement(probs, cis, pair_separator=",", figsize=(4.5, 0.6 + 0.5 * len(probs)),
                                                    xticks=[0.0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xlim(-0.02, 1.02)
    ax.figure.savefig(out / "poi.png", dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    return "poi.png"


RECONSTRUCTION = "reconstruction.npz"


def _plot_reconstructions(rows: list[dict], out: Path) -> list[str]:
    """One figure per group with a world-model video: per sequence, rows truth / model / error
    ((model - truth + 1) / 2, grey = exact), columns time; a line marks where open loop begins."""
    import matplotlib.pyplot as plt

    names = []
    for r in rows:
        members = sorted((m for m in r["_members"] if (m.folder / RECONSTRUCTION).exists()), key=lambda m: m.spec["seed"])
        if not members:
            continue
        run = members[0]
        with np.load(run.folder / RECONSTRUCTION) as video:
            truth, model, context = video["truth"], video["model"], int(video["context"])
        error = ((model.astype(np.float32) - truth.astype(np.float32)) / 255.0 + 1.0) / 2.0
        n, t = truth.shape[:2]
        aspect = truth.shape[-2] / truth.shape[-1]  # a crop_static_rows band is wider than tall
        fig, axes = plt.subplots(3 * n, t, figsize=(0.8 * t, 0.8 * 3 * n * aspect + 0.5), squeeze=False)
        for i in range(n):
            for row, (label, frames) in enumerate((("truth", truth[i] / 255.0), ("model", model[i] / 255.0), ("error", error[i]))):
                for k in range(t):
                    ax = axes[3 * i + row, k]
                    ax.imshow(np.clip(frames[k].transpose(1, 2, 0), 0, 1), interpolation="nearest")
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if k == context:
                        ax.spines["left"].set_color("red")
                        ax.spines["left"].set_linewidth(2)
                    if k == 0:
                        ax.set_ylabel(label, fontsize=7)
        fig.suptitle(f"{r['task']} {r['method']} ({r['config']}) seed {run.spec['seed']}, at {run.records[-1]['env_steps']:,} env steps: "
                     f"{context} observed frames, then open-loop prediction (red edge)", fontsize=8)  # fmt: skip
        fig.tight_layout()
        name = f"reconstruction_{r['task']}_{r['method']}_{r['config']}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        names.append(name)
    return names


# -- the report --------------------------------------------------------------------------------------
def _copy_run_files(runs: list[RunRecord], dest: Path) -> None:
    """Keep each run's small files beside the report so anyone can recompute it (never checkpoints)."""
    for run in runs:
        target = dest / run.spec["task"] / run.run["method"] / run.config_name / f"seed{run.spec['seed']}"
        if target.resolve() == run.folder.resolve():
            continue
        target.mkdir(parents=True, exist_ok=True)
        for name in ("run.json", "metrics.jsonl", RECONSTRUCTION):
            if (run.folder / name).exists():
                shutil.copyfile(run.folder / name, target / name)


def _num(value: float, fmt: str = ",.0f") -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def write_report(paths: list[str | Path], out: str | Path, command: str, machine_note: str = "",
                 threshold: float | None = None, reps: int = DEFAULT_REPS, normalization: str | Path | None = None,
                 at: list[tuple[str, float]] = ()) -> Path:
    import matplotlib

    matplotlib.use("Agg")

    runs = find_runs(paths)
    norm = load_normalization(normalization)
    rows = summarise(runs, norm, reps, threshold, at)
    if not any(r["_members"] for r in rows):
        raise ValueError("no complete run to report: " + "; ".join(f"{r['method']} {n}" for r in rows for n in r["not_complete"]))
    with staged_folder(out) as stage:
        _write_report_files(runs, rows, norm, stage, command, machine_note, reps, at)
    return Path(out)


def _write_report_files(runs: list[RunRecord], rows: list[dict], norm: NormalizationTable, out: Path, command: str,
                        machine_note: str, reps: int, at: list[tuple[str, float]]) -> None:
    import pandas as pd

    _copy_run_files(runs, out / "runs")
    figures = _plot_curves(rows, out) + [f for f in [_plot_phases(rows, out)] if f] + _plot_reconstructions(rows, out)
    grad_figure = _plot_grad_norms(rows, out)
    if grad_figure:
        figures.append(grad_figure)

    scores, notes = aggregate_scores(rows, norm)
    iqm = iqm_with_ci(scores, reps=reps) if scores else {}
    if iqm:
        figures.append(_plot_iqm(iqm, out))
    focus = [label for label in scores if label.split(" ")[0] == FOCUS_METHOD]
    # D.Va (each of its configs, when a report holds several, e.g. both renderers) against every
    # other method; D.Va configs are not compared with one another.
    poi = {
        f"{mine},{other}": probability_of_improvement(scores[mine], scores[other], reps=reps)
        for mine in focus
        for other in scores
        if other not in focus
    }
    if poi:
        figures.append(_plot_poi(poi, out))

    machines = sorted({f"{m.run.get('machine', {}).get('cpu', '?')} ({m.run.get('machine', {}).get('cpu_count', '?')} cores)"
                       + (f", GPU {m.run['machine']['gpu']}" if m.run.get("machine", {}).get("gpu") else "") for m in runs})
    gits = sorted({str(m.run.get("machine", {}).get("git")) for m in runs})
    lines = [
        f"# Report: {', '.join(sorted({r['task'] for r in rows}))}",
        "",
        f"Made by: `{command}`",
        "",
        f"Machine: {machine_note + '; ' if machine_note else ''}{'; '.join(machines)}. Code: {', '.join(gits)}.",
        "",
        f"Final return = deterministic-policy evaluation return (one full episode per eval env) at the last "
        f"evaluation of each run; mean ± std and IQM [95% stratified-bootstrap CI, {reps} resamples, rliable] over "
        f"seeds. Wall-clock is training only (evaluation excluded). Normalised score: {norm.describe()}.",
        "",
        "| task | method | config | budget | seeds | final return | IQM [95% CI] | normalised | to threshold (reached, min, env steps) | env steps | s / 1k steps | s / iter | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        to_threshold = (f"≥{_num(r['threshold'])}: {r['threshold_reached']}, {_num(r['time_to_threshold_min'], '.1f')} min, "
                        f"{_num(r['steps_to_threshold'])}") if r["threshold"] is not None else "—"
        lines.append(
            f"| {r['task']} | {r['method']} | {r['config']} | {r['budget']} | {','.join(map(str, r['seeds'])) or '—'} | "
            f"{' | '.join(_spread_text(r, 'final'))} | {_num(r['final_normalized_mean'], '.2f')} | {to_threshold} | "
            f"{_num(r['env_steps_max'])} | {_num(r['s_per_1k_steps'], '.2f')} | {_num(r['s_per_iteration'], '.2f')} | {_num(r['cpu_rss_peak_mb'])} |"
        )
    if at:
        lines += ["", "Evaluation return at equal training wall-clock (each run's last evaluation at or before that time; "
                  "— where a run trained for less): mean ± std, IQM [95% CI], per seed", "",
                  "| task | method | config | " + " | ".join(f"at {label}" for label, _ in at) + " |", "|---" * (len(at) + 3) + "|"]
        for r in rows:
            cells = []
            for label, _ in at:
                values = r[f"return_at_{label}"]
                cells.append("—" if not values else ", ".join(_spread_text(r, f"return_at_{label}")) + f" ({', '.join(_num(v) for v in values)})")
            lines.append(f"| {r['task']} | {r['method']} | {r['config']} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed: final return, and time to the threshold (training minutes, env steps):", ""]
    for r in rows:
        for m, hit in zip(r["_members"], r["_hits"] or [None] * len(r["_members"])):
            where = f"{hit[0] / 60:.1f} min, {hit[1]:,} steps" if hit else "not reached"
            lines.append(f"- {r['task']} {_label(r, rows)} seed {m.spec['seed']}: {m.records[-1]['eval_return_mean']:,.0f} "
                         f"after {m.records[-1]['train_wall_s'] / 60:.1f} min / {m.records[-1]['env_steps']:,} steps; threshold: {where}")
    names = phase_names(rows)
    lines += ["", "Per-iteration phase time [s] (mean over seeds; an iteration is one `iterate` call of the method):", "",
              "| task | method | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for r in rows:
        if r["_members"]:
            lines.append(f"| {r['task']} | {_label(r, rows)} | " + " | ".join(f"{r['phase_s_per_iteration'].get(p, 0.0):.3f}" for p in names) + " |")
    if iqm:
        lines += ["", "Aggregate IQM of normalised final scores [95% CI]: "
                  + "; ".join(f"{k} {v[0]:.2f} [{v[1][0]:.2f}, {v[1][1]:.2f}]" for k, v in iqm.items())]
    if poi:
        lines += ["", "Probability of improvement: " + "; ".join(f"P({k.replace(',', ' > ')}) = {v[0]:.2f} [{v[1][0]:.2f}, {v[1][1]:.2f}]" for k, v in poi.items())]
    incomplete = [f"{r['task']} {r['method']} ({r['config']}) {n}" for r in rows for n in r["not_complete"]]
    lines += ["", "Failed, interrupted or unfinished runs (left out of every number above): " + ("; ".join(incomplete) or "none")]
    lines += notes and ["", "Notes: " + "; ".join(notes)]
    x_ends = {f"{_label(r, rows)}": sorted(m.records[-1]["env_steps"] for m in r["_members"]) for r in rows if r["_members"]}
    lines += ["", f"Curves: seeds are interpolated onto a common grid of {CURVE_POINTS} points up to the longest run (geometric "
              f"from the first evaluation after 0, on a log axis, where the shortest run ends over {LOG_AXIS_SPAN:g}x earlier than the longest); a run "
              "contributes up to its last evaluation only, so where runs end at different points the right end rests on fewer "
              "seeds (last env steps per seed: " + "; ".join(f"{k}: {', '.join(f'{s:,}' for s in v)}" for k, v in x_ends.items()) + ").", ""]
    lines += [f"![{f}]({f})" for f in figures]
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    csv_rows = [{k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items() if not k.startswith("_")} for r in rows]
    write_text_atomic(out / "summary.csv", pd.DataFrame(csv_rows).to_csv(index=False))
