#!/usr/bin/env bash
# Seeded smoke runs of every method, for comparing two commits (issue 28): same thread count, same
# budget, same evaluation; run from the repository root of the commit under test.
#   results/refactor-equivalence/smoke_grid.sh OUT_FOLDER
set -euo pipefail
out=${1:?usage: smoke_grid.sh OUT_FOLDER}
export OMP_NUM_THREADS=1 PYTHONHASHSEED=0
python=${PYTHON:-python}
for task in cartpole hopper; do
  methods=dva,dva-state,shac-state,shac,dagger,drqv2,dreamerv3,tdmpc2
  [ "$task" = hopper ] && methods=dva,shac-state  # the methods with a hopper preset before issue 28
  [ "$task" = hopper ] && budget=256-steps || budget=1024-steps
  $python -m harness run --methods "$methods" --tasks "$task" --seeds 0 --preset smoke --budget "$budget" \
    --eval-every 512 --eval-episodes 2 --out "$out" --quiet
done
