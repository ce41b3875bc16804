"""Cheetah (the DiffRL/D.Va task, reference/dva_paper.md section 4) on Newton, z up.

The MuJoCo half-cheetah (torso and head capsules, three capsule links per leg, total mass 14 kg,
its joint ranges) on a planar root whose z starts at 0 with the torso at 0.7 m, feet just above
the ground. Observation q[1:9] = (z, pitch, six joints) and qd (9): 17 numbers.
Contacts: the paper's ke 2e4, kd 1e3, kf 1e3, mu 1; armature 0.1 and damping 1 on the leg hinges.
Actions in [-1, 1] times 200 N m. Reward v_x - 0.1 |a|^2; no early termination.
Start noise: x, z, pitch and joints U(+-0.1), velocities U(+-0.25). The paper's start height
offset of -0.2 m is not applied. The paper's root frame is at 1.0 m, not 0.7, so its torso
starts at 0.8 m (see below).

Fidelity against the official D.Va code (docs/locomotion-fidelity.md, cheetah table):
- same: geometry and body offsets, 200 N m actions, noise, observation layout, reward, no early
  termination, dt and substeps.
- differs: dflex ignores settotalmass, so the official cheetah is 21.18 kg at density 1000
  (ours 14). The file's joint stiffness 240/180/120/180/120/60 towards 0 and damping
  6/4.5/3/4.5/3/1.5 are loaded, plus the limit kd 10 that dflex always applies (ours: stiffness
  0, damping 1). The root dofs have damping 10 and armature 0.1 (ours 0). The front limits are
  fthigh [-1.5, 0.8], fshin [-1.2, 1.1], ffoot [-3.1, -0.3]. The start height is 0.8 m (obs z =
  height - 1.0). Contact damping is kd x depth in dflex and kd in Newton.
- kept: contacts found once per control step; z up.
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

    limbs = (
        Limb("torso", "", (0.0, 0.7), 1.0, (0.0, 0.0), (Capsule((0.0, 0.0), 0.5, 0.046, math.pi / 2), Capsule((0.6, 0.1), 0.15, 0.046, 0.87))),
        Limb("bthigh", "torso", (-0.5, 0.7), 1.0, (-0.52, 1.05), (Capsule((0.1, -0.13), 0.145, 0.046, -3.8),)),
        Limb("bshin", "bthigh", (-0.34, 0.45), 1.0, (-0.785, 0.785), (Capsule((-0.14, -0.07), 0.15, 0.046, -2.03),)),
        Limb("bfoot", "bshin", (-0.62, 0.31), 1.0, (-0.4, 0.785), (Capsule((0.03, -0.097), 0.094, 0.046, -0.27),)),
        Limb("fthigh", "torso", (0.5, 0.7), 1.0, (-1.0, 0.7), (Capsule((-0.07, -0.12), 0.133, 0.046, 0.52),)),
        Limb("fshin", "fthigh", (0.36, 0.46), 1.0, (-1.2, 0.87), (Capsule((0.065, -0.09), 0.106, 0.046, -0.6),)),
        Limb("ffoot", "fshin", (0.49, 0.28), 1.0, (-0.5, 0.5), (Capsule((0.045, -0.07), 0.07, 0.046, -0.6),)),
    )
    total_mass = 14.0
    contact = dict(ke=2.0e4, kd=1.0e3, kf=1.0e3, mu=1.0)
    joint_armature = 0.1
    joint_damping = 1.0
    root_noise = joint_noise = 0.1
    velocity_noise = 0.25

    def reward(self, q: torch.Tensor, qd: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return qd[:, 0] - 0.1 * (action**2).sum(-1)

    def terminated(self, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        return torch.zeros(q.shape[0], dtype=torch.bool, device=q.device)
