"""Two defects of Newton 1.8's Featherstone adjoint, reproduced against Newton and Warp alone.

Run: python docs/newton_gradient_repro.py   (CPU, a few seconds once warp's kernels are cached)

The model is a cart on an x slider with a pole on a hinge, one control step of 1/60 s from
x = 0.3, theta = -3, theta_dot = 6. The reference is a central difference of the forward step
(step sizes 1e-2 and 1e-3 agree to 4 digits). A wp.Tape over the solver's step disagrees:

A. One solver over several substeps (update_mass_matrix_interval=1): the solver keeps J, M, P, H
   and L on itself, every substep overwrites them, and the backward pass replays every substep
   with the last one's matrices. One solver per substep gives the exact derivative.
B. An external wrench in state.body_f (contact forces take the same path): eval_rigid_tau turns
   body_f_ext from a COM wrench into a solve-frame wrench in place, so its adjoint re-reads the
   converted value (-f for f) and the derivative of c x f with respect to the position flips
   sign. One substep, so defect A is not involved: d theta_dot' / d theta is off by 57%.
"""

from __future__ import annotations

import numpy as np
import warp as wp

import newton

wp.config.log_level = wp.LOG_WARNING  # no line per loaded kernel module
DT, THETA_DOT = 1.0 / 60.0, 6.0


def build() -> newton.Model:
    builder = newton.ModelBuilder(up_axis=newton.Axis.Z, gravity=(0.0, 0.0, -9.81))
    eye = wp.mat33(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    cart = builder.add_link(mass=1.0, inertia=eye, lock_inertia=True)
    pole = builder.add_link(mass=10.0, com=(0.0, 0.0, 0.5), inertia=eye, lock_inertia=True)
    slider = builder.add_joint_prismatic(-1, cart, axis=(1.0, 0.0, 0.0), limit_lower=-1e6, limit_upper=1e6)
    hinge = builder.add_joint_revolute(cart, pole, axis=(0.0, 1.0, 0.0), limit_lower=-1e6, limit_upper=1e6)
    builder.add_articulation([slider, hinge])
    return builder.finalize(device="cpu", requires_grad=True)


def theta_dot_next(model, q, qd, substeps, solvers, body_force, tape=None):
    """Pole angular velocity after one control step from (q, qd); records on `tape` if given."""
    states = [model.state(requires_grad=tape is not None) for _ in range(substeps + 1)]
    states[0].joint_q.assign(np.asarray(q, dtype=np.float32))
    states[0].joint_qd.assign(np.asarray(qd, dtype=np.float32))
    if tape is not None:
        states[0].joint_q.requires_grad = True
    control = model.control()
    for state in states[:-1]:
        state.body_f.assign(np.array([[0.0] * 6, body_force], dtype=np.float32))
    with tape if tape is not None else _nothing():
        for k in range(substeps):
            solvers[k % len(solvers)].step(states[k], states[k + 1], control, None, DT / substeps)
    return states


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def derivative(model, substeps, solver_count, body_force, coordinate) -> tuple[float, float]:
    """(analytic by wp.Tape, central difference) of d theta_dot' / d q[coordinate] (0: x, 1: theta)."""
    q, qd = [0.3, -3.0], [0.0, THETA_DOT]
    solvers = [newton.solvers.SolverFeatherstone(model, update_mass_matrix_interval=1) for _ in range(solver_count)]
    tape = wp.Tape()
    states = theta_dot_next(model, q, qd, substeps, solvers, body_force, tape)
    states[-1].joint_qd.grad.assign(np.array([0.0, 1.0], dtype=np.float32))
    tape.backward()
    analytic = float(states[0].joint_q.grad.numpy()[coordinate])
    eps = np.zeros(2)
    eps[coordinate] = 1e-2
    plus = theta_dot_next(model, q + eps, qd, substeps, solvers, body_force)[-1].joint_qd.numpy()[1]
    minus = theta_dot_next(model, q - eps, qd, substeps, solvers, body_force)[-1].joint_qd.numpy()[1]
    return analytic, float(plus - minus) / 2e-2


if __name__ == "__main__":
    model = build()
    no_force = [0.0] * 6
    force = [30.0, 0.0, 50.0, 0.0, 0.0, 0.0]  # on the pole's COM, world frame, linear first (Newton's body_f layout)
    print("                                                analytic  central difference")
    print("A. d theta_dot'/dx, 4 substeps, one solver      %9.5f  %9.5f" % derivative(model, 4, 1, no_force, 0))
    print("A. d theta_dot'/dx, 4 substeps, 4 solvers       %9.5f  %9.5f" % derivative(model, 4, 4, no_force, 0))
    print("B. d theta_dot'/dtheta, 1 substep, with force   %9.5f  %9.5f" % derivative(model, 1, 1, force, 1))
    print("B. d theta_dot'/dtheta, 1 substep, no force     %9.5f  %9.5f" % derivative(model, 1, 1, no_force, 1))
