"""Gradients through Newton against references that do not share its backward pass: central
differences of the forward step with error bars (envs/gradcheck.py) and invariances of the physics.

Every comparison runs from many states drawn over the whole state space (angles all around,
velocities beyond what trained policies reach, carts at and beyond the rail ends, robots in flight
and on the ground), not from reset states only, where velocity-dependent terms vanish.

Tolerances, float32 throughout (Newton has no float64 kernels):
- each output's rounding noise sigma is measured at each state (`gradcheck.rounding_noise`), so a
  central quotient at step h is trusted to sigma / h;
- an input direction counts as smooth when the quotients at h = 1e-2 and 3e-3 agree within their
  rounding bounds plus 2% (truncation) and the one-sided quotients at 3e-3 agree too: a contact or
  a joint limit switching within the step would make them differ;
- on smooth directions an analytic entry must lie within the coarse quotient's rounding bound, the
  two quotients' disagreement, and 1% of its value. The defects this suite was written against gave
  errors of 3% to 100% and more on a third to a half of all entries (docs/newton-gradients.md).
Contact states add kinks that a two-scale test cannot always see (a resting foot's damping switches
on and off within a fraction of a millimetre), so there the bar is 99% of smooth entries; in flight,
and on CartPole, it is every one.
"""

from __future__ import annotations

import math

import pytest
import torch

import envs
from envs.gradcheck import compare, step_function, step_jacobians
from envs.newton_bridge import NewtonSim

LOCOMOTION = ["hopper", "cheetah", "ant", "humanoid"]
HORIZON = 16


def _uniform(generator: torch.Generator, low: float | torch.Tensor, high: float | torch.Tensor, *shape: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(*shape, generator=generator)


def _cartpole_states(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Carts anywhere on the rail and past its ends (limits at +-4 m), angles two turns around,
    velocities up to twice a swing-up's."""
    q = torch.stack([_uniform(generator, -4.6, 4.6, n), _uniform(generator, -2 * math.pi, 2 * math.pi, n)], dim=1)
    qd = torch.stack([_uniform(generator, -10.0, 10.0, n), _uniform(generator, -20.0, 20.0, n)], dim=1)
    return q, qd, _uniform(generator, -1.0, 1.0, n, 1)


def _hinge_limits(env) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper limits of one world's hinges (the DOFs after the root's)."""
    n_root = env.sim.qd_dim - env.task.action_dim
    per_world = lambda a: torch.as_tensor(a.numpy()).reshape(env.num_envs, -1)[0, n_root:]  # noqa: E731
    return per_world(env.model.joint_limit_lower), per_world(env.model.joint_limit_upper)


def _airborne_states(env, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Robots 3 m up in any orientation, joints anywhere inside their limits, fast root and joints."""
    q, qd, action = _random_flight(env, generator)
    near, _ = env.sim.contact_counts(q, qd)
    assert not near.any(), "nothing is near a contact 3 m up (the robots do not collide with themselves)"
    return q, qd, action


def _random_flight(env, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n, nq, nv, na = env.num_envs, env.sim.q_dim, env.sim.qd_dim, env.task.action_dim
    lower, upper = _hinge_limits(env)
    joints = _uniform(generator, lower + 0.05, upper - 0.05, n, na)
    if nq == nv:  # planar root: x, z (from the start height), pitch
        root = torch.stack([_uniform(generator, -1.0, 1.0, n), torch.full((n,), 3.0), _uniform(generator, -math.pi, math.pi, n)], dim=1)
    else:  # free root: position, unit quaternion (xyzw) drawn uniformly over rotations
        quat = torch.randn(n, 4, generator=generator)
        root = torch.cat([_uniform(generator, -1.0, 1.0, n, 2), torch.full((n, 1), 3.0), quat / quat.norm(dim=1, keepdim=True)], dim=1)
    q = torch.cat([root, joints], dim=1)
    root_speed = torch.tensor([2.0] * (nv - na - 3) + [3.0] * 3) if nq != nv else torch.tensor([2.0, 2.0, 3.0])
    qd = torch.cat([_uniform(generator, -1.0, 1.0, n, nv - na) * root_speed, _uniform(generator, -5.0, 5.0, n, na)], dim=1)
    return q, qd, _uniform(generator, -1.0, 1.0, n, na)


def _ground_states(env, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """States of a rollout with random actions, one second after reset: on the ground, in contact."""
    env.reset(seed=0)
    with torch.no_grad():
        for _ in range(60):
            env.step(_uniform(generator, -0.5, 0.5, env.num_envs, env.task.action_dim))
    q, qd = (x.detach().clone() for x in env.sim_state)
    near, _ = env.sim.contact_counts(q, qd)
    assert (near > 0).float().mean() >= 0.75, "the rollout should end with the robots on the ground"
    return q, qd, _uniform(generator, -0.5, 0.5, env.num_envs, env.task.action_dim)


def _assert_agrees(jac, min_checked: float, min_agreement: float = 1.0) -> None:
    checked = jac.checked()
    bad = checked & ~jac.agrees()
    assert checked.float().mean() >= min_checked, f"only {checked.float().mean():.0%} of entries are smooth enough to check"
    if bad.float().sum() > (1 - min_agreement) * checked.sum():
        world, row, col = (int(i) for i in bad.nonzero()[0])
        pytest.fail(
            f"{int(bad.sum())} of {int(checked.sum())} checked entries disagree; e.g. world {world}, d out[{row}] / d in[{col}]: "
            f"analytic {jac.analytic[world, row, col]:.5g}, central differences {jac.fd_coarse[world, row, col]:.5g} (h {jac.steps[0]}) "
            f"and {jac.fd_fine[world, row, col]:.5g} (h {jac.steps[1]})"
        )


# -- CartPole ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("cartpole", num_envs=128, seed=1, render=None)


def test_cartpole_one_step_jacobian_matches_differences_over_the_state_space(cartpole):
    """All of d(q', qd') / d(q, qd, action) at 128 states: every smooth entry agrees."""
    q, qd, action = _cartpole_states(cartpole.num_envs, torch.Generator().manual_seed(0))
    _assert_agrees(step_jacobians(cartpole.task, cartpole.sim, q, qd, action), min_checked=0.9)


def test_cartpole_return_gradient_per_action_matches_differences(cartpole):
    """The SHAC objective: the 16-step return's gradient with respect to each single action, from
    states all over the space (swinging, spinning, near the rail ends), without termination."""
    g = torch.Generator().manual_seed(1)
    n = 32
    q0, qd0, _ = _cartpole_states(n, g)
    q0[:, 0] = q0[:, 0].clamp(-3.0, 3.0)
    actions = _uniform(g, -0.9, 0.9, n, HORIZON)  # inside the clip after a step of 1e-2
    sim = envs.make("cartpole", num_envs=n, seed=1, render=None).sim
    task = cartpole.task

    def horizon_return(a: torch.Tensor) -> torch.Tensor:
        q, qd, total = q0, qd0, torch.zeros(n)
        for t in range(HORIZON):
            q, qd = sim.step(q, qd, task.action_to_joint_f(a[:, t : t + 1]))
            total = total + task.reward(q, qd, a[:, t : t + 1])
        return total.unsqueeze(1)

    leaf = actions.clone().requires_grad_(True)
    horizon_return(leaf).sum().backward()
    with torch.no_grad():
        jac = compare(horizon_return, actions, leaf.grad.unsqueeze(1), (1e-2, 3e-3), g)
    _assert_agrees(jac, min_checked=0.8)


def test_cartpole_next_velocities_do_not_depend_on_the_cart_position(cartpole):
    """Nothing in the dynamics depends on where the cart stands away from the rail ends: the
    analytic d(q', qd')/dx is (1, 0, 0, 0) and moving the cart moves the next state by as much."""
    q, qd, action = _cartpole_states(cartpole.num_envs, torch.Generator().manual_seed(2))
    q[:, 0] = q[:, 0].clamp(-3.0, 3.0)
    sim, force = cartpole.sim, cartpole.task.action_to_joint_f(action)
    seeds = torch.eye(4)
    d_dx = torch.stack([sim.step_backward(q, qd, force, s[:2].expand(len(q), 2).contiguous(), s[2:].expand(len(q), 2).contiguous())[0][:, 0] for s in seeds], 1)
    assert torch.allclose(d_dx, torch.tensor([1.0, 0.0, 0.0, 0.0]).expand_as(d_dx), atol=1e-4), d_dx.abs().amax(0)
    base = torch.cat(sim.step_no_grad(q, qd, force), 1)
    for shift in (0.1, 0.5):
        moved = torch.cat(sim.step_no_grad(q + torch.tensor([shift, 0.0]), qd, force), 1) - torch.tensor([shift, 0, 0, 0])
        assert torch.allclose(moved, base, atol=2e-5), (moved - base).abs().max()


def test_replayed_step_is_the_forward_step(cartpole):
    """The backward pass differentiates a replay of the step; the replay must be the same function."""
    q, qd, action = _cartpole_states(cartpole.num_envs, torch.Generator().manual_seed(3))
    sim, force = cartpole.sim, cartpole.task.action_to_joint_f(action)
    q_next, qd_next = sim.step_no_grad(q, qd, force)
    sim.step_backward(q, qd, force, torch.zeros_like(q), torch.zeros_like(qd))
    replayed = sim._tape_states[sim.substeps]  # noqa: SLF001 -- the replay's final state
    assert torch.equal(sim._read(replayed.joint_q, sim.q_dim), q_next)  # noqa: SLF001
    assert torch.equal(sim._read(replayed.joint_qd, sim.qd_dim), qd_next)  # noqa: SLF001


def test_a_solver_whose_mass_matrix_interval_does_not_divide_the_substeps_is_refused(cartpole):
    import newton

    with pytest.raises(ValueError, match="does not divide"):
        NewtonSim(cartpole.model, lambda m: newton.solvers.SolverFeatherstone(m, update_mass_matrix_interval=3), 128, 1 / 60, 4, torch.device("cpu"))


def test_gradients_finite_over_a_full_episode():
    env = envs.make("cartpole", num_envs=4, seed=1, render=None)
    env.reset()
    actions = (torch.rand(240, 4, 1, generator=torch.Generator().manual_seed(5)) * 2 - 1).requires_grad_()
    total = torch.zeros(())
    dones = 0
    for t in range(240):
        _, reward, done, _ = env.step(actions[t])
        total = total + reward.sum()
        dones += int(done.sum())
    total.backward()
    env.detach()
    assert torch.isfinite(actions.grad).all()
    assert actions.grad.abs().sum() > 0
    assert dones >= 4  # random pushes end episodes early and every env reaches the time limit or the bound


def test_gradient_does_not_cross_an_auto_reset():
    env = envs.make("cartpole", num_envs=4, seed=1, render=None)
    env.reset()
    q = torch.tensor([[2.45, -math.pi]] * 4)
    env.set_sim_state(q, torch.tensor([[5.0, 0.0]] * 4))  # will cross |x| = 2.5 on this step
    a0 = torch.zeros(4, 1, requires_grad=True)
    _, _, done, _ = env.step(a0)
    assert done.all()
    _, reward, _, _ = env.step(torch.zeros(4, 1))
    reward.sum().backward()
    assert a0.grad is None or torch.count_nonzero(a0.grad) == 0
    env.detach()


# -- Locomotion -------------------------------------------------------------------------------------

# Contacts and joint limits switch within a fraction of a millimetre of where the robots are, so
# differences there are taken at 3e-4 and 1e-4; their float32 rounding bound (sigma / h) is still
# far below the errors the suite guards against.
SMALL_STEPS = (3e-4, 1e-4)
_HUMANOID = pytest.mark.slow  # 48 substeps and 76 inputs: a minute per Jacobian on 2 cores
LOCOMOTION_PARAMS = [pytest.param(task, marks=_HUMANOID) if task == "humanoid" else task for task in LOCOMOTION]


@pytest.mark.parametrize("task", LOCOMOTION_PARAMS)
def test_one_step_jacobian_in_flight_matches_differences(task):
    """Contact-free: every smooth entry agrees, from any orientation with fast joints. The
    humanoid's forward jitters by up to 1e-3 under a 1e-5 change of state (48 substeps of light,
    stiff limbs), which leaves a handful of its 30,000 entries inside the noise: 99.9% there."""
    env = envs.make(task, num_envs=8, render=None)
    q, qd, action = _airborne_states(env, torch.Generator().manual_seed(4))
    _assert_agrees(step_jacobians(env.task, env.sim, q, qd, action), min_checked=0.5, min_agreement=0.999 if task == "humanoid" else 1.0)


@pytest.mark.parametrize("task", LOCOMOTION_PARAMS)
def test_one_step_jacobian_on_the_ground_matches_differences(task):
    """In contact (the robots after a second of random actions): 99% of smooth entries agree."""
    env = envs.make(task, num_envs=8, render=None)
    q, qd, action = _ground_states(env, torch.Generator().manual_seed(5))
    jac = step_jacobians(env.task, env.sim, q, qd, action, steps=SMALL_STEPS)
    _assert_agrees(jac, min_checked=0.1 if task == "humanoid" else 0.5, min_agreement=0.99)


@pytest.mark.parametrize("task", LOCOMOTION_PARAMS)
def test_next_state_does_not_depend_on_the_horizontal_position(task):
    """On an infinite flat ground nothing depends on where the robot stands: in flight and in
    contact, the analytic derivatives of the next velocities with respect to the horizontal root
    coordinates vanish (relative to the other position derivatives), and moving the robot by half
    a metre moves only its next horizontal position (to 1e-4 of the largest output: float32
    positions change their rounding when they move). One world in eight may jump instead: on the
    ground, the humanoid's states after a second of random actions put one world at a
    discontinuity, where its next state changes by 15% whether it moves by 0.5 m, 0.25 m or 1 cm
    (a jump, not rounding, which would shrink with the shift); the other seven agree to 4e-6."""
    env = envs.make(task, num_envs=8, render=None)
    g = torch.Generator().manual_seed(6)
    horizontal = [0] if env.sim.q_dim == env.sim.qd_dim else [0, 1]
    for q, qd, action in (_airborne_states(env, g), _ground_states(env, g)):
        sim, force = env.sim, env.task.action_to_joint_f(action)
        d_qd_d_q = torch.zeros(len(q), sim.qd_dim, sim.q_dim)
        for row in range(sim.qd_dim):
            seed = torch.zeros_like(qd)
            seed[:, row] = 1.0
            d_qd_d_q[:, row] = sim.step_backward(q, qd, force, torch.zeros_like(q), seed)[0]
        ratio = float(d_qd_d_q[:, :, horizontal].abs().max() / d_qd_d_q.abs().max())
        assert ratio < 1e-4, f"d qd' / d horizontal position is {ratio:.2g} of the largest d qd' / d q"
        step = step_function(env.task, sim)
        state = torch.cat([q, qd, action], 1)
        shift = torch.zeros_like(state)
        shift[:, horizontal] = 0.5
        base = step(state)
        moved = step(state + shift) - shift[:, : sim.q_dim + sim.qd_dim]
        per_world = ((moved - base).abs() / base.abs().amax(1, keepdim=True)).amax(1)
        assert int((per_world < 1e-4).sum()) >= len(per_world) - 1, per_world


def _return_jacobian(env, q0, qd0, generator: torch.Generator, steps: tuple[float, float]):
    """The 16-step return's derivative along a random action direction per world (SHAC's
    objective, without termination), analytic and by differences."""
    base = _uniform(generator, -0.3, 0.3, HORIZON, env.num_envs, env.task.action_dim)
    direction = torch.randn(base.shape, generator=generator)
    sim, task = env.sim, env.task

    def horizon_return(t: torch.Tensor) -> torch.Tensor:
        actions = base + t.T.unsqueeze(-1) * direction
        q, qd, total = q0, qd0, torch.zeros(env.num_envs)
        for a in actions:
            q, qd = sim.step(q, qd, task.action_to_joint_f(a))
            total = total + task.reward(q, qd, a)
        return total.unsqueeze(1)

    t = torch.zeros(env.num_envs, 1, requires_grad=True)
    horizon_return(t).sum().backward()
    with torch.no_grad():
        return compare(horizon_return, torch.zeros(env.num_envs, 1), t.grad.unsqueeze(1), steps, generator)


def _assert_most_worlds_agree(jac, min_checked: int) -> None:
    """At least 90% of the smooth worlds agree (one world always may): over 16 steps a kink can
    hide from the two-scale test. The one-step Jacobians above are the exact check; this one
    guards the chain over a horizon."""
    checked = jac.checked()[:, 0, 0]
    bad = checked & ~jac.agrees()[:, 0, 0]
    assert int(checked.sum()) >= min_checked, f"only {int(checked.sum())} worlds are smooth enough to check"
    assert int(bad.sum()) <= max(1, 0.1 * int(checked.sum())), [(float(jac.analytic[w, 0, 0]), float(jac.fd_coarse[w, 0, 0]), float(jac.fd_fine[w, 0, 0])) for w in bad.nonzero().flatten()]


# The humanoid is left out of the 16-step checks: its float32 forward jitters by about 1e-3 under a
# 1e-5 change of state (48 substeps of light limbs against stiff limits), more than differences of
# a 16-step return can resolve; its one-step Jacobians are checked above.
@pytest.mark.slow
@pytest.mark.parametrize("task", ["hopper", "cheetah", "ant"])
def test_return_gradient_in_flight_matches_differences(task):
    env = envs.make(task, num_envs=32, render=None)
    g = torch.Generator().manual_seed(7)
    q0, qd0, _ = _airborne_states(env, g)
    _assert_most_worlds_agree(_return_jacobian(env, q0, qd0, g, SMALL_STEPS), min_checked=8)


# Newton's contact damping acts at full strength kd from the first micron of penetration
# (kd * step(d) * min(vn, 0); the paper's dflex scales it by the depth), so every contact onset is
# a jump in force: a return on the ground is a staircase whose steps the analytic slope does not
# see and a difference quotient averages in. With the hopper's few contacts it rarely shows; the
# ant's damping (kd 1e4) is moreover unstable at 16 substeps, where the exact derivative of a
# chattering contact's piece grows without bound. docs/newton-gradients.md has the measurements;
# the two tests after this one remove each cause and pass. The cheetah's returns used to differ
# from their averaged slope in a quarter of the smooth worlds; since it stands on the official
# joint springs and damping (issue 29) its feet no longer chatter and its returns agree.
_CONTACT_DAMPING = pytest.mark.xfail(strict=True, reason="Newton's contact damping law: a jump at each contact onset (see above)")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["hopper", "cheetah", pytest.param("ant", marks=_CONTACT_DAMPING)])
def test_return_gradient_on_the_ground_matches_differences(task):
    env = envs.make(task, num_envs=32, render=None)
    g = torch.Generator().manual_seed(8)
    q0, qd0, _ = _ground_states(env, g)
    _assert_most_worlds_agree(_return_jacobian(env, q0, qd0, g, SMALL_STEPS), min_checked=4)


@pytest.mark.slow
def test_cheetah_return_gradient_on_the_ground_matches_differences_without_contact_damping(monkeypatch):
    """The cheetah's staircase is the damping's jump: without contact damping its returns agree."""
    from envs.tasks.cheetah import Cheetah

    monkeypatch.setattr(Cheetah, "contact", dict(Cheetah.contact, kd=0.0))
    env = envs.make("cheetah", num_envs=32, render=None)
    g = torch.Generator().manual_seed(8)
    q0, qd0, _ = _ground_states(env, g)
    _assert_most_worlds_agree(_return_jacobian(env, q0, qd0, g, SMALL_STEPS), min_checked=4)


@pytest.mark.slow
def test_ant_return_gradient_on_the_ground_matches_differences_once_its_contact_damping_is_stable(monkeypatch):
    """The ant's explosion is the model, not the gradient: with its contact damping integrated
    stably (32 substeps instead of 16), its returns on the ground agree like the hopper's."""
    from envs.tasks.ant import Ant

    monkeypatch.setattr(Ant, "substeps", 32)
    env = envs.make("ant", num_envs=32, render=None)
    g = torch.Generator().manual_seed(8)
    q0, qd0, _ = _ground_states(env, g)
    _assert_most_worlds_agree(_return_jacobian(env, q0, qd0, g, SMALL_STEPS), min_checked=8)
