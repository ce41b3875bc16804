"""CartPole swing-up, D.Va's version (reference/dva_paper.md section 4).

Model: a 1 kg cart (box 0.5 x 0.5 x 0.2 m, inertia diag 1) on a prismatic rail along x (limits
+-4 m, limit damping 1), and a 10 kg pole (box 0.05 x 0.05 x 1 m, centre of mass 0.5 m from the
hinge, inertia diag 1) on a continuous hinge at the cart centre. The rail is 1 m above the floor,
as in dm_control's cartpole. theta = 0 is upright; episodes start hanging (theta = -pi).
Action: one cart force, scaled by 1000 N. dt 1/60 s in 4 substeps, 240 steps, early termination
at |x| > 2.5. Reward 10 - theta^2 - 0.1 theta_dot^2 - 0.05 x^2 - 0.1 x_dot^2, theta wrapped.

One deliberate visual difference: the pole is drawn 0.1 m thick instead of 0.05 m. With the
paper's camera (2.8 m away, 90 deg FOV) one pixel of an 84x84 image covers 6.7 cm, so a 5 cm
pole falls between pixel centres of a ray tracer without anti-aliasing and flickers out of
view. Visual shapes carry no mass here (inertias are set explicitly), so physics is unchanged.
"""

from __future__ import annotations

import math

import torch
import warp as wp

import newton
from envs.camera import ORANGE, CameraSpec
from envs.tasks.base import Task


class CartPoleSwingUp(Task):
    name = "cartpole"
    state_dim = 5
    action_dim = 1
    episode_length = 240
    control_dt = 1.0 / 60.0
    substeps = 4
    reward_range = (-math.inf, 10.0)
    camera = CameraSpec(eye=(0.0, -2.8, 1.2), target=(0.0, 0.0, 1.2), fov_deg=90.0)

    rail_height = 1.0
    # Rail limits +-4 m, plus cart half-width and pole length, with margin.
    visual_bounds = ((-5.5, -0.35, -0.2), (5.5, 0.35, 2.2))
    cart_force = 1000.0
    termination_x = 2.5
    pole_visual_half_thickness = 0.05

    def build_world(self, builder: newton.ModelBuilder) -> None:
        visual_only = newton.ModelBuilder.ShapeConfig(density=0.0, has_shape_collision=False, has_particle_collision=False)
        unit_inertia = wp.mat33(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
        cart = builder.add_link(mass=1.0, inertia=unit_inertia, lock_inertia=True, label="cart")
        builder.add_shape_box(cart, hx=0.25, hy=0.25, hz=0.1, cfg=visual_only, color=ORANGE)
        rail = builder.add_joint_prismatic(
            -1,
            cart,
            parent_xform=wp.transform((0.0, 0.0, self.rail_height), wp.quat_identity()),
            axis=(1.0, 0.0, 0.0),
            limit_lower=-4.0,
            limit_upper=4.0,
            limit_kd=1.0,
            label="slider",
        )
        pole = builder.add_link(mass=10.0, com=(0.0, 0.0, 0.5), inertia=unit_inertia, lock_inertia=True, label="pole")
        t = self.pole_visual_half_thickness
        builder.add_shape_box(
            pole, xform=wp.transform((0.0, 0.0, 0.5), wp.quat_identity()), hx=t, hy=t, hz=0.5, cfg=visual_only, color=ORANGE
        )
        # A continuous hinge: limits far outside any reachable angle.
        hinge = builder.add_joint_revolute(cart, pole, axis=(0.0, 1.0, 0.0), limit_lower=-1e6, limit_upper=1e6, label="hinge")
        builder.add_articulation([rail, hinge], label="cartpole")

    def make_solver(self, model: newton.Model) -> newton.solvers.SolverBase:
        # Featherstone in generalised coordinates: finite gradients on this model (measurements.md);
        # the semi-implicit solver gives NaN control gradients here. The mass matrix is rebuilt every
        # substep (the paper caches it per control step); it is cheap for 2 DOF and keeps each step a
        # pure function of (q, qd, force), which the replaying backward pass relies on.
        return newton.solvers.SolverFeatherstone(model, update_mass_matrix_interval=1)

    def initial_state(self, n: int, generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        q = torch.tensor([0.0, -math.pi], device=device).expand(n, 2).clone()
        q += (torch.rand(n, 2, generator=generator, device=device) * 2 - 1) * (math.pi / 12)
        qd = (torch.rand(n, 2, generator=generator, device=device) * 2 - 1) * 0.05
        return q, qd

    def action_to_joint_f(self, action: torch.Tensor) -> torch.Tensor:
        return torch.cat([action * self.cart_force, torch.zeros_like(action)], dim=-1)

    @staticmethod
    def _wrapped_angle(theta: torch.Tensor) -> torch.Tensor:
        return torch.atan2(torch.sin(theta), torch.cos(theta))

    def state_obs(self, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        x, theta = q[:, 0], q[:, 1]
        return torch.stack([x, qd[:, 0], torch.sin(theta), torch.cos(theta), qd[:, 1]], dim=-1)

    def reward(self, q: torch.Tensor, qd: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        theta = self._wrapped_angle(q[:, 1])
        return 10.0 - theta**2 - 0.1 * qd[:, 1] ** 2 - 0.05 * q[:, 0] ** 2 - 0.1 * qd[:, 0] ** 2

    def terminated(self, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        return q[:, 0].detach().abs() > self.termination_x


def swing_up_controller(state: torch.Tensor) -> torch.Tensor:
    """Hand-written reference policy: energy-pumping swing-up, then PD balance near upright.

    Not a learner: it exists to show the reward scale (it scores about 2,100 of the ~2,400
    maximum from the hanging start) and as a sanity line for methods. Gains tuned by hand on
    this model; obs layout (x, x_dot, sin theta, cos theta, theta_dot).
    """
    x, x_dot, sin_t, cos_t, theta_dot = state.unbind(-1)
    theta = torch.atan2(sin_t, cos_t)
    hinge_inertia = 1.0 + 10.0 * 0.5**2  # pole inertia about its hinge
    energy_below_upright = 0.5 * hinge_inertia * theta_dot**2 + 10.0 * 9.81 * 0.5 * (cos_t - 1.0)
    pump = 0.02 * energy_below_upright * torch.sign(theta_dot * cos_t + 1e-6)
    centre = -0.05 * x - 0.05 * x_dot
    balance = 1.0 * theta + 0.2 * theta_dot + 0.025 * x + 0.025 * x_dot
    action = torch.where(cos_t > 0.85, balance, pump + centre)
    return action.clamp(-1.0, 1.0).unsqueeze(-1)
