"""Batched RGB observations from a camera that follows each world's robot (the locomotion tasks).

The paper's locomotion cameras are mounted on the root without its rotation (hopper and cheetah
follow x and z, ant and humanoid the root position), so each world has its own camera pose every
step and the fixed-camera trick of caching the backdrop does not apply. Each step therefore
traces two scenes with the same per-world poses: the static backdrop (a checker floor strip and a
grey wall, one shared world drawn from every view) and the moving bodies (one world per view),
and composites them with a per-pixel depth test, which gives the image of the whole scene since
there are no shadows or reflections. Pixels never carry gradient.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import warp as wp

import newton
from newton.sensors import SensorCamera

from envs.camera import CameraSpec, build_backdrop_model, look_at_transform, pose_bodies
from envs.timing import PhaseTimes


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
        self._backdrop_sensor = SensorCamera(self._backdrop, default_render_config=SensorCamera.RenderConfig(enable_textures=True))
        self._backdrop_sensor.create_default_light()
        self._backdrop_sensor.assign_checkerboard_material(shape_indices=[floor], resolution=64, checker_size=32)
        self._state = model.state(requires_grad=False)
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
        color_b, depth_b = self._buffers["bodies"]
        self._sensor.update(self._state, self._poses[:views], self._rays, color_image=color_b[:views], depth_image=depth_b[:views], world_indices=world_indices)
        color_s, depth_s = self._buffers["backdrop"]
        self._backdrop_sensor.update(
            self._backdrop_state, self._poses[:views], self._rays, color_image=color_s[:views], depth_image=depth_s[:views],
            world_indices=self._all_backdrop[:views],
        )  # fmt: skip
        body = wp.to_torch(color_b)[:views].view(torch.int32)
        scene = wp.to_torch(color_s)[:views].view(torch.int32)
        body_depth, scene_depth = wp.to_torch(depth_b)[:views], wp.to_torch(depth_s)[:views]
        scene_depth = torch.where(scene_depth > 0, scene_depth, torch.full_like(scene_depth, np.inf))
        packed = torch.where((body_depth > 0) & (body_depth < scene_depth), body, scene)
        rgb = packed.view(torch.uint8).reshape(*packed.shape, 4)[..., :3].permute(0, 3, 1, 2)
        if self.supersample > 1:
            return torch.nn.functional.avg_pool2d(rgb.float(), self.supersample).round_().to(device=self.device, dtype=torch.uint8)
        return rgb.to(self.device, memory_format=torch.contiguous_format, copy=True)
