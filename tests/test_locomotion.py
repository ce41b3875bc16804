"""Locomotion tasks on Newton with contacts: the paper's definitions, stability of the passive model,
finite gradients over whole episodes, and the tracking camera (gradient accuracy: test_gradients.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import envs
from envs.tasks import get_task

LOCOMOTION = ["hopper", "cheetah", "ant", "humanoid"]


# The humanoid's rollouts (48 substeps) run in the slow suite, which CI runs for this file.
@pytest.fixture(scope="module", params=[*LOCOMOTION[:3], pytest.param("humanoid", marks=pytest.mark.slow)])
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
    """The paper's dflex reads the half-cheetah at density 1000 (21.18 kg: it ignores the file's
    settotalmass of 14) and starts it at z = -0.2 on a root frame at 1.0 m."""
    env = envs.make("cheetah", num_envs=1, render=None)
    assert float(env.model.body_mass.numpy().sum()) == pytest.approx(21.18, abs=0.01)
    task = env.task
    q, qd = task.initial_state(512, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert q.shape == (512, 9) and (q[:, 1] + 0.2).abs().max() <= 0.1 and q[:, [0, *range(2, 9)]].abs().max() <= 0.1
    assert qd.abs().max() <= 0.25 and qd.abs().max() > 0.2
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
    behaves as the paper's dflex does from the same start states (measured with the official
    simulator, docs/locomotion-fidelity.md): the hopper balances for a while and then falls over
    (its episodes end; dflex ends two of these four at steps 147 and 154, ours at 148 and 151), the
    cheetah comes to rest standing on its leg springs (torso near 0.55 m in both), the ant's torso
    sinks onto its legs, the humanoid falls forward. The fast variant runs 200 steps, the slow one
    the whole 1000-step episode."""
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
        assert float(qd.abs().max()) < 0.5, "the passive cheetah comes to rest (standing on its springs)"
    elif env.task.name == "ant":
        assert lowest > 0.15, "the torso sphere (radius 0.25) never sinks into the ground"
        assert lowest < 0.6, "the ant's torso sinks from its 0.65-0.85 m start onto its legs"
    else:
        assert lowest > 0.3 and episodes > 0, "the passive humanoid falls (its episodes end at 0.74 m), not through the ground"


def test_joint_parameters_are_the_official_dflex_ones():
    """What the paper's dflex integrates (docs/locomotion-fidelity.md, measured with D.Va's own
    parse_mjcf and dflex), read back from the Newton models. dflex applies its limit kd of 10 to
    every 1-dof joint at all times, so it is 10 more joint damping here (the planar roots' x, z
    slides and pitch included, the free roots not) and Newton's limit kd, past a limit only, is 0."""
    names = ["body_mass", "joint_armature", "joint_damping", "joint_stiffness", "joint_rest_q", "joint_limit_kd",
             "joint_limit_lower", "joint_limit_upper", "shape_body", "shape_transform"]  # fmt: skip
    model = {task: {n: getattr(envs.make(task, num_envs=1, render=None).model, n).numpy() for n in names} for task in LOCOMOTION}
    for task, m in model.items():
        np.testing.assert_array_equal(m["joint_limit_kd"], 0.0, err_msg=task)

    hopper = model["hopper"]
    np.testing.assert_allclose(hopper["joint_armature"], [1.0] * 6)  # x, z, pitch, thigh, leg, foot
    np.testing.assert_allclose(hopper["joint_damping"], [10.0] * 3 + [2.0 + 10.0] * 3)
    np.testing.assert_allclose(hopper["joint_stiffness"], 0.0)
    (foot,) = np.flatnonzero(hopper["shape_body"] == 3)
    assert hopper["shape_transform"][foot, 0] == pytest.approx(0.06), "the foot capsule's centre (hopper.xml), not gym's 0.065"

    cheetah = model["cheetah"]
    assert float(cheetah["body_mass"].sum()) == pytest.approx(21.18, abs=0.01)
    np.testing.assert_allclose(cheetah["joint_armature"], [0.1] * 9)
    np.testing.assert_allclose(cheetah["joint_stiffness"], [0, 0, 0, 240, 180, 120, 180, 120, 60])
    np.testing.assert_allclose(cheetah["joint_rest_q"], 0.0)
    np.testing.assert_allclose(cheetah["joint_damping"], np.array([0, 0, 0, 6, 4.5, 3, 4.5, 3, 1.5]) + 10.0)
    np.testing.assert_allclose(cheetah["joint_limit_lower"][3:], [-0.52, -0.785, -0.4, -1.5, -1.2, -3.1])
    np.testing.assert_allclose(cheetah["joint_limit_upper"][3:], [1.05, 0.785, 0.785, 0.8, 1.1, -0.3])

    ant = model["ant"]
    np.testing.assert_allclose(ant["joint_armature"], [0.0] * 6 + [0.05] * 8)
    np.testing.assert_allclose(ant["joint_damping"], [0.0] * 6 + [1.0 + 10.0] * 8)
    np.testing.assert_allclose(ant["joint_stiffness"], 0.0)

    # The humanoid's own values from the file (dflex's load_armature/load_stiffness), in dof order.
    humanoid = model["humanoid"]
    np.testing.assert_allclose(humanoid["joint_armature"], [0.0] * 6 + [0.02] + [0.01] * 5 + [0.007, 0.006, 0.006] + [0.01] * 3
                               + [0.007, 0.006, 0.006] + [0.01, 0.01, 0.006] * 2, rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose(humanoid["joint_stiffness"], [0.0] * 6 + [20, 20, 10, 10, 10, 20, 5, 2, 2, 10, 10, 20, 5, 2, 2] + [10, 10, 2] * 2)
    damping = [5.0] * 6 + [0.1, 1, 1] + [5.0] * 3 + [0.1, 1, 1] + [5, 5, 1] * 2
    # without dflex's always-on 10 (envs/tasks/humanoid.py says why)
    np.testing.assert_allclose(humanoid["joint_damping"], [0.0] * 6 + list(damping), rtol=1e-6)


def test_free_root_velocity_is_the_torso_origins_and_start_noise_is_on_dflexs_twist():
    """The paper observes and rewards the torso origin's velocity (Newton's qd holds the COM's), and
    draws the start velocity noise on dflex's twist (angular velocity, velocity of the body point at
    the world origin), so a start state's origin velocity is v + omega x position."""
    task = get_task("humanoid")
    q = torch.zeros(1, 28)
    q[0, 2], q[0, 6] = 1.35, 1.0
    qd = torch.zeros(1, 27)
    qd[0, 3:6] = torch.tensor([0.0, 2.0, 0.0])  # turning about y: the COM (x -0.0025, z 0.035) is still
    r = torch.tensor(task.root_com)
    assert torch.allclose(task.origin_velocity(q, qd)[0], -torch.linalg.cross(qd[0, 3:6], r), atol=1e-7)
    assert task.state_obs(q, qd)[0, 5].item() == pytest.approx(-2.0 * r[2].item(), abs=1e-6), "obs: the origin's v_x"
    # The start: v = (origin velocity) - omega x position is the U(+-0.25) draw; the COM's and the
    # origin's velocities themselves reach beyond it (omega x p, p 1.35 m up: up to 0.34 m/s more).
    q, qd = task.initial_state(512, torch.Generator().manual_seed(0), torch.device("cpu"))
    v = task.origin_velocity(q, qd) - torch.linalg.cross(qd[:, 3:6], q[:, :3])
    assert v.abs().max() <= 0.25 and v.abs().max() > 0.24 and qd[:, 3:].abs().max() <= 0.25
    assert qd[:, :2].abs().max() > 0.4


@pytest.mark.parametrize("steps", [64, pytest.param(1024, marks=pytest.mark.slow, id="full-episode")])
def test_gradients_stay_finite_over_random_action_windows(state_env, steps):
    """SHAC's use: consecutive 32-step windows with uniform random actions (falls, terminations
    and resets included: the hopper, ant and humanoid end episodes within the first two windows),
    over a whole 1000-step episode in the slow variant; every window's gradient is finite."""
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
    """Cropping the rows the bodies never reach needs a world-fixed camera (the differentiable
    renderer draws these tasks since issue 30: tests/test_diff_render.py)."""
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
