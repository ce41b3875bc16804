"""The card's command as the main job: default budget and device, the report at the end of a grid,
the final policy's video, and `harness list` (issue 32)."""

from __future__ import annotations

import imageio.v3 as iio
import pytest
import torch
from PIL import Image, ImageSequence

import envs
from harness.specs import DEFAULT_BUDGETS, default_budget
from harness.store import VIDEO
from harness.video import record_policy_video


def test_without_budget_or_device_a_run_takes_the_presets_budget_and_the_available_device(tmp_path, cli):
    expected_device = "cuda" if torch.cuda.is_available() else "cpu"
    for preset, budget in (("cpu", "5m"), ("smoke", "1024-steps"), ("paper", "30m")):
        proc = cli("run", "--methods", "dva,dreamer", "--preset", preset, "--dry-run", "--out", tmp_path / "runs")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count(f"budget={budget} device={expected_device}") == 2, proc.stdout
    assert cli("run", "--methods", "dva", "--budget", "90s", "--device", "cpu", "--dry-run", "--out", tmp_path / "r").stdout.count("budget=90s device=cpu") == 1
    assert DEFAULT_BUDGETS == {"cpu": "5m", "paper": "30m", "smoke": "1024-steps"}
    with pytest.raises(ValueError, match="--budget is required with preset 'mine'"):
        default_budget("mine")


def test_a_grid_ends_with_its_report_and_videos_and_no_report_skips_it(tmp_path, cli, in_process_workers):
    args = ["--methods", "shac-state", "--seeds", "0-1", "--preset", "smoke", "--budget", "128-steps", "--eval-every", "128",
            "--eval-episodes", "2", "--quiet"]
    proc = cli("run", *args, "--out", tmp_path / "a")
    assert proc.returncode == 0, proc.stderr
    summary = (tmp_path / "a" / "report" / "summary.md").read_text()
    assert "| cartpole | shac-state | smoke | 128-steps | 0,1 |" in summary and "| cartpole | shac-state | smoke | 128-steps | 0,1 |" in proc.stdout
    assert f"report: {tmp_path / 'a' / 'report' / 'summary.md'}" in proc.stdout
    assert "](runs/cartpole/shac-state/smoke/seed0/policy.gif)" in summary  # the lowest seed's video, copied beside the report
    assert (tmp_path / "a" / "report" / "runs" / "cartpole" / "shac-state" / "smoke" / "seed0" / VIDEO).exists()
    # the report's copies are not runs: a report over the grid's folder sees each run once
    again = cli("report", tmp_path / "a", "--out", tmp_path / "again", "--reps", "50")
    assert again.returncode == 0, again.stderr

    proc = cli("run", *args, "--no-report", "--no-videos", "--out", tmp_path / "b")
    assert proc.returncode == 0 and "report:" not in proc.stdout
    assert not (tmp_path / "b" / "report").exists() and not list((tmp_path / "b").rglob(VIDEO))


class _ZeroPolicy:
    """Zero force: on `cartpole` the episode runs its 240 steps (the cart never leaves the rail)."""

    def on_eval_start(self) -> None:
        pass

    def act(self, obs, deterministic: bool):
        return torch.zeros(obs["state"].shape[0], 1)


def test_the_video_is_one_episode_of_the_policy_at_the_task_camera_and_a_watchable_rate(tmp_path):
    env = envs.make("cartpole", num_envs=2, seed=0, render=None)
    path = tmp_path / VIDEO
    written = record_policy_video(_ZeroPolicy(), env, "cartpole", path, seed=0, size=64)
    # 240 states (the start and 239 steps; the 240th ends the episode), every 2nd shown at 60 Hz: 120
    # frames of 30 ms. The GIF encoder (Pillow) stores a run of identical frames once with their summed
    # delay (the pole rests before it swings), so the decoded frames play those 120 over 3.6 s.
    assert written == 120
    with Image.open(path) as gif:
        durations = [frame.info["duration"] for frame in ImageSequence.Iterator(gif)]
        assert gif.info["loop"] == 0
    frames = iio.imread(path, index=None)
    assert frames.shape == (len(durations), 64, 64, 3) and frames.dtype.name == "uint8"
    assert sum(durations) == 120 * 30 and set(durations) <= {30 * k for k in range(1, 121)}
    assert len(durations) > 60 and frames.std(axis=0).max() > 0  # the pole moves


def test_list_names_methods_aliases_tasks_presets_budgets_and_pixels(cli):
    proc = cli("list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "dreamerv3 (dreamer)" in lines[0] and "tdmpc2 (tdmpc)" in lines[0] and "drqv2 (drq)" in lines[0]
    assert "cartpole (default)" in lines[1] and "cartpole-paper" in lines[1] and "humanoid" in lines[1]
    assert "cpu (budget 5m, the default preset)" in lines[2] and "smoke (budget 1024-steps)" in lines[2]
    assert any(line.split()[:2] == ["dva", "cpu"] and "48 px x2, cropped, 3 frames" in line for line in lines)
    assert any(line.split()[:2] == ["shac-state", "cpu"] and "state only" in line for line in lines)
