"""The tracking camera draws the bytes of ray-tracing everything over the whole image: the closed-form
backdrop (envs/plane_backdrop.py) equals ray-tracing the floor and wall with Newton's SensorCamera
(`closed_form_backdrop=False`), and tracing the bodies only in their window (`body_window=True`)
equals tracing them everywhere, including robots partly out of view, lying down, or behind the camera."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import warp as wp

import envs
from envs.tracking_camera import TrackingCameraRenderer

LOCOMOTION = ["hopper", "cheetah", "ant", "humanoid"]


def _twin(env, supersample: int = 1, *, closed_form_backdrop: bool = False, body_window: bool = False, mount=None) -> TrackingCameraRenderer:
    """Another renderer of `env`'s worlds; by default the reference: everything traced, whole image."""
    task = env.task
    return TrackingCameraRenderer(
        env.model,
        task.camera,
        mount or task.camera_mount,
        env.renderer.image_size // supersample,
        env.device,
        supersample,
        task.floor_half_width,
        closed_form_backdrop=closed_form_backdrop,
        body_window=body_window,
    )


def _states(env, generator: torch.Generator):
    """Non-reset states: a few steps of random actions, then perturbed coordinates with the roots
    moved along x by amounts that are not multiples of the checker period (near, far, negative)."""
    env.reset(seed=1)
    for _ in range(3):
        env.step(torch.rand(env.num_envs, env.spec.action_dim, generator=generator) * 2 - 1)
    q = env.sim_state[0].detach().clone()
    yield q
    for shift in ([0.37, -5.13, 41.7, -123.45], [0.011, 17.3, -0.5, 88.8]):
        moved = q + 0.05 * torch.randn(q.shape, generator=generator)
        moved[:, 0] += torch.tensor(shift[: q.shape[0]])
        yield moved


def _lying(env, q: torch.Tensor) -> torch.Tensor:
    """The robots tipped over onto the floor (on the back, face down, on a side), roots far along x."""
    q = q.clone()
    angles = torch.tensor([math.pi / 2, -math.pi / 2, math.pi / 2, 2.0])
    q[:, 0] += torch.tensor([3.3, -61.2, 0.7, 150.05])
    if env.task.camera_mount(q)[:, 1].abs().max() == 0:  # planar: x, z slides and pitch
        q[:, 1] = 0.15 - env.task.root_height
        q[:, 2] = angles
    else:  # free root: position, xyzw quaternion
        axes = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
        axes = axes / axes.norm(dim=1, keepdim=True)
        q[:, 2] = 0.15
        q[:, 3:6] = axes * torch.sin(angles / 2)[:, None]
        q[:, 6] = torch.cos(angles / 2)
    return q


def _shifted_mount(task, offsets: list[tuple[float, float, float]]):
    """The task's mount moved per world by (right, up, forward) in units of the camera's distance to
    its target (right and up also scaled by the half field of view): robots at the image's edges,
    out of view, and behind the camera."""
    eye, target = np.array(task.camera.eye), np.array(task.camera.target)
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    distance = float(np.linalg.norm(target - eye))
    half = distance * math.tan(math.radians(task.camera.fov_deg) / 2)
    shift = torch.tensor(
        np.array([a * half * right + b * half * up + c * distance * forward for a, b, c in offsets]),
        dtype=torch.float32,
    )
    return lambda q: task.camera_mount(q) + shift[: q.shape[0]].to(q.device)


@pytest.mark.parametrize("task", LOCOMOTION)
def test_closed_form_backdrop_draws_the_traced_bytes(task):
    env = envs.make(task, num_envs=4, image_size=32, render="raytrace", frame_stack=1)
    new, old = env.renderer, _twin(env)
    assert new._plane_backdrop is not None and old._plane_backdrop is None
    assert new.body_window and not old.body_window
    generator = torch.Generator().manual_seed(0)
    for q in _states(env, generator):
        image, reference = new.render(q), old.render(q)
        assert image.dtype == torch.uint8 and image.shape == reference.shape == (4, 3, 32, 32)
        assert torch.equal(image, reference), f"{int((image != reference).sum())} bytes differ"
        # The planes' depth is the traced one too (it is what the bodies are depth-tested against).
        assert torch.equal(wp.to_torch(new._buffers["backdrop"][1]), wp.to_torch(old._buffers["backdrop"][1]))
        # Not vacuous: the robot, both checker colours and the wall are all in view, and the
        # bodies were traced in a part of the image only.
        bodies = wp.to_torch(old._buffers["bodies"][1]) > 0
        assert bodies.sum(dim=(1, 2)).min() > 10
        assert len(torch.unique(image[:, 0][~bodies])) >= 3
        rows, cols = new.last_window
        assert (rows.stop - rows.start) * (cols.stop - cols.start) < 32 * 32 * 0.8
        worlds = torch.tensor([3, 1])
        assert torch.equal(new.render(q, worlds=worlds), old.render(q, worlds=worlds))


@pytest.mark.parametrize("task", LOCOMOTION)
def test_body_window_draws_the_whole_image_bytes(task):
    """Robots standing, lying on the floor, half out of view, out of view and behind the camera:
    every body pixel of the whole-image trace lies in the window, and the images are equal."""
    env = envs.make(task, num_envs=4, image_size=32, render="raytrace", frame_stack=1)
    offsets = {
        "centred": [(0.0, 0.0, 0.0)] * 4,
        "edges": [(1.0, 0.0, 0.0), (-1.1, 0.0, 0.0), (0.0, 1.0, 0.0), (0.3, -1.2, 0.0)],
        "away": [(3.0, 0.0, 0.0), (0.0, 0.0, 1.1), (0.0, 0.0, 0.9), (0.0, 0.0, 2.0)],  # gone, behind, straddling
    }
    generator = torch.Generator().manual_seed(2)
    states = list(_states(env, generator))
    states.append(_lying(env, states[0]))
    windows, cut = set(), 0
    for name, shift in offsets.items():
        mount = _shifted_mount(env.task, shift)
        windowed = _twin(env, closed_form_backdrop=True, body_window=True, mount=mount)
        whole = _twin(env, closed_form_backdrop=True, body_window=False, mount=mount)
        traced = _twin(env, mount=mount)  # everything traced
        for q in states:
            assert torch.equal(windowed.render(q), traced.render(q)), name
            for worlds in (None, torch.tensor([2, 0]), torch.tensor([3, 3, 0]), *torch.arange(4)[:, None]):
                image, reference = windowed.render(q, worlds=worlds), whole.render(q, worlds=worlds)
                assert torch.equal(image, reference), f"{name}, {worlds}: {int((image != reference).sum())} bytes differ"
                rows, cols = windowed.last_window
                windows.add((rows.start, rows.stop, cols.start, cols.stop))
                hits = wp.to_torch(whole._buffers["bodies"][1])[: image.shape[0]] > 0
                if name == "centred" and q is states[-1]:
                    assert hits.sum(dim=(1, 2)).min() > 10  # the lying robots are in view
                border = hits[:, [0, -1]].any(dim=(1, 2)) | hits[:, :, [0, -1]].any(dim=(1, 2))
                cut += int(border.sum())
                outside = hits.clone()
                outside[:, rows, cols] = False
                assert not outside.any(), f"{name}, {worlds}: a body pixel outside the window {windowed.last_window}"
        # The traced reference with its bodies in a window (the torch compositing path) too.
        traced_windowed = _twin(env, body_window=True, mount=mount)
        assert torch.equal(traced_windowed.render(states[-1]), traced.render(states[-1])), name
    # Not vacuous: robots cut by the image's border; the windows vary, some are a small part of the
    # image and some the whole image (a robot behind the camera).
    assert cut > 10
    assert (0, 32, 0, 32) in windows and len(windows) > 4
    assert min((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in windows) < 32 * 32 // 4


def test_closed_form_backdrop_with_supersampling_matches_the_traced_one():
    env = envs.make("hopper", num_envs=4, image_size=24, render="raytrace", frame_stack=1, supersample=2)
    new, old = env.renderer, _twin(env, supersample=2)
    edges = _shifted_mount(env.task, [(1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 0.0), (-0.9, 0.9, 0.0)])
    windowed, whole = _twin(env, 2, body_window=True, closed_form_backdrop=True, mount=edges), _twin(env, 2, mount=edges)
    for q in _states(env, torch.Generator().manual_seed(1)):
        assert torch.equal(new.render(q), old.render(q))
        assert torch.equal(windowed.render(q), whole.render(q))
        assert torch.equal(windowed.render(q, worlds=torch.tensor([3, 0])), whole.render(q, worlds=torch.tensor([3, 0])))
