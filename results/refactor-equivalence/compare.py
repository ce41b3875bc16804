"""Compare two trees of run folders record by record, ignoring what depends on the clock.

    python results/refactor-equivalence/compare.py BEFORE_ROOT AFTER_ROOT

Every metrics.jsonl under BEFORE_ROOT must have a twin under AFTER_ROOT with the same records:
returns, env steps, gradient norms and the method's own metrics equal to the last bit; wall-clock
times, phase times and memory are left out (they differ between any two runs). Exit 1 on a
difference, naming the run, the record and the field.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, ".")
from harness.store import METRICS, RunFolder  # noqa: E402

CLOCK_FIELDS = {"train_wall_s", "eval_wall_s", "phase_s"}


def strip(record: dict) -> dict:
    kept = {k: v for k, v in record.items() if k not in CLOCK_FIELDS and not k.endswith("_mb")}  # memory too
    kept["metrics"] = {k: v for k, v in record.get("metrics", {}).items() if not k.endswith("_s")}
    return kept


def main(before: Path, after: Path) -> int:
    differences, compared = 0, 0
    for path in sorted(before.rglob(METRICS)):
        twin = after / path.relative_to(before)
        name = str(path.parent.relative_to(before))
        if not twin.exists():
            print(f"MISSING {name}")
            differences += 1
            continue
        old, new = RunFolder(path.parent).records(), RunFolder(twin.parent).records()
        if len(old) != len(new):
            print(f"DIFFER  {name}: {len(old)} records before, {len(new)} after")
            differences += 1
            continue
        for i, (a, b) in enumerate(zip(old, new)):
            a, b = strip(a), strip(b)
            bad = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            if bad:
                print(f"DIFFER  {name} record {i} (env_steps {a.get('env_steps')}): {', '.join(bad)}")
                differences += 1
                break
        else:
            compared += 1
            print(f"same    {name}: {len(old)} records, final eval return {old[-1]['eval_return_mean']:.4f}")
    print(f"{compared} run(s) identical, {differences} different")
    return 1 if differences or not compared else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
