"""Shared fixtures. Envs are module-scoped: building one is cheap once warp's kernels are cached,
but the first build on a machine compiles them (see README), so tests reuse what they can."""

from __future__ import annotations

import pytest

import envs


@pytest.fixture(scope="module")
def pixel_env():
    return envs.make("cartpole", num_envs=4, seed=0, image_size=32, render="raytrace")


@pytest.fixture(scope="module")
def state_env():
    return envs.make("cartpole", num_envs=4, seed=0, render=None)
