"""The differentiable renderer (PyTorch3D's mesh rendering in torch; visual SHAC's side of the
comparison) and SHAC's gradient path through it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import warp as wp

import envs
import newton
from envs.camera import look_at_transform
from envs.diff_render import DifferentiableRenderer
from envs.mesh_scene import SCENES, box_mesh, capsule_mesh, cylinder_mesh, sphere_mesh, texture, vertex_normals
from methods import get_method_class
from methods.dva import DVAConfig
from newton.sensors import SensorCamera

CPU = torch.device("cpu")


def _states(task: str, n: int, steps: int = 10, seed: int = 0) -> tuple[envs.DiffVisualEnv, torch.Tensor]:
    """An env without pixels and `n` states reached by `steps` random actions from its start."""
    env = envs.make(task, num_envs=n, render=None, seed=seed)
    env.reset()
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        env.step(torch.rand(n, env.spec.action_dim, generator=g) * 2 - 1)
    return env, env.sim_state[0].detach()


# -- meshes and scene ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mesh, volume",
    [
        (box_mesh(0.25, 0.25, 0.1), 0.5 * 0.5 * 0.2),
        (capsule_mesh(0.05, 0.2), math.pi * 0.05**2 * 0.4 + 4 / 3 * math.pi * 0.05**3),
        (cylinder_mesh(0.1, 0.3), math.pi * 0.1**2 * 0.6),
        (sphere_mesh(0.25), 4 / 3 * math.pi * 0.25**3),
    ],
)
def test_meshes_are_closed_outward_and_close_to_their_shape(mesh, volume):
    verts, faces = mesh
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)  # closed: every edge between exactly two faces
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    mesh_volume = np.einsum("fi,fi->f", a, np.cross(b, c)).sum() / 6  # positive only if wound outward
    assert 0.9 * volume < mesh_volume <= volume * 1.0001  # inscribed polygons, within 10%
    assert np.all(np.einsum("vi,vi->v", vertex_normals(verts, faces), verts) > 0)  # smooth normals point out


def test_textures_follow_the_papers_recipe():
    checker = texture(SCENES["cartpole"].floor)  # 10 m x 4 m at 2 texels per metre
    assert checker.shape == (20, 8, 3) and set(np.unique(checker)) == {0.0, 1.0}
    tiles = checker[::2, ::2, 0]  # 2 x 2 texels (1 m) per tile, alternating
    assert all(np.array_equal(checker[i::2, j::2, 0], tiles) for i in (0, 1) for j in (0, 1))
    assert np.all(tiles[1:] != tiles[:-1]) and np.all(tiles[:, 1:] != tiles[:, :-1])
    sky = texture(SCENES["hopper"].sky)  # 150 m (rows, along x) x 10 m (columns, along z)
    assert sky.shape == (300, 20, 3)
    blue = np.median(sky, axis=1)
    assert np.all(np.diff(blue[:, 2]) <= 0) and blue[0, 2] > 0.65 and blue[-1, 2] < 0.15  # gradient along x
    assert 0.005 < (sky == 1.0).all(-1).mean() < 0.05  # a sprinkle of white stars


# -- gradients against finite differences ----------------------------------------------------------
# Central differences of a random weighting of the pixels, in float64 (forward kinematics is
# Newton's, float32), over pixels where the image is a smooth function of the coordinate within
# [q - eps, q + eps]: the visible face or plane is the same at q - eps, q and q + eps, and central
# differences at eps and eps / 2 agree (a shading kink, e.g. the diffuse terminator or a texel
# centre of the bilinear floor, makes them disagree). Measured: |autograd - FD| <= 4e-4 of the
# largest |FD| (float32 kinematics and the O(eps^2) term); the bound is 2e-3.
FD_EPS = 1e-3
FD_RTOL = 2e-3


@pytest.mark.parametrize(
    "task, coords",
    [
        ("cartpole", (0, 1)),  # the cart's translation and the pole's angle
        ("hopper", (0, 3)),  # the root's x (the camera and light follow it) and the thigh hinge
    ],
)
def test_pixel_gradients_match_finite_differences(task, coords):
    env, q = _states(task, 4)
    if task == "cartpole":  # off-centre carts, tilted poles, in view
        q = torch.tensor([[0.3, 0.7], [-1.0, -0.9], [1.5, 2.5], [-0.5, -2.2]])
    q = q.double()
    renderer = DifferentiableRenderer(env.model, env.task, 32, CPU)
    weights = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for k in coords:
        step = torch.zeros_like(q)
        step[:, k] = FD_EPS
        fd = (renderer.render(q + step) - renderer.render(q - step)) / (2 * FD_EPS)
        fd_half = (renderer.render(q + step / 2) - renderer.render(q - step / 2)) / FD_EPS
        sources = [renderer.pixel_sources(q + s * step) for s in (-1, 0, 1)]
        smooth = (sources[0] == sources[1]) & (sources[2] == sources[1]) & ((fd - fd_half).abs() <= 1e-2 * fd.abs() + 1.0).all(1)
        assert smooth.float().mean() > 0.95
        mask = weights * smooth.unsqueeze(1)
        q_var = q.clone().requires_grad_(True)
        (renderer.render(q_var) * mask).sum().backward()
        expected = (fd * mask).sum(dim=(1, 2, 3))
        torch.testing.assert_close(q_var.grad[:, k], expected, rtol=0, atol=FD_RTOL * float(expected.abs().max()))
        # Translations shade too (point light, smooth normals): the old flat-shaded boxes gave 0 here.
        assert float(expected.abs().min()) > 50.0, (task, k)


# -- forward image against the ray tracer ----------------------------------------------------------
def traced_silhouettes(env: envs.DiffVisualEnv, q: torch.Tensor, size: int) -> torch.Tensor:
    """Each body's own silhouette [N, B, H, W] from Newton's ray tracer, with the task's camera: one
    world per (env, body) holding that body's shapes, as static shapes at their posed transforms."""
    model, task, n = env.model, env.task, q.shape[0]
    state = model.state()
    wp.copy(state.joint_q, wp.from_torch(q.to(torch.float32).reshape(-1).contiguous()))
    newton.eval_fk(model, state.joint_q, state.joint_qd, state)
    body_q, bodies_per_world = state.body_q.numpy(), model.body_count // n
    types, scales, owner = model.shape_type.numpy(), model.shape_scale.numpy(), model.shape_body.numpy()
    xforms, visible = model.shape_transform.numpy(), (model.shape_flags.numpy() & int(newton.ShapeFlags.VISIBLE)) != 0
    builder = newton.ModelBuilder(up_axis=newton.Axis.Z)
    cfg = newton.ModelBuilder.ShapeConfig(has_shape_collision=False, has_particle_collision=False)
    for body in range(n * bodies_per_world):
        builder.begin_world()
        pose = wp.transform(wp.vec3(*body_q[body][:3]), wp.quat(*body_q[body][3:]))
        for s in np.nonzero((owner == body) & visible)[0]:
            xform = wp.transform_multiply(pose, wp.transform(wp.vec3(*xforms[s][:3]), wp.quat(*xforms[s][3:])))
            kind, size_ = newton.GeoType(int(types[s])), scales[s]
            if kind == newton.GeoType.BOX:
                builder.add_shape_box(-1, xform=xform, hx=size_[0], hy=size_[1], hz=size_[2], cfg=cfg)
            elif kind == newton.GeoType.CAPSULE:
                builder.add_shape_capsule(-1, xform=xform, radius=size_[0], half_height=size_[1], cfg=cfg)
            else:
                assert kind == newton.GeoType.SPHERE, kind
                builder.add_shape_sphere(-1, xform=xform, radius=size_[0], cfg=cfg)
        builder.end_world()
    scene = builder.finalize(device=model.device)
    rays = SensorCamera.compute_camera_rays_pinhole(size, size, camera_fov=math.radians(task.camera.fov_deg), device=model.device)
    base = look_at_transform(task.camera.eye, task.camera.target)
    eyes = torch.tensor(list(base.p)).expand(n, 3) + (task.camera_mount(q) if task.tracking_camera else 0.0)
    poses = wp.array([wp.transformf(wp.vec3f(*e.tolist()), base.q) for e in eyes for _ in range(bodies_per_world)], dtype=wp.transformf, device=model.device)
    sensor = SensorCamera(scene, default_render_config=SensorCamera.RenderConfig(enable_textures=False, enable_global_world=False))
    depth = sensor.allocate_image_depth(n * bodies_per_world, size, size)
    sensor.update(scene.state(), poses, rays, depth_image=depth)
    return torch.from_numpy(depth.numpy() > 0).reshape(n, bodies_per_world, size, size)


# Per body, intersection over union of its silhouette in the two renderers, pooled over 8 states
# (a limb 2 px wide and 20 long changes its IoU by several percent per boundary pixel in a single
# state). The meshes are inscribed polygons (16 sections), so ours are slightly smaller. Measured
# pooled IoU: cartpole 1.0, hopper >= 0.98, cheetah >= 0.97, ant >= 0.98, humanoid >= 0.97;
# single states >= 0.93. Whole-robot silhouettes (occlusion resolved) agree to >= 0.98.
_SLOW_ROBOTS = pytest.mark.slow  # the two largest scenes; CI's slow step runs them

@pytest.mark.parametrize("task", ["cartpole", "hopper", "cheetah", pytest.param("ant", marks=_SLOW_ROBOTS), pytest.param("humanoid", marks=_SLOW_ROBOTS)])
def test_silhouettes_agree_with_the_ray_tracer(task):
    env, q = _states(task, 8, steps=20, seed=3)
    ours = DifferentiableRenderer(env.model, env.task, 84, CPU).silhouettes(q)
    reference = traced_silhouettes(env, q, 84)
    assert reference.sum(dim=(2, 3)).float().mean(0).min() > 5  # every body is in view
    inter, union = (ours & reference).sum(dim=(0, 2, 3)), (ours | reference).sum(dim=(0, 2, 3))
    assert (inter / union).min() >= 0.95, (inter / union).tolist()
    whole_ours, whole_ref = ours.any(1), reference.any(1)
    assert (whole_ours & whole_ref).sum() / (whole_ours | whole_ref).sum() >= 0.97


def test_image_options_crop_supersample_and_view_subsets_are_consistent():
    env, q = _states("cartpole", 3)
    full = DifferentiableRenderer(env.model, env.task, 24, CPU, supersample=2)
    cropped = DifferentiableRenderer(env.model, env.task, 24, CPU, supersample=2, crop_static_rows=True)
    image, band = full.render(q), cropped.render(q)
    top = cropped.rows[0] // 2
    assert band.shape[2] < 24 and torch.equal(band, image[:, :, top : top + band.shape[2]])
    assert torch.equal(full.render(q, worlds=torch.tensor([2, 0])), image[[2, 0]])
    single = DifferentiableRenderer(env.model, env.task, 48, CPU).render(q)
    torch.testing.assert_close(image, torch.nn.functional.avg_pool2d(single, 2))


def test_tracking_scene_white_background_and_the_camera_following_the_root():
    env, q = _states("humanoid", 2)
    renderer = DifferentiableRenderer(env.model, env.task, 32, CPU)
    image, sources = renderer.render(q), renderer.pixel_sources(q)
    assert (sources == -1).any() and torch.equal(image.permute(0, 2, 3, 1)[sources == -1].unique(), torch.tensor([255.0]))
    moved = q.clone()
    moved[:, 0] += 0.37  # along x, not a multiple of the checker's period
    assert (renderer.silhouettes(moved) != renderer.silhouettes(q)).float().mean() < 1e-3  # the camera moved with the root ...
    assert not torch.equal(renderer.render(moved), image)  # ... over a floor that did not


# -- through the env and the methods ---------------------------------------------------------------
@pytest.mark.parametrize("task", ["cartpole", "cartpole-paper", "hopper", "cheetah", pytest.param("ant", marks=_SLOW_ROBOTS),
                                  pytest.param("humanoid", marks=_SLOW_ROBOTS)])
def test_pixel_gradients_stay_finite_over_a_32_step_horizon(task):
    env = envs.make(task, num_envs=2, render="differentiable", image_size=16, seed=0)
    env.reset()
    g = torch.Generator().manual_seed(0)
    actions = (torch.rand(32, 2, env.spec.action_dim, generator=g) * 2 - 1).requires_grad_(True)
    loss = 0.0
    for t in range(32):
        obs, *_ = env.step(actions[t])
        loss = loss + (obs["pixels"][:, -3:] * torch.randn(obs["pixels"][:, -3:].shape, generator=g)).mean()
    (grad,) = torch.autograd.grad(loss, actions)
    assert torch.isfinite(grad).all() and float(grad.abs().sum()) > 0
    env.detach()


def _smoke(name: str, render: str, image_size: int = 16):
    cls = get_method_class(name)
    config = DVAConfig(num_envs=4, image_size=image_size, horizon=4, critic_iterations=2, actor_units=[16], critic_units=[16], render=render)
    env = envs.make("cartpole", seed=0, **cls.env_kwargs(config))
    return cls(env.spec, config, "cpu", seed=0), env


def test_shac_actor_input_reaches_the_simulator_state_and_dva_input_does_not():
    shac, env = _smoke("shac", "differentiable", image_size=32)
    env.reset()
    env.set_sim_state(torch.tensor([[2.0, 0.7], [-2.0, -0.9], [1.5, 2.5], [-1.0, -2.2]]), torch.zeros(4, 2))
    a0 = torch.zeros(4, 1, requires_grad=True)
    env.step(a0)
    obs, *_ = env.step(torch.zeros(4, 1))
    shac_input = shac._actor_input(obs, shac.obs_rms)
    assert shac_input.requires_grad
    weights = torch.randn(shac_input.shape, generator=torch.Generator().manual_seed(0))
    (grad_a0,) = torch.autograd.grad((shac_input * weights).sum(), a0)
    assert float(grad_a0.abs().min()) > 0  # pixels -> cart and pole -> earlier action, in every env
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
