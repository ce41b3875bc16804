"""A gymnasium `VectorEnv` view of a batched env: numpy in, numpy out, no gradients.

For users' own methods and for tools that speak gymnasium, in either of gymnasium's autoreset
modes (https://farama.org/Vector-Autoreset-Mode), with the info layout gymnasium's own vector envs
give (a boolean mask `_key` beside every key):
- NEXT_STEP (the default, gymnasium's and CleanRL's): the step that ends an episode returns its
  last observation; the next step resets that env, ignores its action and returns the new
  episode's first observation with reward 0 (the batched env holds it in place meanwhile). The
  ending step's info has the env's own episode `return` and `length`. Every gymnasium vector
  wrapper accepts this mode, observation wrappers (`NormalizeObservation`) included.
- SAME_STEP: a done env resets inside the step that ends it; the returned observation is the new
  episode's first one, `final_obs` holds the finished episode's last observation (an object array
  with None for the envs that did not finish) and `final_info` its `return` and `length`.
`RecordEpisodeStatistics` adds `info["episode"]` itself on top of either and agrees with them.
`observation="state"` or `"pixels"` gives a plain Box observation instead of the dict.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

import envs
from envs.batched_env import DiffVisualEnv

OBSERVATIONS = ("dict", "state", "pixels")


class GymVectorEnv(VectorEnv):
    def __init__(self, env: DiffVisualEnv, observation: str = "dict", autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP):
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        if autoreset_mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ValueError(f"autoreset_mode must be NEXT_STEP or SAME_STEP, got {autoreset_mode!r}")
        self.metadata = {"autoreset_mode": autoreset_mode}
        self._pending_reset = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
        spec = env.spec
        if observation == "pixels" and spec.image_shape is None:
            raise ValueError("observation='pixels' needs a rendering env (render='raytrace')")
        self.env = env
        self.observation = observation
        self.num_envs = env.num_envs
        obs_spaces = {"state": spaces.Box(-np.inf, np.inf, (spec.state_dim,), np.float32)}
        if spec.image_shape is not None:
            obs_spaces["pixels"] = spaces.Box(0, 255, spec.image_shape, np.uint8)
        self.single_observation_space = spaces.Dict(obs_spaces) if observation == "dict" else obs_spaces[observation]
        self.single_action_space = spaces.Box(-1.0, 1.0, (spec.action_dim,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def _to_numpy(self, obs: dict[str, torch.Tensor]):
        arrays = {key: value.detach().cpu().numpy().copy() for key, value in obs.items()}  # a copy: never a view of the env's buffers
        return arrays if self.observation == "dict" else arrays[self.observation]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        with torch.no_grad():
            obs = self.env.reset(seed=seed)
        self._pending_reset.zero_()
        return self._to_numpy(obs), {}

    def step(self, actions):
        action = torch.as_tensor(np.asarray(actions, dtype=np.float32), device=self.env.device)
        next_step = self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        with torch.no_grad():
            obs, reward, done, info = self.env.step(action, hold=self._pending_reset if next_step else None)
        terminated = info["terminated"].cpu().numpy()
        truncated = info["truncated"].cpu().numpy()
        mask = done.cpu().numpy()
        obs = self._to_numpy(obs)
        out_info: dict = {}
        if mask.any():
            finished = np.flatnonzero(mask)
            episode = {"return": np.zeros(self.num_envs, dtype=np.float32), "length": np.zeros(self.num_envs, dtype=np.int64)}
            episode["return"][finished] = info["episode_returns"].cpu().numpy()
            episode["length"][finished] = info["episode_lengths"].cpu().numpy()
            episode |= {"_return": mask.copy(), "_length": mask.copy()}
            final = self._to_numpy(info["terminal_obs"])
            if next_step:  # the ending step shows the episode's last observation; the env already holds the next one's first
                for key in obs if isinstance(obs, dict) else [None]:
                    target, source = (obs[key], final[key]) if key is not None else (obs, final)
                    target[finished] = source[finished]
                out_info = episode
            else:
                final_obs = np.full(self.num_envs, None, dtype=object)
                for i in finished:
                    final_obs[i] = {key: value[i] for key, value in final.items()} if isinstance(final, dict) else final[i]
                out_info = {"final_obs": final_obs, "_final_obs": mask.copy(), "final_info": episode, "_final_info": mask.copy()}
        self._pending_reset = done.clone()
        return obs, reward.detach().cpu().numpy(), terminated, truncated, out_info


def make_vector_env(name: str, observation: str = "dict", autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP, **kwargs) -> GymVectorEnv:
    """`envs.make(...)` wrapped as a gymnasium vector env (`observation`: dict, state or pixels)."""
    return GymVectorEnv(envs.make(name, **kwargs), observation, autoreset_mode)
