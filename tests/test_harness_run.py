"""`python -m harness run`: bad input, the run folder, resume after an interruption.

Commands run in this process (conftest's `cli`) and so do the runs (`in_process_workers`), except
for the Ctrl-C test, whose point is a terminal's SIGINT reaching `python -m harness run` and its worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.specs import parse_budget, parse_seeds

RUN = [sys.executable, "-m", "harness", "run"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--methods", "nope", "--budget", "1m"], "unknown method 'nope'"),
        (["--methods", "dva", "--tasks", "pendulum", "--budget", "1m"], "unknown task 'pendulum'"),
        (["--methods", "dva", "--budget", "20x"], "malformed budget"),
        (["--methods", "dva", "--budget=-5m"], "malformed budget"),
        (["--methods", "dva", "--budget", "1m", "--seeds", "3-1"], "descending"),
        (["--methods", "dva", "--budget", "1m", "--seeds", "a"], "malformed seeds"),
        (["--methods", "dva", "--budget", "1m", "--preset", "huge"], "unknown preset"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, cli, args, words):
    out = tmp_path / "runs"
    proc = cli("run", *args, "--out", out)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr
    assert not out.exists()


def test_budget_and_seed_parsing():
    assert parse_budget("20m").amount == 1200 and parse_budget("20m").kind == "seconds"
    assert parse_budget("1.5h").amount == 5400
    assert parse_budget("1M-steps").amount == 1_000_000 and parse_budget("1M-steps").kind == "steps"
    assert parse_budget("500k-steps").amount == 500_000
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    with pytest.raises(ValueError):
        parse_seeds("1,1")


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_smoke_run_writes_the_run_folder(tmp_path, cli, in_process_workers):
    args = ["--methods", "shac-state", "--budget", "512-steps", "--preset", "smoke", "--eval-every", "256",
            "--eval-episodes", "2", "--out", tmp_path, "--quiet", "--no-report", "--no-videos"]
    proc = cli("run", *args)
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "cartpole" / "shac-state" / "smoke" / "seed0"
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "complete"
    assert run["config"]["horizon"] == 8 and run["machine"]["cpu_count"] >= 1
    calibration = run["calibration"]  # the host's speed, measured before training (harness/calibration.py)
    assert calibration["encoder_ms"] > 0 and calibration["sim_step_ms"] > 0 and "48 x 48" in calibration["encoder_work"]
    assert run["preset_info"] == {"tuning": "none: seconds-long runs for tests", "modified": False}
    records = _records(folder)
    assert [r["env_steps"] for r in records] == [0, 256, 512]
    last = records[-1]
    for key in ("train_wall_s", "eval_return_mean", "eval_return_std", "train_return_mean", "phase_s", "cpu_rss_peak_mb", "grad_norm_mean"):
        assert key in last
    assert set(last["phase_s"]) >= {"sim_forward", "sim_backward", "actor_update", "critic_update"}
    # rerunning the same command skips the complete run
    again = cli("run", *args)
    assert again.returncode == 0 and "skip" in again.stdout
    assert _records(folder) == records
    # the report reads the folder back: table row, figures, and the run's small files beside it
    report = cli("report", tmp_path, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "| cartpole | shac-state | smoke | 512-steps | 0 |" in summary
    for name in ("curves_steps.png", "curves_wallclock.png", "phases.png"):
        assert (tmp_path / "report" / name).stat().st_size > 1000
    assert (tmp_path / "report" / "runs" / "cartpole" / "shac-state" / "smoke" / "seed0" / "metrics.jsonl").exists()


def test_baselines_run_through_the_harness_and_report(tmp_path, cli, in_process_workers):
    """DrQ-v2 (action repeat, replay) and DAgger (teacher inside the budget) in one grid."""
    proc = cli("run", "--no-report", "--no-videos", "--methods", "drqv2,dagger", "--budget", "512-steps", "--preset", "smoke", "--eval-every", "512",
               "--eval-episodes", "2", "--out", tmp_path, "--quiet")
    assert proc.returncode == 0, proc.stderr
    for method in ("drqv2", "dagger"):
        records = _records(tmp_path / "cartpole" / method / "smoke" / "seed0")
        assert records[0]["env_steps"] == 0 and records[-1]["env_steps"] >= 512
        assert all(isinstance(r["eval_return_mean"], float) for r in records)
    drq = _records(tmp_path / "cartpole" / "drqv2" / "smoke" / "seed0")[-1]
    assert {"replay_sample", "critic_update", "actor_update"} <= set(drq["phase_s"]) and drq["metrics"]["updates"] > 0
    dagger = _records(tmp_path / "cartpole" / "dagger" / "smoke" / "seed0")[-1]
    assert dagger["phase_s"]["teacher_training"] > 0 and dagger["phase_s"]["student_update"] > 0
    report = cli("report", tmp_path, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "| cartpole | drqv2 | smoke |" in summary and "| cartpole | dagger | smoke |" in summary
    assert "replay_sample" in summary and "teacher_training" in summary


def test_a_last_iteration_past_the_budget_completes_with_the_progress_bar_on(tmp_path):
    """The last iteration overshoots the budget (64 steps per iteration, budget 100): the bar must not break the run."""
    from harness.resolved import resolve
    from harness.runner import Run
    from harness.specs import RunSpec

    spec = RunSpec(method="shac-state", task="cartpole", seed=0, preset="smoke", budget="100-steps", eval_every_steps=64, eval_episodes=2)
    assert Run(resolve(spec), tmp_path, quiet=False).execute() == "complete"
    assert _records(tmp_path / "cartpole" / "shac-state" / "smoke" / "seed0")[-1]["env_steps"] == 128


def test_report_over_a_folder_without_runs_exits_2(tmp_path, cli):
    proc = cli("report", tmp_path, "--out", tmp_path / "r")
    assert proc.returncode == 2 and "no run folders" in proc.stderr


def test_ctrl_c_leaves_a_resumable_folder(tmp_path, cli, in_process_workers):
    args = ["--methods", "shac-state", "--budget", "1024-steps", "--preset", "smoke", "--eval-every", "256",
            "--eval-episodes", "2", "--out", str(tmp_path), "--quiet", "--no-report", "--no-videos"]
    # SIGINT back to its default in the child: a process that ignores it (as the test runner may have
    # come to, e.g. under some executors' libraries) passes SIG_IGN on, and Python then never raises
    # KeyboardInterrupt; a terminal's Ctrl-C reaches a grid whose SIGINT is not ignored.
    proc = subprocess.Popen([*RUN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    folder = tmp_path / "cartpole" / "shac-state" / "smoke" / "seed0"
    deadline = time.time() + 240
    while time.time() < deadline:
        if (folder / "metrics.jsonl").exists() and len((folder / "metrics.jsonl").read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    # what a terminal's Ctrl-C does: the grid and its worker both get it, at 512 of the 1,024 steps
    # (two evaluation intervals, seconds of work, are left: the run cannot complete first)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "interrupted"
    interrupted = _records(folder)
    assert (folder / "checkpoint.pt").exists()
    resumed = cli("run", *args)  # the resume, and its run, need no process of their own
    assert resumed.returncode == 0, resumed.stderr
    records = _records(folder)
    steps = [r["env_steps"] for r in records]
    assert steps == sorted(set(steps)), "records duplicated or out of order after resume"
    assert steps[-1] == 1024
    assert records[: len(interrupted)] == interrupted or steps[: len(interrupted)] == [r["env_steps"] for r in interrupted]
    assert json.loads((folder / "run.json").read_text())["status"] == "complete"
