"""Which runs a report may compare: the same pixels, the same kind of device, the same CPU model and
the same packages, within each task.

A comparison is only as fair as its inputs. Runs that read different images (size, supersampling,
cropping, renderer), ran on different device types or CPU models, or on different package versions
differ in more than their method, so `harness report` refuses to put them in one table unless told
to (`--allow-mixed`), and then its header says what differs.
"""

from __future__ import annotations

from collections import defaultdict

from harness.report_runs import RunRecord

# What envs.make does for a key a run's env_kwargs lacks (not imported: the report modules import no torch).
_ENV_DEFAULTS = {"image_size": 84, "supersample": 1, "crop_static_rows": False, "render": "raytrace"}


def observation(run: RunRecord) -> str | None:
    """The pixels a run's policy read ('48 px x2, full frame, raytrace'), None for state-only runs."""
    kwargs = {**_ENV_DEFAULTS, **(run.run.get("env_kwargs") or {})}
    if kwargs.get("render") is None:
        return None
    return (f"{kwargs['image_size']} px x{kwargs['supersample']}, "
            f"{'static rows cropped' if kwargs['crop_static_rows'] else 'full frame'}, {kwargs['render']}")


def _device_type(run: RunRecord) -> str:
    """'cpu', 'cuda', ...: the torch device type the run trained on."""
    return str(run.spec.get("device", "cpu")).split(":")[0]


def comparison_fields(run: RunRecord) -> dict[str, str]:
    """The fields that must agree between the runs of one task for a like-for-like comparison."""
    machine = run.run.get("machine") or {}
    versions = machine.get("versions") or {}
    fields = {
        "device type": _device_type(run),
        "CPU model": str(machine.get("cpu", "unknown")),
        "packages": ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) or "unknown",
    }
    pixels = observation(run)
    if pixels is not None:  # state-only runs (the oracle) read no pixels to compare
        fields["observation"] = pixels
    if _device_type(run) != "cpu" and machine.get("gpu"):
        fields["GPU"] = str(machine["gpu"])
    return fields


def _who(runs: list[RunRecord]) -> str:
    """'dva (cpu) seeds 0,1; drqv2 (cpu) seed 2': the runs that share one value."""
    seeds: dict[tuple[str, str], list[int]] = defaultdict(list)
    for run in runs:
        seeds[(run.run["method"], run.config_name)].append(run.spec["seed"])
    return "; ".join(f"{m} ({c}) seed{'s' if len(s) > 1 else ''} {','.join(map(str, sorted(s)))}" for (m, c), s in sorted(seeds.items()))


def differences(runs: list[RunRecord]) -> list[str]:
    """One line per (task, field) whose value differs between the runs of that task, naming the runs
    behind each value; empty when every task's runs agree."""
    by_task: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_task[run.spec["task"]].append(run)
    lines = []
    for task, task_runs in sorted(by_task.items()):
        values: dict[str, dict[str, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
        for run in task_runs:
            for field, value in comparison_fields(run).items():
                values[field][value].append(run)
        for field, groups in values.items():
            if len(groups) > 1:
                lines.append(f"{task}: {field} differs: " + " vs ".join(f"{value} ({_who(group)})" for value, group in groups.items()))
    return lines


def check_comparable(runs: list[RunRecord], allow_mixed: bool) -> list[str]:
    """The differences (for the header when `allow_mixed`); ValueError naming them otherwise."""
    found = differences(runs)
    if found and not allow_mixed:
        raise ValueError("these runs are not a like-for-like comparison (pass --allow-mixed to report them anyway, "
                         "with the differences in the header): " + " | ".join(found))
    return found


def shared_description(runs: list[RunRecord]) -> list[str]:
    """What every run of each task shares, for the header: observation and host."""
    lines = []
    for task in sorted({r.spec["task"] for r in runs}):
        task_runs = [r for r in runs if r.spec["task"] == task]
        pixels = sorted({p for p in map(observation, task_runs) if p is not None})
        frames = sorted({f"{r.run['method']} {(r.run.get('env_kwargs') or {}).get('frame_stack', '?')}" for r in task_runs
                         if observation(r) is not None})
        if pixels:
            lines.append(f"Observation on {task}: {' / '.join(pixels)}; frames stacked: {', '.join(frames)}.")
        episodes = sorted({f"{r.run['method']} {(r.run.get('eval') or {}).get('episodes', '?')}" for r in task_runs})
        lines.append(f"Deterministic evaluation on {task}, episodes per evaluation: {', '.join(episodes)}.")
    return lines


# -- hosts and their calibration (harness/calibration.py) -----------------------------------------
def host(run: RunRecord) -> str:
    machine = run.run.get("machine") or {}
    gpu = machine.get("gpu") if _device_type(run) != "cpu" else None
    return f"{machine.get('cpu', 'unknown')} ({machine.get('cpu_count', '?')} cores)" + (f", {gpu}" if gpu else "")


def _host_calibrations(runs: list[RunRecord]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        if run.run.get("calibration"):
            found[host(run)].append(run.run["calibration"])
    return found


def host_lines(runs: list[RunRecord]) -> list[str]:
    """Per host: which runs ran there and its calibration (median over its runs)."""
    from statistics import median

    calibrations = _host_calibrations(runs)
    lines = []
    for name in sorted({host(r) for r in runs}):
        on_host = [r for r in runs if host(r) == name]
        cal = calibrations.get(name, [])
        measured = (f"calibration (median of {len(cal)} runs): encoder {median(c['encoder_ms'] for c in cal):.1f} ms "
                    f"({cal[0]['encoder_work']}), simulator {median(c['sim_step_ms'] for c in cal):.3f} ms per step "
                    f"({cal[0]['sim_work']})") if cal else "no calibration recorded (runs made before calibration existed)"
        lines.append(f"Host {name}: {_who(on_host)}; {measured}.")
    return lines


def calibrated(runs: list[RunRecord]) -> tuple[list[RunRecord], str]:
    """The runs with training wall-clock in seconds of the reference host (the one with the most runs):
    each host's seconds scaled by its calibrated speed relative to the reference. ValueError when a
    run has no calibration."""
    from statistics import median

    from harness.calibration import slowness

    missing = [str(r.folder) for r in runs if not r.run.get("calibration")]
    if missing:
        raise ValueError(f"--calibrated needs every run's calibration; none in: {', '.join(missing)}")
    per_host = _host_calibrations(runs)
    typical = {name: {k: median(c[k] for c in cals) for k in ("encoder_ms", "sim_step_ms")} for name, cals in per_host.items()}
    reference = max(sorted(per_host), key=lambda name: len(per_host[name]))
    factors = {name: slowness(typical[name], typical[reference]) for name in per_host}
    scaled = []
    for run in runs:
        factor = factors[host(run)]
        records = [r | {"train_wall_s": r["train_wall_s"] / factor} for r in run.records]
        scaled.append(RunRecord(run.folder, run.run, records))
    note = (f"Wall-clock in calibrated seconds of {reference}: each host's training seconds divided by its slowness "
            f"(geometric mean of its encoder and simulator time ratios to the reference): "
            + ", ".join(f"{name} {factor:.2f}" for name, factor in sorted(factors.items())) + ".")
    return scaled, note


def preset_lines(runs: list[RunRecord]) -> list[str]:
    """How much tuning chose each method's preset, and which presets modify the published algorithm
    (from each run's `preset_info`, methods/presets.py)."""
    seen: dict[tuple[str, str], dict] = {}
    for run in runs:
        seen.setdefault((run.run["method"], run.spec["preset"]), run.run.get("preset_info") or {})
    tuning = [f"{m} {p}: {info.get('tuning', 'not recorded')}" for (m, p), info in sorted(seen.items())]
    lines = ["Tuning of each preset: " + "; ".join(tuning) + "."] if tuning else []
    modified = [f"{m} {p}" for (m, p), info in sorted(seen.items()) if info.get("modified")]
    if modified:
        lines.append(f"**Modified algorithms (named variants, not the published ones): {', '.join(modified)}.**")
    return lines
