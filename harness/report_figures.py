"""The report's figures (seaborn, matplotlib, rliable's plots): each `plot_*` saves its figure into
the report folder and returns the file name (None or [] when it had nothing to draw), for summary.md.

matplotlib, seaborn and pandas are imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.report_aggregate import label, phase_names

CURVE_POINTS = 60
LOG_AXIS_SPAN = 20.0  # a curve figure's x axis turns logarithmic when run lengths differ this much


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


def curve_frame(rows: list[dict], x_key: str, scale: float, y_key: str = "eval_return_mean"):
    """Long-form (label, seed, x, return) on one common grid per figure (`_curve_grid`), and whether
    its x axis is logarithmic; a run contributes up to its own last evaluation, never beyond (no
    extrapolation), so the right end may rest on fewer seeds. Records without `y_key` (no training
    episode finished yet) are left out."""
    import pandas as pd

    members = [(r, m) for r in rows for m in r["_members"]]
    grid, log_axis = _curve_grid([m for _, m in members], x_key)
    frames = []
    for row, m in members:
        kept = [r for r in m.records if r.get(y_key) is not None]
        if not kept:
            continue
        xs = np.array([r[x_key] for r in kept], dtype=float)
        ys = np.array([r[y_key] for r in kept], dtype=float)
        inside = grid[(grid <= xs[-1] + 1e-9) & (grid >= xs[0] - 1e-9)]
        frames.append(pd.DataFrame({"method": label(row, rows), "task": row["task"], "seed": m.spec["seed"],
                                    "x": inside / scale, "return": np.interp(inside, xs, ys)}))
    columns = ["method", "task", "seed", "x", "return"]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)), log_axis


def mean_and_bootstrap_ci(data, n_boot: int = 1000, seed: int = 0):
    """Per (method, x): mean over seeds and its 95% percentile-bootstrap CI, seaborn's default band
    (`errorbar=("ci", 95)`, 1000 resamples) computed in one numpy call per method and set of seeds
    present: seaborn loops in Python per point, 15 s for a 3-method report of 60 points."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    frames = []
    for method, group in data.groupby("method", sort=False):
        table = group.pivot_table(index="seed", columns="x", values="return", aggfunc="first")
        values = table.to_numpy()
        present = ~np.isnan(values)
        mean, low, high = np.full(values.shape[1], np.nan), np.full(values.shape[1], np.nan), np.full(values.shape[1], np.nan)
        for pattern in np.unique(present, axis=1).T:  # runs end at different x: resample the seeds each x has
            columns = (present == pattern[:, None]).all(axis=0)
            sub = values[pattern][:, columns]
            resampled = sub[rng.integers(0, sub.shape[0], size=(n_boot, sub.shape[0]))].mean(axis=1)
            mean[columns] = sub.mean(axis=0)
            low[columns], high[columns] = np.percentile(resampled, [2.5, 97.5], axis=0)
        frames.append(pd.DataFrame({"method": method, "x": table.columns.to_numpy(), "return": mean, "low": low, "high": high}))
    return pd.concat(frames, ignore_index=True)


def plot_curves(rows: list[dict], out: Path) -> list[str]:
    import matplotlib.pyplot as plt
    import seaborn as sns

    files = []
    steps_label = "environment steps [millions] (simulator control steps)"
    for x_key, scale, xlabel, name, y_key, ylabel in (
        ("env_steps", 1e6, steps_label, "curves_steps.png", "eval_return_mean", "evaluation return"),
        ("train_wall_s", 60.0, "training wall-clock [min] (evaluation excluded)", "curves_wallclock.png", "eval_return_mean", "evaluation return"),
        # the paper's plotted quantity: the stochastic training policy's episodes, moving average of the last 100
        ("env_steps", 1e6, steps_label, "curves_train_return.png", "train_return_mean", "training-episode return (stochastic, last 100)"),
    ):
        data, log_axis = curve_frame(rows, x_key, scale, y_key)
        if data.empty:
            continue
        tasks = sorted(data["task"].unique())
        fig, axes = plt.subplots(1, len(tasks), figsize=(6.4 * len(tasks), 4.2), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            band = mean_and_bootstrap_ci(data[data["task"] == task])
            methods = list(band["method"].unique())
            palette = dict(zip(methods, sns.color_palette(n_colors=len(methods))))
            sns.lineplot(data=band, x="x", y="return", hue="method", hue_order=methods, palette=palette, errorbar=None, ax=ax)
            for method, method_band in band.groupby("method", sort=False):
                ax.fill_between(method_band["x"], method_band["low"], method_band["high"], color=palette[method], alpha=0.2, linewidth=0)
            ax.set_title(task)
            if log_axis:
                ax.set_xscale("log")
            ax.set_xlabel(xlabel + (", log scale" if log_axis else ""))
            ax.set_ylabel(f"{ylabel}\nmean, 95% CI over seeds")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        files.append(name)
    return files


def plot_grad_norms(rows: list[dict], out: Path) -> str | None:
    """Actor gradient norm before clipping over training (the paper's figure on exploding SHAC
    gradients): the mean over each evaluation window, per seed, log scale."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    frames = [
        pd.DataFrame({"method": label(row, rows), "task": row["task"], "seed": m.spec["seed"],
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


def plot_phases(rows: list[dict], out: Path) -> str | None:
    import matplotlib.pyplot as plt
    import pandas as pd

    if not phase_names(rows):
        return None  # no run recorded phase times
    table = pd.DataFrame({f"{label(r, rows)}\n{r['task']}": r["phase_s_per_iteration"] for r in rows if r["_members"]}).T.fillna(0.0)
    fig, ax = plt.subplots(figsize=(7.0, 0.6 + 0.55 * len(table)))
    table[phase_names(rows)].plot.barh(stacked=True, ax=ax, colormap="tab20")
    ax.set_xlabel("seconds per iteration (training only)")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(out / "phases.png", dpi=120)
    plt.close(fig)
    return "phases.png"


def plot_iqm(iqm: dict[str, tuple[float, tuple[float, float]]], out: Path) -> str:
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


def plot_poi(poi: dict[str, tuple[float, tuple[float, float]]], out: Path) -> str:
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


def plot_reconstructions(rows: list[dict], out: Path) -> list[str]:
    """One figure per group with a world-model video: per sequence, rows truth / model / error
    ((model - truth + 1) / 2, grey = exact), columns time; a line marks where open loop begins."""
    import matplotlib.pyplot as plt

    names = []
    for r in rows:
        members = sorted((m for m in r["_members"] if m.reconstruction), key=lambda m: m.spec["seed"])
        if not members:
            continue
        run = members[0]
        with np.load(run.reconstruction) as video:
            truth, model, context = video["truth"], video["model"], int(video["context"])
        error = ((model.astype(np.float32) - truth.astype(np.float32)) / 255.0 + 1.0) / 2.0
        n, t = truth.shape[:2]
        aspect = truth.shape[-2] / truth.shape[-1]  # a crop_static_rows band is wider than tall
        fig, axes = plt.subplots(3 * n, t, figsize=(0.8 * t, 0.8 * 3 * n * aspect + 0.5), squeeze=False)
        for i in range(n):
            for row, (kind, frames) in enumerate((("truth", truth[i] / 255.0), ("model", model[i] / 255.0), ("error", error[i]))):
                for k in range(t):
                    ax = axes[3 * i + row, k]
                    ax.imshow(np.clip(frames[k].transpose(1, 2, 0), 0, 1), interpolation="nearest")
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if k == context:
                        ax.spines["left"].set_color("red")
                        ax.spines["left"].set_linewidth(2)
                    if k == 0:
                        ax.set_ylabel(kind, fontsize=7)
        fig.suptitle(f"{r['task']} {r['method']} ({r['config']}) seed {run.spec['seed']}, at {run.records[-1]['env_steps']:,} env steps: "
                     f"{context} observed frames, then open-loop prediction (red edge)", fontsize=8)  # fmt: skip
        fig.tight_layout()
        name = f"reconstruction_{r['task']}_{r['method']}_{r['config']}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        names.append(name)
    return names
