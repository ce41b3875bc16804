"""Learning curves before and after the gradient fix (issue 26), indexed by env steps.

Run from the repository root: `python results/cartpole-cpu-gradfix/compare.py`. Prints, per method
and seed, the evaluation return every 204,800 env steps, the first evaluation at or above 1,500 and
the last one, for the runs in this folder (code 3449c44, exact gradients) and the committed runs of
`results/cartpole-cpu` (code before the fix; D.Va on the Intel Xeon VM, shac-state on an AMD EPYC VM)
plus the pre-fix D.Va seed 0 rerun here on the AMD EPYC VM (`runs-before-fix/`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, ".")
from harness.store import RunFolder  # noqa: E402

HERE = Path(__file__).parent
SOURCES = {
    "after fix (AMD EPYC)": HERE / "runs",
    "before fix (AMD EPYC)": HERE / "runs-before-fix",
    "before fix (results/cartpole-cpu)": HERE.parent / "cartpole-cpu" / "runs",
}
EVERY, THRESHOLD = 204_800, 1_500.0


def evaluations(folder: Path) -> list[tuple[int, float]]:
    rows = RunFolder(folder).records()
    return [(r["env_steps"], r["eval_return_mean"]) for r in rows if r.get("eval_return_mean") is not None]


def row(label: str, folder: Path) -> str:
    evals = evaluations(folder)
    sampled = [f"{ret:,.0f}" for steps, ret in evals if steps % EVERY == 0]
    first = next((steps for steps, ret in evals if ret >= THRESHOLD), None)
    reached = f"{first:,}" if first is not None else "never"
    return f"| {label} | {folder.name} | {' | '.join(sampled[:6]):<40} | {reached} | {evals[-1][1]:,.0f} at {evals[-1][0]:,} |"


def main() -> None:
    print("| code | seed | return at 0, 205k, 410k, 614k, 819k, 1,024k steps | first >= 1,500 (steps) | last evaluation |")
    print("|---|---|---|---|---|")
    for method in ("dva", "shac-state"):
        print(f"| **{method}** | | | | |")
        for label, root in SOURCES.items():
            for folder in sorted((root / "cartpole" / method / "cpu").glob("seed*")):
                print(row(label, folder))


if __name__ == "__main__":
    main()
