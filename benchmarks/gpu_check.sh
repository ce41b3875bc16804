#!/bin/bash
# What to measure when a GPU is lent (issues 30 and 31), in one call of under 8 minutes:
#   run(command="bash benchmarks/gpu_check.sh", timeout_s=540)   (the device tool; $OUT comes back)
# Writes under ${OUT:-gpu_check}/: the D.Va-vs-SHAC profile at the paper's settings on CartPole and
# the hopper (time, graph and GPU memory per iteration; the mesh renderer's per-frame cost is its
# render phases / frames), env throughput, and the update rates of DreamerV3 S (64 px) and DrQ-v2
# (84 px). Each step has its own time limit, so one slow step does not cost the others.
set -u
out=${OUT:-gpu_check}
mkdir -p "$out"
py=${PYTHON:-python}
step() { local limit=$1; shift; echo "== $* (limit ${limit}s)"; timeout "$limit" "$py" -m harness "$@" || echo "== step failed or timed out: $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.csv" 2>&1
"$py" -c "import torch, warp; print('torch', torch.__version__, 'warp', warp.__version__)" > "$out/versions.txt" 2>&1
step 150 profile --task cartpole --methods dva,shac --presets paper --iterations 3 --device cuda --out "$out/profile-cartpole"
step 150 profile --task hopper --methods dva,shac --presets paper --iterations 2 --device cuda --out "$out/profile-hopper"
step 45 bench-env --task cartpole --num-envs 64 --image-size 84 --device cuda --json "$out/bench-env-cartpole.json"
step 45 bench-env --task hopper --num-envs 64 --image-size 84 --device cuda --json "$out/bench-env-hopper.json"
step 60 bench-updates --method dreamerv3 --preset paper --image-sizes 64 --model-sizes S --precisions fp32,bf16 --updates 10 --device cuda --out "$out/bench-updates-dreamerv3"
step 45 bench-updates --method drqv2 --preset paper --image-sizes 84 --precisions fp32,bf16 --updates 50 --device cuda --out "$out/bench-updates-drqv2"
