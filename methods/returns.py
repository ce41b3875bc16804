"""λ-returns: the one implementation behind SHAC/D.Va's critic targets and DreamerV3's returns."""

from __future__ import annotations

import torch


def lambda_returns(
    rewards: torch.Tensor, next_values: torch.Tensor, discount: float | torch.Tensor, lam: float, cuts: torch.Tensor | None = None
) -> torch.Tensor:
    """λ-returns over a [T, N] rollout: R_t = r_t + g_t ((1 - lam) V_{t+1} + lam R_{t+1}), and
    R_t = r_t + g_t V_{t+1} where `cuts[t]` ends the sum (an episode end or the horizon's last
    step; None: the last step only, as in DreamerV3's imagined rollouts).

    `next_values[t]` is V(s_{t+1}); `discount` is g, a float or a [T, N] tensor of per-step
    discounts (DreamerV3's predicted continues). lam in [0, 1]; lam = 1 is the discounted return
    bootstrapped at the cuts. Computed as SHAC's weighted sum of n-step returns (dva_paper.md
    section 1.3), not the one-line recursion: D.Va's targets must stay bitwise what SHAC's code
    gives. Differentiable (DreamerV3 backpropagates the actor's loss through it).
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda must be in [0, 1], got {lam}")
    per_step = isinstance(discount, torch.Tensor)
    targets = torch.empty_like(rewards)
    # With k steps up to and including the next cut: R_t = (1 - lam) acc_a + weight acc_b, where
    # acc_a = sum over n < k of lam^(n-1) G_t^(n) (the n-step returns), acc_b = G_t^(k), weight = lam^(k-1).
    acc_a = torch.zeros_like(rewards[0])
    acc_b = torch.zeros_like(rewards[0])
    weight = torch.ones_like(rewards[0])
    if cuts is None:
        cuts = torch.zeros_like(rewards)
        cuts[-1] = 1.0
    d = cuts.to(rewards.dtype)
    for t in reversed(range(rewards.shape[0])):
        gamma = discount[t] if per_step else discount
        weight = weight * lam * (1.0 - d[t]) + d[t]
        if lam < 1.0:  # at lam = 1 acc_a's weight (1 - lam) is 0 and its (1 - weight) / (1 - lam) is 0 / 0
            acc_a = (1.0 - d[t]) * (lam * gamma * acc_a + gamma * next_values[t] + (1.0 - weight) / (1.0 - lam) * rewards[t])
        acc_b = gamma * (d[t] * next_values[t] + (1.0 - d[t]) * acc_b) + rewards[t]
        targets[t] = (1.0 - lam) * acc_a + weight * acc_b
    return targets


@torch.no_grad()
def td_lambda_targets(
    rewards: torch.Tensor, next_values: torch.Tensor, dones: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """SHAC/D.Va's TD(lambda) critic targets over a [T, N] rollout (no gradient).

    `next_values[t]` is V_target of the state reached at step t (already 0 on early termination
    and V(terminal obs) on a time limit); `dones[t]` marks the end of an episode or of the
    horizon (the last step is always a cut). With lam = 0 this is r_t + gamma * V(s_{t+1}).
    """
    if not 0.0 <= lam < 1.0:
        raise ValueError(f"lambda must be in [0, 1), got {lam}")
    return lambda_returns(rewards, next_values, gamma, lam, dones)
