"""`python -m harness <command>`: argument parsing only; each command lives in its own module.

Bad input exits with status 2 and a message naming the problem (argparse's convention), before
anything is built or written.
"""

from __future__ import annotations

import argparse
import sys


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train methods on tasks over seeds until a budget; one folder per run")
    run.add_argument("--methods", required=True, help="comma list, e.g. dva,shac-state (aliases: dreamer, tdmpc, drq)")
    run.add_argument("--tasks", default="cartpole", help="comma list of tasks")
    run.add_argument("--seeds", default="0", help="e.g. 0-4, 0,3,7 or 2")
    run.add_argument("--budget", required=True, help="training wall-clock (20m, 90s, 1.5h) or env steps (1M-steps)")
    run.add_argument("--preset", default="cpu", help="hyperparameter preset: paper, cpu or smoke")
    run.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    run.add_argument("--out", default="runs", help="root folder of the run folders")
    run.add_argument("--eval-every", type=_positive_int, default=None, metavar="STEPS", help="env steps between evaluations")
    run.add_argument("--eval-episodes", type=_positive_int, default=16)
    run.add_argument("--overwrite", action="store_true", help="start complete or interrupted runs afresh")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    report = sub.add_parser("report", help="summary table and learning curves from run folders")
    report.add_argument("run_dirs", nargs="+", help="folders containing run folders (searched recursively)")
    report.add_argument("--out", required=True, help="report folder, e.g. results/cartpole-cpu")
    report.add_argument("--threshold", type=float, default=None, help="also report time to reach this return")
    report.add_argument("--machine", default="", help="machine description for the header")

    bench = sub.add_parser("bench-env", help="environment throughput: physics, physics + render, horizon fwd+bwd")
    bench.add_argument("--task", default="cartpole")
    bench.add_argument("--num-envs", type=_positive_int, default=64)
    bench.add_argument("--image-size", type=_positive_int, default=84)
    bench.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    bench.add_argument("--steps", type=_positive_int, default=100, help="timed control steps per measurement")
    bench.add_argument("--horizon", type=_positive_int, default=32)
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--json", metavar="PATH", help="also write the numbers as JSON to PATH")
    return parser


def _validate_common(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    import envs

    if getattr(args, "task", None) is not None and args.task not in envs.available_tasks():
        parser.error(f"unknown task {args.task!r}; available: {', '.join(envs.available_tasks())}")
    if getattr(args, "image_size", None) is not None and args.image_size < envs.batched_env.MIN_IMAGE_SIZE:
        parser.error(f"--image-size must be >= {envs.batched_env.MIN_IMAGE_SIZE}, got {args.image_size}")
    device = getattr(args, "device", None)
    if device is not None:
        import torch

        try:
            dev = torch.device(device)
        except RuntimeError as err:
            parser.error(f"bad --device {device!r}: {err}")
        if dev.type == "cuda" and not torch.cuda.is_available():
            parser.error(f"--device {device} requested but CUDA is not available")
        if dev.type != "cpu" and dev.type != "cuda":
            parser.error(f"--device must be cpu or cuda[:k], got {device!r}")


def _run_specs(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """Expand and validate the grid before anything is written (bad input: exit status 2)."""
    import envs
    from harness.specs import RunSpec, parse_budget, parse_seeds
    from methods import resolve_method_name
    from methods.presets import available_presets

    try:
        parse_budget(args.budget)
        seeds = parse_seeds(args.seeds)
        methods = [resolve_method_name(m.strip()) for m in args.methods.split(",") if m.strip()]
    except ValueError as err:
        parser.error(str(err))
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not methods or not tasks:
        parser.error("--methods and --tasks must name at least one method and task")
    for task in tasks:
        if task not in envs.available_tasks():
            parser.error(f"unknown task {task!r}; available: {', '.join(envs.available_tasks())}")
    for method in methods:
        if args.preset not in available_presets(method):
            parser.error(f"unknown preset {args.preset!r} for {method}; available: {', '.join(available_presets(method))}")
    return [
        RunSpec(m, t, s, args.preset, args.budget, args.device, args.eval_every or 0, args.eval_episodes)
        for t in tasks
        for m in methods
        for s in seeds
    ]


def _run_grid(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    import shutil

    from harness.runner import Run, read_status, run_dir

    specs = _run_specs(parser, args)
    try:
        runs = [Run(spec, args.out, quiet=args.quiet) for spec in specs]
    except ValueError as err:
        parser.error(str(err))
    statuses = {}
    for run in runs:
        status = read_status(run.folder)
        if args.overwrite and run.folder.exists():
            shutil.rmtree(run.folder)
            status = None
        if status == "complete":
            print(f"skip {run.spec.run_id}: complete ({run.folder})")
            statuses[run.spec.run_id] = status
            continue
        try:
            statuses[run.spec.run_id] = run.execute()
        except KeyboardInterrupt:
            print(f"\ninterrupted: {run.spec.run_id} can resume from its last evaluation ({run_dir(args.out, run.spec)})")
            return 130
        print(f"{statuses[run.spec.run_id]}: {run.spec.run_id} ({run.folder})")
    failed = [rid for rid, st in statuses.items() if st != "complete"]
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)} (reasons in their run.json)")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate_common(parser, args)
    if args.command == "run":
        return _run_grid(parser, args)
    if args.command == "report":
        from harness.report import write_report

        try:
            out = write_report(args.run_dirs, args.out, "python -m harness " + " ".join(sys.argv[1:] if argv is None else argv), args.machine, args.threshold)
        except ValueError as err:
            parser.error(str(err))
        print(f"report written to {out}/summary.md")
        return 0
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
