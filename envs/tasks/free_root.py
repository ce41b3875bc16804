"""What ant and humanoid share: a MuJoCo model of the DiffRL lineage on a free root, imported with
the paper's constants (density, contact, joint armature/damping/stiffness, limits), the paper's
observation (torso height, quaternion, torso-origin linear and angular velocity, joint angles,
0.1 x joint velocities, up_z, heading towards the target, previous actions) and start-state noise,
and a camera mounted at the root position without its rotation.

Newton's free joint: q = (position, quaternion xyzw, joints), qd = (COM linear velocity, angular
velocity, both world frame, joint velocities). dflex's free joint velocity is the twist (angular
velocity, velocity of the body point at the world origin); the paper's start noise is drawn on that
twist and its observation and reward use the velocity of the torso's origin, so both are converted
here (`initial_state`, `origin_velocity`).

Every hinge gets dflex's always-on limit damping (10) on top of its damping
(docs/locomotion-fidelity.md, C3); the free root has none, as in dflex.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import torch
import warp as wp

import newton
import newton.examples
from envs.camera import ORANGE
from envs.tasks.contact import ContactTask
from envs.tasks.rotation import quat_rotate, random_small_rotation


class FreeRootTask(ContactTask):
    model_file: str
    density_scale: float = 1.0  # the paper's density over the file's
    contact: dict[str, float]
    joint_armature: float
    joint_damping: float
    joint_stiffness: float = 0.0
    # True: keep each hinge's armature, stiffness and damping from the file (the paper loads the
    # humanoid's with load_stiffness/load_armature; Newton's import has the same values).
    file_joint_parameters = False
    root_com: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the torso's COM in its frame (checked at build)
    start_height: float
    start_joints: tuple[float, ...] | None = None  # None: all zero
    target: tuple[float, float]
    floor_half_width = 25.0
    observes_previous_action = True

    def body_color(self, shape: int, file_color) -> tuple[float, float, float]:
        """Colour of the model's `shape`-th shape: the dm_control orange of the paper's scenes."""
        return ORANGE

    @abstractmethod
    def joint_strengths(self) -> torch.Tensor:
        """N m per unit action, per actuated joint (file order)."""

    def build_world(self, builder: newton.ModelBuilder) -> None:
        first_body, first_shape, first_dof = len(builder.body_mass), len(builder.shape_material_ke), builder.joint_dof_count
        builder.add_mjcf(
            newton.examples.get_asset(self.model_file),
            xform=wp.transform((0.0, 0.0, self.start_height), wp.quat_identity()),
            ignore_names=["floor"],
            parse_visuals=False,
            parse_sites=False,
            enable_self_collisions=False,
        )
        for b in range(first_body, len(builder.body_mass)):
            builder.body_mass[b] *= self.density_scale
            builder.body_inertia[b] = builder.body_inertia[b] * self.density_scale
            builder.body_inv_mass[b] /= self.density_scale
            builder.body_inv_inertia[b] = builder.body_inv_inertia[b] / self.density_scale
        for s in range(first_shape, len(builder.shape_material_ke)):
            builder.shape_color[s] = self.body_color(s - first_shape, builder.shape_color[s])
            builder.shape_material_ke[s] = self.contact["ke"]
            builder.shape_material_kd[s] = self.contact["kd"]
            builder.shape_material_kf[s] = self.contact["kf"]
            builder.shape_material_mu[s] = self.contact["mu"]
        com = tuple(float(c) for c in builder.body_com[first_body])
        if not all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(com, self.root_com)):
            raise ValueError(f"{self.name}: the torso's COM is {com} in the model, root_com says {self.root_com}")
        for dof in range(first_dof + 6, builder.joint_dof_count):  # the hinges, after the free root
            if not self.file_joint_parameters:
                builder.joint_armature[dof] = self.joint_armature
                builder.joint_damping[dof] = self.joint_damping
                builder.joint_stiffness[dof] = self.joint_stiffness
            builder.joint_damping[dof] += self.always_on_damping
            builder.joint_limit_ke[dof] = self.limit_ke
            builder.joint_limit_kd[dof] = self.limit_kd
        self.add_ground(builder)

    def initial_state(self, n: int, generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        position = torch.tensor([0.0, 0.0, self.start_height], device=device) + self.uniform(generator, device, 0.1, n, 3)
        rotation = random_small_rotation(n, math.pi / 24, generator, device)
        start = torch.tensor(self.start_joints or (0.0,) * self.action_dim, device=device)
        joints = start + self.uniform(generator, device, 0.2, n, self.action_dim)
        q = torch.cat([position, rotation, joints], dim=-1)
        # The paper's noise is on dflex's twist: (v, omega) with v the velocity of the body point at
        # the world origin. Newton's qd holds the COM's velocity, v + omega x (COM position).
        qd = self.uniform(generator, device, 0.25, n, 6 + self.action_dim)
        com = position + quat_rotate(rotation, torch.tensor(self.root_com, device=device).expand(n, 3))
        qd[:, :3] += torch.cross(qd[:, 3:6], com, dim=-1)
        return q, qd

    def action_to_joint_f(self, action: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(action[:, :6]), action * self.joint_strengths().to(action.device)], dim=-1)

    def camera_mount(self, q: torch.Tensor) -> torch.Tensor:
        return q[:, :3]

    def frame(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(up_z, heading . horizontal direction to the target) of the torso at coordinates q."""
        quat = q[:, 3:7]
        n = q.shape[0]
        up = quat_rotate(quat, torch.tensor([0.0, 0.0, 1.0], device=q.device).expand(n, 3))
        heading = quat_rotate(quat, torch.tensor([1.0, 0.0, 0.0], device=q.device).expand(n, 3))
        to_target = torch.tensor(self.target, device=q.device) - q[:, :2]
        direction = to_target / to_target.norm(dim=-1, keepdim=True)
        return up[:, 2], (heading[:, :2] * direction).sum(-1)

    def origin_velocity(self, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        """[N, 3] world velocity of the torso's origin (the paper observes and rewards it), from
        Newton's COM velocity: v_com - omega x (R com)."""
        com = quat_rotate(q[:, 3:7], torch.tensor(self.root_com, device=q.device).expand(q.shape[0], 3))
        return qd[:, :3] - torch.cross(qd[:, 3:6], com, dim=-1)

    def state_obs(self, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        up, heading = self.frame(q)
        v = self.origin_velocity(q, qd)
        return torch.cat([q[:, 2:3], q[:, 3:7], v, qd[:, 3:6], q[:, 7:], 0.1 * qd[:, 6:], up[:, None], heading[:, None]], dim=-1)
