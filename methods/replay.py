"""Replay of agent timesteps from batched envs: single uint8 frames stored once, stacks and n-step
returns assembled when a batch is sampled (DrQ-v2's replay stores whole stacked observations).

Each env has its own ring of timesteps, since an env that finishes an episode writes two
timesteps in one agent step (its terminal observation, then the first one of the next episode).
Timestep k holds the frame observed there, and the action, reward and discount of the transition
that led into it; `first` marks an episode's first timestep, `last` its final one (terminated:
discount 0; time limit: discount 1, bootstrapped from the terminal observation).
Bytes per timestep: 3*H*W (frame) + 4*action_dim + 10, i.e. 21,182 at 84x84 with one action:
1M timesteps = 21.2 GB (19.7 GiB). The frame store is allocated with `torch.empty`, so the
operating system commits its pages only as they are written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class NStepBatch:
    obs: torch.Tensor  # uint8 [B, 3*frame_stack, H, W]
    action: torch.Tensor  # [B, action_dim], the action taken at obs
    reward: torch.Tensor  # [B], sum_{i<m} gamma^i r_{t+i} (m <= n: stops at the episode's end)
    discount: torch.Tensor  # [B], gamma^m, or 0 when the episode terminated inside the window
    next_obs: torch.Tensor  # uint8 [B, 3*frame_stack, H, W], m agent steps later


@dataclass
class SequenceBatch:
    obs: torch.Tensor  # uint8 [B, L+1, 3*frame_stack, H, W]: o_0 .. o_L of one episode
    action: torch.Tensor  # [B, L, action_dim]: a_t taken at o_t
    reward: torch.Tensor  # [B, L]: r_t of the transition o_t -> o_{t+1}
    terminated: torch.Tensor  # [B, L]: 1 where o_{t+1} is a terminal (not time-limit) observation


@dataclass
class ChunkBatch:
    """Consecutive stored timesteps of one env, which may run across episodes (Dreamer's replay)."""

    obs: torch.Tensor  # uint8 [B, T, 3*frame_stack, H, W]
    action: torch.Tensor  # [B, T, action_dim]: the action that led into obs_t (0 where is_first)
    reward: torch.Tensor  # [B, T]: the reward of the transition into obs_t (0 where is_first)
    discount: torch.Tensor  # [B, T]: 0 where obs_t is terminal (not a time limit), else 1
    is_first: torch.Tensor  # bool [B, T]: obs_t starts an episode


class FrameReplay:
    def __init__(self, num_envs: int, capacity: int, frame_shape: tuple[int, int, int], action_dim: int, frame_stack: int):
        if capacity < num_envs * (frame_stack + 2):
            raise ValueError(f"replay capacity {capacity} is too small for {num_envs} envs")
        self.num_envs = num_envs
        self.per_env = math.ceil(capacity / num_envs)
        self.frame_stack = frame_stack
        self.frames = torch.empty(num_envs, self.per_env, *frame_shape, dtype=torch.uint8)
        self.actions = torch.zeros(num_envs, self.per_env, action_dim)
        self.rewards = torch.zeros(num_envs, self.per_env)
        self.discounts = torch.ones(num_envs, self.per_env)
        self.first = torch.zeros(num_envs, self.per_env, dtype=torch.bool)
        self.last = torch.zeros(num_envs, self.per_env, dtype=torch.bool)
        self.count = torch.zeros(num_envs, dtype=torch.long)  # timesteps ever written, per env

    @property
    def bytes_per_timestep(self) -> int:
        per = self.frames[0, 0].numel() + 4 * self.actions.shape[-1] + 4 + 4 + 1 + 1
        return int(per)

    def __len__(self) -> int:
        return int(self.count.clamp(max=self.per_env).sum())

    def add_first(self, frame: torch.Tensor, env_ids: torch.Tensor | None = None) -> None:
        """Episode starts: the first frame of a new episode in `env_ids` (all envs if None)."""
        env_ids = torch.arange(self.num_envs) if env_ids is None else env_ids.cpu()
        self._write(env_ids, frame, torch.zeros(len(env_ids), self.actions.shape[-1]), torch.zeros(len(env_ids)),
                    torch.ones(len(env_ids)), first=True, last=torch.zeros(len(env_ids), dtype=torch.bool))  # fmt: skip

    def add(self, frame: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor, last: torch.Tensor) -> None:
        """One transition in every env: the frame it led to (the terminal one where `last`)."""
        self._write(torch.arange(self.num_envs), frame, action, reward, discount, first=False, last=last)

    def add_step(self, obs: dict[str, torch.Tensor], action: torch.Tensor, reward: torch.Tensor, done: torch.Tensor, info: dict) -> None:
        """One vector step of an `ActionRepeat` env: the frame each env reached (its terminal frame
        where an episode ended; discount 0 only on a termination), then the first frame of each
        new episode."""
        frame = obs["pixels"][:, -3:]
        if bool(done.any()):
            frame = torch.where(done.view(-1, 1, 1, 1), info["terminal_obs"]["pixels"][:, -3:], frame)
        self.add(frame, action, reward, (~info["terminated"]).float(), done)
        if bool(done.any()):
            self.add_first(obs["pixels"][done, -3:], done.nonzero().flatten().cpu())

    def _write(self, env_ids, frame, action, reward, discount, first: bool, last) -> None:
        slots = self.count[env_ids] % self.per_env
        self.frames[env_ids, slots] = frame.detach().to("cpu", torch.uint8)
        self.actions[env_ids, slots] = action.detach().to("cpu", torch.float32)
        self.rewards[env_ids, slots] = reward.detach().to("cpu", torch.float32)
        self.discounts[env_ids, slots] = discount.detach().to("cpu", torch.float32)
        self.first[env_ids, slots] = first
        self.last[env_ids, slots] = last.detach().cpu()
        self.count[env_ids] += 1

    # -- sampling -------------------------------------------------------------------------------
    def sample(self, batch_size: int, nstep: int, gamma: float, generator: torch.Generator | None = None) -> NStepBatch:
        """Uniform over stored transitions (env uniform, then timestep), n-step truncated at episode ends."""
        env, start = self._sample_starts(
            batch_size, 1, lambda e, k: ~self.last[e, k % self.per_env] & self._window_complete(e, k, nstep), generator, "complete transitions"
        )
        reward, discount, end = self._nstep(env, start, nstep, gamma)
        return NStepBatch(
            obs=self._stack(env, start),
            action=self.actions[env, (start + 1) % self.per_env],
            reward=reward,
            discount=discount,
            next_obs=self._stack(env, end),
        )

    def sample_sequences(self, batch_size: int, length: int, generator: torch.Generator | None = None) -> SequenceBatch:
        """Uniform over windows of `length` transitions inside one episode (TD-MPC2's slices): the
        window may end on an episode's final (terminal or time-limit) observation, never cross it."""

        def inside_one_episode(e: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            ok = torch.ones_like(k, dtype=torch.bool)
            for j in range(length):  # no episode end before o_L
                ok &= ~self.last[e, (k + j) % self.per_env]
            return ok

        env, start = self._sample_starts(batch_size, length, inside_one_episode, generator, f"windows of {length} transitions")
        slots = (start.unsqueeze(1) + torch.arange(1, length + 1)) % self.per_env  # timesteps 1..L hold a_0..a_{L-1}
        rows = env.unsqueeze(1)
        return SequenceBatch(
            obs=torch.stack([self._stack(env, start + t) for t in range(length + 1)], dim=1),
            action=self.actions[rows, slots],
            reward=self.rewards[rows, slots],
            terminated=(self.discounts[rows, slots] == 0).float(),
        )

    def sample_chunks(self, batch_size: int, length: int, generator: torch.Generator | None = None) -> ChunkBatch:
        """Uniform over runs of `length` consecutive timesteps of one env; a run may cross episode
        boundaries, which `is_first` marks (DreamerV3's replay: the RSSM resets its state there)."""
        env, start = self._sample_starts(batch_size, length - 1, lambda e, k: torch.ones_like(k, dtype=torch.bool), generator, f"chunks of {length} timesteps")
        slots = (start.unsqueeze(1) + torch.arange(length)) % self.per_env
        rows = env.unsqueeze(1)
        return ChunkBatch(
            obs=torch.stack([self._stack(env, start + t) for t in range(length)], dim=1),
            action=self.actions[rows, slots],
            reward=self.rewards[rows, slots],
            discount=self.discounts[rows, slots],
            is_first=self.first[rows, slots],
        )

    def _sample_starts(self, batch_size: int, after: int, accept, generator, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(env, timestep) pairs, uniform over envs then over starts with `after` timesteps written
        after them, redrawn until `accept(env, start)` holds for each."""
        env = torch.empty(batch_size, dtype=torch.long)
        start = torch.empty(batch_size, dtype=torch.long)
        todo = torch.arange(batch_size)
        for _ in range(100):
            e = torch.randint(self.num_envs, (len(todo),), generator=generator)
            # Once the ring has wrapped, a stack may reach frame_stack-1 timesteps back: keep them stored.
            wrapped = self.count[e] > self.per_env
            low = torch.where(wrapped, self.count[e] - self.per_env + self.frame_stack - 1, torch.zeros_like(e))
            high = self.count[e] - 1 - after
            span = (high - low + 1).clamp(min=1)
            k = low + (torch.rand(len(todo), generator=generator) * span).long()
            ok = (high >= low) & accept(e, k)
            env[todo[ok]], start[todo[ok]] = e[ok], k[ok]
            todo = todo[~ok]
            if len(todo) == 0:
                return env, start
        raise RuntimeError(f"could not sample {batch_size} {what} from {len(self)} stored timesteps")

    def _window_complete(self, env: torch.Tensor, start: torch.Tensor, nstep: int) -> torch.Tensor:
        """All n steps after `start` are written, or the episode ends on a written one before."""
        ended_early = torch.zeros_like(start, dtype=torch.bool)
        for j in range(1, nstep):
            written = start + j < self.count[env]
            ended_early |= written & self.last[env, (start + j) % self.per_env]
        return ended_early | (start + nstep < self.count[env])

    def _nstep(self, env: torch.Tensor, start: torch.Tensor, nstep: int, gamma: float):
        reward = torch.zeros(len(env))
        discount = torch.ones(len(env))
        end = start.clone()
        alive = torch.ones(len(env), dtype=torch.bool)
        for j in range(1, nstep + 1):
            slot = (start + j) % self.per_env
            step_reward = self.rewards[env, slot]
            step_discount = self.discounts[env, slot]
            reward = torch.where(alive, reward + discount * step_reward, reward)
            discount = torch.where(alive, discount * gamma * step_discount, discount)
            end = torch.where(alive, start + j, end)
            alive = alive & ~self.last[env, slot]
        return reward, discount, end

    def _stack(self, env: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Frames index-(s-1) .. index, oldest first, repeating the episode's first frame before it."""
        indices = [index]
        for _ in range(self.frame_stack - 1):
            current = indices[0]
            indices.insert(0, torch.where(self.first[env, current % self.per_env], current, current - 1))
        rows = torch.stack([env * self.per_env + i % self.per_env for i in indices], dim=1).flatten()
        frames = self.frames.view(-1, *self.frames.shape[2:]).index_select(0, rows)  # one row copy per frame
        return frames.view(len(env), -1, *self.frames.shape[3:])
