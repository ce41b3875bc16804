"""Cheetah (the DiffRL/D.Va task, reference/dva_paper.md section 4) on Newton, z up.

The half-cheetah of D.Va's (and DiffRL's) half_cheetah.xml as the paper's dflex loads it: torso
and head capsules and three capsule links per leg at density 1000 (21.18 kg; dflex does not read
the file's settotalmass of 14), the file's ranges (front leg fthigh [-1.5, 0.8], fshin
[-1.2, 1.1], ffoot [-3.1, -0.3]: the foot starts 0.3 rad past its limit and rests near -0.29),
on a planar root whose frame is at 1.0 m; the start z is -0.2, so the torso starts at 0.8 m and
observes z = height - 1.0. Observation q[1:9] = (z, pitch, six joints) and qd (9): 17 numbers.
Joints: the file's stiffness towards 0 (bthigh 240, bshin 180, bfoot 120, fthigh 180, fshin 120,
ffoot 60 N m/rad) and damping (6, 4.5, 3, 4.5, 3, 1.5) + 10 (dflex's always-on limit kd); the
root's x, z slides and pitch have damping 0 + 10; armature 0.1 on all nine dofs.
Contacts: the paper's ke 2e4, kd 1e3, kf 1e3, mu 1. Actions in [-1, 1] times 200 N m.
Reward v_x - 0.1 |a|^2; no early termination.
Start noise: x, z, pitch and joints U(+-0.1), velocities U(+-0.25).

Fidelity against the official D.Va code (docs/locomotion-fidelity.md, cheetah table):
- same: geometry and body offsets, masses and inertias, limits, joint stiffness, damping and
  armature, 200 N m actions, start pose and noise, observation, reward, no early termination,
  dt and substeps. The passive cheetah stands on its springs with the torso at 0.55 m, as the
  official one.
- fixed: mass (was 14 kg), stiffness (was 0), damping (was 1, root 0), root armature (was 0),
  front-leg ranges (were gym's), start height 0.8 m (was 0.7).
- kept: contact damping is kd x depth in dflex and kd in Newton (C5); contacts found once per
  control step; z up.
"""

from __future__ import annotations

import math

import torch

from envs.camera import CameraSpec
from envs.tasks.planar import Capsule, Limb, PlanarTask


class Cheetah(PlanarTask):
    name = "cheetah"
    state_dim = 17
    action_dim = 6
    substeps = 16
    camera = CameraSpec(eye=(0.0, -3.0, 0.0), target=(0.0, 0.0, 0.0), fov_deg=45.0)

    # The D.Va/DiffRL half_cheetah.xml as dflex loads it: the torso frame at 1.0 m (the env's root
    # transform), each hinge's own stiffness towards 0 and damping, that file's front-leg ranges.
    limbs = (
        Limb("torso", "", (0.0, 1.0), 1.0, (0.0, 0.0), (Capsule((0.0, 0.0), 0.5, 0.046, math.pi / 2), Capsule((0.6, 0.1), 0.15, 0.046, 0.87))),
        Limb("bthigh", "torso", (-0.5, 1.0), 1.0, (-0.52, 1.05), (Capsule((0.1, -0.13), 0.145, 0.046, -3.8),), 240.0, 6.0),
        Limb("bshin", "bthigh", (-0.34, 0.75), 1.0, (-0.785, 0.785), (Capsule((-0.14, -0.07), 0.15, 0.046, -2.03),), 180.0, 4.5),
        Limb("bfoot", "bshin", (-0.62, 0.61), 1.0, (-0.4, 0.785), (Capsule((0.03, -0.097), 0.094, 0.046, -0.27),), 120.0, 3.0),
        Limb("fthigh", "torso", (0.5, 1.0), 1.0, (-1.5, 0.8), (Capsule((-0.07, -0.12), 0.133, 0.046, 0.52),), 180.0, 4.5),
        Limb("fshin", "fthigh", (0.36, 0.76), 1.0, (-1.2, 1.1), (Capsule((0.065, -0.09), 0.106, 0.046, -0.6),), 120.0, 3.0),
        Limb("ffoot", "fshin", (0.49, 0.58), 1.0, (-3.1, -0.3), (Capsule((0.045, -0.07), 0.07, 0.046, -0.6),), 60.0, 1.5),
    )
    start_z = -0.2  # torso at 0.8 m, obs z = height - 1.0
    contact = dict(ke=2.0e4, kd=1.0e3, kf=1.0e3, mu=1.0)
    joint_armature = 0.1
    joint_damping = 1.0  # the env's argument; every hinge has its own in the file
    root_noise = joint_noise = 0.1
    velocity_noise = 0.25

    def reward(self, q: torch.Tensor, qd: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return qd[:, 0] - 0.1 * (action**2).sum(-1)

    def terminated(self, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        return torch.zeros(q.shape[0], dtype=torch.bool, device=q.device)
