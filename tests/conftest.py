"""Shared fixtures. Envs are module-scoped: building one is cheap once warp's kernels are cached,
but the first build on a machine compiles them (see README), so tests reuse what they can."""

from __future__ import annotations

import pytest

import envs


def replay_agent(method_cls, preset: str = "smoke", **overrides) -> tuple:
    """(agent, its training env) for a replay-based method at a preset (TD-MPC2, DreamerV3)."""
    from harness.resolved import build
    from methods.presets import load_config

    built = build(method_cls, "cartpole", load_config(method_cls, "cartpole", preset, overrides), "cpu", seed=0)
    return built.method, built.env


def step_to_first_update(agent, env):
    """Collect until the agent's first gradient update (its warm-up / prefill / seed steps)."""
    while agent.updates == 0:
        agent.iterate(env)
    return agent, env


@pytest.fixture(scope="module")
def pixel_env():
    return envs.make("cartpole", num_envs=4, seed=0, image_size=32, render="raytrace")


@pytest.fixture(scope="module")
def state_env():
    return envs.make("cartpole", num_envs=4, seed=0, render=None)
