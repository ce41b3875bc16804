"""The blocks the methods share (issue 28), each against an independent reference: λ-returns,
the percentile scale, the update credit, the precision helper and the MLP builders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from methods.drqv2 import DrQActor, DrQCritic
from methods.networks import elu_layernorm_mlp, mlp, relu_mlp
from methods.normalization import PercentileScale
from methods.precision import autocast, check_precision
from methods.returns import lambda_returns, td_lambda_targets
from methods.tdmpc2 import NormedLinear, SimNorm, normed_mlp
from methods.update_credit import UpdateCredit


# -- λ-returns ---------------------------------------------------------------------------------------
def _textbook(rewards, next_values, discount, cuts, lam) -> list[list[float]]:
    """R_t = r_t + g_t ((1 - lam) V_{t+1} + lam R_{t+1}); R_t = r_t + g_t V_{t+1} at a cut. Plain floats."""
    horizon, n = len(rewards), len(rewards[0])
    out = [[0.0] * n for _ in range(horizon)]
    for i in range(n):
        later = 0.0
        for t in reversed(range(horizon)):
            g, v = discount[t][i], next_values[t][i]
            later = rewards[t][i] + g * (v if cuts[t][i] else (1 - lam) * v + lam * later)
            out[t][i] = later
    return out


def _rollout(seed: int, horizon: int = 9, n: int = 5):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(horizon, n, generator=g, dtype=torch.float64)
    next_values = torch.randn(horizon, n, generator=g, dtype=torch.float64) * 10
    cuts = (torch.rand(horizon, n, generator=g) < 0.2).double()
    cuts[-1] = 1.0
    return rewards, next_values, cuts


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_lambda_returns_follow_the_textbook_recursion_with_cuts_and_per_step_discounts(lam):
    rewards, next_values, cuts = _rollout(0)
    discount = 0.99 * (torch.rand(rewards.shape, generator=torch.Generator().manual_seed(1)) > 0.1).double()
    got = lambda_returns(rewards, next_values, discount, lam, cuts)
    want = _textbook(rewards.tolist(), next_values.tolist(), discount.tolist(), cuts.tolist(), lam)
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    scalar = lambda_returns(rewards, next_values, 0.9, lam, cuts)
    want = _textbook(rewards.tolist(), next_values.tolist(), [[0.9] * 5] * 9, cuts.tolist(), lam)
    torch.testing.assert_close(scalar, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_lambda_returns_cut_only_at_the_horizon_by_default_and_carry_gradients():
    rewards, next_values, _ = _rollout(2)
    rewards.requires_grad_(True)
    next_values.requires_grad_(True)
    got = lambda_returns(rewards, next_values, 0.9, 0.8)
    last_only = [[0.0] * 5 for _ in range(8)] + [[1.0] * 5]
    want = _textbook(rewards.tolist(), next_values.tolist(), [[0.9] * 5] * 9, last_only, 0.8)
    torch.testing.assert_close(got.detach(), torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    got[0].sum().backward()
    # dR_0/dr_t = (0.9 * 0.8)^t; dR_0/dV_{t+1} = 0.9^(t+1) 0.8^t (1 - 0.8), and 0.9^9 0.8^8 for V_9.
    t = torch.arange(9, dtype=torch.float64)
    torch.testing.assert_close(rewards.grad[:, 0], 0.72**t)
    value_grad = 0.9 ** (t + 1) * 0.8**t * 0.2
    value_grad[-1] = 0.9**9 * 0.8**8
    torch.testing.assert_close(next_values.grad[:, 0], value_grad)


def _shac_reference(rew_buf, next_values, done_mask, gamma, lam):
    """SHAC's compute_target_values (td-lambda), as the reference code writes it."""
    steps = rew_buf.shape[0]
    target_values = torch.zeros_like(rew_buf)
    Ai = torch.zeros_like(rew_buf[0])
    Bi = torch.zeros_like(rew_buf[0])
    lam_t = torch.ones_like(rew_buf[0])
    for i in reversed(range(steps)):
        lam_t = lam_t * lam * (1.0 - done_mask[i]) + done_mask[i]
        Ai = (1.0 - done_mask[i]) * (lam * gamma * Ai + gamma * next_values[i] + (1.0 - lam_t) / (1.0 - lam) * rew_buf[i])
        Bi = gamma * (next_values[i] * done_mask[i] + Bi * (1.0 - done_mask[i])) + rew_buf[i]
        target_values[i] = (1.0 - lam) * Ai + lam_t * Bi
    return target_values


@pytest.mark.parametrize("lam", [0.0, 0.95])
def test_td_lambda_targets_are_bitwise_shacs_arithmetic(lam):
    """D.Va's seeded runs are compared to the last bit: its critic targets keep SHAC's float operations."""
    rewards, next_values, cuts = (x.float() * 37.1 for x in _rollout(3, horizon=32, n=64))
    cuts = (cuts != 0).float()
    assert torch.equal(td_lambda_targets(rewards, next_values, cuts.bool(), 0.99, lam), _shac_reference(rewards, next_values, cuts, 0.99, lam))


def test_lambda_outside_its_range_is_refused():
    rewards, next_values, cuts = _rollout(4)
    with pytest.raises(ValueError, match="lambda"):
        td_lambda_targets(rewards, next_values, cuts, 0.99, 1.0)  # SHAC's form divides by 1 - lambda
    with pytest.raises(ValueError, match="lambda"):
        lambda_returns(rewards, next_values, 0.99, 1.5, cuts)


# -- percentile scale --------------------------------------------------------------------------------
def _batches(seed: int, count: int = 30) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(257) * rng.uniform(0.1, 40) + rng.uniform(-5, 5)).astype(np.float32) for _ in range(count)]


def test_percentile_scale_smooths_the_two_percentiles_as_numpy_computes_them():
    scale = PercentileScale(0.05, 0.95, 0.02, "cpu", smooth="percentiles")
    low = high = 0.0
    for batch in _batches(0):
        scale.update(torch.from_numpy(batch).view(-1, 1))
        p5, p95 = np.percentile(batch.astype(np.float64), [5, 95])
        low, high = low + 0.02 * (p5 - low), high + 0.02 * (p95 - high)
        np.testing.assert_allclose(scale.stats.numpy(), [low, high], rtol=1e-5, atol=1e-5)
        assert float(scale.scale) == pytest.approx(max(1.0, high - low), rel=1e-5, abs=1e-5)


def test_percentile_scale_smooths_the_clamped_range_from_one():
    scale = PercentileScale(0.05, 0.95, 0.3, "cpu", smooth="range")
    assert float(scale.scale) == 1.0
    smoothed = 1.0
    for batch in _batches(1):
        scale.update(torch.from_numpy(batch))
        p5, p95 = np.percentile(batch.astype(np.float64), [5, 95])
        smoothed += 0.3 * (max(1.0, p95 - p5) - smoothed)
        assert float(scale.scale) == pytest.approx(smoothed, rel=1e-5)
    narrow = PercentileScale(0.05, 0.95, 0.3, "cpu", smooth="range")
    narrow.update(torch.linspace(0, 0.5, 100))
    assert float(narrow.scale) == 1.0  # a spread below 1 is not blown up
    with pytest.raises(ValueError, match="smooth"):
        PercentileScale(0.05, 0.95, 0.3, "cpu", smooth="mean")


# -- update credit -----------------------------------------------------------------------------------
@pytest.mark.parametrize("burst_replaces_step", [False, True])
@pytest.mark.parametrize(("per_agent_step", "num_envs"), [(0.5, 1), (0.5, 4), (0.25, 3), (1.0, 2), (2.0, 1)])
def test_update_credit_owes_the_burst_then_floor_of_the_steps_credit(per_agent_step, num_envs, burst_replaces_step):
    credit = UpdateCredit(per_agent_step, burst_replaces_step)
    owed, burst = [], 7
    for _ in range(40):
        owed.append(credit.owed(num_envs, burst=burst))
    # After k calls: the burst, plus the credit of the steps that earn it (all k, or k - 1 when the
    # burst replaces the first call's), in whole updates (the rates are exact binary fractions).
    earning = [k - 1 if burst_replaces_step else k for k in range(1, 41)]
    assert list(np.cumsum(owed)) == [burst + math.floor(e * num_envs * per_agent_step) for e in earning]


def test_update_credit_restarts_without_carried_credit_or_a_second_burst():
    credit = UpdateCredit(0.5, burst_replaces_step=False)
    assert [credit.owed(1, burst=3) for _ in range(3)] == [3, 1, 0]  # 3.5, then 1.0, then 0.5 held
    credit.restart(pretrained=True)
    assert [credit.owed(1, burst=3) for _ in range(4)] == [0, 1, 0, 1]
    credit.restart(pretrained=False)
    assert credit.owed(1, burst=3) == 3


# -- precision ---------------------------------------------------------------------------------------
def test_precision_is_checked_and_bf16_autocasts_matmuls():
    check_precision("fp32")
    check_precision("bf16")
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16', got 'fp8'"):
        check_precision("fp8")
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast(torch.device("cpu"), "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert (a @ b).dtype == torch.float32


# -- MLP builders ------------------------------------------------------------------------------------
def _same_parameters(built: nn.Module, written: nn.Module) -> None:
    """Same layer types in the same order, and (built from the same seed) the same parameters."""
    assert [type(m) for m in built.modules()] == [type(m) for m in written.modules()]
    ours, theirs = built.state_dict(), written.state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def _seeded(build):
    torch.manual_seed(0)
    return build()


def test_mlp_builders_match_the_layers_written_out_by_hand():
    _same_parameters(
        _seeded(lambda: elu_layernorm_mlp(5, [8, 6], 2)),
        _seeded(lambda: nn.Sequential(nn.Linear(5, 8), nn.ELU(), nn.LayerNorm(8), nn.Linear(8, 6), nn.ELU(), nn.LayerNorm(6), nn.Linear(6, 2))),
    )
    _same_parameters(
        _seeded(lambda: relu_mlp(5, [8, 8], 3)),
        _seeded(lambda: nn.Sequential(nn.Linear(5, 8), nn.ReLU(inplace=True), nn.Linear(8, 8), nn.ReLU(inplace=True), nn.Linear(8, 3))),
    )
    _same_parameters(_seeded(lambda: normed_mlp(5, [8, 8], 3)), _seeded(lambda: nn.Sequential(NormedLinear(5, 8), NormedLinear(8, 8), nn.Linear(8, 3))))
    _same_parameters(
        _seeded(lambda: normed_mlp(5, [8, 8], 16, act=SimNorm(8))),
        _seeded(lambda: nn.Sequential(NormedLinear(5, 8), NormedLinear(8, 8), NormedLinear(8, 16, act=SimNorm(8)))),
    )
    assert len(mlp(3, [], 2, lambda a, b: [nn.Linear(a, b)])) == 1  # no hidden layer: the output alone


def test_drqv2_heads_are_relu_mlps():
    actor, critic = DrQActor(32, 2, 10, 16), DrQCritic(32, 2, 10, 16)
    for head, (first_in, out) in ((actor.policy, (10, 2)), (critic.q1, (12, 1)), (critic.q2, (12, 1))):
        assert [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
        assert (head[0].in_features, head[-1].out_features) == (first_in, out)
