"""Action repeat with agent-step frame stacking, for the replay-based baselines (DrQ-v2, DreamerV3, TD-MPC2).

The agent acts every `repeat` control steps; its frame stack holds the frames it saw at its own
steps (the DrQ-v2 convention: with repeat 2 and 3 frames the stack spans 4 control steps), not
the last 3 control steps as D.Va's stack does. Rewards are summed over every control step, so
returns are the true sums over every simulator step (the reference adapter logged half-returns).

Batched envs step together, so an env whose episode ends on an inner step (early termination,
or a time limit reached off the agent's grid) still takes the remaining inner steps of this agent
step: they are the first control steps of its next episode, taken with the previous action.
Their reward is counted in that episode's return (the inner env's episode bookkeeping), and
the agent's first observation of that episode is the one after them. The transition that ended
the episode gets the terminal observation and the reward up to the end only.
"""

from __future__ import annotations

import dataclasses

import torch

from envs.batched_env import DiffVisualEnv


class ActionRepeat:
    """Wraps a `DiffVisualEnv` built with `frame_stack=1`; same contract, one step = `repeat` control steps."""

    def __init__(self, env: DiffVisualEnv, repeat: int, frame_stack: int):
        if env.spec.frame_stack != 1:
            raise ValueError(f"ActionRepeat stacks frames itself: build the inner env with frame_stack=1, not {env.spec.frame_stack}")
        if repeat < 1 or frame_stack < 1:
            raise ValueError(f"repeat and frame_stack must be >= 1, got {repeat} and {frame_stack}")
        self.env = env
        self.repeat = repeat
        self.frame_stack = frame_stack
        inner = env.spec
        image_shape = (3 * frame_stack, *inner.image_shape[1:]) if inner.image_shape is not None else None
        self.spec = dataclasses.replace(
            inner,
            episode_length=-(-inner.episode_length // repeat),  # agent steps
            control_dt=inner.control_dt * repeat,
            image_shape=image_shape,
            frame_stack=frame_stack,
        )
        self._frames: torch.Tensor | None = None

    # -- what the harness and methods use from the inner env ------------------------------------
    @property
    def num_envs(self) -> int:
        return self.env.num_envs

    @property
    def device(self) -> torch.device:
        return self.env.device

    @property
    def timings(self):
        return self.env.timings

    def detach(self) -> None:
        self.env.detach()

    @property
    def sim_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.env.sim_state

    # -- contract -------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> dict[str, torch.Tensor]:
        obs = self.env.reset(seed=seed)
        if "pixels" in obs:
            self._frames = obs["pixels"].repeat(1, self.frame_stack, 1, 1)
        return self._observation(obs)

    @torch.no_grad()
    def step(self, action: torch.Tensor):
        """`repeat` control steps with `action`; reward summed until each env's episode ends."""
        n = self.env.num_envs
        reward = torch.zeros(n, device=self.device)
        done = torch.zeros(n, dtype=torch.bool, device=self.device)
        terminated = torch.zeros_like(done)
        terminal_state = None
        terminal_frame = None
        episode_returns, episode_lengths = [], []
        for _ in range(self.repeat):
            obs, step_reward, step_done, info = self.env.step(action)
            reward += torch.where(done, torch.zeros_like(step_reward), step_reward)
            newly = step_done & ~done
            if bool(newly.any()):
                if terminal_state is None:
                    terminal_state = info["terminal_obs"]["state"].clone()
                else:
                    terminal_state[newly] = info["terminal_obs"]["state"][newly]
                if "pixels" in info["terminal_obs"]:
                    frame = info["terminal_obs"]["pixels"][:, -3:]
                    terminal_frame = frame.clone() if terminal_frame is None else torch.where(newly.view(-1, 1, 1, 1), frame, terminal_frame)
                terminated |= info["terminated"] & newly
                done |= newly
            # Episodes can only end once per agent step unless an episode lasts less than `repeat`
            # control steps; the inner env still reports every finished episode.
            episode_returns.append(info["episode_returns"])
            episode_lengths.append(info["episode_lengths"])
        info = {
            "terminated": terminated,
            "truncated": done & ~terminated,
            # Rows of envs that did not finish hold the current state, as the inner env's do.
            "terminal_obs": {"state": obs["state"] if terminal_state is None else torch.where(done.unsqueeze(1), terminal_state, obs["state"])},
            "episode_returns": torch.cat(episode_returns),
            "episode_lengths": torch.cat(episode_lengths),
            "control_steps": self.repeat,
        }
        if self._frames is not None:
            frame = obs["pixels"]
            if terminal_frame is not None:
                info["terminal_obs"]["pixels"] = torch.cat([self._frames[:, 3:], terminal_frame], dim=1)
            stacked = torch.cat([self._frames[:, 3:], frame], dim=1)
            self._frames = torch.where(done.view(-1, 1, 1, 1), frame.repeat(1, self.frame_stack, 1, 1), stacked)
        return self._observation(obs), reward, done, info

    def _observation(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {"state": obs["state"]}
        if self._frames is not None:
            out["pixels"] = self._frames
        return out
