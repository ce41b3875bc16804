"""Same seed and device -> identical observations and rewards; another seed -> different ones."""

from __future__ import annotations

import torch

import envs


def _rollout(seed: int, steps: int = 30):
    env = envs.make("cartpole", num_envs=3, seed=seed, image_size=24)
    obs = env.reset()
    actions = torch.rand(steps, 3, 1, generator=torch.Generator().manual_seed(11)) * 2 - 1
    pixels, states, rewards = [obs["pixels"]], [obs["state"]], []
    for t in range(steps):
        obs, reward, _, _ = env.step(actions[t])
        pixels.append(obs["pixels"])
        states.append(obs["state"])
        rewards.append(reward)
    return torch.stack(pixels), torch.stack(states), torch.stack(rewards)


def test_same_seed_same_trajectory():
    a, b = _rollout(0), _rollout(0)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_different_seed_different_start():
    a, b = _rollout(0, steps=1), _rollout(1, steps=1)
    assert not torch.equal(a[1], b[1])
