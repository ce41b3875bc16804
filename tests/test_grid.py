"""Grids through the executors: dry run, crash isolation, resume after kill -9, submitit's local mode.

Commands whose process is not the point run in this process (conftest's `cli`); grids that are
killed, run twice at once or go through submitit start real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.executors import GridOptions, execute_grid
from harness.resolved import ResolvedRun, resolve
from harness.specs import RunSpec, parse_overrides
from harness.store import RunFolder

RUN = [sys.executable, "-m", "harness", "run"]
SMOKE = ["--preset", "smoke", "--eval-episodes", "2", "--quiet", "--no-report", "--no-videos"]


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _smoke_spec(method: str, seed: int = 0, steps: int = 1024, **overrides) -> ResolvedRun:
    return resolve(RunSpec(method, "cartpole", seed, "smoke", f"{steps}-steps", "cpu", 512, 2, overrides))


def run_dir(root: Path, run: ResolvedRun) -> Path:
    return RunFolder.of(root, run.run_id).path


def plan_action(folder: Path) -> str:
    return RunFolder(folder).plan()


def test_dry_run_expands_the_grid_resolves_aliases_and_writes_nothing(tmp_path, cli):
    out = tmp_path / "runs"
    proc = cli("run", "--methods", "dva,shac-state", "--seeds", "0-2", "--budget", "1m", "--dry-run", "--out", out)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines() if "cartpole/" in line]
    assert [(a, rid) for a, rid, *_ in lines] == [
        ("start", f"cartpole/{m}/cpu/seed{s}") for m in ("dva", "shac-state") for s in range(3)
    ]
    assert "6 run(s): 6 start" in proc.stdout
    assert not out.exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--executor", "pbs"], "unknown executor 'pbs'"),
        (["--workers", "0"], "argument --workers"),
        (["--override", "actor_lr"], "malformed override"),
        (["--override", "no_such_key=1"], "unknown config key"),
        (["--override", "actor_lr=fast"], "wrong type"),
    ],
)
def test_bad_grid_options_exit_2_and_write_nothing(tmp_path, cli, args, words):
    out = tmp_path / "runs"
    proc = cli("run", "--methods", "dva", "--budget", "1m", "--out", out, *args)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr
    assert not out.exists()


def test_two_grids_started_together_on_one_folder_train_each_run_once(tmp_path):
    """The same `harness run` twice at once (two terminals, a resubmitted job): the run-folder claim
    lets exactly one train the run, and the other reports it busy or finds it complete. Nothing is
    trained twice, no metrics.jsonl interleaves. One run: a second seed would only repeat the race
    (and add three processes)."""
    out = tmp_path / "runs"
    args = [*RUN, "--methods", "shac-state", "--seeds", "0", "--budget", "512-steps", "--eval-every", "512", *SMOKE, "--out", str(out)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [proc.communicate(timeout=900) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], results
    folder = out / "cartpole" / "shac-state" / "smoke" / "seed0"
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "complete" and run["attempts"] == 1, run
    steps = [r["env_steps"] for r in _records(folder)]
    assert steps == sorted(set(steps)) and steps[0] == 0 and steps[-1] >= 512, steps
    run_id = "cartpole/shac-state/smoke/seed0"
    # each grid trained it ("complete:"), found it claimed ("busy:", or "skip ...: running in another
    # process" when planning), or found it complete ("complete:", or "skip ...: complete" when planning)
    outcomes = [[w for w in (f"complete: {run_id}", f"busy: {run_id}", f"skip {run_id}") if w in stdout] for stdout, _ in results]
    assert all(outcomes), results


def test_a_claimed_folder_is_busy_and_neither_planned_nor_deleted(tmp_path):
    from harness.claim import RunClaim

    spec = _smoke_spec("shac-state")
    folder = run_dir(tmp_path, spec)
    folder.mkdir(parents=True)
    claim = RunClaim(folder)
    assert claim.acquire()
    try:
        assert plan_action(folder) == "busy"
        statuses = execute_grid([spec], GridOptions(root=tmp_path, quiet=True, workers=1))
        assert statuses == {spec.run_id: "busy"}
        assert not (folder / "run.json").exists() and not (folder / "metrics.jsonl").exists()
        from harness.cli import main

        assert main(["run", "--methods", "shac-state", "--preset", "smoke", "--budget", "1024-steps", "--overwrite", "--quiet", "--no-report", "--no-videos", "--out", str(tmp_path)]) == 0
        assert folder.exists() and not (folder / "run.json").exists()
    finally:
        claim.release()
    assert plan_action(folder) == "start"


def test_overrides_get_their_own_folder():
    plain, changed = _smoke_spec("dva"), _smoke_spec("dva", actor_lr=1e-3)
    assert plain.run_id == "cartpole/dva/smoke/seed0"
    assert changed.run_id.startswith("cartpole/dva/smoke+") and changed.run_id != plain.run_id
    assert parse_overrides(["actor_lr=1e-3", "actor_units=[8, 8]"]) == {"actor_lr": 1e-3, "actor_units": [8, 8]}


def test_a_diverging_run_is_marked_failed_and_the_grid_finishes(tmp_path, in_process_workers):
    # log-std 1000 makes exp(log_std) inf: the actor gradient is NaN on the first iteration.
    diverging = _smoke_spec("shac-state", actor_logstd_init=1000.0)
    healthy = _smoke_spec("shac-state", seed=1, steps=512)
    statuses = execute_grid([diverging, healthy], GridOptions(root=tmp_path, quiet=True, workers=1))
    assert statuses == {diverging.run_id: "failed", healthy.run_id: "complete"}
    failed = json.loads((run_dir(tmp_path, diverging) / "run.json").read_text())
    assert failed["status"] == "failed"
    assert failed["failure"]["type"] == "NonFiniteGradientError" and "gradient norm" in failed["failure"]["message"]
    assert _records(run_dir(tmp_path, healthy))[-1]["env_steps"] == 512


def test_a_worker_killed_by_a_signal_is_recorded_as_failed(tmp_path):
    spec = _smoke_spec("shac-state", steps=1_000_000)
    folder = run_dir(tmp_path, spec)
    options = GridOptions(root=tmp_path, quiet=True, workers=1)

    def kill_when_running():
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                run = json.loads((folder / "run.json").read_text())
            except (OSError, ValueError):
                run = {}
            # after the first record's checkpoint (killing between the record and its checkpoint is a
            # different case: the rerun then starts afresh, as the kill -9 grid test covers)
            if run.get("status") == "running" and run.get("pid") and (folder / "checkpoint.pt").exists():
                os.kill(run["pid"], signal.SIGKILL)
                return
            time.sleep(0.1)

    import threading

    killer = threading.Thread(target=kill_when_running)
    killer.start()
    statuses = execute_grid([spec], options)
    killer.join()
    assert statuses == {spec.run_id: "failed"}
    run = json.loads((folder / "run.json").read_text())
    assert run["failure"]["type"] == "WorkerDied" and "SIGKILL" in run["failure"]["message"]
    assert plan_action(folder) == "resume"  # the checkpoint of its first evaluation is still there


def test_kill_9_mid_grid_then_rerun_completes_only_what_was_missing(tmp_path, cli, in_process_workers):
    grid = ["--methods", "shac-state", "--seeds", "0-1", "--budget", "1024-steps", "--eval-every", "256", *SMOKE, "--out", str(tmp_path)]
    args = [*RUN, *grid]
    first, second = (tmp_path / "cartpole" / "shac-state" / "smoke" / f"seed{s}" for s in (0, 1))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill the grid (parent and worker) in the middle of its first run (512 of 1,024 steps)
        if (first / "metrics.jsonl").exists() and len((first / "metrics.jsonl").read_text().splitlines()) >= 3:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    killed = _records(first)
    assert json.loads((first / "run.json").read_text())["status"] == "running"  # what a kill -9 leaves
    assert killed[-1]["env_steps"] < 1024 and not (second / "run.json").exists()
    deadline = time.time() + 30
    while plan_action(first) == "busy" and time.time() < deadline:  # the killed worker's lock goes when the OS has ended it
        time.sleep(0.05)

    # the rerun and its runs need no process of their own: the killed grid was the real one
    dry = cli("run", *grid, "--dry-run")
    assert "resume  cartpole/shac-state/smoke/seed0" in dry.stdout and "start  cartpole/shac-state/smoke/seed1" in dry.stdout

    rerun = cli("run", *grid)
    assert rerun.returncode == 0, rerun.stderr
    for folder in (first, second):
        run = json.loads((folder / "run.json").read_text())
        steps = [r["env_steps"] for r in _records(folder)]
        assert run["status"] == "complete"
        assert steps == list(range(0, 1025, 256)), steps  # no duplicate, no gap
    assert json.loads((first / "run.json").read_text())["resumed"] is True
    # records before the last checkpoint are untouched (the kill may land between a record and its checkpoint)
    assert _records(first)[: len(killed) - 1] == killed[:-1]

    again = cli("run", *grid)
    assert again.returncode == 0 and again.stdout.count("skip") == 2


def test_submitit_local_executor_runs_a_two_run_grid(tmp_path):
    pytest.importorskip("submitit")
    specs = [_smoke_spec("shac-state", seed=0, steps=256), _smoke_spec("dva", seed=0, steps=256)]
    options = GridOptions(root=tmp_path, quiet=True, workers=2, submitit_local=True, timeout_min=20)
    statuses = execute_grid(specs, options, executor="slurm")
    assert statuses == {s.run_id: "complete" for s in specs}
    for spec in specs:
        assert [r["env_steps"] for r in _records(run_dir(tmp_path, spec))] == [0, 256]
    assert any((tmp_path / ".submitit").rglob("*_result.pkl"))  # the jobs really went through submitit
