"""Critic targets shared by the first-order methods."""

from __future__ import annotations

import torch


@torch.no_grad()
def td_lambda_targets(
    rewards: torch.Tensor, next_values: torch.Tensor, dones: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """TD(lambda) targets over a [T, N] rollout, SHAC's backward recursion (dva_paper.md section 1.3).

    `next_values[t]` is V_target of the state reached at step t (already 0 on early termination
    and V(terminal obs) on a time limit); `dones[t]` marks the end of an episode or of the
    horizon (the last step is always a cut). With lam = 0 this is r_t + gamma * V(s_{t+1}).
    """
    if not 0.0 <= lam < 1.0:
        raise ValueError(f"lambda must be in [0, 1), got {lam}")
    horizon = rewards.shape[0]
    targets = torch.empty_like(rewards)
    acc_a = torch.zeros_like(rewards[0])
    acc_b = torch.zeros_like(rewards[0])
    weight = torch.ones_like(rewards[0])
    d = dones.to(rewards.dtype)
    for t in reversed(range(horizon)):
        weight = weight * lam * (1.0 - d[t]) + d[t]
        acc_a = (1.0 - d[t]) * (lam * gamma * acc_a + gamma * next_values[t] + (1.0 - weight) / (1.0 - lam) * rewards[t])
        acc_b = gamma * (d[t] * next_values[t] + (1.0 - d[t]) * acc_b) + rewards[t]
        targets[t] = (1.0 - lam) * acc_a + weight * acc_b
    return targets
