"""Ant (the DiffRL/D.Va task, reference/dva_paper.md section 4) on Newton, z up.

The model is Newton's bundled `nv_ant.xml` (the IsaacGym ant of the DiffRL lineage: a sphere torso
and four two-link capsule legs on a free root), imported with the paper's constants instead of the
file's: density 1000 (dflex ignores the file's density of 5, a 0.91 kg ant that the paper's penalty
contact cannot integrate stably at 1 ms: it is NaN after 6 control steps, the blow-up of
measurements.md), contact ke 4e4, kd 1e4, kf 3e3, mu 0.75, armature 0.05 and damping 1 + 10 on the
hinges (the 10 is dflex's always-on limit kd), limits ke 1e3. Actions in [-1, 1] times 200 N m on
the eight hinges, in the file's joint order.

Observation (37): torso height, torso quaternion (xyzw), torso-origin linear velocity, angular
velocity (both world frame), the 8 joint angles, 0.1 x the 8 joint velocities, the up vector's z,
the heading (torso x axis) dotted with the horizontal direction to the target (10000, 0, 0), and
the previous actions. Reward: v_x + 0.1 up_z + heading + (height - 0.27); early termination when
the torso is below 0.27 m. Start: height 0.75, joints (0, 1, 0, -1, 0, -1, 0, 1) + U(+-0.2),
position + U(+-0.1), a rotation by U(+-pi/24) about a random axis, velocities U(+-0.25) on dflex's
twist (angular velocity, velocity of the body point at the world origin).

Fidelity against the official D.Va code (docs/locomotion-fidelity.md, ant table):
- same: geometry, masses (182.18 kg), armature, limits, actions, start pose and noise, reward,
  termination, dt and substeps. The observation is the same information in a z-up frame (kept).
- fixed: hinge damping 11 with limit kd 0 (dflex applies its limit kd at all times; was 1 + kd
  past a limit only); the start-velocity noise on the origin twist (extra omega x p).
- kept: contact damping is kd x depth in dflex and kd in Newton (C5; the source of the ant's
  exploding 16-substep derivative). dflex's element-wise inertia rotation (C2) gives each foot
  0.14 kg m^2 at its COM about the ankle axis; ours is the correct 0.54. Contacts found once per
  control step; z up.
"""

from __future__ import annotations

import torch

from envs.camera import CameraSpec
from envs.tasks.free_root import FreeRootTask


class Ant(FreeRootTask):
    name = "ant"
    state_dim = 37
    action_dim = 8
    substeps = 16
    camera = CameraSpec(eye=(0.5, -2.0, 1.0), target=(0.0, 0.0, 0.0), fov_deg=60.0)

    model_file = "nv_ant.xml"
    density_scale = 1000.0 / 5.0
    contact = dict(ke=4.0e4, kd=1.0e4, kf=3.0e3, mu=0.75)
    joint_armature = 0.05
    joint_damping = 1.0
    start_height = 0.75
    start_joints = (0.0, 1.0, 0.0, -1.0, 0.0, -1.0, 0.0, 1.0)
    termination_height = 0.27
    target = (10000.0, 0.0)

    def body_color(self, shape: int, file_color) -> tuple[float, float, float]:
        return tuple(file_color)  # the file's orange body with the paper's redder legs

    def joint_strengths(self) -> torch.Tensor:
        return torch.full((self.action_dim,), 200.0)

    def reward(self, q: torch.Tensor, qd: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        up, heading = self.frame(q)
        return self.origin_velocity(q, qd)[:, 0] + 0.1 * up + heading + (q[:, 2] - self.termination_height)

    def terminated(self, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        return q[:, 2].detach() < self.termination_height
