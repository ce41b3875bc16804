"""Locomotion tasks on Newton with contacts: the paper's definitions, stability of the passive model,
finite gradients over whole episodes, and the tracking camera (gradient accuracy: test_gradients.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch

import envs
from envs.tasks import get_task

LOCOMOTION = ["hopper", "cheetah", "ant", "humanoid"]


@pytest.fixture(scope="module", params=LOCOMOTION)
def state_env(request):
    env = envs.make(request.param, num_envs=4, render=None)
    env.reset(seed=0)
    return env


def test_spec_and_observation_shapes_follow_the_paper(state_env):
    task = state_env.task
    expected = {"hopper": (11, 3, 16, 1000), "cheetah": (17, 6, 16, 1000), "ant": (37, 8, 16, 1000), "humanoid": (76, 21, 48, 1000)}[task.name]
    assert (task.state_dim, task.action_dim, task.substeps, task.episode_length) == expected
    assert task.control_dt == pytest.approx(1 / 60)
    obs = state_env.reset(seed=3)
    assert obs["state"].shape == (4, task.state_dim)
    assert torch.isfinite(obs["state"]).all()


def test_hopper_start_noise_reward_and_termination_are_the_papers():
    task = get_task("hopper")
    q, qd = task.initial_state(512, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert q.abs().max() <= 0.05 and qd.abs().max() <= 0.05 and q.abs().max() > 0.04
    # Upright at the start height, moving forward at 1 m/s, no action: v_x + 0.3 + 1.
    q, qd = torch.zeros(2, 6), torch.zeros(2, 6)
    qd[:, 0] = 1.0
    q[1, 1], q[1, 2] = -0.4, math.pi / 12  # 0.4 m lower (0.1 below the tolerance band), pitched 15 deg
    action = torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 0.5]])
    reward = task.reward(q, qd, action)
    assert reward[0].item() == pytest.approx(1.0 + 0.3 + 1.0)
    assert reward[1].item() == pytest.approx(1.0 - 200 * 0.1**2 + (1 - 0.25) - 0.1 * 2.25)
    z = torch.tensor([-0.44, -0.46])
    assert task.terminated(torch.stack([torch.zeros(2), z], -1), torch.zeros(2, 2)).tolist() == [False, True]
    assert torch.equal(task.action_to_joint_f(torch.tensor([[1.0, -0.5, 0.25]])), torch.tensor([[0, 0, 0, 200.0, -100.0, 50.0]]))


def test_cheetah_mass_reward_start_noise_and_no_termination_are_the_papers():
    env = envs.make("cheetah", num_envs=1, render=None)
    assert float(env.model.body_mass.numpy().sum()) == pytest.approx(14.0, rel=1e-5)
    task = env.task
    q, qd = task.initial_state(512, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert q.shape == (512, 9) and q.abs().max() <= 0.1 and qd.abs().max() <= 0.25 and qd.abs().max() > 0.2
    qd = torch.zeros(2, 9)
    qd[:, 0] = torch.tensor([2.0, -1.0])
    action = torch.tensor([[0.0] * 6, [1.0, -1.0, 0.5, 0.0, 0.0, 0.0]])
    assert task.reward(torch.zeros(2, 9), qd, action).tolist() == pytest.approx([2.0, -1.0 - 0.1 * 2.25])
    assert not task.terminated(torch.full((2, 9), -5.0), qd).any()
    assert torch.equal(task.action_to_joint_f(action)[1], torch.tensor([0, 0, 0, 200.0, -200.0, 100.0, 0, 0, 0]))


def test_ant_observation_reward_and_termination_are_the_papers():
    env = envs.make("ant", num_envs=2, render=None)
    task = env.task
    obs = env.reset(seed=0)
    assert obs["state"].shape == (2, 37)
    assert torch.equal(obs["state"][:, -8:], torch.zeros(2, 8)), "no previous action after a reset"
    action = torch.tensor([[0.5] * 8, [-2.0] * 8])
    obs, *_ = env.step(action)
    assert torch.equal(obs["state"][:, -8:], action.clamp(-1, 1)), "the previous (clipped) action is observed"
    q, qd = env.sim_state
    assert torch.allclose(obs["state"][:, 0], q[:, 2]) and torch.allclose(obs["state"][:, 11:19], q[:, 7:])
    # Upright, facing the target, 0.75 m high, moving at 1 m/s along x: 1 + 0.1 + 1 + 0.48.
    q = torch.zeros(1, 15)
    q[0, 2], q[0, 6] = 0.75, 1.0
    qd = torch.zeros(1, 14)
    qd[0, 0] = 1.0
    assert task.reward(q, qd, torch.zeros(1, 8)).item() == pytest.approx(2.58, abs=1e-5)
    # Turned 90 degrees about z: heading 0, still upright.
    q[0, 5], q[0, 6] = math.sin(math.pi / 4), math.cos(math.pi / 4)
    assert task.reward(q, qd, torch.zeros(1, 8)).item() == pytest.approx(1.58, abs=1e-5)
    low = q.clone()
    low[0, 2] = 0.26
    assert task.terminated(torch.cat([q, low]), torch.zeros(2, 14)).tolist() == [False, True]
    start, _ = task.initial_state(256, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.allclose(start[:, 3:7].norm(dim=-1), torch.ones(256), atol=1e-6)
    tilt = 2 * torch.acos(start[:, 6].abs().clamp(max=1))
    assert float(tilt.max()) <= math.pi / 24 + 1e-5 and float((start[:, 7:] - torch.tensor(task.start_joints)).abs().max()) <= 0.2


def test_humanoid_strengths_reward_and_invalid_state_guard_are_the_papers():
    task = get_task("humanoid")
    f = task.action_to_joint_f(torch.ones(1, 21))
    assert torch.equal(f[0, :6], torch.zeros(6)) and f[0, 6:].tolist() == pytest.approx([0.35 * s for s in
        (200, 200, 200, 200, 200, 600, 400, 100, 100, 200, 200, 600, 400, 100, 100, 100, 100, 200, 100, 100, 200)])  # fmt: skip
    q = torch.zeros(3, 28)
    q[:, 6] = 1.0
    q[:, 2] = torch.tensor([1.35, 0.8, 1.35])  # standing tall, crouched 4 cm below 0.84, invalid
    q[2, 9] = float("nan")
    qd = torch.zeros(3, 27)
    reward = task.reward(q, qd, torch.zeros(3, 21))
    assert reward[0].item() == pytest.approx(1.0 + 0.1 + 1.0)
    assert reward[1].item() == pytest.approx(-200 * 0.04**2 + 0.1 + 1.0, abs=1e-5)
    assert reward[2].item() == 0.0
    assert task.terminated(q, qd).tolist() == [False, False, True]
    assert task.terminated(q[:1] * torch.tensor([1, 1, 0.5] + [1] * 25), qd[:1]).tolist() == [True]


@pytest.mark.parametrize("steps", [200, pytest.param(1000, marks=pytest.mark.slow, id="full-episode")])
def test_zero_action_episode_of_1000_steps_stays_finite_and_the_passive_model_settles(state_env, steps):
    """The passive model stays on the ground (contacts hold it up, nothing sinks through) and
    collapses physically: the hopper falls over (its episodes end), the cheetah comes to rest
    standing or on its folded legs, the ant's torso sinks onto its legs. All of it shows within
    100 steps; the fast variant runs 200, the slow one the whole 1000-step episode."""
    env = state_env
    env.reset(seed=1)
    height = 2 if env.task.name in ("ant", "humanoid") else 1  # absolute torso z (free root) or its drop (planar)
    lowest, episodes = math.inf, 0
    for _ in range(steps):
        obs, reward, done, info = env.step(torch.zeros(env.num_envs, env.task.action_dim))
        assert torch.isfinite(obs["state"]).all() and torch.isfinite(reward).all()
        lowest = min(lowest, float(env.sim_state[0][:, height].min()))
        episodes += int(info["terminated"].sum())
    q, qd = env.sim_state
    if env.task.name == "hopper":
        assert lowest > -1.0, "the torso never sinks below the ground"
        assert episodes > 0, "the passive hopper falls over and its episodes end"
    elif env.task.name == "cheetah":
        assert lowest > -0.6, "the torso never sinks below the ground"
        assert float(qd.abs().max()) < 0.5, "the passive cheetah comes to rest (standing or folded)"
    elif env.task.name == "ant":
        assert lowest > 0.15, "the torso sphere (radius 0.25) never sinks into the ground"
        assert lowest < 0.6, "the ant's torso sinks from its 0.65-0.85 m start onto its legs"
    else:
        assert lowest > 0.3 and episodes > 0, "the passive humanoid falls (its episodes end at 0.74 m), not through the ground"


@pytest.mark.parametrize("steps", [64, pytest.param(1024, marks=pytest.mark.slow, id="full-episode")])
def test_gradients_stay_finite_over_random_action_windows(state_env, steps):
    """SHAC's use: consecutive 32-step windows with uniform random actions (falls, terminations
    and resets included: the hopper, ant and humanoid end episodes in each of the first two
    windows), over a whole 1000-step episode in the slow variant; every window's gradient is finite."""
    env = state_env
    env.reset(seed=2)
    g = torch.Generator().manual_seed(2)
    for _ in range(steps // 32):
        env.detach()
        actions = (torch.rand(32, env.num_envs, env.task.action_dim, generator=g) * 2 - 1).requires_grad_(True)
        total = sum(env.step(a)[1].sum() for a in actions)
        total.backward()
        assert torch.isfinite(actions.grad).all()


@pytest.mark.parametrize("task", LOCOMOTION)
def test_tracking_camera_keeps_the_robot_in_view_as_it_moves(task):
    """Moving the root 0.37 m along x leaves the robot's pixels where they were (the camera follows)
    while the floor under it changes."""
    env = envs.make(task, num_envs=2, image_size=48, render="raytrace", frame_stack=1)
    env.reset(seed=0)
    q, qd = (x.clone() for x in env.sim_state)
    q[1] = q[0]
    q[1, 0] += 0.37  # not a multiple of the checker period
    env.set_sim_state(q, qd)
    pixels = env._observation()["pixels"].float()
    orange = (pixels[:, 0] > 180) & (pixels[:, 1] < 140) & (pixels[:, 2] < 80)  # the dm_control body colour
    assert orange[0].sum() > 10
    assert torch.equal(orange[0], orange[1])
    assert not torch.equal(pixels[0], pixels[1]), "the checker floor scrolls under the robot"


@pytest.mark.parametrize("task", LOCOMOTION)
def test_tracking_tasks_reject_the_fixed_camera_only_options(task):
    with pytest.raises(ValueError, match="tracking camera"):
        envs.make(task, num_envs=1, render="differentiable")
    with pytest.raises(ValueError, match="crop_static_rows"):
        envs.make(task, num_envs=1, render="raytrace", crop_static_rows=True)


def test_harness_trains_dva_and_shac_state_on_hopper(tmp_path, cli, in_process_workers):
    """The harness runs both first-order methods on a contact task: from pixels (tracking camera)
    and from state, with finite actor gradients through the contacts."""
    proc = cli("run", "--no-report", "--no-videos", "--methods", "dva,shac-state", "--tasks", "hopper", "--budget", "128-steps", "--preset", "smoke",
               "--eval-every", "128", "--eval-episodes", "1", "--out", tmp_path, "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for method in ("dva", "shac-state"):
        folder = tmp_path / "hopper" / method / "smoke" / "seed0"
        assert json.loads((folder / "run.json").read_text())["status"] == "complete"
        records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        assert [r["env_steps"] for r in records] == [0, 128]
        assert math.isfinite(records[-1]["eval_return_mean"]) and 0 < records[-1]["grad_norm_mean"] < math.inf
