"""`python results/reference-check/untrained.py TASK METHOD N`: the untrained deterministic return of seeds
0..N-1 under the method's `check` preset, i.e. each run's first evaluation, known before any training,
so choosing an entry's seeds by it does not look at learning."""

import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from harness.resolved import build, resolve
from harness.runner import evaluate
from harness.specs import RunSpec

task, method, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(1)
out = {}
for seed in range(n):
    r = resolve(RunSpec(method, task, seed, "check", "1024-steps", "cpu", 1024, 16))
    built = build(r.method_cls, task, r.config, torch.device("cpu"), seed, eval_envs=r.eval_episodes)
    returns = evaluate(built.method, built.eval_env, episodes_seed=seed)
    out[seed] = round(statistics.fmean(returns), 1)
    print(task, method, seed, out[seed], flush=True)
print(json.dumps(out))
