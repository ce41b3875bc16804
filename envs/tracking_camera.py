"""Batched RGB observations from a camera that follows each world's robot (the locomotion tasks).

The paper's locomotion cameras are mounted on the root without its rotation (hopper and cheetah
follow x and z, ant and humanoid the root position), so each world has its own camera pose every
step and the fixed-camera trick of caching the backdrop does not apply. Each step therefore
draws two scenes with the same per-world poses: the static backdrop (a checker floor strip and a
grey wall, one shared world drawn from every view) and the moving bodies (one world per view),
and composites them with a per-pixel depth test, which gives the image of the whole scene since
there are no shadows or reflections. Pixels never carry gradient.

The bodies are ray-traced by Newton's SensorCamera. The backdrop is two planes, so by default it
is computed in closed form (envs/plane_backdrop.py: ray-plane intersection and Newton's own
shading functions, fused with the depth test and the RGB unpacking in one kernel), which gives the
traced bytes at about a fifth of the cost; `closed_form_backdrop=False` ray-traces it with a
second SensorCamera (with `body_window=False`, the reference tests/test_tracking_camera.py
compares against: everything traced over the whole image).

The bodies are traced only inside a pixel window where they can appear (`body_window=True`), which
leaves the images unchanged: after forward kinematics the shape BVH holds each visible shape's
world box (Newton's bounds of its geometry, what the tracer culls with), and a ray from the camera
meets a box lying in front of it only inside the rectangle spanned by its corners' projections.
The window covers these rectangles for every view (one window: SensorCamera takes one ray bundle),
widened by a pixel and rounded out to `_WINDOW_ALIGN` so few distinct bundles are cached; a box
reaching behind the camera falls back to the whole image. Rays are per pixel, so the cropped
bundle gives each window pixel its ray in the whole image; outside the window is a body miss.
"""

from __future__ import annotations

import math

import newton
import numpy as np
import torch
import warp as wp
from newton.sensors import SensorCamera

from envs.camera import CameraSpec, build_backdrop_model, look_at_transform, pose_bodies
from envs.plane_backdrop import PlaneBackdrop
from envs.timing import PhaseTimes

_WINDOW_ALIGN = 4  # window edges are multiples of this (fewer distinct windows, each cached)
_WINDOW_CACHE = 256  # cropped ray bundles kept (one per distinct window)


class TrackingCameraRenderer:
    """Renders world i from `camera` translated by `mount(q)[i]`, over the task's floor and wall."""

    def __init__(
        self,
        model: newton.Model,
        camera: CameraSpec,
        mount,
        image_size: int,
        device: torch.device,
        supersample: int = 1,
        floor_half_width: float = 2.0,
        closed_form_backdrop: bool = True,
        body_window: bool = True,
    ):
        self.model = model
        self.device = device
        self.mount = mount
        self.supersample = supersample
        self.image_size = image_size * supersample
        self.output_shape = (image_size, image_size)
        self.timings = PhaseTimes()  # the env replaces this with its own accumulator
        wp_device = model.device
        self._rays = SensorCamera.compute_camera_rays_pinhole(
            self.image_size, self.image_size, camera_fov=math.radians(camera.fov_deg), device=wp_device
        )
        base = look_at_transform(camera.eye, camera.target)
        self._base_p = torch.tensor(list(base.p), dtype=torch.float32)
        self._base_q = torch.tensor(list(base.q), dtype=torch.float32)  # xyzw, the same for every view

        self._backdrop, floor = build_backdrop_model(floor_half_width, floor_half_width, wp_device)
        self._backdrop_state = self._backdrop.state(requires_grad=False)
        backdrop_config = SensorCamera.RenderConfig(enable_textures=True)
        self._backdrop_sensor = SensorCamera(self._backdrop, default_render_config=backdrop_config)
        self._backdrop_sensor.create_default_light()
        self._backdrop_sensor.assign_checkerboard_material(shape_indices=[floor], resolution=64, checker_size=32)
        # The backdrop is two planes: intersected and shaded in closed form (the same pixels, see
        # envs/plane_backdrop.py) unless `closed_form_backdrop` is False (the traced reference).
        self._plane_backdrop: PlaneBackdrop | None = None
        if closed_form_backdrop:
            self._plane_backdrop = PlaneBackdrop(self._backdrop, self._backdrop_sensor, backdrop_config, self._rays, base.q)
        self._state = model.state(requires_grad=False)
        self._full_rays = self._rays.numpy()
        d = self._full_rays[:, :, 0, 1].astype(np.float64)  # camera-space directions (origins are 0)
        slope_x, slope_y = d[..., 0] / -d[..., 2], d[..., 1] / -d[..., 2]
        self._col_slopes = (slope_x.min(axis=0), slope_x.max(axis=0))  # each column's range of x/-z
        self._row_slopes = (slope_y.min(axis=1), slope_y.max(axis=1))  # each row's range of y/-z
        self._rotation = np.array(wp.quat_to_matrix(base.q), dtype=np.float64).reshape(3, 3)  # camera -> world
        # The window needs pinhole rays from the camera's centre, all looking forward.
        pinhole = bool((self._full_rays[:, :, :, 0] == 0).all() and (d[..., 2] < 0).all())
        self.body_window = body_window and pinhole and model.bvh_shapes is not None
        if self.body_window:
            self._leaf_world = model.bvh_shapes.groups.numpy()  # each BVH leaf's world (world_count: global)
            self._corner_pick = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])  # lower/upper per axis
        self.last_window = (slice(0, self.image_size), slice(0, self.image_size))  # rows, columns traced last
        self._window_rays: dict[tuple[int, int, int, int], wp.array] = {}
        self._sensor = SensorCamera(model, default_render_config=SensorCamera.RenderConfig(enable_textures=False, enable_global_world=False))
        self._sensor.create_default_light()

        views, size = model.world_count, self.image_size
        self._buffers = {
            key: (sensor.allocate_image_color(views, size, size), sensor.allocate_image_depth(views, size, size))
            for key, sensor in (("backdrop", self._backdrop_sensor), ("bodies", self._sensor))
        }
        self._poses = wp.zeros(views, dtype=wp.transformf, device=wp_device)
        self._poses_torch = wp.to_torch(self._poses).view(views, 7)
        self._all_backdrop = wp.zeros(views, dtype=wp.int32, device=wp_device)  # every view draws world 0

    def _body_window(self, positions: np.ndarray, worlds: np.ndarray) -> tuple[int, int, int, int]:
        """Rows [r0, r1) and columns [c0, c1) of the only pixels whose rays can hit a shape of world
        worlds[v] from camera position positions[v], for any view v (call after `pose_bodies`)."""
        size = self.image_size
        if not self.body_window:
            return 0, size, 0, size
        camera_at = np.zeros((self.model.world_count + 1, 3))
        camera_at[worlds] = positions  # a world's views share its camera (the pose is a function of its q)
        leaves = np.isin(self._leaf_world, worlds)  # the shapes these views can hit
        align = _WINDOW_ALIGN
        if not leaves.any():
            return 0, min(align, size), 0, min(align, size)  # nothing to hit: any window is exact
        box = np.stack([self.model.bvh_shapes.lowers.numpy()[leaves], self.model.bvh_shapes.uppers.numpy()[leaves]], axis=1)
        corners = box[:, self._corner_pick, np.arange(3)]  # [leaves, 8, 3]
        cam = (corners - camera_at[self._leaf_world[leaves]][:, None, :]) @ self._rotation  # world -> camera
        if not np.all(cam[..., 2] < -1e-6):
            return 0, size, 0, size  # a box reaches behind the camera
        sx, sy = cam[..., 0] / -cam[..., 2], cam[..., 1] / -cam[..., 2]
        cols = np.nonzero((self._col_slopes[1] >= sx.min()) & (self._col_slopes[0] <= sx.max()))[0]
        rows = np.nonzero((self._row_slopes[1] >= sy.min()) & (self._row_slopes[0] <= sy.max()))[0]
        if rows.size == 0 or cols.size == 0:
            return 0, min(align, size), 0, min(align, size)
        r0, c0 = (max(int(rows.min()) - 1, 0) // align) * align, (max(int(cols.min()) - 1, 0) // align) * align
        r1 = min(-(-(int(rows.max()) + 2) // align) * align, size)
        c1 = min(-(-(int(cols.max()) + 2) // align) * align, size)
        return r0, r1, c0, c1

    def _rays_for(self, window: tuple[int, int, int, int]) -> wp.array:
        """The whole image's rays of the pixels in `window`, contiguous (cached per window)."""
        r0, r1, c0, c1 = window
        if (r0, r1, c0, c1) == (0, self.image_size, 0, self.image_size):
            return self._rays
        rays = self._window_rays.get(window)
        if rays is None:
            if len(self._window_rays) >= _WINDOW_CACHE:
                self._window_rays.clear()
            crop = np.ascontiguousarray(self._full_rays[r0:r1, c0:c1])
            rays = self._window_rays[window] = wp.array(crop, dtype=wp.vec3f, device=self.model.device)
        return rays

    def camera_poses(self, joint_q: torch.Tensor) -> torch.Tensor:
        """[N, 7] (position, xyzw quaternion) of each world's camera at coordinates `joint_q`."""
        mount = self.mount(joint_q.detach().to(torch.float32)).to(self._base_p.device)
        return torch.cat([mount + self._base_p, self._base_q.expand(mount.shape[0], 4)], dim=-1)

    @torch.no_grad()
    def render(self, joint_q: torch.Tensor, worlds: torch.Tensor | None = None) -> torch.Tensor:
        with self.timings.phase("render"):
            return self._render(joint_q, worlds)

    def _render(self, joint_q: torch.Tensor, worlds: torch.Tensor | None) -> torch.Tensor:
        """uint8 images [V, 3, H, W] of the worlds at `joint_q` [N, q_dim] (only `worlds` if given)."""
        views = self.model.world_count if worlds is None else int(worlds.numel())
        if views == 0:
            return torch.zeros(0, 3, *self.output_shape, dtype=torch.uint8, device=self.device)
        poses = self.camera_poses(joint_q)
        if worlds is not None:
            poses = poses[worlds.to(poses.device)]
        self._poses_torch[:views].copy_(poses.to(self._poses_torch.device))
        world_indices = pose_bodies(self.model, self._state, joint_q, worlds, self._poses_torch.device)
        world_list = np.arange(views) if worlds is None else worlds.detach().cpu().numpy().astype(np.int64)
        r0, r1, c0, c1 = self._body_window(poses[:, :3].detach().cpu().double().numpy(), world_list)
        self.last_window = (slice(r0, r1), slice(c0, c1))
        # The window's colour and depth: views of the whole-image buffers' memory, [V, r1-r0, c1-c0].
        color_full, depth_full = self._buffers["bodies"]
        shape = (self.model.world_count, r1 - r0, c1 - c0)
        color_b = color_full.flatten()[: math.prod(shape)].reshape(shape)
        depth_b = depth_full.flatten()[: math.prod(shape)].reshape(shape)
        self._sensor.update(
            self._state, self._poses[:views], self._rays_for((r0, r1, c0, c1)), color_image=color_b[:views],
            depth_image=depth_b[:views], world_indices=world_indices,
        )  # fmt: skip
        color_s, depth_s = self._buffers["backdrop"]
        if self._plane_backdrop is not None:
            # One kernel: the planes in closed form, the depth test and the planar RGB bytes.
            size = self.image_size
            rgb = torch.empty(views, 3, size, size, dtype=torch.uint8, device=self._poses_torch.device)
            self._plane_backdrop.render(self._poses[:views], color_b[:views], depth_b[:views], (r0, c0), wp.from_torch(rgb), depth_s[:views])
            return self._output(rgb)
        self._backdrop_sensor.update(
            self._backdrop_state, self._poses[:views], self._rays, color_image=color_s[:views], depth_image=depth_s[:views],
            world_indices=self._all_backdrop[:views],
        )  # fmt: skip
        scene = wp.to_torch(color_s)[:views].view(torch.int32)
        scene_depth = wp.to_torch(depth_s)[:views]
        body = torch.zeros_like(scene)  # outside the window: a miss (depth 0)
        body_depth = torch.zeros_like(scene_depth)
        body[:, r0:r1, c0:c1] = wp.to_torch(color_b)[:views].view(torch.int32)
        body_depth[:, r0:r1, c0:c1] = wp.to_torch(depth_b)[:views]
        scene_depth = torch.where(scene_depth > 0, scene_depth, torch.full_like(scene_depth, np.inf))
        packed = torch.where((body_depth > 0) & (body_depth < scene_depth), body, scene)
        return self._output(packed.view(torch.uint8).reshape(*packed.shape, 4)[..., :3].permute(0, 3, 1, 2))

    def _output(self, rgb: torch.Tensor) -> torch.Tensor:
        """uint8 [V, 3, H, W] on the env's device, supersampled blocks averaged; a fresh contiguous tensor."""
        if self.supersample > 1:
            return torch.nn.functional.avg_pool2d(rgb.float(), self.supersample).round_().to(device=self.device, dtype=torch.uint8)
        return rgb.to(self.device, memory_format=torch.contiguous_format)
