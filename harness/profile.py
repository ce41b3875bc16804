"""`python -m harness profile`: D.Va vs visual SHAC, per-iteration time by phase and peak memory.

The paper's central claim is that cutting the gradient through rendering makes an iteration
cheaper in time and memory than back-propagating through a differentiable renderer. Each case
(method x renderer x preset) runs in a fresh subprocess (`python -m harness.profile CASE_JSON`),
so peak memory is that case's alone and one case crashing does not take the others down: it is
reported as failed. Per case: a warm-up iteration (kernel compilation, allocator growth), then
`iterations` timed ones (the median of each phase is reported), then one untimed iteration that
counts the memory autograd keeps.

Memory, three ways: (1) `graph_mb`: the bytes of the distinct storages autograd saves for the
actor's backward pass in one iteration (rollout and actor update; the critic's small minibatch
graphs are not counted), via `saved_tensors_hooks` on an extra, untimed iteration. It is the
graph each method holds at the end of its rollout, encoder activations included, the same on any
device; what cutting the gradient through rendering saves is SHAC's minus D.Va's. (2) Process
RSS: `baseline` after env and networks are built, `peak` sampled every 5 ms by a thread during the
warm-up and timed iterations, `increase` = peak - baseline (includes one-off allocations of the
first iteration, e.g. warp's backward kernels). (3) On CUDA: the torch allocator's peak over the
timed iterations (allocated and reserved) and NVML's used memory after them (NVML device index =
torch index; with CUDA_VISIBLE_DEVICES remapping they may differ).
Phases are synchronised on CUDA (PhaseTimes.synchronize).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.report_aggregate import PHASES
from harness.resources import RssPeak, rss_mb


@dataclass(frozen=True)
class ProfileCase:
    method: str
    render: str | None  # None: the method reads no pixels (shac-state)
    preset: str
    task: str
    device: str
    overrides: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.method} ({self.render or 'state'})"

    @property
    def config_overrides(self) -> dict:
        return dict(self.overrides) | ({"render": self.render} if self.render else {})


def profile_cases(methods: list[str], presets: list[str], renderers: list[str], task: str, device: str, overrides: dict) -> list[ProfileCase]:
    """Every (preset, method, renderer) to measure: SHAC needs the differentiable renderer, D.Va runs on each
    of `renderers` (the like-for-like comparison is D.Va and SHAC on the same differentiable renderer)."""
    from methods.registry import get_method_class

    cases = []
    for preset in presets:
        for method in methods:
            cls = get_method_class(method)
            if not cls.reads_pixels:
                renders: list[str | None] = [None]
            elif cls.differentiable_render:
                renders = ["differentiable"]
            else:
                renders = list(renderers)
            cases += [ProfileCase(method, render, preset, task, device, dict(overrides)) for render in renders]
    return cases


class SavedTensorBytes:
    """Bytes of distinct storages autograd saves for backward (a `saved_tensors_hooks` pair).

    It keeps a reference to every storage it counted, so no address is reused and counted twice
    or missed while it is alive: use it for one probe iteration only. `enabled = False` pauses it.
    """

    def __init__(self):
        self.bytes = 0
        self.enabled = True
        self._kept: dict[tuple[str, int], object] = {}

    def pack(self, tensor):
        if self.enabled:
            storage = tensor.untyped_storage()
            key = (str(tensor.device), storage.data_ptr())
            if key not in self._kept:
                self._kept[key] = storage
                self.bytes += storage.nbytes()
        return tensor

    @staticmethod
    def unpack(tensor):
        return tensor


CRITIC_PHASE = "critic_update"  # the phase (envs/timing.py) whose saved tensors are not the actor's graph


def _count_actor_graph(method, env) -> int:
    """Bytes saved for backward in one iteration, the critic's updates (its phase) excepted."""
    import torch

    saved = SavedTensorBytes()
    clock = env.timings

    def pack(tensor):
        saved.enabled = clock.current != CRITIC_PHASE
        return saved.pack(tensor)

    with torch.autograd.graph.saved_tensors_hooks(pack, saved.unpack):
        method.iterate(env)
    clock.pop()
    return saved.bytes


def run_case(case: ProfileCase, iterations: int, warmup: int) -> dict:
    """Measure one case in this process (called in a fresh subprocess by `profile`)."""
    import torch

    from harness.resolved import build
    from methods.presets import load_config
    from methods.registry import get_method_class

    cls = get_method_class(case.method)
    config = load_config(cls, case.task, case.preset, case.config_overrides)
    device = torch.device(case.device)
    built = build(cls, case.task, config, device, seed=0)
    env, method = built.env, built.method
    env.timings.synchronize = device.type == "cuda"
    baseline = rss_mb()
    totals, phases = [], {p: [] for p in PHASES}
    with RssPeak() as rss:
        for _ in range(warmup):
            method.iterate(env)
        env.timings.pop()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(iterations):
            start = time.perf_counter()
            method.iterate(env)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            totals.append(time.perf_counter() - start)
            measured = env.timings.pop()
            for p in PHASES:
                phases[p].append(measured.get(p, 0.0))
    gpu = {}
    if device.type == "cuda":
        gpu = {
            "gpu_peak_allocated_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1),
            "gpu_peak_reserved_mb": round(torch.cuda.max_memory_reserved(device) / 2**20, 1),
            "gpu_nvml_used_mb": _nvml_used_mb(device),
        }
    graph_bytes = _count_actor_graph(method, env)  # untimed: the hooks cost Python time per saved tensor
    result = {
        **asdict(case),
        "label": case.label,
        "settings": {
            "num_envs": config.num_envs, "horizon": config.horizon, "image_shape": list(env.spec.image_shape or []),
            "frame_stack": config.frame_stack, "image_size": config.image_size, "supersample": config.supersample,
        },
        "iterations": iterations,
        "warmup": warmup,
        "env_steps_per_iteration": config.num_envs * config.horizon,
        "s_per_iteration": statistics.median(totals),
        "s_per_iteration_all": [round(t, 4) for t in totals],
        "phase_s": {p: statistics.median(v) for p, v in phases.items()},
        "graph_mb": round(graph_bytes / 2**20, 1),
        "graph_bytes": graph_bytes,
        "cpu_rss_baseline_mb": round(baseline, 1),
        "cpu_rss_peak_mb": round(rss.peak_mb, 1),
        "cpu_rss_increase_mb": round(max(rss.peak_mb - baseline, 0.0), 1),
        "torch_threads": torch.get_num_threads(),
        **gpu,
    }
    return result


def _nvml_used_mb(device) -> float | None:
    try:
        import pynvml
    except ImportError:
        return None
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
    return round(pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20, 1)


def _run_in_subprocess(case: ProfileCase, iterations: int, warmup: int, timeout_s: float) -> dict:
    payload = json.dumps({"case": asdict(case), "iterations": iterations, "warmup": warmup})
    try:
        proc = subprocess.run([sys.executable, "-m", "harness.profile", payload], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {**asdict(case), "label": case.label, "error": f"timed out after {timeout_s:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {**asdict(case), "label": case.label, "error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(lines[-1])


def profile(cases: list[ProfileCase], iterations: int, warmup: int, out: str | Path, command: str, timeout_s: float = 1800.0, progress=print) -> dict:
    """Run every case in its own subprocess, write profile.json, profile.md and profile.png to `out`
    and return what profile.json holds."""
    from harness.io import write_json_atomic
    from harness.system_info import system_info

    out = Path(out)
    results = []
    for case in cases:
        progress(f"profiling {case.label} [{case.preset}] ...")
        results.append(_run_in_subprocess(case, iterations, warmup, timeout_s))
        r = results[-1]
        if "error" in r:
            progress(f"  failed: {r['error']}")
        else:
            progress(f"  {r['s_per_iteration']:.3f} s/iteration, RSS +{r['cpu_rss_increase_mb']:.0f} MB")
    out.mkdir(parents=True, exist_ok=True)
    data = {"command": command, "machine": system_info(), "date": time.strftime("%Y-%m-%d"), "cases": results,
            "ratios": ratios(results)}
    write_json_atomic(out / "profile.json", data)
    (out / "profile.md").write_text(format_markdown(data))
    _plot(results, out / "profile.png")
    return data


def ratios(results: list[dict]) -> list[dict]:
    """SHAC / D.Va per preset: time per iteration and memory increase (> 1: D.Va is cheaper)."""
    rows = []
    ok = [r for r in results if "error" not in r]
    for preset in dict.fromkeys(r["preset"] for r in ok):
        shac = next((r for r in ok if r["preset"] == preset and r["method"] == "shac"), None)
        if shac is None:
            continue
        for dva in (r for r in ok if r["preset"] == preset and r["method"] == "dva"):
            row = {"preset": preset, "versus": dva["label"], "time_ratio": _ratio(shac["s_per_iteration"], dva["s_per_iteration"], floor=1e-3),
                   "graph_memory_ratio": _ratio(shac["graph_mb"], dva["graph_mb"], floor=1.0),
                   "cpu_memory_ratio": _ratio(shac["cpu_rss_increase_mb"], dva["cpu_rss_increase_mb"], floor=1.0)}
            if "gpu_peak_allocated_mb" in shac and "gpu_peak_allocated_mb" in dva:
                row["gpu_memory_ratio"] = _ratio(shac["gpu_peak_allocated_mb"], dva["gpu_peak_allocated_mb"], floor=1.0)
            rows.append(row)
    return rows


def _ratio(numerator: float, denominator: float, floor: float) -> float | None:
    """None where the denominator is below what can be measured (`floor`): no absurd ratios."""
    return numerator / denominator if denominator >= floor else None


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_markdown(data: dict) -> str:
    machine = data["machine"]
    lines = [
        "# D.Va vs visual SHAC: cost of an iteration", "",
        f"Command: `{data['command']}`  ",
        f"Machine: {machine.get('cpu', '?')}, {machine.get('cpu_count', '?')} cores, torch {machine.get('versions', {}).get('torch', '?')}, "
        f"device {data['cases'][0]['device'] if data['cases'] else '?'}; {data['date']}.  ",
        "Median over the timed iterations after the warm-up; each case in a fresh process. Graph MB: storages autograd "
        "saves for the actor's backward pass in one iteration (critic excluded); RSS increase: peak RSS - RSS after "
        "building env and networks.", "",
        "| preset | case | envs x horizon | image | s / iteration | " + " | ".join(PHASES) + " | graph MB | RSS peak MB | RSS increase MB |"
        + (" GPU peak MB |" if any("gpu_peak_allocated_mb" in r for r in data["cases"]) else ""),
        "|---" * (len(PHASES) + 8 + any("gpu_peak_allocated_mb" in r for r in data["cases"])) + "|",
    ]
    for r in data["cases"]:
        if "error" in r:
            lines.append(f"| {r['preset']} | {r['label']} | failed: {r['error']} |")
            continue
        s = r["settings"]
        image = "x".join(str(v) for v in s["image_shape"]) or "-"
        row = (f"| {r['preset']} | {r['label']} | {s['num_envs']} x {s['horizon']} | {image} | {r['s_per_iteration']:.3f} | "
               + " | ".join(f"{r['phase_s'][p]:.3f}" for p in PHASES)
               + f" | {r['graph_mb']:.0f} | {r['cpu_rss_peak_mb']:.0f} | {r['cpu_rss_increase_mb']:.0f} |")
        if "gpu_peak_allocated_mb" in r:
            row += f" {r['gpu_peak_allocated_mb']:.0f} |"
        lines.append(row)
    if data["ratios"]:
        lines += ["", "SHAC / D.Va (above 1: D.Va is cheaper; the paper claims >= 2.5x time, >= 4x memory):", "",
                  "| preset | D.Va case | time ratio | graph-memory ratio | RSS-increase ratio | GPU memory ratio |", "|---|---|---|---|---|---|"]
        for row in data["ratios"]:
            lines.append(f"| {row['preset']} | {row['versus']} | {_fmt_ratio(row['time_ratio'])} | {_fmt_ratio(row['graph_memory_ratio'])} | "
                         f"{_fmt_ratio(row['cpu_memory_ratio'])} | {_fmt_ratio(row.get('gpu_memory_ratio'))} |")
    return "\n".join(lines) + "\n"


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    ok = [r for r in results if "error" not in r]
    if not ok:
        return
    sns.set_theme(style="whitegrid")
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(13, 0.6 * len(ok) + 2.0))
    labels = [f"{r['label']}\n[{r['preset']}]" for r in ok]
    pd.DataFrame([r["phase_s"] for r in ok], index=labels)[list(PHASES)].plot.barh(stacked=True, ax=ax_time, colormap="tab10")
    ax_time.set_xlabel("seconds per iteration (median)")
    ax_time.invert_yaxis()
    ax_time.legend(fontsize=7, loc="lower right")
    memory = pd.DataFrame({"case": labels * 2, "MB": [r["graph_mb"] for r in ok] + [r["cpu_rss_increase_mb"] for r in ok],
                           "measure": ["saved for backward"] * len(ok) + ["RSS increase"] * len(ok)})
    sns.barplot(memory, y="case", x="MB", hue="measure", ax=ax_mem)
    ax_mem.set_ylabel("")
    ax_mem.set_yticklabels([])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> int:
    payload = json.loads(argv[0])
    result = run_case(ProfileCase(**payload["case"]), payload["iterations"], payload["warmup"])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
