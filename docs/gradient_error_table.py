"""How often the simulator's one-step Jacobian disagrees with central differences, per task and regime.

    python docs/gradient_error_table.py              # with the bridge's workarounds (what training uses)
    python docs/gradient_error_table.py --defects    # with Newton 1.8's two adjoint defects left in

The states, step sizes and criteria are those of tests/test_gradients.py (envs/gradcheck.py):
CartPole at 128 states over the whole state space, each robot at 8 states in flight and 8 on
the ground. "checked" is the share of entries smooth at both step sizes, "disagree" the share of
checked entries outside the error bars, "worst" the largest |analytic - difference| among them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import envs  # noqa: E402
import test_gradients as cases  # noqa: E402
from envs.gradcheck import step_jacobians  # noqa: E402
from envs.newton_bridge import NewtonSim  # noqa: E402


def leave_defects_in() -> None:
    """The bridge as it was: one solver for every substep, body_f_ext left converted."""
    NewtonSim._restore_public_body_wrenches = lambda self, states: None
    original = NewtonSim._step_backward

    def one_solver(self, *args):
        if self._tape_solvers is None:
            self._tape_states = [self.model.state(requires_grad=True) for _ in range(self.substeps + 1)]
            self._tape_control = self.model.control(clone_variables=True)
            self._tape_control.joint_f.requires_grad = True
            self._tape_solvers = [self._solver] * (self.substeps // self._mass_matrix_interval)
        return original(self, *args)

    NewtonSim._step_backward = one_solver


def row(name: str, jac) -> str:
    checked = jac.checked()
    bad = checked & ~jac.agrees()
    worst = float(((jac.analytic - jac.fd_coarse).abs() * bad).max())
    return f"| {name} | {checked.float().mean():.0%} | {bad.sum() / checked.sum():.1%} | {worst:.3g} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defects", action="store_true", help="disable the bridge's workarounds")
    parser.add_argument("--tasks", default="cartpole,hopper,cheetah,ant", help="comma-separated (humanoid: minutes)")
    args = parser.parse_args()
    if args.defects:
        leave_defects_in()
    print("| task, states | checked | disagree | worst |\n|---|---|---|---|")
    for task in args.tasks.split(","):
        if task == "cartpole":
            env = envs.make("cartpole", num_envs=128, seed=1, render=None)
            q, qd, action = cases._cartpole_states(128, torch.Generator().manual_seed(0))
            print(row("cartpole, anywhere", step_jacobians(env.task, env.sim, q, qd, action)), flush=True)
            continue
        env = envs.make(task, num_envs=8, render=None)
        q, qd, action = cases._airborne_states(env, torch.Generator().manual_seed(4))
        print(row(f"{task}, in flight", step_jacobians(env.task, env.sim, q, qd, action)), flush=True)
        q, qd, action = cases._ground_states(env, torch.Generator().manual_seed(5))
        print(row(f"{task}, on the ground", step_jacobians(env.task, env.sim, q, qd, action, steps=cases.SMALL_STEPS)), flush=True)


if __name__ == "__main__":
    main()
