#!/bin/bash
# The fair CartPole comparison (issue 33): every method on the `cpu` observation protocol
# (methods/configs/protocols.yaml: 48x48 traced at 96x96, static rows dropped: 25x48), 30 minutes of training each, one torch
# thread per run and two runs at a time on a 2-core machine. All methods of one seed run on the same
# machine, so each seed is a fair comparison by itself even when seeds are spread over machines of
# different CPU models (the report's header and each run's calibration say which seed ran where).
# Every method gets 16 deterministic evaluation episodes per evaluation (the methods' defaults are 4-16).
#
#   benchmarks/cartpole_cpu_comparison.sh SEED [OUT]      e.g. 0 runs/cartpole-cpu
#
# D.Va and the strongest baseline get seeds 0-4, the others 0-2. When all seeds are in:
#   python -m harness report runs/cartpole-cpu --out results/cartpole-cpu --at 10m --at 20m --at 30m --allow-mixed
# (--allow-mixed only for visual SHAC, which reads the differentiable mesh renderer's image of the
# same scene instead of the ray tracer's; the header names that difference.)
set -euo pipefail
seed=${1:?usage: $0 SEED [OUT]}
out=${2:-runs/cartpole-cpu}
export OMP_NUM_THREADS=1
# A failed run is reported and the queue goes on (rerunning the script resumes or retries it).
run() { python -m harness run --methods "$1" --tasks cartpole --seeds "$seed" --budget 30m --preset cpu --eval-episodes 16 --out "$out" --quiet --no-report \
        || echo "$1 seed $seed did not complete (its run.json says why)"; }
# Two queues (7 runs of 30 min: ~2 h on 2 cores, evaluations and videos excluded from the 30 min).
( run dva; run drqv2; run tdmpc2; run shac-state ) &
( run shac; run dagger; run dreamerv3 ) &
wait
