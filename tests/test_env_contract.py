"""The batched env contract of DESIGN.md, on CartPole."""

from __future__ import annotations

import math

import pytest
import torch

import envs
from envs.batched_env import MIN_IMAGE_SIZE


def test_spec_describes_the_task(pixel_env):
    spec = pixel_env.spec
    assert (spec.name, spec.num_envs, spec.state_dim, spec.action_dim) == ("cartpole", 4, 5, 1)
    assert spec.episode_length == 240 and spec.substeps == 4
    assert math.isclose(spec.control_dt, 1 / 60)
    assert spec.image_shape == (9, 32, 32)


def test_reset_and_step_shapes_and_dtypes(pixel_env):
    obs = pixel_env.reset()
    assert obs["pixels"].shape == (4, 9, 32, 32) and obs["pixels"].dtype == torch.uint8
    assert obs["state"].shape == (4, 5) and obs["state"].dtype == torch.float32
    obs, reward, done, info = pixel_env.step(torch.zeros(4, 1))
    assert reward.shape == (4,) and done.shape == (4,) and done.dtype == torch.bool
    assert info["truncated"].shape == (4,) and info["terminated"].shape == (4,)
    assert info["terminal_obs"]["state"].shape == (4, 5)


def test_start_state_is_hanging_with_paper_noise(state_env):
    q, qd = state_env.task.initial_state(10_000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert (q[:, 1] + math.pi).abs().max() <= math.pi / 12 + 1e-6
    assert q[:, 0].abs().max() <= math.pi / 12 + 1e-6
    assert qd.abs().max() <= 0.05 + 1e-6
    assert (q[:, 1] + math.pi).abs().max() > 0.9 * math.pi / 12  # noise is really drawn


def test_reward_is_the_papers_formula(state_env):
    task = state_env.task
    q = torch.tensor([[0.5, 2 * math.pi + 0.3]])  # theta wraps to 0.3
    qd = torch.tensor([[1.0, -2.0]])
    expected = 10 - 0.3**2 - 0.1 * 4.0 - 0.05 * 0.25 - 0.1 * 1.0
    assert torch.allclose(task.reward(q, qd, torch.zeros(1, 1)), torch.tensor([expected]), atol=1e-5)


def test_frame_stack_oldest_first_and_refilled_after_reset(pixel_env):
    obs = pixel_env.reset()
    frames = obs["pixels"].reshape(4, 3, 3, 32, 32)
    assert torch.equal(frames[:, 0], frames[:, 2])  # reset fills every slot with the first frame
    push = torch.ones(4, 1)
    for _ in range(3):
        obs, *_ = pixel_env.step(push)
    frames = obs["pixels"].reshape(4, 3, 3, 32, 32)
    assert not torch.equal(frames[:, 0], frames[:, 2])  # the cart moved: oldest != newest
    previous = obs["pixels"]
    obs, *_ = pixel_env.step(push)
    # the new stack is the previous one shifted by one frame
    assert torch.equal(obs["pixels"][:, :6], previous[:, 3:])


def test_time_limit_truncates_and_auto_resets_with_fresh_frames(pixel_env):
    pixel_env.reset()
    zero = torch.zeros(4, 1)  # hanging pole, cart at rest: never leaves |x| < 2.5
    for t in range(239):
        _, _, done, _ = pixel_env.step(zero)
        assert not done.any(), f"early done at step {t}"
    obs, reward, done, info = pixel_env.step(zero)
    assert done.all() and info["truncated"].all() and not info["terminated"].any()
    assert torch.equal(info["episode_lengths"], torch.full((4,), 240))
    assert info["episode_returns"].shape == (4,)
    assert (pixel_env.progress == 0).all()
    frames = obs["pixels"].reshape(4, 3, 3, 32, 32)
    assert torch.equal(frames[:, 0], frames[:, 2]) and torch.equal(frames[:, 1], frames[:, 2])
    assert "pixels" in info["terminal_obs"]


def test_early_termination_beyond_the_rail_bound(state_env):
    state_env.reset()
    q = torch.tensor([[2.6, -math.pi]] * 4)
    state_env.set_sim_state(q, torch.zeros(4, 2))
    _, _, done, info = state_env.step(torch.zeros(4, 1))
    assert done.all() and info["terminated"].all() and not info["truncated"].any()
    assert torch.allclose(info["terminal_obs"]["state"][:, 0], torch.full((4,), 2.6), atol=0.01)
    assert state_env.sim_state[0][:, 0].abs().max() < 0.3  # reset back near the centre


def test_pixels_never_carry_gradient(pixel_env):
    pixel_env.reset()
    action = torch.zeros(4, 1, requires_grad=True)
    obs, reward, _, _ = pixel_env.step(action)
    assert not obs["pixels"].requires_grad
    assert reward.requires_grad and obs["state"].requires_grad
    pixel_env.detach()


def test_detach_cuts_the_graph(state_env):
    state_env.reset()
    a0 = torch.zeros(4, 1, requires_grad=True)
    state_env.step(a0)
    state_env.detach()
    _, reward, _, _ = state_env.step(torch.zeros(4, 1, requires_grad=True))
    reward.sum().backward()
    assert a0.grad is None


def test_cartpole_renders_the_pole_in_orange():
    env = envs.make("cartpole", num_envs=1, image_size=84)
    q = torch.tensor([[0.0, 0.0]])  # upright, centred
    image = env.renderer.render(q)[0].float() / 255  # [3, H, W]
    orange = (image[0] > 0.6) & (image[1] < 0.5) & (image[2] < 0.2)
    rows = orange.any(dim=1).nonzero().flatten()
    assert orange.sum() > 10, "no orange body pixels in view"
    assert rows.max() - rows.min() > 5, "an upright pole should span several rows"
    grey = (image.max(dim=0).values - image.min(dim=0).values < 0.02)
    assert grey.float().mean() > 0.5, "floor and backdrop should be grey"


@pytest.mark.parametrize("size, supersample", [(48, 2), (84, 1)])
def test_cropping_static_rows_keeps_every_pixel_that_can_change(size, supersample):
    full = envs.make("cartpole", num_envs=3, image_size=size, supersample=supersample)
    cropped = envs.make("cartpole", num_envs=3, image_size=size, supersample=supersample, crop_static_rows=True)
    _, height, width = cropped.spec.image_shape
    assert width == size and MIN_IMAGE_SIZE <= height < size * 0.7
    # extreme poses: the cart at both rail ends, the pole up, down and sideways
    q = torch.tensor([[-2.5, 0.0], [2.5, 3.1416], [0.0, 1.5708]])
    a, b = full.renderer.render(q), cropped.renderer.render(q)
    start = next(r for r in range(size) if torch.equal(a[:, :, r : r + height], b))  # the crop is a row band
    outside = torch.cat([a[:, :, :start], a[:, :, start + height :]], dim=2)
    backdrop = full.renderer.render(torch.tensor([[0.0, 0.0]]))  # any pose: rows outside the band never change
    assert torch.equal(outside, torch.cat([backdrop[:, :, :start], backdrop[:, :, start + height :]], dim=2).expand_as(outside))


def test_gym_vector_wrapper_roundtrip():
    import numpy as np

    from envs.gym_wrapper import make_vector_env

    venv = make_vector_env("cartpole", num_envs=2, image_size=16)
    obs, _ = venv.reset(seed=3)
    assert obs["pixels"].shape == (2, 9, 16, 16) and obs["pixels"].dtype == np.uint8
    assert venv.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = venv.step(venv.action_space.sample())
    assert isinstance(reward, np.ndarray) and reward.shape == (2,)
    assert terminated.dtype == bool and truncated.dtype == bool
    assert obs["state"].dtype == np.float32
