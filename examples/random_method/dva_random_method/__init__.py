"""A uniform-random policy, packaged outside dva-bench: the smallest complete external method.

It shows the whole contract (methods/base.py): a config dataclass whose defaults are the method's
settings, a preset file beside the module (`configs/random.yaml`, only what differs), the class
attributes that tell the harness what the method needs (here: no pixels, no gradients), and the
entry point in this package's pyproject.toml that makes `harness run --methods random` find it
after `pip install examples/random_method`. It is also a floor every task's returns can be
compared against: actions uniform in [-1, 1]^d, whatever the observation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from methods.base import IterationStats, Method


@dataclass
class RandomConfig:
    num_envs: int = 16  # envs stepped per iteration
    horizon: int = 32  # steps per iteration (the policy does not learn: it only sets the curve's resolution)


class UniformRandom(Method):
    name = "random"
    config_cls = RandomConfig
    reads_pixels = False  # the actions ignore the observation: build the cheap state-only env
    default_eval_every_steps = 4096

    def __init__(self, spec, config: RandomConfig, device: str | torch.device = "cpu", seed: int = 0):
        self.config = config
        self.device = torch.device(device)
        self.action_dim = spec.action_dim
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self._started = False

    def _actions(self, num_envs: int) -> torch.Tensor:
        return torch.rand(num_envs, self.action_dim, generator=self.generator, device=self.device) * 2.0 - 1.0

    def iterate(self, env) -> IterationStats:
        if not self._started:
            env.reset()
            self._started = True
        finished: list[float] = []
        with env.timings.phase("act"):  # the env's own phases are timed inside it, apart
            for _ in range(self.config.horizon):
                _, _, _, info = env.step(self._actions(env.num_envs))
                finished.extend(info["episode_returns"].tolist())
        return IterationStats(env_steps=self.config.horizon * env.num_envs, finished_episode_returns=finished)

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = True) -> torch.Tensor:
        """Uniform actions in evaluation too: a random policy has no deterministic mode."""
        return self._actions(obs["state"].shape[0])

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._started = False
