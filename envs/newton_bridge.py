"""The bridge between torch and Newton: one control step of physics, differentiable.

Why rematerialisation: the forward pass runs without a `wp.Tape` into two ping-pong states, and
the backward pass replays that one control step on a tape from the saved torch inputs and
back-propagates through it. A horizon therefore keeps only torch tensors (q, qd, joint force) per
step instead of every substep's Newton state, so memory does not grow with Newton's per-state
buffers, and a graph can never read a buffer that a later step overwrote. The price is one extra
forward simulation per step in the backward pass (physics is the cheap part of a visual step).

Two defects of Newton 1.8's Featherstone solver under a `wp.Tape` make its gradients wrong away
from rest; the replay works around both without changing Newton (docs/newton-gradients.md has
the measurements and a reproduction against Newton alone):
- the solver keeps its mass-matrix buffers (J, M, P, H, L) on itself, not on the state, so a tape
  over several substeps that each rebuild them replays every substep's backward with the last
  substep's matrices: the replay gives each rebuild a solver of its own (`_tape_solvers`);
- `eval_rigid_tau` converts each substep's external body wrenches (`body_f_ext`: contacts) from
  the centre of mass to the solve frame in place, so its adjoint re-reads converted values:
  `_restore_public_body_wrenches` converts them back before the backward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import warp as wp

import newton
from envs.timing import PhaseTimes



def warp_device_for(device: torch.device) -> str:
    """Map a torch device onto the warp device that shares its memory."""
    if device.type == "cpu":
        return "cpu"
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    raise ValueError(f"device {device} is not supported by warp/Newton (use 'cpu' or 'cuda[:k]')")


class NewtonSim:
    """Batched physics of one task: `num_worlds` copies of the same articulation.

    The torch-facing layout is `q: [N, q_dim]`, `qd: [N, qd_dim]`, `joint_f: [N, qd_dim]`, which is
    Newton's flat per-world joint layout reshaped (worlds are contiguous in `joint_q`).
    """

    def __init__(
        self,
        model: newton.Model,
        make_solver: Callable[[newton.Model], newton.solvers.SolverBase],
        num_worlds: int,
        control_dt: float,
        substeps: int,
        device: torch.device,
        collide: bool = False,
    ):
        self.model = model
        self.num_worlds = num_worlds
        self.substeps = substeps
        self.sim_dt = control_dt / substeps
        self.device = device
        self.collide = collide
        self.q_dim = model.joint_coord_count // num_worlds
        self.qd_dim = model.joint_dof_count // num_worlds
        self._solver = make_solver(model)
        self._make_solver = make_solver
        # The mass matrix is rebuilt on a control step's first substep and every `interval` after it.
        self._mass_matrix_interval = getattr(self._solver, "update_mass_matrix_interval", 1)
        if substeps % self._mass_matrix_interval:
            raise ValueError(
                f"the solver rebuilds its mass matrix every {self._mass_matrix_interval} substeps, which does not divide "
                f"the {substeps} substeps of a control step; the replayed step would not match the forward one"
            )
        # Bodies whose external wrench eval_rigid_tau converts in place: the child of every articulated joint.
        articulated = model.joint_articulation.numpy() >= 0
        self._articulated_bodies = wp.array(model.joint_child.numpy()[articulated], dtype=wp.int32, device=model.device)
        # No-grad path: two states, ping-pong.
        self._states = [model.state(requires_grad=False) for _ in range(2)]
        self._control = model.control()
        # Replay path: one state per substep boundary, so the tape sees every intermediate value,
        # and one solver per mass-matrix rebuild, so each rebuild keeps its own matrices.
        self._tape_states: list[newton.State] | None = None
        self._tape_control: newton.Control | None = None
        self._tape_solvers: list[newton.solvers.SolverBase] | None = None
        self._collision = newton.CollisionPipeline(model) if collide else None
        self._contacts = self._collision.contacts() if collide else None
        self.timings = PhaseTimes()  # the env replaces this with its own accumulator

    # -- torch <-> warp -------------------------------------------------------------------------
    @staticmethod
    def _write(dst: wp.array, src: torch.Tensor) -> None:
        wp.copy(dst, wp.from_torch(src.detach().reshape(-1).contiguous()))

    def _read(self, src: wp.array, dim: int) -> torch.Tensor:
        return wp.to_torch(src, requires_grad=False).reshape(self.num_worlds, dim).clone()

    def _simulate(self, states: list[newton.State], control: newton.Control, ping_pong: bool, collide: bool = True) -> newton.State:
        """Integrate one control step from `states[0]`; returns the final state.

        Contact candidates are found once per control step, from the step's start state (within
        the pipeline's gap of the ground); every substep's contact force recomputes the penetration
        of those body-fixed points from the current poses, as dflex's fixed contact points did.
        `collide=False`: the caller has already filled the contacts from `states[0]`."""
        if collide and self._contacts is not None:
            self._collide(states[0])
        for k in range(self.substeps):
            s_in = states[k % 2] if ping_pong else states[k]
            s_out = states[(k + 1) % 2] if ping_pong else states[k + 1]
            solver = self._solver if ping_pong else self._tape_solvers[k // self._mass_matrix_interval]
            solver.step(s_in, s_out, control, self._contacts, self.sim_dt)
        return states[self.substeps % 2] if ping_pong else states[self.substeps]

    def _collide(self, state: newton.State) -> None:
        """Contacts of `state`: body poses from its joint coordinates first (the solver only
        updates a state's body poses inside its step, so they are stale here)."""
        newton.eval_fk(self.model, state.joint_q, state.joint_qd, state)
        self._collision.collide(state, self._contacts)

    # -- public ---------------------------------------------------------------------------------
    def contact_counts(self, q: torch.Tensor, qd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Contact candidates within the collision gap, contacts that push: penetration below zero)
        per world at (q, qd), each `[N]` long: a diagnostic.

        The same geometry as the force kernel: each candidate's points moved out by their margins
        along the normal, penetration the normal component of their difference."""
        counts = torch.zeros(self.num_worlds, dtype=torch.long)
        if self._contacts is None:
            return counts, counts.clone()
        state = self._states[0]
        self._write(state.joint_q, q)
        self._write(state.joint_qd, qd)
        self._collide(state)
        contacts, n = self._contacts, int(self._contacts.rigid_contact_count.numpy()[0])
        body_q = torch.as_tensor(state.body_q.numpy())
        shape_body = torch.as_tensor(self.model.shape_body.numpy(), dtype=torch.long)
        normal = torch.as_tensor(contacts.rigid_contact_normal.numpy()[:n])

        def surface(shapes, points, margins, sign):
            bodies = shape_body[torch.as_tensor(shapes, dtype=torch.long)]
            world_points = torch.as_tensor(points).clone()
            moving = bodies >= 0
            pose = body_q[bodies[moving]]
            world_points[moving] = _rotate(pose[:, 3:], world_points[moving]) + pose[:, :3]
            return world_points + sign * torch.as_tensor(margins)[:, None] * normal

        p0 = surface(contacts.rigid_contact_shape0.numpy()[:n], contacts.rigid_contact_point0.numpy()[:n], contacts.rigid_contact_margin0.numpy()[:n], 1.0)
        p1 = surface(contacts.rigid_contact_shape1.numpy()[:n], contacts.rigid_contact_point1.numpy()[:n], contacts.rigid_contact_margin1.numpy()[:n], -1.0)
        pushing = ((p1 - p0) * normal).sum(1) < 0
        worlds = torch.as_tensor(self.model.shape_world.numpy(), dtype=torch.long)[torch.as_tensor(contacts.rigid_contact_shape1.numpy()[:n], dtype=torch.long)]
        ones = torch.ones_like(worlds)
        return counts.index_add(0, worlds, ones), counts.index_add(0, worlds[pushing], ones[pushing])

    def step_no_grad(self, q: torch.Tensor, qd: torch.Tensor, joint_f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.timings.phase("sim_forward"):
            return self._step_no_grad(q, qd, joint_f)

    def _step_no_grad(self, q: torch.Tensor, qd: torch.Tensor, joint_f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self._states[0]
        self._write(s0.joint_q, q)
        self._write(s0.joint_qd, qd)
        self._write(self._control.joint_f, joint_f)
        out = self._simulate(self._states, self._control, ping_pong=True)
        return self._read(out.joint_q, self.q_dim), self._read(out.joint_qd, self.qd_dim)

    def step_backward(
        self,
        q: torch.Tensor,
        qd: torch.Tensor,
        joint_f: torch.Tensor,
        grad_q_next: torch.Tensor,
        grad_qd_next: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Replay the step on a tape and return d(loss)/d(q, qd, joint_f)."""
        with self.timings.phase("sim_backward"):
            return self._step_backward(q, qd, joint_f, grad_q_next, grad_qd_next)

    def _step_backward(self, q, qd, joint_f, grad_q_next, grad_qd_next):
        if self._tape_states is None:
            self._tape_states = [self.model.state(requires_grad=True) for _ in range(self.substeps + 1)]
            self._tape_control = self.model.control(clone_variables=True)
            self._tape_control.joint_f.requires_grad = True
            self._tape_solvers = [self._make_solver(self.model) for _ in range(self.substeps // self._mass_matrix_interval)]
        states, control = self._tape_states, self._tape_control
        self._write(states[0].joint_q, q)
        self._write(states[0].joint_qd, qd)
        self._write(control.joint_f, joint_f)
        if self._contacts is not None:
            # Outside the tape: contact points and normals are constants of the step (the force
            # still depends on the poses through the penetration), which keeps the narrow phase's
            # geometric adjoints, singular where a normal is ill-defined, out of the gradient.
            self._collide(states[0])
        tape = wp.Tape()
        with tape:
            out = self._simulate(states, control, ping_pong=False, collide=False)
        self._restore_public_body_wrenches(states[1:])
        self._write(out.joint_q.grad, grad_q_next)
        self._write(out.joint_qd.grad, grad_qd_next)
        tape.backward()
        grads = (
            self._read(states[0].joint_q.grad, self.q_dim),
            self._read(states[0].joint_qd.grad, self.qd_dim),
            self._read(control.joint_f.grad, self.qd_dim),
        )
        tape.zero()
        for arr in (states[0].joint_q.grad, states[0].joint_qd.grad, control.joint_f.grad, out.joint_q.grad, out.joint_qd.grad):
            arr.zero_()
        return grads

    def _restore_public_body_wrenches(self, substep_outputs: list[newton.State]) -> None:
        """Give each substep's `body_f_ext` back the values `eval_rigid_tau` read, before its adjoint re-reads them.

        The solver stores a substep's scratch on its output state. Its `eval_rigid_tau` reads each
        articulated body's external wrench (force f, torque t about the centre of mass, world
        axes) and overwrites it in the same array with the solve-frame wrench -(f, t + c x f), c
        the centre of mass relative to the solve origin. Warp's adjoint of that kernel recomputes
        its forward from the array, so it would take -f for f: the derivative of c x f with respect
        to the body's pose flips sign wherever a contact pushes. Inverting the conversion restores
        the exact input; nothing after `eval_rigid_tau` reads `body_f_ext`'s values (contact
        adjoints only read its gradient). A warp kernel, so it runs in order on warp's stream."""
        for state in substep_outputs:
            wp.launch(
                _undo_solve_frame_wrench,
                dim=len(self._articulated_bodies),
                inputs=[self._articulated_bodies, state.body_q_com, state.body_solve_origin],
                outputs=[state.body_f_ext],
                device=self.model.device,
            )

    def step(self, q: torch.Tensor, qd: torch.Tensor, joint_f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One control step; differentiable when any input requires grad and grad mode is on."""
        if torch.is_grad_enabled() and (q.requires_grad or qd.requires_grad or joint_f.requires_grad):
            return _NewtonStep.apply(self, q, qd, joint_f)
        return self.step_no_grad(q, qd, joint_f)


@wp.kernel(enable_backward=False)
def _undo_solve_frame_wrench(
    bodies: wp.array(dtype=wp.int32),
    body_q_com: wp.array(dtype=wp.transform),
    body_solve_origin: wp.array(dtype=wp.vec3),
    body_f_ext: wp.array(dtype=wp.spatial_vector),
):
    """The inverse of eval_rigid_tau's in-place conversion: solve-frame -(f, t + c x f) back to (f, t)."""
    body = bodies[wp.tid()]
    wrench = body_f_ext[body]
    force = -wp.spatial_top(wrench)
    centre = wp.transform_get_translation(body_q_com[body]) - body_solve_origin[body]
    body_f_ext[body] = wp.spatial_vector(force, -wp.spatial_bottom(wrench) - wp.cross(centre, force))


def _rotate(quat: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors `[M, 3]` by unit quaternions `[M, 4]` (xyzw, warp's layout)."""
    xyz, w = quat[:, :3], quat[:, 3:]
    t = 2 * torch.linalg.cross(xyz, v)
    return v + w * t + torch.linalg.cross(xyz, t)


class _NewtonStep(torch.autograd.Function):
    """torch.autograd view of one Newton control step (see the module docstring for why replay)."""

    @staticmethod
    def forward(ctx, sim: NewtonSim, q: torch.Tensor, qd: torch.Tensor, joint_f: torch.Tensor):
        ctx.sim = sim
        ctx.save_for_backward(q.detach(), qd.detach(), joint_f.detach())
        return sim.step_no_grad(q, qd, joint_f)

    @staticmethod
    def backward(ctx, grad_q_next: torch.Tensor, grad_qd_next: torch.Tensor):
        q, qd, joint_f = ctx.saved_tensors
        if grad_q_next is None:
            grad_q_next = torch.zeros_like(q)
        if grad_qd_next is None:
            grad_qd_next = torch.zeros_like(qd)
        dq, dqd, df = ctx.sim.step_backward(q, qd, joint_f, grad_q_next, grad_qd_next)
        return None, dq, dqd, df
