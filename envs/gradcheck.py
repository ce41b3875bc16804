"""Independent references for the simulator's gradients: central differences with error bars.

The analytic Jacobian of one control step comes from the replaying backward pass
(`NewtonSim.step_backward`, one pass per output coordinate, all worlds at once since worlds are
independent). The reference is a central difference of the no-grad forward step, which in float32
(Newton has no float64 kernels) carries two errors:
- rounding: the forward's outputs jitter by some sigma under any tiny change of input, so a
  quotient at step h is off by up to sigma / h (the checks allow twice that). `rounding_noise` measures sigma per world and
  output: it fits a line to the outputs at nine points within 1e-5 along a random direction, where
  every smooth function is linear, and takes the largest residual, but never less than four units
  in the last place of the world's largest output (every output is the end of many float32
  operations on intermediates as large as world positions and speeds, and a fit at a span of 1e-5
  sees less than one ulp of movement in the slowly changing ones).
- truncation and kinks: a step that crosses a contact or a joint limit switching, or moves an event
  to another substep, averages over pieces. Two step sizes that agree within their rounding bounds
  show that no kink lies between the small and the large step; a kink closer than the small step
  (a resting contact sits on one: its normal velocity is zero) would give both the same average,
  so the forward and backward one-sided quotients at the small step must agree too. Where either
  test fails the input direction is not smooth at that scale and the column says nothing about
  the gradient (`checked` excludes it).
An analytic entry passes when it is within the coarse quotient's rounding bound, the two
quotients' disagreement, and `rel` of its magnitude (`agrees`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

import newton
from envs.newton_bridge import NewtonSim
from envs.tasks.base import Task

Batched = Callable[[torch.Tensor], torch.Tensor]  # [N, inputs] -> [N, outputs], worlds independent


@dataclass
class Jacobians:
    """Analytic and central-difference Jacobians `[N, outputs, inputs]`, with the forward's rounding noise `[N, outputs]`."""

    analytic: torch.Tensor
    fd_coarse: torch.Tensor
    fd_fine: torch.Tensor
    one_sided_gap: torch.Tensor  # |forward - backward one-sided quotient| at the fine step
    steps: tuple[float, float]
    noise: torch.Tensor

    def rounding_bound(self, step: float) -> torch.Tensor:
        """Largest rounding error of a central quotient at `step`, per entry: two outputs off by sigma
        each, over 2 step, doubled because nine samples see most but not all of the jitter."""
        return (2 * self.noise / step).unsqueeze(-1).expand_as(self.analytic)

    def checked(self, rel: float = 0.02) -> torch.Tensor:
        """Entries whose input direction is smooth at both steps (bool `[N, outputs, inputs]`).

        A kink lies on an input direction, not on one output: where any output's two quotients
        differ by more than their rounding bounds plus `rel` of the value (truncation), the whole
        column of that world is left out, since an output that happens to agree there may still be
        an average over pieces."""
        fine = self.rounding_bound(self.steps[1])
        truncation = rel * self.fd_coarse.abs()
        smooth = (self.fd_coarse - self.fd_fine).abs() <= self.rounding_bound(self.steps[0]) + fine + truncation
        smooth &= self.one_sided_gap <= 4 * fine + truncation
        return smooth.all(dim=1, keepdim=True).expand_as(smooth)

    def agrees(self, rel: float = 0.01) -> torch.Tensor:
        """Analytic within the coarse quotient's error bars plus `rel` of its value (bool, every entry)."""
        slack = self.rounding_bound(self.steps[0]) + (self.fd_coarse - self.fd_fine).abs() + rel * self.fd_coarse.abs()
        return (self.analytic - self.fd_coarse).abs() <= slack


def rounding_noise(f: Batched, x: torch.Tensor, generator: torch.Generator, span: float = 1e-5, points: int = 9) -> torch.Tensor:
    """Largest deviation of f's outputs from a straight line through `points` inputs within `span`
    of x along a random unit direction (per world): the rounding jitter of f, `[N, outputs]`."""
    direction = torch.randn(x.shape, generator=generator).to(x.device)
    direction /= direction.norm(dim=1, keepdim=True)
    t = torch.linspace(-span, span, points, device=x.device)
    ys = torch.stack([f(x + ti * direction) for ti in t])  # [points, N, outputs]
    design = torch.stack([torch.ones_like(t), t], dim=1).double()  # [points, 2]
    coef = torch.linalg.lstsq(design, ys.double().reshape(points, -1)).solution
    residual = (ys.double().reshape(points, -1) - design @ coef).abs().amax(0).reshape(ys.shape[1:]).float()
    few_ulps = 4 * torch.finfo(torch.float32).eps * ys.abs().amax(dim=(0, 2)).unsqueeze(1)
    return torch.maximum(residual, few_ulps)


def differences(f: Batched, x: torch.Tensor, step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Central quotient of f at x and the gap between its one-sided quotients, at `step`, each `[N, outputs, inputs]`."""
    centre = f(x)
    central, gap = [], []
    for col in range(x.shape[1]):
        plus, minus = x.clone(), x.clone()
        plus[:, col] += step
        minus[:, col] -= step
        f_plus, f_minus = f(plus), f(minus)
        central.append((f_plus - f_minus) / (2 * step))
        gap.append((f_plus - 2 * centre + f_minus).abs() / step)
    return torch.stack(central, dim=-1), torch.stack(gap, dim=-1)


def compare(f: Batched, x: torch.Tensor, analytic: torch.Tensor, steps: tuple[float, float], generator: torch.Generator) -> Jacobians:
    """Bundle an analytic Jacobian of f at x with its difference references and f's rounding noise."""
    noise = rounding_noise(f, x, generator)
    coarse, _ = differences(f, x, steps[0])
    fine, gap = differences(f, x, steps[1])
    return Jacobians(analytic, coarse, fine, gap, steps, noise)


def free_rotations(sim: NewtonSim) -> list[int]:
    """Where each free joint's unit quaternion (xyzw) starts in one world's q."""
    per_world = sim.model.joint_count // sim.num_worlds
    kinds, starts = sim.model.joint_type.numpy()[:per_world], sim.model.joint_q_start.numpy()[:per_world]
    return [int(start) + 3 for kind, start in zip(kinds, starts) if kind == int(newton.JointType.FREE)]


def _quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of xyzw quaternions `[..., 4]`."""
    av, aw, bv, bw = a[..., :3], a[..., 3:], b[..., :3], b[..., 3:]
    return torch.cat([aw * bv + bw * av + torch.linalg.cross(av, bv), aw * bw - (av * bv).sum(-1, keepdim=True)], dim=-1)


class TangentCoordinates:
    """q with a rotation vector in place of each free joint's quaternion, around a reference q.

    A free joint's quaternion has four numbers for three degrees of freedom; moving one component
    leaves the unit sphere, a direction Newton's integrator normalises away and its contact
    pipeline reads differently from its dynamics (a scaled rotation). Differences and Jacobians
    are therefore taken along rotations: q(r) = (exp(r) * quat_ref, ...), with r = 0 at the state."""

    def __init__(self, q_ref: torch.Tensor, rotations: list[int]):
        self.q_ref, self.rotations = q_ref, rotations
        kept, position = [], 0
        for start in rotations:
            kept.append((position, start))  # raw coordinates [position, start) map one to one
            position = start + 4
        self._tail = position
        self.dim = q_ref.shape[1] - len(rotations)

    def zero(self) -> torch.Tensor:
        """The reference state in tangent coordinates `[N, dim]`."""
        parts, position = [], 0
        for start in self.rotations:
            parts += [self.q_ref[:, position:start], self.q_ref.new_zeros(len(self.q_ref), 3)]
            position = start + 4
        return torch.cat(parts + [self.q_ref[:, position:]], dim=1)

    def to_q(self, x: torch.Tensor) -> torch.Tensor:
        """Newton's q at tangent coordinates x `[N, dim]`."""
        parts, position, offset = [], 0, 0
        for start in self.rotations:
            parts.append(x[:, offset : offset + start - position])
            offset += start - position
            r = x[:, offset : offset + 3]
            half = 0.5 * r.norm(dim=1, keepdim=True)
            exp_r = torch.cat([0.5 * torch.sinc(half / torch.pi) * r, torch.cos(half)], dim=1)  # sin(|r|/2) r/|r|
            parts.append(_quat_mul(exp_r, self.q_ref[:, start : start + 4]))
            offset += 3
            position = start + 4
        parts.append(x[:, offset:])
        return torch.cat(parts, dim=1)

    def jacobian(self) -> torch.Tensor:
        """d q / d x at x = 0, `[N, q_dim, dim]`: identity, and 0.5 (e_i, 0) * quat_ref for rotations."""
        n, nq = self.q_ref.shape
        jac = self.q_ref.new_zeros(n, nq, self.dim)
        row, col = 0, 0
        for start in self.rotations + [nq]:
            for _ in range(start - row):
                jac[:, row, col] = 1.0
                row, col = row + 1, col + 1
            if start == nq:
                break
            for axis in range(3):
                e = self.q_ref.new_zeros(n, 4)
                e[:, axis] = 0.5
                jac[:, row : row + 4, col + axis] = _quat_mul(e, self.q_ref[:, start : start + 4])
            row, col = row + 4, col + 3
        return jac


def step_function(task: Task, sim: NewtonSim) -> Batched:
    """One control step as a batched function of `[q, qd, action]` to `[q', qd']` (no gradient)."""
    nq, nv = sim.q_dim, sim.qd_dim

    def step(x: torch.Tensor) -> torch.Tensor:
        q_next, qd_next = sim.step_no_grad(x[:, :nq], x[:, nq : nq + nv], task.action_to_joint_f(x[:, nq + nv :]))
        return torch.cat([q_next, qd_next], dim=1)

    return step


def step_jacobians(
    task: Task, sim: NewtonSim, q: torch.Tensor, qd: torch.Tensor, action: torch.Tensor,
    steps: tuple[float, float] = (1e-2, 3e-3), generator: torch.Generator | None = None,
) -> Jacobians:  # fmt: skip
    """d(q', qd') / d(q, qd, action) of one control step at each world's state, analytic and by differences.

    Inputs are `TangentCoordinates` for q (a free joint's rotation as a rotation vector), then qd,
    then actions rather than joint forces: they are what policies emit, and their unit scale lets
    one step size fit every column (a joint force of 200 N m is action 1). Outputs are Newton's
    (q', qd')."""
    q, qd, action = (x.detach().to(torch.float32) for x in (q, qd, action))
    n, nq, nv = q.shape[0], sim.q_dim, sim.qd_dim
    coords = TangentCoordinates(q, free_rotations(sim))
    action_leaf = action.clone().requires_grad_(True)
    joint_f = task.action_to_joint_f(action_leaf)
    analytic = q.new_zeros(n, nq + nv, coords.dim + nv + action.shape[1])
    dq_dx = coords.jacobian()
    for row in range(nq + nv):
        seed = q.new_zeros(n, nq + nv)
        seed[:, row] = 1.0
        dq, dqd, df = sim.step_backward(q, qd, joint_f.detach(), seed[:, :nq].contiguous(), seed[:, nq:].contiguous())
        (da,) = torch.autograd.grad(joint_f, action_leaf, grad_outputs=df, retain_graph=True)
        analytic[:, row] = torch.cat([torch.einsum("nq,nqx->nx", dq, dq_dx), dqd, da], dim=1)

    newton_step = step_function(task, sim)

    def step(x: torch.Tensor) -> torch.Tensor:
        return newton_step(torch.cat([coords.to_q(x[:, : coords.dim]), x[:, coords.dim :]], dim=1))

    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    return compare(step, torch.cat([coords.zero(), qd, action], dim=1), analytic, steps, generator)
