"""A method from another package plugs in through its entry point (examples/random_method).

The process boundary is the point: the package is pip-installed into a folder of its own and only
that folder's presence on PYTHONPATH makes `python -m harness run --methods random` find it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "random_method"


def test_external_method_installs_and_runs_through_harness_run(tmp_path):
    site = tmp_path / "site"
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *isolation, "--target", str(site), str(EXAMPLE)],
                   check=True, capture_output=True, text=True)
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    out = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--no-report", "--no-videos", "--methods", "random", "--tasks", "cartpole", "--preset", "smoke",
                           "--budget", "128-steps", "--eval-every", "64", "--eval-episodes", "2", "--out", str(out), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = out / "cartpole" / "random" / "smoke" / "seed0"
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "complete" and run["method"] == "random"
    assert run["config"] == {"num_envs": 4, "horizon": 16}  # the package's own smoke preset
    assert run["env_kwargs"]["render"] is None  # it declared that it reads no pixels
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in records] == [0, 64, 128]
    assert all(len(r["eval_returns"]) == 2 for r in records) and "act" in records[-1]["phase_s"]
    # Without the package on the path the name is unknown, and the error lists what is installed.
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--methods", "random", "--budget", "64-steps", "--dry-run"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "unknown method 'random'" in proc.stderr and "dva" in proc.stderr
