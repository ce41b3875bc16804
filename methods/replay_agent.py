"""The collection loop shared by the replay-based pixel baselines (DrQ-v2, TD-MPC2).

Both act in an `ActionRepeat` env of agent-step frame stacks, store each vector step in a
`FrameReplay` (single frames), and train from it on their own schedule. A subclass provides
`_explore(obs, num_envs)` (the behaviour action), `_train_after_step(num_envs, control_steps,
phases)` (counters and updates after one vector step; returns the last update's metrics or None)
and `_iteration_metrics()`; it owns `config` (with `vector_steps_per_iteration` and
`action_repeat`), `replay` and `_obs`.
"""

from __future__ import annotations

import torch

from methods.base import IterationStats, Method, ReplayUpdates


class ReplayAgent(Method, ReplayUpdates):
    act_phase = "act"  # the phase name the behaviour action's seconds are logged under

    def iterate(self, env) -> IterationStats:
        """`vector_steps_per_iteration` vector steps, each stored and followed by its updates."""
        cfg, clock = self.config, env.timings
        update_parts: dict[str, float] = {}  # the updates' parts (PhaseClock laps), charged to the clock below
        metrics: dict[str, float] = {}
        finished: list[float] = []
        if self._obs is None:
            self._obs = env.reset()
            self._episode_start = torch.ones(env.num_envs, dtype=torch.bool)
            self.replay.add_first(self._obs["pixels"][:, -3:])
        for _ in range(cfg.vector_steps_per_iteration):
            with clock.phase(self.act_phase):
                action = self._explore(self._obs, env.num_envs)
            obs, reward, done, info = env.step(action)
            with clock.phase("replay_add"):
                self.replay.add_step(obs, action, reward, done, info)
            finished.extend(info["episode_returns"].tolist())
            self._obs, self._episode_start = obs, done.cpu()
            metrics = self._train_after_step(env.num_envs, info.get("control_steps", 1), update_parts) or metrics
        for name, seconds in update_parts.items():
            clock.add(name, seconds)
        metrics |= self._iteration_metrics()
        control_steps = cfg.vector_steps_per_iteration * env.num_envs * cfg.action_repeat
        return IterationStats(env_steps=control_steps, metrics=metrics, finished_episode_returns=finished)
