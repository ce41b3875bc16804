"""Per-update trace of the DreamerV3 actor's saturation from the start of training (README,
"DreamerV3": "Why the actor saturates, and the fix"). Builds the `cpu`-preset CartPole agent,
collects its prefill, then prints every 10th update (and the first 10): mean |tanh mu| and mean
tanh mu over the imagined states, the actor's std, the mean imagined lambda-return and value, the
return scale S and the actor's gradient norm before clipping.

Usage, from the repository root:
    python results/dreamerv3-saturation-cpu/trace.py SEED UPDATES [key=value ...]
e.g. `... trace.py 1 200 actor_mean_reg=0` (the `cpu` preset without the pre-tanh penalty)."""

import sys

import torch

sys.path.insert(0, ".")
from harness.resolved import build  # noqa: E402
from harness.specs import parse_overrides  # noqa: E402
from methods.dreamerv3 import DreamerV3  # noqa: E402
from methods.presets import load_config  # noqa: E402

COLUMNS = ("actor_mean_abs", "actor_mean", "actor_std", "imag_return", "imag_value", "return_scale", "actor_grad_norm")


def main(seed: int, updates: int, overrides: dict) -> None:
    torch.set_num_threads(2)
    cfg = load_config(DreamerV3, "cartpole", "cpu", overrides)
    built = build(DreamerV3, "cartpole", cfg, "cpu", seed)
    env, agent = built.env, built.method
    update = agent.update

    def traced_update(phases=None):
        metrics = update(phases) | {"return_scale": float(agent.return_scale.scale)}
        if agent.updates <= 10 or agent.updates % 10 == 0:
            print(f"{agent.updates:5d} " + " ".join(f"{metrics[c]:+9.3f}" for c in COLUMNS), flush=True)
        return metrics

    agent.update = traced_update
    print(f"seed {seed}, overrides {overrides or 'none'}; actor_grad={cfg.actor_grad}, actor_mean_reg={cfg.actor_mean_reg}")
    print("  upd " + " ".join(f"{c[:9]:>9s}" for c in COLUMNS))
    while agent.updates < updates:
        agent.iterate(env)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), parse_overrides(sys.argv[3:]))
