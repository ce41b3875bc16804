"""Returns of four fixed policies on `cartpole` and `cartpole-paper`: what a score means on each task.

    python results/reference-policies/measure.py            # writes results.json here, prints a table

One episode per env (64 envs, env seed 0, policy noise seed 0; the harness's evaluation loop,
`harness.runner.evaluate`, which counts each env's first episode); mean, standard deviation, min and
max of those 64 returns. The policies:
- zero: action 0 (on `cartpole-paper` the joint springs swing the pole up on their own);
- uniform: actions uniform in [-1, 1] (the normalisation table's `random`);
- untrained actor: tanh(N(0, e^-1)), how a freshly initialised D.Va/SHAC actor acts (log-std -1, mean ~0);
- swing-up controller: `envs.tasks.cartpole.swing_up_controller`, hand-tuned on `cartpole`
  (the normalisation table's `reference` for `cartpole`).
"""

from __future__ import annotations

import json
import math
import platform
import sys
from pathlib import Path

import torch

import envs
from envs.tasks.cartpole import swing_up_controller
from harness.runner import evaluate

HERE = Path(__file__).resolve().parent
NUM_ENVS = 64


def _policies(generator: torch.Generator):
    return {
        "zero": lambda s: torch.zeros(s.shape[0], 1),
        "uniform": lambda s: torch.rand(s.shape[0], 1, generator=generator) * 2 - 1,
        "untrained actor": lambda s: torch.tanh(torch.randn(s.shape[0], 1, generator=generator) * math.exp(-1.0)),
        "swing-up controller": swing_up_controller,
    }


class FixedPolicy:
    """A state -> action function in the shape `evaluate` acts through."""

    def __init__(self, act):
        self._act = act

    def on_eval_start(self) -> None:
        pass

    def act(self, obs: dict, deterministic: bool) -> torch.Tensor:
        return self._act(obs["state"])


def first_episode_returns(task: str, policy) -> torch.Tensor:
    env = envs.make(task, num_envs=NUM_ENVS, seed=0, render=None)
    return torch.tensor(evaluate(FixedPolicy(policy), env, episodes_seed=0))


def main() -> int:
    torch.set_num_threads(1)
    results = {}
    for task in ("cartpole", "cartpole-paper"):
        generator = torch.Generator().manual_seed(0)
        for name, policy in _policies(generator).items():
            r = first_episode_returns(task, policy)
            results.setdefault(task, {})[name] = {"mean": round(float(r.mean()), 1), "std": round(float(r.std()), 1),
                                                  "min": round(float(r.min()), 1), "max": round(float(r.max()), 1)}
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    out = {"episodes_per_policy": NUM_ENVS, "env_seed": 0, "cpu": cpu, "python": sys.version.split()[0], "torch": torch.__version__, "returns": results}
    (HERE / "results.json").write_text(json.dumps(out, indent=2) + "\n")
    print("| policy | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))
    for name in results["cartpole"]:
        print(f"| {name} | " + " | ".join(f"{results[t][name]['mean']:,.1f} ± {results[t][name]['std']:,.1f}" for t in results) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
