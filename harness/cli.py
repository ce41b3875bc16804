"""`python -m harness <command>`: argument parsing only; each command lives in its own module.

Bad input exits with status 2 and a message naming the problem (argparse's convention), before
anything is built or written.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the problem and where to look, not the whole usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _names(text: str, flag: str) -> list[str]:
    """A comma list of names, none of them empty (`dva,,drqv2` is a typo, not two methods)."""
    names = [name.strip() for name in text.split(",")]
    if not text.strip() or any(not name for name in names):
        raise ValueError(f"{flag} {text!r} has an empty name (a comma too many?)")
    return names


def _parsed(cast, accept, wanted: str):
    """An argparse type: `cast` the text, and refuse it unless `accept(value)`, saying what was `wanted`."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


_positive_int = _parsed(int, lambda value: value > 0, "a positive integer")
_non_negative_int = _parsed(int, lambda value: value >= 0, "an integer >= 0")
_finite_float = _parsed(float, math.isfinite, "a finite number")


def _wall_clock_point(text: str) -> tuple[str, float]:
    """`--at 30m` -> ("30m", 1800.0); a step count or a malformed time is refused."""
    from harness.specs import parse_budget

    budget = parse_budget(text)
    if budget.kind != "seconds":
        raise ValueError(f"--at takes a training wall-clock such as 30m or 1.5h, got {text!r}")
    return budget.text, budget.amount


def build_parser() -> argparse.ArgumentParser:
    from harness.specs import DEFAULT_BUDGETS
    parser = _Parser(prog="python -m harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train methods on tasks over seeds until a budget; one folder per run")
    run.add_argument("--methods", required=True, help="comma list, e.g. dva,shac-state (aliases: dreamer, tdmpc, drq)")
    run.add_argument("--tasks", default="cartpole", help="comma list of tasks")
    run.add_argument("--seeds", default="0", help="e.g. 0-4, 0,3,7 or 2")
    run.add_argument("--budget", default=None,
                     help="per run: training wall-clock (20m, 90s, 1.5h) or env steps (1M-steps); default: the preset's "
                          "(" + ", ".join(f"{p} {b}" for p, b in DEFAULT_BUDGETS.items()) + ")")
    run.add_argument("--preset", default="cpu", help="hyperparameter preset: paper, cpu or smoke")
    run.add_argument("--device", default="auto", help="torch device: auto (CUDA when available, else CPU), cpu or cuda:0")
    run.add_argument("--out", default="runs", help="root folder of the run folders")
    run.add_argument("--eval-every", type=_positive_int, default=None, metavar="STEPS", help="env steps between evaluations")
    run.add_argument("--eval-episodes", type=_positive_int, default=None,
                     help="deterministic episodes per evaluation (default 16, or the method's own: TD-MPC2 plans every action)")
    run.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                     help="change a config key of the preset (repeatable), e.g. --override actor_lr=1e-3; "
                          "the run folder gets a hash suffix")
    run.add_argument("--overwrite", action="store_true", help="delete existing run folders of the grid and start afresh")
    run.add_argument("--dry-run", action="store_true", help="list the runs and what would happen to each, run nothing")
    run.add_argument("--executor", default="local", help="local (process pool, default), slurm (submitit) or ray")
    run.add_argument("--workers", type=_positive_int, default=1, help="runs at once (local and submitit-local); SLURM array parallelism")
    run.add_argument("--slurm-partition", default=None)
    run.add_argument("--timeout-min", type=_positive_int, default=24 * 60, help="SLURM time limit per job (requeued on timeout)")
    run.add_argument("--cpus-per-run", type=_positive_int, default=2)
    run.add_argument("--gpus-per-run", type=_non_negative_int, default=0)
    run.add_argument("--submitit-local", action="store_true", help="submitit's local mode even where SLURM exists")
    run.add_argument("--ray-address", default=None, help="an existing Ray cluster (auto or host:port); default starts one")
    run.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard (<run>/tensorboard)")
    run.add_argument("--wandb", action="store_true", help="also log to Weights & Biases")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--no-report", action="store_true", help="do not write <out>/report at the end of the grid")
    run.add_argument("--no-videos", action="store_true", help="no GIF of each run's final policy")

    sub.add_parser("list", help="methods (and aliases), tasks, presets with their default budgets and observation settings")

    report = sub.add_parser("report", help="summary table and learning curves from run folders")
    report.add_argument("run_dirs", nargs="+", help="folders containing run folders (searched recursively)")
    report.add_argument("--out", required=True, help="report folder, e.g. results/cartpole-cpu")
    report.add_argument("--threshold", type=_finite_float, default=None, help="return threshold for time-to-threshold (default: the task's, from the normalisation table)")
    report.add_argument("--machine", default="", help="extra machine description for the header")
    report.add_argument("--reps", type=_positive_int, default=2000, help="bootstrap resamples for the CIs (rliable)")
    report.add_argument("--normalization", default=None, metavar="JSON", help="normalisation table (default results/normalization.json)")
    report.add_argument("--at", action="append", default=[], metavar="TIME",
                        help="also tabulate each run's evaluation return at this training wall-clock (e.g. 30m; repeatable): "
                             "the last evaluation at or before it, for runs that trained that long")
    report.add_argument("--focus", default="dva", metavar="METHOD",
                        help="the method whose probability of improvement over each other method is reported (default dva)")
    report.add_argument("--allow-mixed", action="store_true",
                        help="report runs that differ in observation, device type, CPU model or package versions "
                             "(refused otherwise); the header names what differs")
    report.add_argument("--calibrated", action="store_true",
                        help="wall-clock in calibrated seconds of the host with the most runs (each run's calibration in run.json)")

    check = sub.add_parser("check", help="rerun the reference configurations; fail when a return leaves its band")
    check.add_argument("--reference", default=None, metavar="JSON", help="default results/reference.json")
    check.add_argument("--methods", default=None, help="only these methods (comma list)")
    check.add_argument("--tasks", default=None, help="only these tasks (comma list)")
    check.add_argument("--seeds", default=None, help="seeds to rerun (default: each entry's first seed)")
    check.add_argument("--out", default=None, help="keep the check's run folders here (default: a temporary folder)")
    check.add_argument("--update", action="store_true", help="remake the selected entries (bands) from runs with --seeds (default 0-2) in --out (default a new "
                            "runs/check-update-<time>; complete runs already in --out are reused)")
    check.add_argument("--override", action="append", default=[], metavar="[[TASK/]METHOD:]KEY=VALUE",
                       help="change a config key in the selected entries' runs, only METHOD's, or only the TASK/METHOD "
                            "entry's (repeatable), e.g. --override cartpole/shac-state:actor_lr=1e-12 to see a broken "
                            "method fail its entry")
    check.add_argument("--quiet", action="store_true")

    prof = sub.add_parser("profile", help="D.Va vs visual SHAC: per-iteration time by phase and peak memory, like for like")
    prof.add_argument("--task", default="cartpole")
    prof.add_argument("--methods", default="dva,shac", help="comma list (D.Va runs on each of --renderers, SHAC on the differentiable one)")
    prof.add_argument("--presets", default="paper,cpu", help="comma list of presets to profile")
    prof.add_argument("--renderers", default="raytrace,differentiable", help="renderers for methods that can use either (D.Va)")
    prof.add_argument("--iterations", type=_positive_int, default=3, help="timed iterations per case (after --warmup)")
    prof.add_argument("--warmup", type=_non_negative_int, default=1)
    prof.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    prof.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="change a config key in every case")
    prof.add_argument("--out", default=None, help="output folder (default results/profile-<task>-<device type>)")

    upd = sub.add_parser("bench-updates", help="update throughput of a replay-based method (DrQ-v2) and where its time goes")
    upd.add_argument("--method", default="drqv2")
    upd.add_argument("--task", default="cartpole")
    upd.add_argument("--preset", default="cpu")
    upd.add_argument("--image-sizes", default="32,84", help="comma list of image sizes (supersample 2 below 64 px, as the cpu preset)")
    upd.add_argument("--model-sizes", default=None, help="comma list of the method's model sizes (TD-MPC2: 1,5; DreamerV3: XS,S); default the preset's")
    upd.add_argument("--precisions", default=None, help="comma list: fp32 and/or bf16 (default both, or fp32 for a method without a precision option)")
    upd.add_argument("--updates", type=_positive_int, default=20, help="timed updates per case")
    upd.add_argument("--warmup", type=_positive_int, default=3)
    upd.add_argument("--profile-updates", type=_non_negative_int, default=5, help="updates under torch.profiler for the operator table (0: none)")
    upd.add_argument("--device", default="cpu")
    upd.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                     help="change a config key of the preset in every case (repeatable), e.g. --override batch_size=8")
    upd.add_argument("--out", default=None, help="output folder (default results/<method>-updates-<device type>)")

    plan = sub.add_parser("bench-plan", help="planning throughput of a planning method (TD-MPC2's MPPI) and where its time goes")
    plan.add_argument("--method", default="tdmpc2")
    plan.add_argument("--task", default="cartpole")
    plan.add_argument("--preset", default="cpu")
    plan.add_argument("--num-envs", type=_positive_int, default=64, help="envs planned for in one batched call")
    plan.add_argument("--model-sizes", default="1,5", help="comma list of model sizes (millions of parameters: 1, 5, 19, 48, 317)")
    plan.add_argument("--precisions", default="fp32,bf16", help="comma list: fp32 and/or bf16")
    plan.add_argument("--steps", type=_positive_int, default=5, help="timed batched planning calls per case")
    plan.add_argument("--warmup", type=_positive_int, default=1)
    plan.add_argument("--profile-steps", type=_non_negative_int, default=1, help="calls under torch.profiler for the operator table (0: none)")
    plan.add_argument("--device", default="cpu")
    plan.add_argument("--out", default=None, help="output folder (default results/<method>-planning-<device type>)")

    bench = sub.add_parser("bench-env", help="environment throughput: physics, physics + render, horizon fwd+bwd")
    bench.add_argument("--task", default="cartpole")
    bench.add_argument("--num-envs", type=_positive_int, default=64)
    bench.add_argument("--image-size", type=_positive_int, default=84)
    bench.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    bench.add_argument("--steps", type=_positive_int, default=100, help="timed control steps per measurement")
    bench.add_argument("--horizon", type=_positive_int, default=32)
    bench.add_argument("--seed", type=_non_negative_int, default=0)
    bench.add_argument("--json", metavar="PATH", help="also write the numbers as JSON to PATH")
    return parser


def _validate_common(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Checks several commands share; they import no simulator (report and check never need one)."""
    from methods.registry import check_task_name

    if getattr(args, "task", None) is not None:
        try:
            check_task_name(args.task)
        except ValueError as err:
            parser.error(str(err))
    if getattr(args, "image_size", None) is not None:
        from envs.batched_env import MIN_IMAGE_SIZE  # bench-env only: it builds envs anyway

        if args.image_size < MIN_IMAGE_SIZE:
            parser.error(f"--image-size must be >= {MIN_IMAGE_SIZE}, got {args.image_size}")
    device = getattr(args, "device", None)
    if device is not None:
        import torch

        if device == "auto":
            args.device = device = "cuda" if torch.cuda.is_available() else "cpu"

        try:
            dev = torch.device(device)
        except RuntimeError as err:
            parser.error(f"bad --device {device!r}: {err}")
        if dev.type == "cuda" and not torch.cuda.is_available():
            parser.error(f"--device {device} requested but CUDA is not available")
        if dev.type != "cpu" and dev.type != "cuda":
            parser.error(f"--device must be cpu or cuda[:k], got {device!r}")


def _run_specs(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """Expand the grid and resolve every run before anything is written (bad input: exit status 2)."""
    from harness.executors import EXECUTORS, missing_executor_package
    from harness.loggers import missing_logger_packages
    from harness.resolved import resolve
    from harness.specs import default_budget, expand_grid, parse_overrides, parse_seeds
    from methods.registry import resolve_method_name

    try:
        seeds = parse_seeds(args.seeds)
        methods = [resolve_method_name(m) for m in _names(args.methods, "--methods")]
        tasks = _names(args.tasks, "--tasks")
        overrides = parse_overrides(args.override)
    except ValueError as err:
        parser.error(str(err))
    if len(set(methods)) != len(methods) or len(set(tasks)) != len(tasks):
        parser.error("--methods and --tasks must not repeat a name")
    try:
        budget = args.budget if args.budget is not None else default_budget(args.preset)
    except ValueError as err:
        parser.error(str(err))
    specs = expand_grid(methods, tasks, seeds, preset=args.preset, budget=budget, device=args.device,
                        eval_every_steps=args.eval_every or 0, eval_episodes=args.eval_episodes or 0, overrides=overrides)
    resolved = {}
    for spec in specs:
        key = (spec.method, spec.task)  # seeds share everything else: resolve one, reuse it
        try:
            resolved[key] = resolved.get(key) or resolve(spec)
        except (ValueError, TypeError) as err:
            parser.error(str(err))
    runs = [dataclasses.replace(resolved[(s.method, s.task)], spec=s) for s in specs]
    if args.executor not in EXECUTORS:
        parser.error(f"unknown executor {args.executor!r}; available: {', '.join(EXECUTORS)}")
    missing = missing_executor_package(args.executor)
    if missing and not args.dry_run:
        parser.error(missing)
    loggers = [name for name in ("tensorboard", "wandb") if getattr(args, name)]
    missing_loggers = missing_logger_packages(loggers)
    if missing_loggers:
        parser.error("missing logger package(s): " + ", ".join(missing_loggers))
    return runs, loggers


def _run_grid(parser: argparse.ArgumentParser, args: argparse.Namespace, command: str) -> int:
    from harness.executors import GridOptions, execute_grid
    from harness.io import check_writable_folder
    from harness.store import RunFolder

    runs, loggers = _run_specs(parser, args)
    root = Path(args.out)
    try:
        check_writable_folder(root, create=not args.dry_run)
    except ValueError as err:
        parser.error(f"--out: {err}")
    folders = {run.run_id: RunFolder.of(root, run.run_id) for run in runs}
    actions = {run.run_id: ("start" if args.overwrite else folders[run.run_id].plan()) for run in runs}
    if args.dry_run:
        for run in runs:
            spec = run.spec
            print(f"{actions[run.run_id]:>6}  {run.run_id}  budget={spec.budget} device={spec.device}"
                  + (f" overrides={spec.overrides}" if spec.overrides else ""))
        counts = {a: list(actions.values()).count(a) for a in ("start", "resume", "skip", "busy")}
        print(f"{len(runs)} run(s): " + ", ".join(f"{n} {a}" for a, n in counts.items() if n) + f" (executor {args.executor})")
        return 0
    todo = []
    for run in runs:
        folder = folders[run.run_id]
        if args.overwrite and folder.held_elsewhere():
            actions[run.run_id] = "busy"  # never delete a folder another process is training in
        elif args.overwrite and folder.exists():
            folder.delete()
        if actions[run.run_id] == "skip":
            print(f"skip {run.run_id}: complete ({folder.path})")
        elif actions[run.run_id] == "busy":
            print(f"skip {run.run_id}: running in another process ({folder.path})")
        else:
            todo.append(run)
    options = GridOptions(
        root=root, quiet=args.quiet, loggers=loggers, workers=args.workers, slurm_partition=args.slurm_partition,
        timeout_min=args.timeout_min, cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run,
        submitit_local=args.submitit_local, ray_address=args.ray_address, videos=not args.no_videos,
    )
    try:
        statuses = execute_grid(todo, options, args.executor) if todo else {}
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to resume from the last evaluation of each run", file=sys.stderr)
        return 130
    failed = [rid for rid, st in statuses.items() if st not in ("complete", "busy")]
    if not args.no_report:
        _grid_report([folders[run.run_id].path for run in runs], root / "report", command)
    if failed:
        print(f"{len(failed)} run(s) not complete: {', '.join(failed)} (reasons in their run.json)")
        return 1
    return 0


def _grid_report(run_folders: list[Path], out: Path, command: str) -> None:
    """The grid's report in `out`, its main table printed; a report that cannot be made (no run
    complete) is said in one line and leaves the grid's exit status alone."""
    from harness.report import write_report

    try:
        # One grid on one machine: what its runs differ in (an --override) is said in the header, not refused.
        write_report([f for f in run_folders if f.exists()], out, command, allow_mixed=True)
    except ValueError as err:
        print(f"no report: {err}")
        return
    lines = (out / "summary.md").read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| task |")), None)
    if start is not None:
        table = lines[start:]
        print("\n".join(table[: next((i for i, line in enumerate(table) if not line.startswith("|")), len(table))]))
    print(f"report: {out / 'summary.md'}")


def _list() -> int:
    """What `run` accepts: methods and aliases, tasks, presets with default budgets and the pixels each method reads."""
    from harness.specs import DEFAULT_BUDGETS
    from methods.presets import available_presets, load_config
    from methods.registry import ALIASES, available_methods, available_tasks, get_method_class

    aliases = {m: [a for a, c in ALIASES.items() if c == m] for m in available_methods()}
    print("methods: " + ", ".join(m + (f" ({', '.join(a)})" if a else "") for m, a in aliases.items()))
    print("tasks:   " + ", ".join(t + (" (default)" if t == "cartpole" else "") for t in available_tasks()))
    print("presets: " + ", ".join(f"{p} (budget {b}" + (", the default preset)" if p == "cpu" else ")") for p, b in DEFAULT_BUDGETS.items())
          + "; --budget overrides")
    from methods.protocols import budget_classes, describe, protocol

    print("\nobservation protocols (methods/configs/protocols.yaml; every pixel method of a budget class reads them):")
    for budget in budget_classes():
        print(f"  {budget:<6} cartpole: {describe(protocol(budget, 'cartpole'))}; hopper: {describe(protocol(budget, 'hopper'))}")
    print("\nobservation per method and preset on cartpole (image size, supersample, cropped rows, frames, action repeat):")
    for name in available_methods():
        cls = get_method_class(name)
        for preset in available_presets(cls):
            config = load_config(cls, "cartpole", preset)
            kwargs = cls.env_kwargs(config)
            pixels = ("state only" if not cls.reads_pixels else
                      f"{kwargs.get('image_size')} px x{kwargs.get('supersample', 1)}"
                      + (", cropped" if kwargs.get("crop_static_rows") else "") + f", {kwargs.get('frame_stack', 3)} frames")
            print(f"  {name:<11} {preset:<11} {pixels}, action repeat {kwargs.get('action_repeat', 1)}")
    return 0


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace, command: str) -> int:
    from pathlib import Path

    from harness.check import (DEFAULT_REFERENCE, band_contains_untrained, format_results, load_reference,
                               parse_entry_overrides, plan, run_check, update_reference)
    from harness.specs import parse_seeds
    from methods.registry import resolve_method_name

    try:
        data, entries = load_reference(args.reference)
        seeds = parse_seeds(args.seeds) if args.seeds else None
        methods = {resolve_method_name(m) for m in _names(args.methods, "--methods")} if args.methods is not None else None
        tasks = set(_names(args.tasks, "--tasks")) if args.tasks is not None else None
        overrides = parse_entry_overrides(args.override)
        if args.update and args.override:
            raise ValueError("--override cannot be combined with --update: a band is made from the entries' own configurations")
    except ValueError as err:
        parser.error(str(err))
    selected = [e for e in entries if (methods is None or e.method in methods) and (tasks is None or e.task in tasks)]
    if not selected:
        parser.error("no reference entry matches --methods/--tasks")
    try:  # every run resolves (presets, overrides) before anything runs
        plan(selected, lambda e: seeds or ([0, 1, 2] if args.update else e.seeds[:1]), overrides)
    except ValueError as err:
        parser.error(str(err))
    if args.update:
        # A fresh folder unless --out names one: complete runs in --out are reused (an interrupted update resumes).
        out = Path(args.out or f"runs/check-update-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            made = update_reference(Path(args.reference or DEFAULT_REFERENCE), data, selected, out, seeds or [0, 1, 2], args.quiet, command)
        except RuntimeError as err:
            print(f"update failed for some entries (the others were saved): {err}", file=sys.stderr)
            return 1
        for entry in made:
            warning = "  WARNING: the band contains an untrained return" if band_contains_untrained(entry["band"], entry["untrained"]) else ""
            print(f"{entry['task']}/{entry['method']}/{entry['preset']}: untrained {entry['untrained']}, observed {entry['observed']} "
                  f"-> band {entry['band']}{warning}")
        return 0
    try:
        results, ok = run_check(selected, Path(args.out) if args.out else None, seeds, args.quiet, overrides)
    except ValueError as err:
        parser.error(str(err))
    print(format_results(results))
    return 0 if ok else 1


def _profile(parser: argparse.ArgumentParser, args: argparse.Namespace, command: str) -> int:
    import torch

    from harness.profile import format_markdown, profile, profile_cases
    from harness.specs import parse_overrides
    from methods.presets import load_config
    from methods.registry import get_method_class, resolve_method_name

    try:
        presets = _names(args.presets, "--presets")
        renderers = _names(args.renderers, "--renderers")
    except ValueError as err:
        parser.error(str(err))
    bad = [r for r in renderers if r not in ("raytrace", "differentiable")]
    if bad:
        parser.error(f"--renderers must list raytrace and/or differentiable, got {args.renderers!r}")
    try:
        methods = [resolve_method_name(m) for m in _names(args.methods, "--methods")]
        overrides = parse_overrides(args.override)
        cases = profile_cases(methods, presets, renderers, args.task, args.device, overrides)
        for case in cases:
            load_config(get_method_class(case.method), case.task, case.preset, case.config_overrides)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    if not cases:
        parser.error("--methods and --presets must name at least one method and preset")
    out = args.out or f"results/profile-{args.task}-{torch.device(args.device).type}"
    data = profile(cases, args.iterations, args.warmup, out, command)
    print(format_markdown(data))
    return 1 if any("error" in case for case in data["cases"]) else 0


def _parse_precisions(method_cls, text: str | None) -> list[str]:
    """The listed precisions (default: every one the method has), each one the method declares."""
    precisions = _names(text, "--precisions") if text is not None else list(method_cls.precisions)
    unknown = set(precisions) - set(method_cls.precisions)
    if unknown:
        raise ValueError(f"--precisions must list {' and/or '.join(method_cls.precisions)} ({method_cls.name}'s precisions), got {text!r}")
    return precisions


def _bench_plan(parser: argparse.ArgumentParser, args: argparse.Namespace, command: str) -> int:
    import torch

    from harness.bench_plan import bench_plan_case, write_bench_plan
    from methods.base import Planner
    from methods.presets import load_config
    from methods.registry import get_method_class, resolve_method_name

    try:
        method = resolve_method_name(args.method)
        cls = get_method_class(method)
        if not issubclass(cls, Planner):
            raise ValueError(f"{method} does not plan (bench-plan is for TD-MPC2-like methods)")
        sizes = _parse_model_sizes(cls, args.model_sizes)
        precisions = _parse_precisions(cls, args.precisions)
        cases = [{"model_size": size, "num_envs": args.num_envs, "precision": p} for size in sizes for p in precisions]
        for overrides in cases:
            load_config(cls, args.task, args.preset, overrides)
    except ValueError as err:
        parser.error(str(err))
    results = [bench_plan_case(method, args.task, args.preset, o, args.steps, args.warmup, args.device, args.profile_steps) for o in cases]
    out = Path(args.out or f"results/{method}-planning-{torch.device(args.device).type}")
    write_bench_plan(results, out, command)
    print((out / "bench_plan.md").read_text())
    return 0


def _parse_model_sizes(method_cls, text: str | None) -> list:
    """[None] (the preset's size) or the listed sizes, checked against the method's size table."""
    if text is None:
        return [None]
    table = method_cls.model_sizes
    if not table:
        raise ValueError(f"{method_cls.name} has no model sizes to choose from")
    sizes = [int(x) if x.isdigit() else x for x in _names(text, "--model-sizes")]
    unknown = [x for x in sizes if x not in table]
    if not sizes or unknown:
        raise ValueError(f"--model-sizes {text!r}: unknown model size(s) {unknown or text!r}; {method_cls.name} has {', '.join(map(str, table))}")
    return sizes


def _bench_updates(parser: argparse.ArgumentParser, args: argparse.Namespace, command: str) -> int:
    import torch

    from harness.bench_updates import bench_case, write_bench
    from harness.specs import parse_overrides
    from methods.base import ReplayUpdates
    from methods.presets import load_config
    from methods.registry import get_method_class, resolve_method_name

    try:
        method = resolve_method_name(args.method)
        cls = get_method_class(method)
        sizes = [int(x) if x.isdigit() else -1 for x in _names(args.image_sizes, "--image-sizes")]
        precisions = _parse_precisions(cls, args.precisions)
        if not sizes or min(sizes) < 16:
            raise ValueError(f"--image-sizes must list sizes >= 16, got {args.image_sizes!r}")
        if not issubclass(cls, ReplayUpdates):
            raise ValueError(f"{method} has no replay update to benchmark (bench-updates is for DrQ-v2-like methods)")
        model_sizes = _parse_model_sizes(cls, args.model_sizes)
        fixed = parse_overrides(args.override)
        has_precision = len(cls.precisions) > 1
        cases = [fixed | {"image_size": n, "supersample": 2 if n < 64 else 1} | ({"model_size": m} if m is not None else {}) | ({"precision": p} if has_precision else {})
                 for n in sizes for m in model_sizes for p in precisions]  # fmt: skip
        for overrides in cases:
            load_config(cls, args.task, args.preset, overrides)
    except ValueError as err:
        parser.error(str(err))
    results = [bench_case(method, args.task, args.preset, o, args.updates, args.warmup, args.device, args.profile_updates) for o in cases]
    out = Path(args.out or f"results/{method}-updates-{torch.device(args.device).type}")
    write_bench(results, out, command)
    print((out / "bench_updates.md").read_text())
    return 0


def _check_output_folders(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every command's output location, checked before any work (run checks its own: it creates it)."""
    from harness.io import check_writable_folder

    targets = []
    if args.command in ("report", "check", "profile", "bench-updates", "bench-plan") and getattr(args, "out", None):
        targets.append(("--out", args.out))
    if args.command == "bench-env" and args.json:
        targets.append(("--json", str(Path(args.json).parent)))
    for flag, folder in targets:
        try:
            check_writable_folder(folder, create=False)
        except ValueError as err:
            parser.error(f"{flag}: {err}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list()
    _validate_common(parser, args)
    _check_output_folders(parser, args)
    command = "python -m harness " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.command == "run":
        return _run_grid(parser, args, command)
    if args.command == "report":
        from harness.report import write_report

        try:
            at = [_wall_clock_point(text) for text in args.at]
        except ValueError as err:
            parser.error(str(err))
        try:
            out = write_report(args.run_dirs, args.out, command, args.machine, args.threshold, args.reps, args.normalization, at,
                               focus=args.focus, allow_mixed=args.allow_mixed, calibrated=args.calibrated)
        except ValueError as err:
            parser.error(str(err))
        print(f"report written to {out}/summary.md")
        return 0
    if args.command == "check":
        return _check(parser, args, command)
    if args.command == "profile":
        return _profile(parser, args, command)
    if args.command == "bench-updates":
        return _bench_updates(parser, args, command)
    if args.command == "bench-plan":
        return _bench_plan(parser, args, command)
    if args.command == "bench-env":
        from harness.bench_env import bench_env

        result = bench_env(args.task, args.num_envs, args.image_size, args.device, args.steps, args.horizon, args.seed)
        print(result.table())
        if args.json:
            from harness.io import write_json_atomic
            from harness.system_info import system_info

            write_json_atomic(args.json, result.as_dict() | {"machine": system_info()})
        return 0
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
