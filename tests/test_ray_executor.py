"""`--executor ray` against a real local Ray instance started here: a two-run grid completes with the
local executor's results, and a run whose worker is killed mid-run is retried from its checkpoint.

Slow (Ray's start and one fresh worker process per run); CI runs it with the `[ray]` extra."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from harness.executors import GridOptions, execute_grid
from harness.resolved import resolve
from harness.specs import RunSpec
from harness.store import RunFolder

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance of 2 CPUs in this process; the executor finds it already initialised."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _spec(seed: int, steps: int, eval_every: int):
    return resolve(RunSpec("shac-state", "cartpole", seed, "smoke", f"{steps}-steps", "cpu", eval_every, 2, {}))


def _records(root: Path, run) -> list[dict]:
    return RunFolder.of(root, run.run_id).records()


def test_a_two_run_grid_completes_with_the_local_executors_results(tmp_path, ray_instance):
    runs = [_spec(0, 512, 256), _spec(1, 512, 256)]
    options = dict(quiet=True, workers=1, videos=False, cpus_per_run=2)  # 2 torch threads in both executors
    assert execute_grid(runs, GridOptions(root=tmp_path / "ray", **options), "ray") == {r.run_id: "complete" for r in runs}
    assert execute_grid(runs, GridOptions(root=tmp_path / "local", **options), "local") == {r.run_id: "complete" for r in runs}
    for run in runs:
        by_ray, by_local = _records(tmp_path / "ray", run), _records(tmp_path / "local", run)
        assert [r["env_steps"] for r in by_ray] == [0, 256, 512]
        assert [r["eval_returns"] for r in by_ray] == [r["eval_returns"] for r in by_local]


def test_a_worker_killed_mid_run_is_retried_and_resumes_from_its_checkpoint(tmp_path, ray_instance):
    run = _spec(0, 2048, 256)
    folder = RunFolder.of(tmp_path, run.run_id)
    result: dict = {}
    grid = threading.Thread(target=lambda: result.update(execute_grid([run], GridOptions(root=tmp_path, quiet=True, videos=False), "ray")))
    grid.start()
    deadline = time.time() + 300
    while time.time() < deadline and not (folder.path.joinpath("metrics.jsonl").exists() and len(folder.records()) >= 3):
        time.sleep(0.1)
    killed = json.loads(folder.path.joinpath("run.json").read_text())["pid"]
    os.kill(killed, signal.SIGKILL)
    grid.join(timeout=300)
    assert result == {run.run_id: "complete"}
    final = json.loads(folder.path.joinpath("run.json").read_text())
    assert final["status"] == "complete" and final["resumed"] is True and final["attempts"] == 2 and final["pid"] != killed
    assert [r["env_steps"] for r in folder.records()] == list(range(0, 2049, 256))  # no duplicate, no gap
