"""`cartpole-paper` is the CartPole the paper's code integrates; `cartpole` is the URDF's true swing-up.

Two independent checks: the Newton model read back against the numbers derived from the official
loader (box masses at density 1000, urdf_load's joint spring-dampers), and trajectories against a
hand-written Lagrangian cart-pole integrated the way dflex's semi-implicit integrator does it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import envs


def _model_arrays(task: str) -> dict[str, np.ndarray]:
    env = envs.make(task, num_envs=1, seed=0, render=None)
    m = env.model
    names = ["body_mass", "body_inertia", "body_com", "joint_stiffness", "joint_rest_q", "joint_damping", "joint_armature",
             "joint_target_ke", "joint_target_kd", "joint_limit_lower", "joint_limit_upper", "joint_limit_ke", "joint_limit_kd"]
    return {name: getattr(m, name).numpy() for name in names}


def test_cartpole_paper_has_the_official_loaders_masses_inertias_and_joint_springs():
    a = _model_arrays("cartpole-paper")
    np.testing.assert_allclose(a["body_mass"], [50.0, 2.5], rtol=1e-6)  # boxes 0.5x0.5x0.2 and 0.05x0.05x1 at 1000 kg/m^3
    np.testing.assert_allclose(np.diagonal(a["body_inertia"][0]), [50 * (0.25 + 0.04) / 12, 50 * (0.25 + 0.04) / 12, 50 * 0.5 / 12], rtol=1e-5)
    np.testing.assert_allclose(np.diagonal(a["body_inertia"][1]), [2.5 * 1.0025 / 12, 2.5 * 1.0025 / 12, 2.5 * 0.005 / 12], rtol=1e-5)
    np.testing.assert_allclose(a["body_com"][1], [0.0, 0.0, 0.5])
    # stiffness 100 towards q = 0 on both joints; damping 10 (target kd) + 1 (dflex's limit kd, always on)
    np.testing.assert_allclose(a["joint_stiffness"], [100.0, 100.0])
    np.testing.assert_allclose(a["joint_rest_q"], [0.0, 0.0])
    np.testing.assert_allclose(a["joint_damping"], [11.0, 11.0])
    np.testing.assert_allclose(a["joint_armature"], [0.0, 0.0])
    np.testing.assert_allclose(a["joint_target_ke"], [0.0, 0.0])  # Newton turns targets off beyond a limit; dflex does not
    np.testing.assert_allclose(a["joint_limit_lower"], [-4.0, -1000.0])
    np.testing.assert_allclose(a["joint_limit_upper"], [4.0, 1000.0])
    np.testing.assert_allclose(a["joint_limit_ke"], [100.0, 100.0])
    np.testing.assert_allclose(a["joint_limit_kd"], [0.0, 0.0])


def test_cartpole_keeps_the_urdfs_inertials_and_has_no_joint_springs():
    a = _model_arrays("cartpole")
    np.testing.assert_allclose(a["body_mass"], [1.0, 10.0])
    np.testing.assert_allclose(a["body_inertia"], np.stack([np.eye(3), np.eye(3)]))
    np.testing.assert_allclose(a["joint_stiffness"], [0.0, 0.0])
    np.testing.assert_allclose(a["joint_damping"], [0.0, 0.0])
    np.testing.assert_allclose(a["joint_target_ke"], [0.0, 0.0])
    np.testing.assert_allclose(a["joint_target_kd"], [0.0, 0.0])


def _lagrangian_cartpole(q, qd, forces, cart_mass, pole_mass, pole_iyy, stiffness, damping, dt=1 / 60, substeps=4):
    """Cart (x) and pole (theta, 0 = up, positive tips towards +x), com 0.5 m above the hinge, in
    float64; dflex's semi-implicit Euler: qd += qdd h, then q += qd h, `substeps` times per step."""
    g, l, h = 9.81, 0.5, dt / substeps
    q, qd = np.array(q, dtype=np.float64), np.array(qd, dtype=np.float64)
    out = []
    for force in forces:
        for _ in range(substeps):
            x, th = q
            xd, thd = qd
            mass = np.array([[cart_mass + pole_mass, pole_mass * l * math.cos(th)],
                             [pole_mass * l * math.cos(th), pole_iyy + pole_mass * l * l]])
            tau = np.array([force - stiffness * x - damping * xd + pole_mass * l * math.sin(th) * thd * thd,
                            -stiffness * th - damping * thd + pole_mass * g * l * math.sin(th)])
            qd = qd + np.linalg.solve(mass, tau) * h
            q = q + qd * h
        out.append(q.copy())
    return np.stack(out)


@pytest.mark.parametrize("task, cart_mass, pole_mass, pole_iyy, stiffness, damping", [
    ("cartpole", 1.0, 10.0, 1.0, 0.0, 0.0),
    ("cartpole-paper", 50.0, 2.5, 2.5 * 1.0025 / 12, 100.0, 11.0),
])
def test_trajectories_match_a_hand_written_lagrangian_cartpole_from_an_arbitrary_state(task, cart_mass, pole_mass, pole_iyy, stiffness, damping):
    env = envs.make(task, num_envs=1, seed=0, render=None)
    env.reset()
    q0, qd0 = torch.tensor([[0.3, 2.0]]), torch.tensor([[-0.5, 1.5]])  # not a reset state: tilted, moving
    env.set_sim_state(q0, qd0)
    actions = torch.linspace(-0.2, 0.2, 40).reshape(40, 1, 1)
    qs = []
    for action in actions:
        env.step(action)
        qs.append(env.sim_state[0][0].detach().numpy().copy())
    expected = _lagrangian_cartpole(q0[0].numpy(), qd0[0].numpy(), (actions[:, 0, 0] * 1000.0).tolist(), cart_mass, pole_mass, pole_iyy, stiffness, damping)
    np.testing.assert_allclose(np.stack(qs), expected, atol=1e-4)  # measured 7e-7; damping 10 instead of 11 gives 0.09


def test_doing_nothing_balances_the_paper_cartpole_but_not_ours():
    """The hinge spring (100 N m/rad, 314 N m at the hanging start) lifts the 2.5 kg pole on its own."""
    returns = {}
    for task in ("cartpole", "cartpole-paper"):
        env = envs.make(task, num_envs=4, seed=0, render=None)
        env.reset()
        total = torch.zeros(4)
        for _ in range(240):
            _, reward, _, _ = env.step(torch.zeros(4, 1))
            total += reward
        returns[task] = total
    assert (returns["cartpole-paper"] > 1900).all(), returns
    assert (returns["cartpole"] < 400).all(), returns


def test_cartpole_paper_takes_the_cartpole_preset_rows_then_its_own():
    """The paper's `cartpole` settings are those of the CartPole its code runs."""
    from methods.presets import preset_values, task_rows
    from methods.registry import get_method_class

    assert task_rows("cartpole-paper") == ("cartpole", "cartpole-paper") and task_rows("hopper") == ("hopper",)
    values, source = preset_values(get_method_class("shac-state"), "cartpole-paper", "paper")
    assert values == {"actor_lr": 0.01, "critic_lr": 0.001} and source["actor_lr"].endswith("[paper][cartpole]")
