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
        if dev.type not in ("cpu", "cuda"):
            parser.error(f"--device must be cpu or cuda[:k], got {device!r}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate_common(parser, args)
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
