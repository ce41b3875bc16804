"""`harness bench-updates`: gradient-update throughput of a replay-based method (DrQ-v2, TD-MPC2, DreamerV3), and where it goes.

For each (image size, precision) case: build the method at its preset on the task, fill the
replay with `num_seed_frames` control steps (the warm-up's uniform actions), run `--warmup`
updates, then time `--updates` updates at the config's batch size; report updates/s and the
mean milliseconds per part (replay sampling and augmentation, critic + encoder step, actor step
and target update), then one torch.profiler pass over a few updates for the top operators.
Env stepping is excluded: it is a few percent of a DrQ-v2 iteration (see a run's phases).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from harness.resolved import build
from harness.io import write_json_atomic, write_text_atomic
from harness.system_info import system_info
from methods import get_method_class, resolve_method_name
from methods.base import ReplayUpdates
from methods.presets import load_config


def timed_calls(fn, calls: int, cuda: bool) -> float:
    """Seconds for `calls` calls of `fn`, with the device synchronised before and after."""
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def top_operators(fn, calls: int, cuda: bool, per_call_key: str, count: int = 10) -> list[dict]:
    """The `count` operators with the most self time (on the device that does the work) over
    `calls` calls of `fn` under torch.profiler; [] when `calls` is 0."""
    if not calls:
        return []
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        for _ in range(calls):
            fn()
        if cuda:
            torch.cuda.synchronize()

    def self_time(event) -> float:  # microseconds
        return event.self_device_time_total if cuda else event.self_cpu_time_total

    events = prof.key_averages()
    total = sum(self_time(e) for e in events) or 1.0
    return [{"op": e.key, per_call_key: self_time(e) / 1e3 / calls, "share": self_time(e) / total}
            for e in sorted(events, key=self_time, reverse=True)[:count]]  # fmt: skip


def bench_case(method: str, task: str, preset: str, overrides: dict, updates: int, warmup: int, device: str, profile_updates: int) -> dict:
    name = resolve_method_name(method)
    cls = get_method_class(name)
    # A method's warm-up can be long (TD-MPC2's seed steps, DreamerV3's prefill and pretraining):
    # its `bench_overrides` keep it short here; explicit overrides win.
    overrides = cls.bench_overrides | overrides
    config = load_config(cls, task, preset, overrides)
    if not issubclass(cls, ReplayUpdates):
        raise ValueError(f"{name} has no replay update to benchmark")
    built = build(cls, task, config, device, seed=0)
    env, agent = built.env, built.method
    while agent.updates == 0:  # the warm-up collection, up to the first update
        agent.iterate(env)
    for _ in range(warmup):
        agent.update()
    cuda = torch.device(device).type == "cuda"
    parts: dict[str, float] = {}  # on CUDA the parts are host-side times (kernels run asynchronously)
    elapsed = timed_calls(lambda: agent.update(parts), updates, cuda)
    top_ops = top_operators(agent.update, profile_updates, cuda, "ms_per_update")
    return {
        "method": name, "task": task, "preset": preset, "overrides": overrides,
        "image_shape": list(env.spec.image_shape), "batch_size": config.batch_size, "batch_length": getattr(config, "batch_length", None), "model_size": getattr(config, "model_size", None),
        "precision": getattr(config, "precision", "fp32"), "device": str(device), "updates": updates,
        "updates_per_s": updates / elapsed,
        "ms_per_update": {k: 1e3 * v / updates for k, v in parts.items()},
        "top_ops": top_ops,
    }  # fmt: skip


def write_bench(cases: list[dict], out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    machine = system_info()
    write_json_atomic(out / "bench_updates.json", {"command": command, "machine": machine, "cases": cases})
    parts = list(dict.fromkeys(p for c in cases for p in c["ms_per_update"]))
    device_kind = "CPU" if torch.device(cases[0]["device"]).type == "cpu" else "device"
    lines = [f"# Update throughput ({cases[0]['method']}, {cases[0]['task']})", "", f"Made by: `{command}`", "",
             f"Machine: {machine.get('cpu', '?')} ({machine.get('cpu_count', '?')} cores), torch {machine.get('versions', {}).get('torch', '?')}, "
             f"{torch.get_num_threads()} torch threads.", "",
             "| image | model | batch | precision | updates / s | " + " | ".join(f"{p} ms" for p in parts) + " |",
             "|---" * (5 + len(parts)) + "|"]  # fmt: skip
    for c in cases:
        image = "x".join(str(d) for d in c["image_shape"])
        lines.append(f"| {image} | {c.get('model_size') or '—'} | {c['batch_size']}{'x' + str(c['batch_length']) if c.get('batch_length') else ''} | {c['precision']} | {c['updates_per_s']:.2f} | "
                     + " | ".join(f"{c['ms_per_update'].get(p, 0.0):.1f}" for p in parts) + " |")  # fmt: skip
    for c in cases:
        if c["top_ops"]:
            image = "x".join(str(d) for d in c["image_shape"])
            model = f" model {c['model_size']}" if c.get("model_size") is not None else ""
            lines += ["", f"Top operators, {image}{model} {c['precision']} (self {device_kind} time per update):", "", "| op | ms | share |", "|---|---|---|"]
            lines += [f"| `{o['op']}` | {o['ms_per_update']:.1f} | {100 * o['share']:.0f}% |" for o in c["top_ops"]]
    write_text_atomic(out / "bench_updates.md", "\n".join(lines) + "\n")
