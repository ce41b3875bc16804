"""`harness bench-env`: environment throughput, the numbers every CPU preset is chosen from.

Three measurements on the same task and settings, each after a warm-up that triggers warp's
kernel compilation (reported separately, since it is paid once per machine):
physics only (`render=None`), physics + rendering (`render="raytrace"`), and the forward and
backward pass through a `horizon`-step differentiable rollout (return summed over the horizon,
gradient w.r.t. every action), which is the simulator's share of a D.Va/SHAC iteration.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

import envs


@dataclass
class EnvBenchResult:
    task: str
    num_envs: int
    image_size: int
    device: str
    steps: int
    horizon: int
    build_and_compile_s: float
    physics_steps_per_s: float
    physics_render_steps_per_s: float
    horizon_forward_s: float
    horizon_backward_s: float

    @property
    def horizon_total_s(self) -> float:
        return self.horizon_forward_s + self.horizon_backward_s

    def as_dict(self) -> dict:
        return asdict(self) | {"horizon_total_s": self.horizon_total_s}

    def table(self) -> str:
        n_h = self.num_envs * self.horizon
        rows = [
            ("physics only", f"{self.physics_steps_per_s:,.0f} env-steps/s"),
            (f"physics + render ({self.image_size}x{self.image_size})", f"{self.physics_render_steps_per_s:,.0f} env-steps/s"),
            (
                f"{self.horizon}-step horizon forward + backward",
                f"{self.horizon_total_s:.3f} s (forward {self.horizon_forward_s:.3f} s, backward {self.horizon_backward_s:.3f} s, "
                f"{n_h / self.horizon_total_s:,.0f} env-steps/s)",
            ),
            ("env build + first step (incl. any kernel compile)", f"{self.build_and_compile_s:.1f} s"),
        ]
        width = max(len(r[0]) for r in rows)
        head = f"bench-env: task={self.task} num_envs={self.num_envs} device={self.device} steps={self.steps}"
        return "\n".join([head] + [f"  {name:<{width}}  {value}" for name, value in rows])


def _random_actions(env: envs.DiffVisualEnv, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(env.num_envs, env.spec.action_dim, generator=generator, device=env.device) * 2 - 1


def _steps_per_second(env: envs.DiffVisualEnv, steps: int, generator: torch.Generator) -> float:
    env.reset()
    with torch.no_grad():
        for _ in range(10):  # warm-up: first-use kernel loads and allocator growth
            env.step(_random_actions(env, generator))
        start = time.perf_counter()
        for _ in range(steps):
            env.step(_random_actions(env, generator))
        elapsed = time.perf_counter() - start
    return steps * env.num_envs / elapsed


def _horizon_times(env: envs.DiffVisualEnv, horizon: int, generator: torch.Generator, repeats: int = 3) -> tuple[float, float]:
    """Best-of-`repeats` forward and backward seconds of a differentiable `horizon`-step rollout."""
    env.reset()
    best_fwd = best_bwd = float("inf")
    for _ in range(repeats + 1):  # the first round also compiles the backward kernels
        env.detach()
        actions = (torch.rand(horizon, env.num_envs, env.spec.action_dim, generator=generator, device=env.device) * 2 - 1)
        actions.requires_grad_(True)
        start = time.perf_counter()
        total = torch.zeros((), device=env.device)
        for t in range(horizon):
            _, reward, _, _ = env.step(actions[t])
            total = total + reward.sum()
        mid = time.perf_counter()
        total.backward()
        end = time.perf_counter()
        best_fwd, best_bwd = min(best_fwd, mid - start), min(best_bwd, end - mid)
    return best_fwd, best_bwd


def bench_env(task: str, num_envs: int = 64, image_size: int = 84, device: str = "cpu", steps: int = 100, horizon: int = 32, seed: int = 0) -> EnvBenchResult:
    generator = torch.Generator(device=device).manual_seed(seed)
    start = time.perf_counter()
    physics_env = envs.make(task, num_envs=num_envs, device=device, seed=seed, render=None)
    physics_env.reset()
    physics_env.step(_random_actions(physics_env, generator))
    build_s = time.perf_counter() - start
    physics = _steps_per_second(physics_env, steps, generator)
    fwd, bwd = _horizon_times(physics_env, horizon, generator)
    render_env = envs.make(task, num_envs=num_envs, device=device, seed=seed, image_size=image_size, render="raytrace")
    physics_render = _steps_per_second(render_env, steps, generator)
    return EnvBenchResult(task, num_envs, image_size, str(device), steps, horizon, build_s, physics, physics_render, fwd, bwd)
