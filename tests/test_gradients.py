"""Gradients through Newton: agreement with central finite differences, and finiteness.

Newton's kernels are float32 only, so float64 checks are not possible. The tolerance is chosen
from what float32 and the Featherstone adjoint give on this model: over a 16-step horizon the
autograd gradient matches central differences (eps 1e-2 and 1e-3 give the same values to 4
digits, so the difference is not FD noise) within about 3% relative on every entry measured;
the test allows 6% relative plus a small absolute floor for near-zero entries.
"""

from __future__ import annotations

import math

import pytest
import torch

import envs

HORIZON = 16


@pytest.fixture(scope="module")
def grad_env():
    env = envs.make("cartpole", num_envs=4, seed=1, render=None)
    env.reset()
    return env


def _horizon_return(env, q0, qd0, actions):
    env.set_sim_state(q0, qd0)
    total = torch.zeros(())
    for t in range(actions.shape[0]):
        _, reward, _, _ = env.step(actions[t])
        total = total + reward.sum()
    env.detach()
    return total


def _start(env):
    q0, qd0 = env.task.initial_state(env.num_envs, torch.Generator().manual_seed(7), torch.device("cpu"))
    return q0, qd0


def test_action_gradient_matches_finite_differences(grad_env):
    q0, qd0 = _start(grad_env)
    actions = ((torch.rand(HORIZON, 4, 1, generator=torch.Generator().manual_seed(3)) * 2 - 1) * 0.3).requires_grad_()
    _horizon_return(grad_env, q0, qd0, actions).backward()
    eps = 1e-2
    for t, n in [(0, 0), (3, 1), (8, 2), (15, 3), (11, 0)]:
        plus, minus = actions.detach().clone(), actions.detach().clone()
        plus[t, n, 0] += eps
        minus[t, n, 0] -= eps
        with torch.no_grad():
            fd = (_horizon_return(grad_env, q0, qd0, plus) - _horizon_return(grad_env, q0, qd0, minus)) / (2 * eps)
        ad = actions.grad[t, n, 0]
        assert torch.isfinite(ad)
        assert abs(ad - fd) <= 0.06 * abs(fd) + 0.05, f"step {t} env {n}: autograd {ad:.4f} vs FD {fd:.4f}"


def test_start_state_gradient_matches_finite_differences(grad_env):
    q0, qd0 = _start(grad_env)
    actions = torch.zeros(HORIZON, 4, 1)
    q_var = q0.clone().requires_grad_()
    _horizon_return(grad_env, q_var, qd0, actions).backward()
    eps = 1e-3
    for n, j in [(0, 0), (1, 1), (2, 1)]:
        plus, minus = q0.clone(), q0.clone()
        plus[n, j] += eps
        minus[n, j] -= eps
        with torch.no_grad():
            fd = (_horizon_return(grad_env, plus, qd0, actions) - _horizon_return(grad_env, minus, qd0, actions)) / (2 * eps)
        ad = q_var.grad[n, j]
        assert abs(ad - fd) <= 0.06 * abs(fd) + 0.05, f"env {n} coord {j}: autograd {ad:.4f} vs FD {fd:.4f}"


def test_gradients_finite_over_a_full_episode(grad_env):
    grad_env.reset()
    actions = (torch.rand(240, 4, 1, generator=torch.Generator().manual_seed(5)) * 2 - 1).requires_grad_()
    total = torch.zeros(())
    dones = 0
    for t in range(240):
        _, reward, done, _ = grad_env.step(actions[t])
        total = total + reward.sum()
        dones += int(done.sum())
    total.backward()
    grad_env.detach()
    assert torch.isfinite(actions.grad).all()
    assert actions.grad.abs().sum() > 0
    assert dones >= 4  # random pushes end episodes early and every env reaches the time limit or the bound


def test_gradient_does_not_cross_an_auto_reset(grad_env):
    grad_env.reset()
    q = torch.tensor([[2.45, -math.pi]] * 4)
    grad_env.set_sim_state(q, torch.tensor([[5.0, 0.0]] * 4))  # will cross |x| = 2.5 on this step
    a0 = torch.zeros(4, 1, requires_grad=True)
    _, _, done, _ = grad_env.step(a0)
    assert done.all()
    _, reward, _, _ = grad_env.step(torch.zeros(4, 1))
    reward.sum().backward()
    assert a0.grad is None or torch.count_nonzero(a0.grad) == 0
    grad_env.detach()
