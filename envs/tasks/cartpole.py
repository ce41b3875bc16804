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

`cartpole-paper` (CartPolePaper below) is the system the paper's code actually integrates, which
differs from the URDF this docstring follows (reference/dva_paper.md section 4, read from
HaoxiangYou/D.VA `envs/cartpole.py`, `utils/load_utils.py` `urdf_load`, dflex `model.py`/`sim.py`):

| parameter | `cartpole` (true swing-up) | `cartpole-paper` (as the official code runs) |
|---|---|---|
| cart mass, inertia | 1 kg, diag(1, 1, 1) (URDF `<inertial>`) | 50 kg, box 0.5x0.5x0.2 m at density 1000: diag(1.2083, 1.2083, 2.0833) |
| pole mass, inertia | 10 kg, diag(1, 1, 1), com 0.5 m | 2.5 kg, box 0.05x0.05x1 m: diag(0.20885, 0.20885, 0.00104), com 0.5 m |
| joint springs | none | 100 (q - 0) and 10 qd on slider and hinge (`urdf_load` stiffness/damping -> target ke/kd) |
| joint damping | only beyond the slider limits (kd 1) | 1 qd always (dflex applies limit kd inside the limits too) |
| slider limits | +-4 m, ke 1e4 | +-4 m, ke 100 |
| hinge limits | none (+-1e6 rad) | +-1000 rad (URDF `continuous`, ke 100: never reached) |

So a zero action lets the hinge spring (314 N m at the hanging start, against 12 N m of gravity)
swing the pole up and hold it: the paper's CartPole is much easier. In Newton the springs are the
joints' passive stiffness towards rest q = 0 and the damping 10 + 1 = 11 their passive damping:
Newton switches joint targets and limit damping off outside the limits, dflex does not, and the
passive terms act everywhere as dflex's do. Everything else (camera, pixels, reward, start state
and noise, force scale, dt, substeps, episode length, termination) is shared with `cartpole`.
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

    # The model as the URDF declares it (see the table above for `cartpole-paper`).
    cart_mass = 1.0
    cart_inertia = (1.0, 1.0, 1.0)
    pole_mass = 10.0
    pole_inertia = (1.0, 1.0, 1.0)
    joint_stiffness = 0.0  # N/m and N m/rad towards q = 0, on both joints
    joint_damping = 0.0  # on both joints, everywhere
    slider_limit_ke = 1.0e4
    slider_limit_kd = 1.0
    hinge_limit = 1.0e6
    hinge_limit_ke: float | None = None  # None: Newton's default (the limits are never reached)
    hinge_limit_kd: float | None = None

    def build_world(self, builder: newton.ModelBuilder) -> None:
        visual_only = newton.ModelBuilder.ShapeConfig(density=0.0, has_shape_collision=False, has_particle_collision=False)
        cart = builder.add_link(mass=self.cart_mass, inertia=_diagonal(self.cart_inertia), lock_inertia=True, label="cart")
        builder.add_shape_box(cart, hx=0.25, hy=0.25, hz=0.1, cfg=visual_only, color=ORANGE)
        springs = {"stiffness": self.joint_stiffness, "rest_q": 0.0, "damping": self.joint_damping, "armature": 0.0}
        rail = builder.add_joint_prismatic(
            -1,
            cart,
            parent_xform=wp.transform((0.0, 0.0, self.rail_height), wp.quat_identity()),
            axis=(1.0, 0.0, 0.0),
            limit_lower=-4.0,
            limit_upper=4.0,
            limit_ke=self.slider_limit_ke,
            limit_kd=self.slider_limit_kd,
            label="slider",
            **springs,
        )
        pole = builder.add_link(mass=self.pole_mass, com=(0.0, 0.0, 0.5), inertia=_diagonal(self.pole_inertia), lock_inertia=True, label="pole")
        t = self.pole_visual_half_thickness
        builder.add_shape_box(
            pole, xform=wp.transform((0.0, 0.0, 0.5), wp.quat_identity()), hx=t, hy=t, hz=0.5, cfg=visual_only, color=ORANGE
        )
        # A continuous hinge: limits far outside any reachable angle.
        hinge = builder.add_joint_revolute(
            cart,
            pole,
            axis=(0.0, 1.0, 0.0),
            limit_lower=-self.hinge_limit,
            limit_upper=self.hinge_limit,
            limit_ke=self.hinge_limit_ke,
            limit_kd=self.hinge_limit_kd,
            label="hinge",
            **springs,
        )
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


def box_inertia(mass: float, size: tuple[float, float, float]) -> tuple[float, float, float]:
    """Principal moments of a solid box of full side lengths `size` about its centre."""
    a, b, c = size
    return (mass * (b * b + c * c) / 12.0, mass * (a * a + c * c) / 12.0, mass * (a * a + b * b) / 12.0)


def _diagonal(moments: tuple[float, float, float]) -> wp.mat33:
    return wp.mat33(moments[0], 0.0, 0.0, 0.0, moments[1], 0.0, 0.0, 0.0, moments[2])


class CartPolePaper(CartPoleSwingUp):
    """CartPole as the paper's code runs it: box masses at density 1000 and joint spring-dampers."""

    name = "cartpole-paper"
    density = 1000.0
    cart_size = (0.5, 0.5, 0.2)
    pole_size = (0.05, 0.05, 1.0)
    cart_mass = density * cart_size[0] * cart_size[1] * cart_size[2]  # 50 kg
    cart_inertia = box_inertia(cart_mass, cart_size)
    pole_mass = density * pole_size[0] * pole_size[1] * pole_size[2]  # 2.5 kg
    pole_inertia = box_inertia(pole_mass, pole_size)
    # urdf_load(stiffness=100, damping=10) -> joint target ke/kd towards 0; limit_kd=1 acts always in dflex.
    joint_stiffness = 100.0
    joint_damping = 10.0 + 1.0
    slider_limit_ke = 100.0
    slider_limit_kd = 0.0  # dflex's limit damping is in joint_damping (it acts inside the limits too)
    hinge_limit = 1000.0  # urdf_load's default for a joint without limits
    hinge_limit_ke = 100.0
    hinge_limit_kd = 0.0


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
