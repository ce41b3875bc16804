"""The reward scale is the paper's: random policy ~ tens to low hundreds, upright balance -> ~2,400.

Run with `-s` to see the printed returns.
"""

from __future__ import annotations

import torch

import envs
from envs.tasks.cartpole import swing_up_controller


def _mean_episode_return(policy, seed: int = 0, num_envs: int = 16) -> float:
    env = envs.make("cartpole", num_envs=num_envs, seed=seed, render=None)
    obs = env.reset()
    finished: list[torch.Tensor] = []
    generator = torch.Generator().manual_seed(seed)
    for _ in range(2 * 240):
        obs, _, _, info = env.step(policy(obs["state"], generator))
        finished.append(info["episode_returns"])
    return float(torch.cat(finished).mean())


def test_random_policy_and_swing_up_controller_returns():
    # "Random" as an untrained D.Va/SHAC actor acts: tanh of N(0, exp(-1)) (log-std init -1).
    random_return = _mean_episode_return(lambda s, g: torch.tanh(torch.randn(s.shape[0], 1, generator=g) * 0.3679))
    # Uniform actions in [-1, 1] are 1000 N kicks on a 1 kg cart: the velocity penalty dominates.
    uniform_return = _mean_episode_return(lambda s, g: torch.rand(s.shape[0], 1, generator=g) * 2 - 1)
    controller_return = _mean_episode_return(lambda s, g: swing_up_controller(s))
    print(
        f"\ncartpole mean episode return: random actor (tanh N(0, e^-1)) {random_return:.1f}, "
        f"uniform random {uniform_return:.1f}, swing-up controller {controller_return:.1f}"
    )
    assert 5.0 < random_return < 400.0
    assert uniform_return < random_return  # hard kicks are penalised, as in the paper's reward
    assert controller_return > 1800.0
    assert controller_return < 2400.0 + 1e-3  # 240 steps x max reward 10
