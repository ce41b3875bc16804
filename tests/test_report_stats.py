"""Statistics (rliable), normalisation, report input validation and options, reference-return check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.check import make_band
from harness.normalization import load_normalization
from harness.stats import as_score_matrix, iqm_with_ci, probability_of_improvement

SCORES = np.array([[0.1, 0.5], [0.9, 0.4], [0.3, 0.8], [0.7, 0.2], [0.5, 0.6], [1.2, 0.3]])


def test_iqm_and_ci_equal_rliable_called_directly_with_the_same_seed():
    from rliable import library as rly
    from rliable import metrics

    ours = iqm_with_ci({"a": SCORES}, reps=500, seed=3)["a"]
    np.random.seed(3)
    points, cis = rly.get_interval_estimates({"a": SCORES}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=500)
    assert ours[0] == pytest.approx(points["a"][0])
    assert ours[1] == pytest.approx((cis["a"][0, 0], cis["a"][1, 0]))
    # the IQM itself, by hand: the middle half of the 12 sorted scores
    middle = np.sort(SCORES.ravel())[3:9]
    assert ours[0] == pytest.approx(middle.mean())
    assert ours[1][0] < ours[0] < ours[1][1]
    assert iqm_with_ci({"a": SCORES}, reps=500, seed=3)["a"] == ours  # reproducible
    assert iqm_with_ci({"a": SCORES}, reps=500, seed=4)["a"][1] != ours[1]  # and the seed matters


def test_probability_of_improvement_matches_mann_whitney_by_hand():
    x, y = np.array([[3.0], [4.0], [5.0]]), np.array([[1.0], [4.0]])
    # pairs (x > y): 3>1, 4>1, 5>1, 5>4 = 4 wins, 4=4 is a tie (0.5): (4 + 0.5) / 6
    point, (low, high) = probability_of_improvement(x, y, reps=200, seed=0)
    assert point == pytest.approx(4.5 / 6)
    assert 0.0 <= low <= point <= high <= 1.0


@pytest.mark.parametrize(
    "bad, words",
    [([[1.0, 2.0], [3.0]], "ragged"), ([[1.0, float("nan")]], "non-finite"), ([], "non-empty")],
)
def test_scores_must_be_rectangular_and_finite(bad, words):
    with pytest.raises(ValueError, match=words):
        as_score_matrix(bad)


def test_normalization_table_and_band():
    table = load_normalization()
    entry = table.tasks["cartpole"]
    assert table.normalize("cartpole", [entry["random"], entry["reference"]]) == pytest.approx([0.0, 1.0])
    assert table.threshold("cartpole") == 1500.0
    low, high = make_band([100.0, 110.0, 120.0])
    assert low < 100.0 and high > 120.0 and high - low >= 2 * 25.0


def _fake_run(root: Path, seed: int, returns: list[float], steps: list[int] | None = None, status: str = "complete",
              method: str = "dva", config: str = "cpu") -> Path:
    folder = root / "cartpole" / method / config / f"seed{seed}"
    folder.mkdir(parents=True)
    spec = {"task": "cartpole", "method": method, "seed": seed, "preset": "cpu", "budget": "1m"}
    (folder / "run.json").write_text(json.dumps({"spec": spec, "method": method, "status": status}))
    steps = steps or [i * 1000 for i in range(len(returns))]
    lines = [json.dumps({"iteration": i, "env_steps": s, "train_wall_s": float(i), "eval_return_mean": r,
                         "train_return_mean": None, "phase_s": {}, "cpu_rss_peak_mb": 1.0})
             for i, (s, r) in enumerate(zip(steps, returns))]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def _report(cli):
    """`python -m harness report ARGS`, in this process."""
    return lambda *args: cli("report", *args)


@pytest.mark.parametrize(
    "returns, steps, words",
    [([1.0, float("nan")], None, "non-finite eval_return_mean"), ([1.0, 2.0, 3.0], [0, 2000, 1000], "not strictly increasing")],
)
def test_report_refuses_nan_or_disordered_records(tmp_path, _report, returns, steps, words):
    _fake_run(tmp_path / "runs", 0, returns, steps)
    proc = _report(tmp_path / "runs", "--out", tmp_path / "report")
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    assert not (tmp_path / "report").exists()


def test_report_refuses_a_foreign_folder(tmp_path, _report):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "run.json").write_text(json.dumps({"name": "someone else's run"}))
    proc = _report(tmp_path, "--out", tmp_path / "report")
    assert proc.returncode == 2 and "not a harness run folder" in proc.stderr


def test_report_lists_failed_runs_and_puts_ragged_curves_on_one_grid(tmp_path, _report):
    runs = tmp_path / "runs"
    _fake_run(runs, 0, [0.0, 500.0, 1600.0])
    _fake_run(runs, 1, [0.0, 400.0, 900.0, 1700.0])  # a longer run: its tail rests on one seed, not cut
    _fake_run(runs, 2, [0.0], status="failed")
    proc = _report(runs, "--out", tmp_path / "report", "--reps", "200")
    assert proc.returncode == 0, proc.stderr
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "seed 2: failed" in summary
    assert "| cartpole | dva | cpu | 1m | 0,1 | 1,650 ± 71 |" in summary  # sample std (ddof 1) of 1,600 and 1,700
    assert "≥1,500: 2/2" in summary  # both seeds reach the task threshold from the normalisation table
    assert "last env steps per seed: dva: 2,000, 3,000" in summary
    csv = (tmp_path / "report" / "summary.csv").read_text().splitlines()
    assert csv[0].startswith("task,method,config") and len(csv) == 2


def test_each_dva_config_is_compared_with_the_other_methods_but_not_with_another_dva_config(tmp_path, _report):
    runs = tmp_path / "runs"
    for seed in range(2):
        _fake_run(runs, seed, [0.0, 1000.0 + seed], method="dva", config="cpu")
        _fake_run(runs, seed, [0.0, 900.0 + seed], method="dva", config="cpu+abcd1234")
        _fake_run(runs, seed, [0.0, 100.0 + seed], method="shac", config="cpu")
    proc = _report(runs, "--out", tmp_path / "report", "--reps", "200")
    assert proc.returncode == 0, proc.stderr
    line = next(s for s in (tmp_path / "report" / "summary.md").read_text().splitlines() if s.startswith("Probability of improvement"))
    assert line.count("P(") == 2 and "P(dva (cpu) > shac) = 1.00" in line and "P(dva (cpu+abcd1234) > shac) = 1.00" in line, line
    assert (tmp_path / "report" / "poi.png").exists()


def test_focus_picks_the_method_compared_with_the_others_and_an_absent_one_is_said_not_failed(tmp_path, capsys):
    from harness.cli import main

    runs = tmp_path / "runs"
    for seed in range(2):
        for method, final in (("dva", 1000.0), ("shac", 500.0), ("tdmpc2", 100.0)):
            _fake_run(runs, seed, [0.0, final + seed], method=method)

    def probability_line(out: Path) -> str:
        return next(s for s in (out / "summary.md").read_text().splitlines() if s.startswith("Probability of improvement"))

    assert main(["report", str(runs), "--out", str(tmp_path / "shac"), "--reps", "50", "--focus", "shac"]) == 0
    line = probability_line(tmp_path / "shac")
    assert line.count("P(") == 2 and "P(shac > dva) = 0.00" in line and "P(shac > tdmpc2) = 1.00" in line, line
    assert main(["report", str(runs), "--out", str(tmp_path / "absent"), "--reps", "50", "--focus", "drqv2"]) == 0
    assert probability_line(tmp_path / "absent") == "Probability of improvement: none: the focus method drqv2 (--focus) has no scores in the aggregate."
    assert (tmp_path / "absent" / "iqm.png").exists() and not (tmp_path / "absent" / "poi.png").exists()


def test_the_report_modules_import_no_simulator_nor_torch():
    """`harness report` runs where no simulator is installed; a fresh process shows what importing it loads."""
    code = ("import sys; import harness.report, harness.report_runs, harness.report_aggregate, harness.report_figures, "
            "harness.report_tables, harness.stats; "
            "loaded = [m for m in ('warp', 'newton', 'envs', 'methods', 'torch') if m in sys.modules]; "
            "assert not loaded, loaded")
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr


def test_loggers_flatten_records_and_missing_packages_are_a_usage_error(tmp_path, cli):
    import importlib.util

    from harness.loggers import _scalars

    flat = _scalars({"env_steps": 512, "eval_return_mean": 3.5, "eval_returns": [1, 2], "train_return_mean": None,
                     "phase_s": {"render": 0.25}, "metrics": {"actor_loss": -1.0}})
    assert flat == {"train/env_steps": 512.0, "eval/eval_return_mean": 3.5, "phase_s/render": 0.25, "metrics/actor_loss": -1.0}
    if importlib.util.find_spec("wandb") is None:
        proc = cli("run", "--methods", "dva", "--budget", "1m", "--wandb", "--out", tmp_path / "runs")
        assert proc.returncode == 2 and "missing logger package(s): wandb" in proc.stderr
        assert not (tmp_path / "runs").exists()


def test_return_at_a_wall_clock_takes_the_last_eval_before_it_and_skips_shorter_runs(tmp_path, _report):
    runs = tmp_path / "runs"
    _fake_run(runs, 0, [0.0, 500.0, 1600.0])  # evaluations after 0, 1 and 2 s of training
    _fake_run(runs, 1, [0.0, 400.0, 900.0, 1700.0])  # 0 to 3 s
    proc = _report(runs, "--out", tmp_path / "report", "--reps", "200", "--at", "1s", "--at", "2.5s")
    assert proc.returncode == 0, proc.stderr
    row = next(s for s in (tmp_path / "report" / "summary.md").read_text().splitlines() if s.startswith("| cartpole | dva | cpu | 4"))
    at_1s, at_2_5s = row.split(" | ")[3:5]
    assert at_1s.startswith("450 ± 71") and at_1s.endswith("(500, 400)"), row
    assert at_2_5s.startswith("900 ± —") and at_2_5s.endswith("(900) |"), "seed 0 trained 2 s only: left out at 2.5 s"
    bad = _report(runs, "--out", tmp_path / "bad", "--at", "5k-steps")
    assert bad.returncode == 2 and "--at takes a training wall-clock" in bad.stderr, bad.stderr


def _curve_rows(ends: dict[str, int]) -> list[dict]:
    """Report rows with one run each, evaluated every ends/8 steps from 0 to its end."""
    from types import SimpleNamespace

    return [{"method": method, "config": "cpu", "task": "cartpole",
             "_members": [SimpleNamespace(spec={"seed": 0}, records=[{"env_steps": int(e), "eval_return_mean": float(i)}
                                                                     for i, e in enumerate(np.linspace(0, end, 9))])]}
            for method, end in ends.items()]  # fmt: skip


def test_curves_of_very_different_lengths_share_a_log_grid_so_the_short_run_stays_visible():
    from harness.report_figures import curve_frame

    data, log_axis = curve_frame(_curve_rows({"tdmpc2": 10_000, "dagger": 3_800_000}), "env_steps", 1.0)
    short = data[data["method"] == "tdmpc2"]
    assert log_axis
    assert len(short) >= 10  # on a linear grid of 60 points it would get one point, at 0
    assert short["x"].min() == pytest.approx(1_250)  # the grid starts at the first evaluation after 0
    assert short["x"].max() <= 10_000 and data["x"].max() == pytest.approx(3_800_000)  # no extrapolation
    # between evaluations the curve is interpolated: step 5,000 is eval index 4
    assert np.interp(5_000, short["x"], short["return"]) == pytest.approx(4.0, abs=0.05)


def test_curves_of_similar_lengths_keep_a_linear_grid_from_zero():
    from harness.report_figures import CURVE_POINTS, curve_frame

    data, log_axis = curve_frame(_curve_rows({"dva": 2_000_000, "shac-state": 700_000}), "env_steps", 1.0)
    assert not log_axis
    assert data["x"].min() == 0.0 and len(data[data["method"] == "dva"]) == CURVE_POINTS


def test_curve_bands_are_the_per_point_bootstrap_ci_of_the_mean_over_the_seeds_each_point_has():
    """The vectorised band equals scipy's percentile bootstrap point by point, ragged ends included."""
    import pandas as pd
    from scipy.stats import bootstrap

    from harness.report_figures import mean_and_bootstrap_ci

    rng = np.random.default_rng(1)
    rows = [{"method": "a", "seed": s, "x": float(x), "return": rng.normal(x, 1.0)} for s in range(6) for x in range(4) if not (s >= 4 and x == 3)]
    data = pd.DataFrame(rows)
    band = mean_and_bootstrap_ci(data, n_boot=20000).set_index("x")
    for x, group in data.groupby("x"):
        ci = bootstrap((group["return"].to_numpy(),), np.mean, n_resamples=20000, method="percentile", random_state=0).confidence_interval
        assert band.loc[x, "return"] == pytest.approx(group["return"].mean())
        assert band.loc[x, "low"] == pytest.approx(ci.low, abs=0.03) and band.loc[x, "high"] == pytest.approx(ci.high, abs=0.03)
