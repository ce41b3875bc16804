"""`harness bench-plan`: how many actions per second a planning method (TD-MPC2's MPPI) produces
for a batch of envs, and where the time goes.

For each model size: build the method at its preset with `--num-envs` envs, take one batch of
observations from the env, plan `--warmup` times, then time `--steps` batched planning calls in
training mode (eval mode differs only by the final noise). Actions/s = envs x calls / seconds.
The weights are the fresh initialisation: MPPI's cost does not depend on their values. One
torch.profiler pass gives the top operators. Env stepping and updates are excluded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from harness.resolved import build
from harness.bench_updates import timed_calls, top_operators
from harness.io import write_json_atomic, write_text_atomic
from harness.system_info import system_info
from methods import get_method_class, resolve_method_name
from methods.base import Planner
from methods.presets import load_config


def bench_plan_case(method: str, task: str, preset: str, overrides: dict, steps: int, warmup: int, device: str, profile_steps: int) -> dict:
    name = resolve_method_name(method)
    cls = get_method_class(name)
    if not issubclass(cls, Planner):
        raise ValueError(f"{name} does not plan (bench-plan is for TD-MPC2-like methods)")
    config = load_config(cls, task, preset, overrides)
    built = build(cls, task, config, device, seed=0)
    env, agent = built.env, built.method
    pixels = env.reset()["pixels"]
    restart = torch.zeros(env.num_envs, dtype=torch.bool)
    generator = torch.Generator(device=torch.device(device)).manual_seed(0)

    def plan() -> torch.Tensor:
        return agent.plan(pixels, restart, eval_mode=False, generator=generator, key="train")

    cuda = torch.device(device).type == "cuda"
    for _ in range(warmup):
        plan()
    elapsed = timed_calls(plan, steps, cuda)
    top_ops = top_operators(plan, profile_steps, cuda, "ms_per_call")
    return {
        "method": name, "task": task, "preset": preset, "overrides": overrides, "device": str(device),
        "num_envs": env.num_envs, "model_size": getattr(config, "model_size", None), "precision": getattr(config, "precision", "fp32"),
        "image_shape": list(env.spec.image_shape),
        "mppi": {k: getattr(config, k) for k in ("horizon", "iterations", "num_samples", "num_elites", "num_pi_trajs")},
        "calls": steps, "ms_per_call": 1e3 * elapsed / steps, "actions_per_s": env.num_envs * steps / elapsed,
        "top_ops": top_ops,
    }  # fmt: skip


def write_bench_plan(cases: list[dict], out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    machine = system_info()
    write_json_atomic(out / "bench_plan.json", {"command": command, "machine": machine, "cases": cases})
    lines = [f"# Planning throughput ({cases[0]['method']}, {cases[0]['task']})", "", f"Made by: `{command}`", "",
             f"Machine: {machine.get('cpu', '?')} ({machine.get('cpu_count', '?')} cores), torch {machine.get('versions', {}).get('torch', '?')}, "
             f"{torch.get_num_threads()} torch threads, device {cases[0]['device']}.", "",
             "| model | envs | image | precision | horizon x iterations x samples | ms per batched call | actions / s |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in cases:
        m = c["mppi"]
        lines.append(f"| {c['model_size']}M | {c['num_envs']} | {'x'.join(map(str, c['image_shape']))} | {c['precision']} | "
                     f"{m['horizon']} x {m['iterations']} x {m['num_samples']} | {c['ms_per_call']:.0f} | {c['actions_per_s']:.1f} |")  # fmt: skip
    for c in cases:
        if c["top_ops"]:
            lines += ["", f"Top operators, {c['model_size']}M, {c['num_envs']} envs, {c['precision']} (self time per batched call):", "", "| op | ms | share |", "|---|---|---|"]
            lines += [f"| `{o['op']}` | {o['ms_per_call']:.1f} | {100 * o['share']:.0f}% |" for o in c["top_ops"]]
    write_text_atomic(out / "bench_plan.md", "\n".join(lines) + "\n")
