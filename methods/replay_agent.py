"""The collection loop shared by the replay-based pixel baselines (DrQ-v2, TD-MPC2).

Both act in an `ActionRepeat` env of agent-step frame stacks, store each vector step in a
`FrameReplay` (single frames), and train from it on their own schedule. A subclass provides
`_explore(obs, num_envs)` (the behaviour action), `_train_after_step(num_envs, control_steps,
phases)` (counters and updates after one vector step; returns the last update's metrics or None)
and `_iteration_metrics()`; it owns `config` (with `vector_steps_per_iteration` and
`action_repeat`), `replay` and `_obs`.
"""

from __future__ import annotations

import time

import torch

from methods.base import IterationStats, Method


class ReplayAgent(Method):
    act_phase = "act"  # the phase name the behaviour action's seconds are logged under

    @classmethod
    def env_kwargs(cls, config) -> dict:
        return {
            "num_envs": config.num_envs,
            "image_size": config.image_size,
            "supersample": config.supersample,
            "frame_stack": config.frame_stack,
            "action_repeat": config.action_repeat,
            "render": "raytrace",
        }

    def iterate(self, env) -> IterationStats:
        """`vector_steps_per_iteration` vector steps, each stored and followed by its updates."""
        cfg = self.config
        phases: dict[str, float] = {}
        metrics: dict[str, float] = {}
        finished: list[float] = []
        env.timings.pop()
        if self._obs is None:
            self._obs = env.reset()
            self._episode_start = torch.ones(env.num_envs, dtype=torch.bool)
            self.replay.add_first(self._obs["pixels"][:, -3:])
        for _ in range(cfg.vector_steps_per_iteration):
            start = time.perf_counter()
            action = self._explore(self._obs, env.num_envs)
            phases[self.act_phase] = phases.get(self.act_phase, 0.0) + time.perf_counter() - start
            obs, reward, done, info = env.step(action)
            start = time.perf_counter()
            self.replay.add_step(obs, action, reward, done, info)
            phases["replay_add"] = phases.get("replay_add", 0.0) + time.perf_counter() - start
            finished.extend(info["episode_returns"].tolist())
            self._obs, self._episode_start = obs, done.cpu()
            metrics = self._train_after_step(env.num_envs, info.get("control_steps", 1), phases) or metrics
        env_phases = env.timings.pop()
        phases = {"sim_forward": env_phases.get("sim_forward", 0.0), "render": env_phases.get("render", 0.0), **phases}
        metrics |= self._iteration_metrics()
        control_steps = cfg.vector_steps_per_iteration * env.num_envs * cfg.action_repeat
        return IterationStats(env_steps=control_steps, phase_s=phases, metrics=metrics, finished_episode_returns=finished)
