"""Every method runs every task: the full grid resolves (presets fall back to their default rows),
and each env + method builds at the smallest size and acts with the task's action shape."""

from __future__ import annotations

import pytest
import torch

from harness.cli import main
from harness.resolved import build, resolve
from harness.specs import RunSpec
from methods.registry import available_methods, available_tasks, get_method_class

def test_dry_run_resolves_every_method_on_every_task(tmp_path, capsys):
    methods, tasks = available_methods(), available_tasks()
    assert main(["run", "--methods", ",".join(methods), "--tasks", ",".join(tasks), "--preset", "smoke", "--budget", "64-steps",
                 "--dry-run", "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert f"{len(methods) * len(tasks)} run(s): {len(methods) * len(tasks)} start" in out
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("task", available_tasks())
def test_every_method_builds_and_acts_on(task):
    for method in available_methods():
        run = resolve(RunSpec(method, task, 0, "smoke", "64-steps"))
        cls = get_method_class(method)
        built = build(cls, task, run.config, "cpu", seed=0, num_envs=2)
        action = built.method.act(built.env.reset(), deterministic=True)
        assert action.shape == (2, built.env.spec.action_dim), (method, task)
        assert torch.isfinite(action).all() and action.abs().max() <= 1.0, (method, task)
