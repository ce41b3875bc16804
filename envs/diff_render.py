"""A differentiable renderer for SHAC's side of the D.Va comparison: pixels as a torch function of q.

Same camera, scene, colours and pixel values as `FixedCameraRenderer` (it is a subclass: backdrop,
visible window, crop and supersampling are shared), but the moving bodies are ray-cast in torch
and shaded with Newton's own model, so pixels carry gradients to the body poses and, through
forward kinematics, to the generalised coordinates `q` and the simulator state behind them.

Why this design (measured choices, README "Differentiable renderer"):
  * Newton's `SensorCamera` cannot be differentiated under `wp.Tape`: its render kernel is declared
    `enable_backward=False` (newton 1.8, sensor_camera_render/render.py) and walks a BVH. pytorch3d
    and nvdiffrast have no CPU wheels. A warp kernel would need its own adjoint plumbing; torch
    ray-casts the analytic boxes exactly, on any device, with autograd for free.
  * Hard rasterisation with gradients through shading, as the paper's pytorch3d setup: which
    face a ray hits is decided without gradient (silhouettes have zero gradient, as in any hard
    rasteriser); the colour of the hit face is differentiable. Newton shades a flat box face with
    a hemispheric ambient term plus one directional light, in linear RGB, then converts to sRGB,
    so a face has one colour and it depends on the face normal, i.e. on the body orientation.
    Translating a body moves its silhouette but does not change any pixel's colour gradient.
  * Pixel values are quantised like the ray tracer's (floor to 8 bits per traced sample, then
    the supersample average rounded) with a straight-through gradient, so the two renderers give
    the same observations and differ only at the few silhouette pixels where float rounding of
    the intersection differs (bounded in tests/test_diff_render.py).

Scope: box shapes on bodies (every CartPole body); any other scene is refused with a ValueError naming it.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import warp as wp

import newton
from envs.camera import FixedCameraRenderer

# Newton's SensorCamera defaults (sensor_camera_render/render_context.py: create_default_light,
# DEFAULT_AMBIENT_*): one white directional light along (-1, 1, -1), no shadows.
LIGHT_DIRECTION = (-0.57735026, 0.57735026, -0.57735026)
LIGHT_COLOR = (1.0, 1.0, 1.0)
AMBIENT_SKY = (0.2, 0.2, 0.225)
AMBIENT_GROUND = (0.05, 0.05, 0.06)


def srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    c = c.clamp(min=0.0)
    return torch.where(c <= 0.04045, c / 12.92, ((c.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    c = c.clamp(min=0.0)
    # The pow branch is evaluated on clamped input so its gradient is finite where it is not used.
    return torch.where(c <= 0.0031308, c * 12.92, 1.055 * c.clamp(min=0.0031308) ** (1.0 / 2.4) - 0.055)


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] of unit quaternions [..., 4] in warp's (x, y, z, w) order."""
    x, y, z, w = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)  # fmt: skip


def _straight_through(value: torch.Tensor, quantised: torch.Tensor) -> torch.Tensor:
    """`quantised` in the forward pass, the gradient of `value` in the backward pass."""
    return value + (quantised - value).detach()


class ForwardKinematics:
    """Body poses [N, B, 7] (position, quaternion xyzw) as a differentiable function of q [N, q_dim].

    Newton's `eval_fk` replayed on a `wp.Tape` in the backward pass, as `NewtonSim` does for a step.
    """

    def __init__(self, model: newton.Model):
        self.model = model
        self.num_worlds = model.world_count
        self.bodies_per_world = model.body_count // self.num_worlds
        self.q_dim = model.joint_coord_count // self.num_worlds
        self._state = model.state(requires_grad=True)
        self._joint_q = wp.zeros(model.joint_coord_count, dtype=float, device=model.device, requires_grad=True)

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        return _FKFunction.apply(self, q)

    def _run(self, q: torch.Tensor, tape: wp.Tape | None) -> None:
        wp.copy(self._joint_q, wp.from_torch(q.detach().to(torch.float32).reshape(-1).contiguous()))
        if tape is None:
            newton.eval_fk(self.model, self._joint_q, self._state.joint_qd, self._state)
        else:
            with tape:
                newton.eval_fk(self.model, self._joint_q, self._state.joint_qd, self._state)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        self._run(q, tape=None)
        return wp.to_torch(self._state.body_q, requires_grad=False).reshape(self.num_worlds, self.bodies_per_world, 7).clone()

    def backward(self, q: torch.Tensor, grad_body_q: torch.Tensor) -> torch.Tensor:
        tape = wp.Tape()
        self._run(q, tape)
        wp.copy(self._state.body_q.grad, wp.from_torch(grad_body_q.to(torch.float32).reshape(-1, 7).contiguous(), dtype=wp.transformf))
        tape.backward()
        grad_q = wp.to_torch(self._joint_q.grad, requires_grad=False).reshape(self.num_worlds, self.q_dim).clone()
        tape.zero()
        self._joint_q.grad.zero_()
        self._state.body_q.grad.zero_()
        return grad_q.to(q.dtype)


class _FKFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fk: ForwardKinematics, q: torch.Tensor):
        ctx.fk = fk
        ctx.save_for_backward(q.detach())
        return fk.forward(q)

    @staticmethod
    def backward(ctx, grad_body_q: torch.Tensor):
        (q,) = ctx.saved_tensors
        return None, ctx.fk.backward(q, grad_body_q)


class _TimedSubgraph(torch.autograd.Function):
    """Runs `fn(x)` on a detached copy of `x` with its own graph, so the backward pass through
    `fn` can be timed as one phase ("render_backward") instead of vanishing into the actor's."""

    @staticmethod
    def forward(ctx, fn, timings, x: torch.Tensor):
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            out = fn(leaf)
        ctx.timings = timings
        ctx.save_for_backward(leaf, out)
        return out.detach()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        leaf, out = ctx.saved_tensors
        with ctx.timings.phase("render_backward"):
            (grad_x,) = torch.autograd.grad(out, leaf, grad_out, allow_unused=True)
        return None, None, grad_x


class DifferentiableRenderer(FixedCameraRenderer):
    """`render(q)` returns float pixels [V, 3, H, W] in [0, 255] that carry gradients to `q`.

    `render_raytraced(q)` is the parent's uint8 Newton image of the same states (for checks).
    """

    def __init__(self, model: newton.Model, camera, image_size: int, device: torch.device, dynamic_bounds=None, supersample: int = 1, crop_static_rows: bool = False):
        super().__init__(model, camera, image_size, device, dynamic_bounds, supersample, crop_static_rows=crop_static_rows)
        self.fk = ForwardKinematics(model)
        tdev = wp.device_to_torch(model.device)
        shape_world = model.shape_world.numpy()
        types = model.shape_type.numpy()[shape_world == 0]
        if not np.all(types == int(newton.GeoType.BOX)):
            names = sorted({newton.GeoType(int(t)).name for t in types if t != int(newton.GeoType.BOX)})
            raise ValueError(f"the differentiable renderer draws box shapes only; this task has {', '.join(names)}")
        bodies = model.shape_body.numpy()[shape_world == 0]
        if np.any(bodies < 0):
            raise ValueError("the differentiable renderer draws shapes on bodies only; this task has static shapes in its worlds")
        # Shapes of world 0 describe every world (worlds are copies); body indices become per-world.
        first_body = int(np.nonzero(model.body_world.numpy() == 0)[0].min())
        self._shape_body = torch.as_tensor(bodies - first_body, device=tdev)
        xform = torch.as_tensor(model.shape_transform.numpy()[shape_world == 0], device=tdev)
        self._shape_pos, self._shape_rot = xform[:, :3], quat_to_matrix(xform[:, 3:])
        self._half_extents = torch.as_tensor(model.shape_scale.numpy()[shape_world == 0], device=tdev)
        self._albedo = srgb_to_linear(torch.as_tensor(model.shape_color.numpy()[shape_world == 0], device=tdev))
        # Rays of the traced window, in world coordinates (the camera is fixed).
        cam_rot = torch.as_tensor(np.array(wp.quat_to_matrix(self.camera_pose.q)).reshape(3, 3), device=tdev, dtype=torch.float32)
        rays = torch.as_tensor(self._rays.numpy(), device=tdev)  # [h, w, samples, 2, 3]: (origin, direction), camera frame
        if rays.shape[2] != 1:
            raise ValueError("the differentiable renderer traces one ray per pixel")
        origin_cam, dir_cam = rays[:, :, 0, 0].reshape(-1, 3), rays[:, :, 0, 1].reshape(-1, 3)
        self._ray_origin = origin_cam @ cam_rot.T + torch.as_tensor(np.array(self.camera_pose.p), device=tdev, dtype=torch.float32)
        self._ray_dir = torch.nn.functional.normalize(dir_cam @ cam_rot.T, dim=-1)
        rgb = self._backdrop_rgba.view(torch.uint8).reshape(*self._backdrop_rgba.shape, 4)[..., :3]
        self._backdrop_float = rgb.permute(2, 0, 1).float()  # [3, H, W]
        self._backdrop_window = self._backdrop_float[:, self._rows, self._cols].reshape(3, -1).T  # [P, 3]
        self._window_backdrop_flat = self._window_backdrop_depth.reshape(-1)
        light = -torch.tensor(LIGHT_DIRECTION, device=tdev)
        self._light_dir = light / light.norm()
        self._light_color = torch.tensor(LIGHT_COLOR, device=tdev)
        self._sky, self._ground = torch.tensor(AMBIENT_SKY, device=tdev), torch.tensor(AMBIENT_GROUND, device=tdev)
        self._up = torch.tensor([0.0, 0.0, 1.0], device=tdev)

    # -- public ---------------------------------------------------------------------------------
    def render(self, joint_q: torch.Tensor, worlds: torch.Tensor | None = None, quantize: bool = True) -> torch.Tensor:
        """Float pixels [V, 3, H, W]; differentiable w.r.t. `joint_q` when it requires grad."""
        render = functools.partial(self._render_float, quantize=quantize, worlds=worlds)
        with self.timings.phase("render"):
            if torch.is_grad_enabled() and joint_q.requires_grad:
                image = _TimedSubgraph.apply(render, self.timings, joint_q)
            else:
                image = render(joint_q)
        return image.to(self.device)

    def render_raytraced(self, joint_q: torch.Tensor, worlds: torch.Tensor | None = None) -> torch.Tensor:
        """The standard renderer's uint8 image of the same states."""
        return FixedCameraRenderer.render(self, joint_q, worlds)

    @torch.no_grad()
    def visible_faces(self, joint_q: torch.Tensor) -> torch.Tensor:
        """Which box face each traced pixel shows [N, h, w] (shape * 6 + face; -1: backdrop).

        Pixels whose face is the same at nearby states are away from silhouette edges: there the
        image is a smooth function of the state (used by the finite-difference check).
        """
        body_q = self.fk.forward(joint_q)
        rot, pos = self._shape_poses(body_q)
        face, covered = self._rasterise(pos, rot)
        return torch.where(covered, face, torch.full_like(face, -1)).reshape(-1, *self._window_shape)

    # -- internals ------------------------------------------------------------------------------
    def _shape_poses(self, body_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World rotation [N, S, 3, 3] and position [N, S, 3] of every shape."""
        body_pos, body_rot = body_q[..., :3], quat_to_matrix(body_q[..., 3:])
        rot = body_rot[:, self._shape_body] @ self._shape_rot
        pos = body_pos[:, self._shape_body] + (body_rot[:, self._shape_body] @ self._shape_pos.unsqueeze(-1)).squeeze(-1)
        return rot, pos

    def _render_float(self, joint_q: torch.Tensor, quantize: bool, worlds: torch.Tensor | None = None) -> torch.Tensor:
        body_q = self.fk(joint_q)  # differentiable w.r.t. joint_q; kinematics of every world at once
        if worlds is not None:  # only these views are rasterised and shaded
            body_q = body_q[worlds.to(body_q.device)]
        rot, pos = self._shape_poses(body_q)
        with torch.no_grad():
            face_index, covered = self._rasterise(pos.detach(), rot.detach())
        face_rgb = self._shade_faces(rot)  # [V, S * 6, 3], differentiable
        n, h, w = body_q.shape[0], *self._window_shape
        window = torch.gather(face_rgb, 1, face_index.unsqueeze(-1).expand(-1, -1, 3))  # [N, P, 3]
        backdrop_window = self._backdrop_window
        window = torch.where(covered.unsqueeze(-1), window, backdrop_window)
        if quantize:
            window = _straight_through(window, window.floor())  # the tracer's 8-bit cast truncates
        delta = (window - backdrop_window).permute(0, 2, 1).reshape(n, 3, h, w)
        height, width = self._backdrop_float.shape[1:]
        delta = torch.nn.functional.pad(delta, (self._cols.start, width - self._cols.stop, self._rows.start, height - self._rows.stop))
        image = self._backdrop_float.unsqueeze(0) + delta
        if self.supersample > 1:
            image = torch.nn.functional.avg_pool2d(image, self.supersample)
            if quantize:
                image = _straight_through(image, image.round())
        return image

    def _rasterise(self, pos: torch.Tensor, rot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest box face hit by each window ray: index into the [S * 6] faces, and hit-before-backdrop."""
        # Rays into each box's frame (slab test): origin and direction [N, S, P, 3].
        origin = torch.einsum("nspj,nsji->nspi", self._ray_origin[None, None] - pos.unsqueeze(2), rot)
        direction = torch.einsum("pj,nsji->nspi", self._ray_dir, rot)
        safe = torch.where(direction.abs() < 1e-12, torch.full_like(direction, 1e-12), direction)
        half = self._half_extents[None, :, None, :]
        t1, t2 = (-half - origin) / safe, (half - origin) / safe
        t_near, axis = torch.minimum(t1, t2).max(dim=-1)
        t_far = torch.maximum(t1, t2).min(dim=-1).values
        hit = (t_far >= t_near) & (t_near > 0)
        distance = torch.where(hit, t_near, torch.full_like(t_near, math.inf))  # [N, S, P]
        nearest, shape = distance.min(dim=1)  # [N, P]
        # The face's outward normal points against the ray along the hit axis.
        axis = axis.gather(1, shape.unsqueeze(1)).squeeze(1)
        along = direction.gather(1, shape[:, None, :, None].expand(-1, 1, -1, 3)).squeeze(1).gather(-1, axis.unsqueeze(-1)).squeeze(-1)
        positive_face = (along < 0).long()
        covered = torch.isfinite(nearest) & (nearest < self._window_backdrop_flat)
        return shape * 6 + axis * 2 + positive_face, covered

    def _shade_faces(self, rot: torch.Tensor) -> torch.Tensor:
        """sRGB colour x 255 of every face [N, S * 6, 3]: Newton's hemispheric ambient + directional light."""
        axes = rot.transpose(-1, -2)  # rows: world directions of the shape's local x, y, z axes
        normals = torch.stack([-axes, axes], dim=-2).reshape(*rot.shape[:2], 6, 3)  # face 2k: -axis k, 2k+1: +axis k
        hemispheric = 0.5 * (normals @ self._up + 1.0)
        ambient = self._sky * hemispheric.unsqueeze(-1) + self._ground * (1.0 - hemispheric.unsqueeze(-1))
        diffuse = (normals @ self._light_dir).clamp(min=0.0).unsqueeze(-1) * self._light_color
        albedo = self._albedo[None, :, None, :]
        linear = albedo * ambient + albedo * diffuse
        srgb = linear_to_srgb(linear).clamp(max=1.0) * 255.0
        return srgb.reshape(rot.shape[0], -1, 3)
