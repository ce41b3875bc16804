"""Humanoid (the DiffRL/D.Va task, reference/dva_paper.md section 4) on Newton, z up.

The model is Newton's bundled `nv_humanoid.xml` (the IsaacGym humanoid of the DiffRL lineage:
21 hinges on a free root, density 1000), imported with the paper's contact ke 2e4, kd 5e3,
kf 1e3, mu 0.75; each hinge's own armature (0.006-0.02), stiffness (2-20, towards 0) and damping
(0.1-5) from the file, as the paper loads them (without dflex's always-on limit kd of 10: below);
limits ke 1e3; 48 substeps per 1/60 s control step. Actions in [-1, 1] times 0.35 x the paper's
motor strengths (file joint order).

Observation (76): torso height, quaternion, torso-origin linear velocity and angular velocity,
21 joint angles, 0.1 x 21 joint velocities, up_z, heading towards (200, 0), the 21 previous actions.
Reward: v_x (of the torso origin) + 0.1 up_z + heading + h_r - 0.002 |a|^2, where
hd = clip(height - 0.84, -1, 0.1) and h_r = -200 hd^2 below 0, 10 hd above; early termination when
the torso is below 0.74 m or the state is NaN, infinite or above 1e6 (that step's reward is 0).
Start: torso at 1.35 m, position + U(+-0.1), a rotation by U(+-pi/24) about a random axis,
joints U(+-0.2), velocities U(+-0.25) on dflex's twist (as the ant).

Fidelity against the official D.Va code (docs/locomotion-fidelity.md, humanoid table):
- same: geometry, body masses (40.84 kg), joint armature and stiffness, limits,
  actions, start pose and noise, observation, reward, termination and the invalid-state guard,
  dt and substeps.
- fixed: per-joint armature, stiffness and damping from the file, limit kd 0 (were 0.007 / 5 /
  0.1 on every hinge); the observed and rewarded velocity is the torso
  origin's (was its COM's); the start-velocity noise on the origin twist.
- kept: dflex's always-on damping of 10 on every hinge is left out: with it the gradients explode
  (1e25 within four 32-step windows) and turn non-finite (the official env zeroes them);
  contact damping is kd x depth in dflex and kd in Newton (C5); dflex's element-wise
  inertia rotation (C2) drops whole components (e.g. the thighs' own inertia about hip_x), ours
  is correct; the official env's hooks that zero NaN gradients of q, qd and actions (none seen
  without the + 10 damping; D.Va stops on a non-finite gradient norm instead); observation frame z up; contacts
  found once per control step.
"""

from __future__ import annotations

import torch

from envs.camera import CameraSpec
from envs.tasks.free_root import FreeRootTask

MOTOR_STRENGTHS = (200, 200, 200, 200, 200, 600, 400, 100, 100, 200, 200, 600, 400, 100, 100, 100, 100, 200, 100, 100, 200)


class Humanoid(FreeRootTask):
    name = "humanoid"
    state_dim = 76
    action_dim = 21
    substeps = 48
    camera = CameraSpec(eye=(-3.0, 0.0, 1.0), target=(0.0, 0.0, 0.0), fov_deg=45.0)  # from behind

    model_file = "nv_humanoid.xml"
    contact = dict(ke=2.0e4, kd=5.0e3, kf=1.0e3, mu=0.75)
    # Each hinge's own armature (0.006-0.02), stiffness (2-20, towards 0) and damping (0.1-5) from
    # the file, as the paper loads them; the knees have none of their own and take the class
    # defaults 0.007 / 5 / 0.1, which are also the paper's env arguments.
    file_joint_parameters = True
    # Not dflex's always-on damping of 10 (C3; the ant and the planar tasks have it): on the
    # humanoid's light limbs, at 48 substeps, it makes the step's linearisation unstable. Measured
    # (4 envs, 32-step windows of random actions, the largest |d return / d action| per window):
    # with it 8e7, 3e8, 3e15, 1e25; without it 3e2, 1e3, 13, 53, 72, 60 (docs/locomotion-fidelity.md).
    always_on_damping = 0.0
    root_com = (-0.00253938, 0.0, 0.0346626)  # the torso's COM (torso, upper waist and head geoms)
    start_height = 1.35
    termination_height = 0.74
    target = (200.0, 0.0)

    def joint_strengths(self) -> torch.Tensor:
        return 0.35 * torch.tensor(MOTOR_STRENGTHS, dtype=torch.float32)

    def reward(self, q: torch.Tensor, qd: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        up, heading = self.frame(q)
        height_diff = (q[:, 2] - 0.84).clamp(-1.0, 0.1)
        height_reward = torch.where(height_diff < 0, -200.0 * height_diff**2, 10.0 * height_diff)
        reward = self.origin_velocity(q, qd)[:, 0] + 0.1 * up + heading + height_reward - 0.002 * (action**2).sum(-1)
        return torch.where(self._invalid(q, qd), torch.zeros_like(reward), reward)

    @staticmethod
    def _invalid(q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        """The paper's guard: a NaN, infinite or > 1e6 state ends the episode with reward 0."""
        state = torch.cat([q, qd], dim=-1).detach()
        return ~torch.isfinite(state).all(-1) | (state.abs() > 1e6).any(-1)

    def terminated(self, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        return (q[:, 2].detach() < self.termination_height) | self._invalid(q, qd)
