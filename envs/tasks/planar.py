"""What hopper and cheetah share: a planar root (x slide, z slide, pitch hinge), capsule limbs on
y-axis hinges, penalty contact with a ground plane, and a camera that follows x and z.

Bodies are built in world coordinates at the model's pose with unrotated frames, so a child's joint
anchor is simply its origin minus its parent's; geometry follows the MuJoCo models (capsules given
by centre, half-length, radius and an angle about y). q = (x, z, pitch, joints...) are
displacements from that pose, as in dflex; the start state adds `start_z` to z (the cheetah's
-0.2) before the noise.

Joint parameters as the paper's dflex integrates them (docs/locomotion-fidelity.md, C1-C4): density
1000; armature on every dof, the root's x, z slides and pitch included; each hinge's own stiffness
(towards q = 0) and damping where the model file gives them, else the task's; and dflex's limit kd
of 10, which it applies at all times, as 10 more damping on every dof, the root's three included.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import warp as wp

import newton
from envs.camera import ORANGE
from envs.tasks.contact import ContactTask


@dataclass(frozen=True)
class Capsule:
    centre: tuple[float, float]  # (x, z) in the body frame
    half_length: float
    radius: float
    angle: float  # rotation of the capsule's axis from +z about +y [rad]


@dataclass(frozen=True)
class Limb:
    name: str
    parent: str  # "" for the root body
    origin: tuple[float, float]  # (x, z) world position of the body frame and joint at the start
    axis_y: float  # +1 or -1: the hinge axis (0, axis_y, 0)
    range: tuple[float, float]  # joint limits [rad]
    capsules: tuple[Capsule, ...]
    stiffness: float = 0.0  # N m/rad towards q = 0
    damping: float | None = None  # N m s/rad before the always-on limit damping; None: the task's joint_damping


class PlanarTask(ContactTask):
    """A planar walker; subclasses list their limbs (the first is the root) and define rewards."""

    limbs: tuple[Limb, ...]
    contact: dict[str, float]
    joint_armature: float  # on every dof, the root's three included
    joint_damping: float  # on the hinges without their own, before the always-on limit damping
    action_strength = 200.0
    root_noise: float  # uniform noise on x, z, pitch
    joint_noise: float
    velocity_noise: float
    start_z = 0.0  # root z coordinate of the noise-free start
    floor_half_width = 2.0

    @property
    def root_height(self) -> float:
        return self.limbs[0].origin[1]

    def build_world(self, builder: newton.ModelBuilder) -> None:
        first_shape = len(builder.shape_type)
        shape = newton.ModelBuilder.ShapeConfig(density=1000.0, **self.contact)
        bodies: dict[str, int] = {}
        joints: list[int] = []
        for limb in self.limbs:
            x, z = limb.origin
            body = builder.add_link(xform=wp.transform((x, 0.0, z), wp.quat_identity()), label=limb.name)
            bodies[limb.name] = body
            for c in limb.capsules:
                rotation = wp.quat_from_axis_angle(wp.vec3(0.0, 1.0, 0.0), c.angle)
                builder.add_shape_capsule(
                    body, xform=wp.transform((c.centre[0], 0.0, c.centre[1]), rotation), radius=c.radius, half_height=c.half_length, cfg=shape, color=ORANGE
                )  # fmt: skip
            if not limb.parent:
                # The models' root joints have no damping of their own: only the always-on limit damping.
                root = dict(armature=self.joint_armature, damping=self.always_on_damping, limit_kd=self.limit_kd)
                axis = newton.ModelBuilder.JointDofConfig
                joints.append(
                    builder.add_joint_d6(
                        -1,
                        body,
                        linear_axes=[axis(axis=(1.0, 0.0, 0.0), **root), axis(axis=(0.0, 0.0, 1.0), **root)],
                        angular_axes=[axis(axis=(0.0, 1.0, 0.0), **root)],
                        parent_xform=wp.transform((x, 0.0, z), wp.quat_identity()),
                        label="root",
                    )
                )
                continue
            parent = next(p for p in self.limbs if p.name == limb.parent)
            anchor = (x - parent.origin[0], 0.0, z - parent.origin[1])
            joints.append(
                builder.add_joint_revolute(
                    bodies[limb.parent],
                    body,
                    parent_xform=wp.transform(anchor, wp.quat_identity()),
                    axis=(0.0, limb.axis_y, 0.0),
                    limit_lower=limb.range[0],
                    limit_upper=limb.range[1],
                    limit_ke=self.limit_ke,
                    limit_kd=self.limit_kd,
                    armature=self.joint_armature,
                    stiffness=limb.stiffness,
                    damping=(self.joint_damping if limb.damping is None else limb.damping) + self.always_on_damping,
                    label=f"{limb.name}_joint",
                )
            )
        builder.add_articulation(joints, label=self.name)
        # No self-collision, as in the paper's dflex (ground contact only) and the free-root tasks'
        # import: a contact between two moving limbs has a normal that turns with both, which the
        # step's constant contact geometry (envs/newton_bridge.py) would leave out of the gradient.
        robot = range(first_shape, len(builder.shape_type))
        for i in robot:
            for j in range(i + 1, robot.stop):
                builder.add_shape_collision_filter_pair(i, j)
        self.add_ground(builder)

    def initial_state(self, n: int, generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        q = torch.cat([self.uniform(generator, device, self.root_noise, n, 3), self.uniform(generator, device, self.joint_noise, n, self.action_dim)], dim=-1)
        q[:, 1] += self.start_z
        return q, self.uniform(generator, device, self.velocity_noise, n, 3 + self.action_dim)

    def action_to_joint_f(self, action: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(action[:, :3]), action * self.action_strength], dim=-1)

    def camera_mount(self, q: torch.Tensor) -> torch.Tensor:
        """The root's start point moved by the x and z slides (the pitch does not turn the camera)."""
        return torch.stack([q[:, 0], torch.zeros_like(q[:, 0]), q[:, 1] + self.root_height], dim=-1)

    def state_obs(self, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        return torch.cat([q[:, 1:], qd], dim=-1)  # everything but the x position
