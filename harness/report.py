"""`harness report`: tables and learning curves from run folders (every number from `metrics.jsonl`).

Curves are the deterministic evaluation return against env steps and against training
wall-clock (evaluation excluded). Seeds are averaged on a common grid that ends at the shortest
seed's last point; the table states each group's range so nothing is cut silently.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.io import write_text_atomic

PHASES = ("sim_forward", "render", "actor_forward", "sim_backward", "actor_update", "critic_update")


@dataclass
class RunRecord:
    folder: Path
    run: dict
    records: list[dict]

    @property
    def key(self) -> tuple[str, str, str]:
        spec = self.run["spec"]
        return spec["task"], self.run["method"], spec["preset"]


def find_runs(paths: list[str | Path]) -> list[RunRecord]:
    runs = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise ValueError(f"{root} does not exist")
        for run_json in sorted(root.rglob("run.json")):
            folder = run_json.parent
            run = json.loads(run_json.read_text())
            metrics = folder / "metrics.jsonl"
            records = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
            runs.append(RunRecord(folder, run, records))
    if not runs:
        raise ValueError(f"no run folders (run.json) under {', '.join(map(str, paths))}")
    return runs


def _curve_on_grid(runs: list[RunRecord], x_key: str, points: int = 50) -> tuple[np.ndarray, np.ndarray]:
    xs = [np.array([r[x_key] for r in run.records], dtype=float) for run in runs]
    ys = [np.array([r["eval_return_mean"] for r in run.records], dtype=float) for run in runs]
    end = min(x[-1] for x in xs)
    grid = np.linspace(0.0, end, points)
    return grid, np.stack([np.interp(grid, x, y) for x, y in zip(xs, ys)])


def _fmt(mean: float, std: float) -> str:
    return f"{mean:,.0f} ± {std:,.0f}"


def summarise(runs: list[RunRecord]) -> list[dict]:
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[run.key].append(run)
    rows = []
    for (task, method, preset), members in sorted(groups.items()):
        done = [m for m in members if m.records and m.run.get("status") == "complete"]
        failed = [m for m in members if m.run.get("status") != "complete"]
        finals = np.array([m.records[-1]["eval_return_mean"] for m in done]) if done else np.array([])
        best = np.array([max(r["eval_return_mean"] for r in m.records) for m in done]) if done else np.array([])
        train = [m.records[-1]["train_return_mean"] for m in done if m.records[-1]["train_return_mean"] is not None]
        iters = sum(m.records[-1]["iteration"] for m in done)
        phase_per_iter = {p: sum(m.records[-1]["phase_s"].get(p, 0.0) for m in done) / max(iters, 1) for p in PHASES}
        rows.append(
            {
                "task": task,
                "method": method,
                "preset": preset,
                "seeds": sorted(m.run["spec"]["seed"] for m in done),
                "failed": [f"seed {m.run['spec']['seed']}: {m.run.get('status')} {m.run.get('failure', {}).get('message', '')}".strip() for m in failed],
                "budget": members[0].run["spec"]["budget"],
                "final_mean": float(finals.mean()) if finals.size else math.nan,
                "final_std": float(finals.std()) if finals.size else math.nan,
                "best_mean": float(best.mean()) if best.size else math.nan,
                "train_return_mean": float(np.mean(train)) if train else math.nan,
                "env_steps": [m.records[-1]["env_steps"] for m in done],
                "train_wall_s": [m.records[-1]["train_wall_s"] for m in done],
                "s_per_iteration": sum(m.records[-1]["train_wall_s"] for m in done) / max(iters, 1),
                "phase_s_per_iteration": phase_per_iter,
                "cpu_rss_peak_mb": max((m.records[-1]["cpu_rss_peak_mb"] for m in done), default=math.nan),
                "runs": [str(m.folder) for m in members],
                "_members": done,
            }
        )
    return rows


def time_to_reach(run: RunRecord, threshold: float) -> tuple[float, int] | None:
    for r in run.records:
        if r["eval_return_mean"] >= threshold:
            return r["train_wall_s"], r["env_steps"]
    return None


def _plot_curves(rows: list[dict], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for x_key, xlabel, name in (
        ("env_steps", "environment steps (simulator control steps)", "curves_steps.png"),
        ("train_wall_s", "training wall-clock [min] (evaluation excluded)", "curves_wallclock.png"),
    ):
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for row in rows:
            if not row["_members"]:
                continue
            grid, ys = _curve_on_grid(row["_members"], x_key)
            x = grid / 60.0 if x_key == "train_wall_s" else grid
            mean, std = ys.mean(0), ys.std(0)
            label = f"{row['method']} ({row['task']}, {row['preset']}, {len(row['seeds'])} seeds)"
            ax.plot(x, mean, label=label)
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("eval return (mean ± std over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        files.append(name)
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    labels = [f"{r['method']}\n{r['task']}/{r['preset']}" for r in rows if r["_members"]]
    left = np.zeros(len(labels))
    for phase in PHASES:
        values = np.array([r["phase_s_per_iteration"][phase] for r in rows if r["_members"]])
        ax.barh(labels, values, left=left, label=phase)
        left += values
    ax.set_xlabel("seconds per iteration (training only)")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(out / "phases.png", dpi=120)
    plt.close(fig)
    files.append("phases.png")
    return files


def _copy_run_files(runs: list[RunRecord], dest: Path) -> None:
    """Keep each run's small files beside the report so anyone can recompute it (never checkpoints)."""
    for run in runs:
        spec = run.run["spec"]
        target = dest / spec["task"] / run.run["method"] / spec["preset"] / f"seed{spec['seed']}"
        if target.resolve() == run.folder.resolve():
            continue
        target.mkdir(parents=True, exist_ok=True)
        for name in ("run.json", "metrics.jsonl"):
            if (run.folder / name).exists():
                shutil.copyfile(run.folder / name, target / name)


def write_report(paths: list[str | Path], out: str | Path, command: str, machine_note: str, threshold: float | None = None) -> Path:
    runs = find_runs(paths)
    rows = summarise(runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _copy_run_files(runs, out / "runs")
    figures = _plot_curves(rows, out)
    lines = [
        f"# Report: {', '.join(sorted({r['task'] for r in rows}))}",
        "",
        f"Made by: `{command}`",
        "",
        f"Machine: {machine_note}",
        "",
        "Returns are deterministic-policy evaluation returns (one full episode per eval env) at the end of",
        "the budget; ± is the std over seeds. Wall-clock is training only (evaluation excluded).",
        "",
        "| task | method | preset | budget | seeds | final eval return | best eval return | train return (last 100 ep.) | env steps | s / iteration | peak RSS [MB] |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        steps = f"{min(r['env_steps']):,}–{max(r['env_steps']):,}" if r["env_steps"] else "—"
        lines.append(
            f"| {r['task']} | {r['method']} | {r['preset']} | {r['budget']} | {','.join(map(str, r['seeds']))} | "
            f"{_fmt(r['final_mean'], r['final_std'])} | {r['best_mean']:,.0f} | {r['train_return_mean']:,.0f} | {steps} | "
            f"{r['s_per_iteration']:.2f} | {r['cpu_rss_peak_mb']:,.0f} |"
        )
    if threshold is not None:
        lines += ["", f"Time to reach an evaluation return of {threshold:,.0f} (per seed):", ""]
        for r in rows:
            for m in r["_members"]:
                hit = time_to_reach(m, threshold)
                where = f"{hit[0] / 60:.1f} min, {hit[1]:,} env steps" if hit else "not reached"
                lines.append(f"- {r['method']} seed {m.run['spec']['seed']}: {where}")
    lines += ["", "Per-iteration phase time [s] (mean over seeds):", "", "| method | " + " | ".join(PHASES) + " |", "|---" * (len(PHASES) + 1) + "|"]
    for r in rows:
        lines.append(f"| {r['method']} | " + " | ".join(f"{r['phase_s_per_iteration'][p]:.3f}" for p in PHASES) + " |")
    failed = [f for r in rows for f in r["failed"]]
    lines += ["", "Failed or unfinished runs: " + ("; ".join(failed) if failed else "none"), ""]
    lines += [f"![{f}]({f})" for f in figures]
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    return out
