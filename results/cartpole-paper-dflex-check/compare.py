"""Our `cartpole-paper` against the official dflex CartPole (official_cartpole.py), q after each step.

    DVA_ROOT=<D.VA checkout> python results/cartpole-paper-dflex-check/compare.py
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import envs

HERE = Path(__file__).resolve().parent
cases = [([0.3, 2.0], [-0.5, 1.5], np.linspace(-0.2, 0.2, 40).tolist()),
         ([0.0, -np.pi], [0.0, 0.0], [0.0] * 240),
         ([0.1, -2.9], [0.02, -0.03], np.random.default_rng(0).uniform(-1, 1, 240).tolist())]
for q0, qd0, actions in cases:
    res = subprocess.run([sys.executable, str(HERE / "official_cartpole.py"), json.dumps(q0), json.dumps(qd0), json.dumps(actions)], capture_output=True, text=True, cwd=HERE)
    official = np.array(json.loads(res.stdout.strip().splitlines()[-1]))
    env = envs.make("cartpole-paper", num_envs=1, seed=0, render=None); env.reset()
    env.set_sim_state(torch.tensor([q0], dtype=torch.float32), torch.tensor([qd0], dtype=torch.float32))
    ours = []
    for a in actions:
        env.step(torch.tensor([[a]], dtype=torch.float32)); ours.append(env.sim_state[0][0].numpy().copy())
        if env.progress[0] == 0: break
    ours = np.array(ours[:239]); n = len(ours)
    err = np.abs(ours - official[:n])
    print(f"start {q0} {qd0}: {n} steps, max |q ours - q official| = {err.max():.2e} (x {err[:,0].max():.2e}, theta {err[:,1].max():.2e}); final official {official[n-1].round(4)}")
