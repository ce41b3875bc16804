"""A gymnasium `VectorEnv` view of a batched env: numpy in, numpy out, no gradients.

For users' own methods and for tools that speak gymnasium. Done envs reset inside `step`
(gymnasium's SAME_STEP autoreset mode): the returned observation is the new episode's first one,
and the finished episode's last observation is in `info["final_obs"]`.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

import envs
from envs.batched_env import DiffVisualEnv


class GymVectorEnv(VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env: DiffVisualEnv):
        self.env = env
        self.num_envs = env.num_envs
        spec = env.spec
        obs_spaces = {"state": spaces.Box(-np.inf, np.inf, (spec.state_dim,), np.float32)}
        if spec.image_shape is not None:
            obs_spaces["pixels"] = spaces.Box(0, 255, spec.image_shape, np.uint8)
        self.single_observation_space = spaces.Dict(obs_spaces)
        self.single_action_space = spaces.Box(-1.0, 1.0, (spec.action_dim,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    @staticmethod
    def _to_numpy(obs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        return {key: value.detach().cpu().numpy() for key, value in obs.items()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        with torch.no_grad():
            obs = self.env.reset(seed=seed)
        return self._to_numpy(obs), {}

    def step(self, actions):
        action = torch.as_tensor(np.asarray(actions, dtype=np.float32), device=self.env.device)
        with torch.no_grad():
            obs, reward, done, info = self.env.step(action)
        terminated = info["terminated"].cpu().numpy()
        truncated = info["truncated"].cpu().numpy()
        out_info = {}
        if bool(done.any()):
            final = self._to_numpy(info["terminal_obs"])
            mask = done.cpu().numpy()
            out_info["final_obs"] = final
            out_info["_final_obs"] = mask
            out_info["episode"] = {
                "r": info["episode_returns"].cpu().numpy(),
                "l": info["episode_lengths"].cpu().numpy(),
            }
        return self._to_numpy(obs), reward.detach().cpu().numpy(), terminated, truncated, out_info


def make_vector_env(name: str, **kwargs) -> GymVectorEnv:
    """`envs.make(...)` wrapped as a gymnasium vector env."""
    return GymVectorEnv(envs.make(name, **kwargs))
