"""Hopper (the DiffRL/D.Va task, reference/dva_paper.md section 4) on Newton, z up.

The classic MuJoCo hopper (torso, thigh, leg and foot capsules, density 1000, hinge ranges
-150..0, -150..0 and -45..45 degrees) on a planar root whose z starts at 0 with the torso at
1.25 m. Observation q[1:6] = (z, pitch, thigh, leg, foot) and qd (6): 11 numbers.
Contacts: the paper's ke 2e4, kd 1e3, kf 1e3, mu 0.9. Joints as the paper's dflex integrates them:
armature 1 on all six dofs (the root's x, z slides and pitch included), damping 2 + 10 on the
hinges and 0 + 10 on the root's three (the 10 is dflex's always-on limit kd), no stiffness.
Actions in [-1, 1] times 200 N m.
Reward: v_x + h_r + (1 - pitch^2 / (pi/6)^2) - 0.1 |a|^2, where hd = clip(z + 0.3, -1, 0.3) and
h_r = -200 hd^2 below 0, hd above; early termination when z < -0.45.

Fidelity against the official D.Va code (docs/locomotion-fidelity.md, hopper table):
- same: body masses (15.82 kg) and hinge-axis inertias, foot capsule centre x = 0.06, limits,
  200 N m actions, start pose and noise, observation, reward, termination, dt and substeps.
- fixed: joint damping 12 / root 10 with limit kd 0 (dflex applies its limit kd at all times),
  root armature 1, foot centre 0.06 (was 0.065).
- kept: contact damping is kd x depth in dflex and kd in Newton (C5; the largest remaining
  difference: the official passive hopper bounces on landing, ours does not); contacts found
  once per control step (0.1 m gap); z up.
"""

from __future__ import annotations

import math

import torch

from envs.camera import CameraSpec
from envs.tasks.planar import Capsule, Limb, PlanarTask

ALONG_X = math.pi / 2


class Hopper(PlanarTask):
    name = "hopper"
    state_dim = 11
    action_dim = 3
    substeps = 16
    # The paper's ManiSkill camera, mounted on the link after the x and z slides.
    camera = CameraSpec(eye=(0.0, -2.8, 0.8), target=(0.0, 0.0, 0.0), fov_deg=45.0)

    limbs = (
        Limb("torso", "", (0.0, 1.25), 1.0, (0.0, 0.0), (Capsule((0.0, 0.0), 0.2, 0.05, 0.0),)),
        Limb("thigh", "torso", (0.0, 1.05), -1.0, (math.radians(-150), 0.0), (Capsule((0.0, -0.225), 0.225, 0.05, 0.0),)),
        Limb("leg", "thigh", (0.0, 0.6), -1.0, (math.radians(-150), 0.0), (Capsule((0.0, -0.25), 0.25, 0.04, 0.0),)),
        Limb("foot", "leg", (0.0, 0.1), -1.0, (math.radians(-45), math.radians(45)), (Capsule((0.06, 0.0), 0.195, 0.06, ALONG_X),)),
    )
    contact = dict(ke=2.0e4, kd=1.0e3, kf=1.0e3, mu=0.9)
    joint_armature = 1.0
    joint_damping = 2.0
    root_noise = joint_noise = velocity_noise = 0.05

    termination_height = -0.45
    termination_tolerance = 0.15
    max_pitch = math.pi / 6

    def reward(self, q: torch.Tensor, qd: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        z, pitch = q[:, 1], q[:, 2]
        height_diff = (z - (self.termination_height + self.termination_tolerance)).clamp(-1.0, 0.3)
        height_reward = torch.where(height_diff < 0, -200.0 * height_diff**2, height_diff)
        angle_reward = 1.0 - pitch**2 / self.max_pitch**2
        return qd[:, 0] + height_reward + angle_reward - 0.1 * (action**2).sum(-1)

    def terminated(self, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        return q[:, 1].detach() < self.termination_height
