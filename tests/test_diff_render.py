"""The differentiable renderer (visual SHAC's side of the comparison) and SHAC's gradient path."""

from __future__ import annotations

import math

import pytest
import torch

import envs
from envs.diff_render import DifferentiableRenderer
from envs.tasks import get_task
from methods import get_method_class
from methods.dva import DVAConfig

TASK = get_task("cartpole")
# Agreement bound with Newton's ray tracer on the same states, over the pixels that show a body
# (the backdrop is shared, so whole-image averages would hide errors): both renderers quantise
# alike, so pixels may differ only where float rounding puts a silhouette ray on the other side of
# an edge. Mean absolute difference in 8-bit levels, and fraction of body pixels that differ at all.
MAX_MEAN_ABS_DIFF = 0.5
MAX_DIFFERING_FRACTION = 0.02


def _body_pixel_agreement(ours: torch.Tensor, reference: torch.Tensor, backdrop: torch.Tensor) -> tuple[float, float, int]:
    """Over pixels where either renderer shows a body (a ghost or oversized silhouette counts too)."""
    body = ((reference.float() != backdrop) | (ours != backdrop)).any(dim=1, keepdim=True).expand_as(reference)
    diff = (ours - reference.float()).abs()[body]
    return float(diff.mean()), float((diff > 0).float().mean()), int(body.sum())


def _backdrop_image(renderer: DifferentiableRenderer) -> torch.Tensor:
    backdrop = renderer._backdrop_float.unsqueeze(0)
    if renderer.supersample > 1:
        backdrop = torch.nn.functional.avg_pool2d(backdrop, renderer.supersample).round()
    return backdrop


@pytest.fixture(scope="module")
def model():
    return envs.make("cartpole", num_envs=16, render=None).model


def _random_states(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, generator=g) * 2 - 1) * 3.0
    theta = (torch.rand(n, generator=g) * 2 - 1) * math.pi
    return torch.stack([x, theta], dim=1)


@pytest.mark.parametrize("image_size, supersample, crop", [(32, 1, False), (48, 2, True), (84, 1, False)])
def test_differentiable_renderer_matches_the_ray_tracer(model, image_size, supersample, crop):
    renderer = DifferentiableRenderer(model, TASK.camera, image_size, torch.device("cpu"), TASK.visual_bounds, supersample, crop)
    q = _random_states(16, seed=image_size)
    ours, reference = renderer.render(q), renderer.render_raytraced(q)
    assert ours.dtype == torch.float32 and ours.shape == reference.shape
    mean_abs, differing, body_pixels = _body_pixel_agreement(ours, reference, _backdrop_image(renderer))
    assert body_pixels > 100  # the bodies are in view
    assert mean_abs <= MAX_MEAN_ABS_DIFF and differing <= MAX_DIFFERING_FRACTION


def test_pixel_gradient_matches_finite_differences_away_from_edges(model):
    renderer = DifferentiableRenderer(model, TASK.camera, 32, torch.device("cpu"), TASK.visual_bounds)
    q = _random_states(16, seed=3).double().float()
    eps = 1e-3
    q_var = q.clone().requires_grad_(True)
    image = renderer.render(q_var, quantize=False)
    weights = torch.randn(image.shape, generator=torch.Generator().manual_seed(0))
    # Interior pixels: the face under the pixel is the same at q - eps and q + eps (both coordinates).
    faces = [renderer.visible_faces(q + d) for d in (torch.tensor([s * eps, t * eps]) for s in (-1, 1) for t in (-1, 1))]
    stable = torch.ones_like(faces[0], dtype=torch.bool)
    for f in faces[1:]:
        stable &= f == faces[0]
    mask = torch.zeros_like(image[:, 0], dtype=torch.bool)
    mask[:, renderer._rows, renderer._cols] = stable & (faces[0] >= 0)
    weights = weights * mask.unsqueeze(1)
    (image * weights).sum().backward()
    for k in range(2):
        step = torch.zeros_like(q)
        step[:, k] = eps
        plus = (renderer.render(q + step, quantize=False) * weights).sum(dim=(1, 2, 3))
        minus = (renderer.render(q - step, quantize=False) * weights).sum(dim=(1, 2, 3))
        fd = (plus - minus) / (2 * eps)
        torch.testing.assert_close(q_var.grad[:, k], fd, rtol=2e-2, atol=2e-2 * float(fd.abs().max()) + 1e-3)
    assert float(q_var.grad[:, 1].abs().max()) > 1.0  # the pole's shading really depends on its angle


def _smoke(name: str, render: str, image_size: int = 16):
    cls = get_method_class(name)
    config = DVAConfig(num_envs=4, image_size=image_size, horizon=4, critic_iterations=2, actor_units=[16], critic_units=[16], render=render)
    env = envs.make("cartpole", seed=0, **cls.env_kwargs(config))
    return cls(env.spec, config, "cpu", seed=0), env


def test_env_with_differentiable_pixels_shows_the_same_frames_as_the_ray_traced_env():
    (_, diff_env), (_, ray_env) = _smoke("shac", "differentiable"), _smoke("dva", "raytrace")
    a, b = diff_env.reset(), ray_env.reset()
    assert a["pixels"].dtype == torch.float32 and b["pixels"].dtype == torch.uint8
    for _ in range(5):
        action = torch.rand(4, 1, generator=torch.Generator().manual_seed(1)) * 2 - 1
        a, *_ = diff_env.step(action)
        b, *_ = ray_env.step(action)
    backdrop = _backdrop_image(diff_env.renderer).repeat(1, 3, 1, 1)
    mean_abs, differing, _ = _body_pixel_agreement(a["pixels"], b["pixels"], backdrop)
    assert mean_abs <= MAX_MEAN_ABS_DIFF and differing <= MAX_DIFFERING_FRACTION


def test_shac_actor_input_reaches_the_simulator_state_and_dva_input_does_not():
    shac, env = _smoke("shac", "differentiable", image_size=32)
    env.reset()
    # Off-centre, tilted poles: the camera sees their side faces, whose shading turns with the pole
    # (the front face's normal is the hinge axis, so its colour never depends on the angle).
    env.set_sim_state(torch.tensor([[2.0, 0.7], [-2.0, -0.9], [1.5, 2.5], [-1.0, -2.2]]), torch.zeros(4, 2))
    a0 = torch.zeros(4, 1, requires_grad=True)
    env.step(a0)
    obs, *_ = env.step(torch.zeros(4, 1))
    shac_input = shac._actor_input(obs, shac.obs_rms)
    assert shac_input.requires_grad
    weights = torch.randn(shac_input.shape, generator=torch.Generator().manual_seed(0))
    (grad_a0,) = torch.autograd.grad((shac_input * weights).sum(), a0)
    assert float(grad_a0.abs().sum()) > 0  # pixels -> pole angle -> earlier action
    dva, _ = _smoke("dva", "differentiable", image_size=32)
    dva_input = dva._actor_input(obs, dva.obs_rms)
    assert not dva_input.requires_grad and torch.equal(dva_input, shac_input.detach())
    env.detach()
    assert not env._observation()["pixels"].requires_grad  # the graph is cut at iteration boundaries


def test_differentiable_frames_restart_at_an_auto_reset_without_gradient_across_it():
    _, env = _smoke("shac", "differentiable", image_size=32)
    env.reset()
    # env 0 is about to leave the rail (|x| > 2.5 terminates); the others are mid-episode.
    env.set_sim_state(torch.tensor([[2.49, 0.7], [0.5, -0.9], [1.0, 2.5], [-1.0, -2.2]]), torch.tensor([[20.0, 0.0]] + [[0.0, 0.0]] * 3))
    action = torch.full((4, 1), 0.5, requires_grad=True)
    obs, _, done, _ = env.step(action)
    assert done.tolist() == [True, False, False, False]
    frames = obs["pixels"].reshape(4, 3, 3, *obs["pixels"].shape[-2:])
    assert torch.equal(frames[0, 0], frames[0, 2]) and torch.equal(frames[0, 1], frames[0, 2])  # refilled with the new episode's frame
    weights = torch.randn(obs["pixels"].shape, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad((obs["pixels"] * weights).sum(), action, allow_unused=True)
    assert grad is not None and float(grad[0].abs().sum()) == 0.0  # no gradient across the reset
    assert float(grad[1:].abs().sum()) > 0  # the other envs' newest frame depends on their action
    env.detach()


def test_dva_on_the_differentiable_renderer_keeps_no_pixel_graph():
    dva, env = _smoke("dva", "differentiable", image_size=32)
    assert env.pixel_grad is False
    env.reset()
    obs, reward, *_ = env.step(torch.zeros(4, 1, requires_grad=True))
    assert obs["pixels"].dtype == torch.float32 and not obs["pixels"].requires_grad
    assert reward.requires_grad  # the simulator path is still differentiable
    env.detach()


def test_shac_refuses_pixels_without_gradient():
    with pytest.raises(ValueError, match="render='differentiable'"):
        _smoke("shac", "raytrace")


def test_shac_trains_and_times_the_renderer_backward():
    shac, env = _smoke("shac", "differentiable")
    stats, phases = [], []
    for _ in range(2):
        stats.append(shac.iterate(env))
        phases.append(env.timings.pop())
    assert all(p["render_backward"] > 0 for p in phases)
    assert all(math.isfinite(s.metrics["actor_grad_norm"]) for s in stats)
