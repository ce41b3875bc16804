"""D.Va / shac-state: the gradient paths, critic targets, terminal values, LR schedule, learning."""

from __future__ import annotations

import math

import pytest
import torch

import envs
from methods import get_method_class
from methods.dva import DVAConfig
from methods.normalization import RunningMeanStd
from methods.returns import td_lambda_targets

SMOKE = dict(num_envs=4, image_size=16, horizon=4, critic_iterations=2, actor_units=[16], critic_units=[16], max_epochs=10)


def _make(name: str, **overrides):
    cls = get_method_class(name)
    config = DVAConfig(**(SMOKE | overrides))
    env = envs.make("cartpole", seed=0, **cls.env_kwargs(config))
    return cls(env.spec, config, "cpu", seed=0), env


def test_dva_actor_input_has_no_grad_but_policy_gets_gradient_through_the_simulator():
    method, env = _make("dva")
    obs = env.reset()
    actor_input = method._actor_input(obs, method.obs_rms)
    assert not actor_input.requires_grad and actor_input.dtype == torch.uint8
    action = torch.tanh(method.actor(actor_input))
    _, reward, _, _ = env.step(action)
    _, reward2, _, _ = env.step(torch.tanh(method.actor(method._actor_input(env._observation(), method.obs_rms))))
    (reward.sum() + reward2.sum()).backward()
    encoder_grad = method.actor.encoder.convs[0].weight.grad
    assert encoder_grad is not None and encoder_grad.abs().sum() > 0  # reward -> sim -> action -> policy
    env.detach()


def test_shac_state_actor_input_keeps_the_graph_to_the_simulator():
    method, env = _make("shac-state")
    env.reset()
    a0 = torch.zeros(4, 1, requires_grad=True)
    obs, _, _, _ = env.step(a0)
    actor_input = method._actor_input(obs, method.obs_rms)
    assert actor_input.requires_grad  # SHAC: observation -> state path kept
    actor_input.sum().backward()
    assert a0.grad is not None and a0.grad.abs().sum() > 0
    env.detach()


@pytest.mark.parametrize("name, first_in", [("dva", 64), ("shac-state", 5)])
def test_actor_and_critic_layer_sizes_are_the_papers(name, first_in):
    method, _ = _make(name, actor_units=[64, 64], critic_units=[64, 64])
    actor_linears = [(m.in_features, m.out_features) for m in method.actor.mu if isinstance(m, torch.nn.Linear)]
    assert actor_linears == [(first_in, 64), (64, 64), (64, 1)]
    critic_linears = [(m.in_features, m.out_features) for m in method.critic if isinstance(m, torch.nn.Linear)]
    assert critic_linears == [(5, 64), (64, 64), (64, 1)]
    if name == "dva":
        assert method.actor.encoder.trunk[0].out_features == 64  # encoder output dim = units[0]


def test_td_lambda_zero_is_the_one_step_target():
    rewards = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    next_values = torch.tensor([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]])
    dones = torch.tensor([[0.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    targets = td_lambda_targets(rewards, next_values, dones, gamma=0.9, lam=0.0)
    assert torch.allclose(targets, rewards + 0.9 * next_values)


def test_td_lambda_matches_a_hand_computed_example():
    # One env, 3 steps, no episode end inside, horizon cut after step 2; gamma 0.5, lambda 0.5.
    r, v, g, lam = [1.0, 2.0, 4.0], [8.0, 16.0, 32.0], 0.5, 0.5
    # G_t^(n): n-step returns bootstrapped with V(s_{t+n}); the horizon end truncates the sum.
    g2_1 = r[2] + g * v[2]                              # from t=2 only the one-step return exists
    g1_1 = r[1] + g * v[1]
    g1_2 = r[1] + g * r[2] + g**2 * v[2]
    g0_1 = r[0] + g * v[0]
    g0_2 = r[0] + g * r[1] + g**2 * v[1]
    g0_3 = r[0] + g * r[1] + g**2 * r[2] + g**3 * v[2]
    expected = [
        (1 - lam) * (g0_1 + lam * g0_2) + lam**2 * g0_3,
        (1 - lam) * g1_1 + lam * g1_2,
        g2_1,
    ]
    targets = td_lambda_targets(
        torch.tensor(r).unsqueeze(1), torch.tensor(v).unsqueeze(1), torch.tensor([0.0, 0.0, 1.0]).unsqueeze(1), g, lam
    )
    assert torch.allclose(targets.squeeze(1), torch.tensor(expected))


def test_terminal_value_is_zero_on_early_termination_and_v_terminal_on_time_limit():
    method, _ = _make("shac-state")
    rms = RunningMeanStd((5,))
    next_value = torch.tensor([1.0, 2.0, 3.0])
    terminal_state = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0], [2.6, 0.0, 0.0, -1.0, 0.0], [float("nan")] * 5])
    info = {"terminal_obs": {"state": terminal_state}, "terminated": torch.tensor([False, True, False])}
    done = torch.tensor([True, True, True])
    values = method._terminal_values(next_value, info, done, rms)
    v_time_limit = method.target_critic(rms.normalize(terminal_state[:1])).squeeze()
    assert torch.allclose(values[0], v_time_limit)  # time limit: V(terminal obs)
    assert values[1] == 0.0  # early termination
    assert values[2] == 0.0  # invalid (NaN) terminal state
    not_done = method._terminal_values(next_value, info, torch.tensor([False, False, False]), rms)
    assert torch.equal(not_done, next_value)


def test_learning_rate_decays_linearly_to_the_final_value():
    method, _ = _make("shac-state", max_epochs=10, actor_lr=1e-2, critic_lr=1e-3)
    method.epoch = 0
    method._set_learning_rates()
    assert math.isclose(method.actor_optimizer.param_groups[0]["lr"], 1e-2)
    method.epoch = 5
    method._set_learning_rates()
    assert math.isclose(method.actor_optimizer.param_groups[0]["lr"], 1e-2 + (1e-5 - 1e-2) / 2)
    method.epoch = 10
    method._set_learning_rates()
    assert math.isclose(method.actor_optimizer.param_groups[0]["lr"], 1e-5)
    assert math.isclose(method.critic_optimizer.param_groups[0]["lr"], 1e-5)


def test_non_finite_gradient_aborts():
    from methods.dva import NonFiniteGradientError

    method, env = _make("shac-state", abort_grad_norm=1e-12)
    with pytest.raises(NonFiniteGradientError):
        method.iterate(env)


@pytest.mark.parametrize("name", ["dva", "shac-state"])
def test_a_short_training_run_moves_loss_and_return(name):
    method, env = _make(name, num_envs=16, horizon=16, actor_units=[32, 32], critic_units=[32, 32], max_epochs=1000,
                        actor_lr=1e-2 if name == "shac-state" else 2e-3)
    params_before = [p.detach().clone() for p in method.actor.parameters()]
    first = method.iterate(env)
    losses = [first.metrics["critic_loss"]]
    for _ in range(5):
        stats = method.iterate(env)
        losses.append(stats.metrics["critic_loss"])
        assert stats.env_steps == 16 * 16
        phases = env.timings.pop()
        assert set(phases) >= {"sim_forward", "sim_backward", "actor_update", "critic_update", "actor_forward"}
    moved = sum(float((a.detach() - b).abs().sum()) for a, b in zip(method.actor.parameters(), params_before))
    assert moved > 0
    assert len(set(round(x, 6) for x in losses)) > 1
    state = method.state_dict()
    clone, _ = _make(name, num_envs=16, horizon=16, actor_units=[32, 32], critic_units=[32, 32])
    clone.load_state_dict(state)
    obs = env._observation()
    assert torch.equal(clone.act(obs), method.act(obs))


@pytest.mark.slow
def test_shac_state_learns_to_swing_up_within_a_few_minutes():
    """Learning check (about 2-3 min on 2 CPU cores): the privileged-state oracle clearly improves."""
    from harness.runner import evaluate
    from methods.presets import load_config

    cls = get_method_class("shac-state")
    config = load_config(cls, "cartpole", "cpu")
    env = envs.make("cartpole", seed=0, **cls.env_kwargs(config))
    eval_env = envs.make("cartpole", seed=1, **(cls.env_kwargs(config) | {"num_envs": 8}))
    method = cls(env.spec, config, "cpu", seed=0)
    before = sum(evaluate(method, eval_env, 0)) / 8
    for _ in range(150):
        method.iterate(env)
    after = sum(evaluate(method, eval_env, 0)) / 8
    assert after > before + 500, (before, after)
