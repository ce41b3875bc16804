"""Shared fixtures. Envs are module-scoped: building one is cheap once warp's kernels are cached,
but the first build on a machine compiles them (see README), so tests reuse what they can.

Commands run in this process (`cli`), and so do the local executor's workers where a test asks
for `in_process_workers`: a fresh `python -m harness ...` imports torch, warp and Newton again
(seconds each). Tests whose point is a process boundary (Ctrl-C, kill -9 of a grid or a worker,
two grids at once, a run folder claimed by another process, submitit) start real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One torch thread per pytest-xdist worker (and for the processes its tests start): with
    # `-n auto` every core runs a worker already, and two threads each only contend.
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"

import envs


def replay_agent(method_cls, preset: str = "smoke", **overrides) -> tuple:
    """(agent, its training env) for a replay-based method at a preset (TD-MPC2, DreamerV3)."""
    from harness.resolved import build
    from methods.presets import load_config

    built = build(method_cls, "cartpole", load_config(method_cls, "cartpole", preset, overrides), "cpu", seed=0)
    return built.method, built.env


def step_to_first_update(agent, env):
    """Collect until the agent's first gradient update (its warm-up / prefill / seed steps)."""
    while agent.updates == 0:
        agent.iterate(env)
    return agent, env


@pytest.fixture(scope="module")
def pixel_env():
    return envs.make("cartpole", num_envs=4, seed=0, image_size=32, render="raytrace")


@pytest.fixture(scope="module")
def state_env():
    return envs.make("cartpole", num_envs=4, seed=0, render=None)


@pytest.fixture
def cli(capsys):
    """`cli("run", "--methods", ...)`: `python -m harness ...` in this process (harness.cli.main), as a
    CompletedProcess with the exit status (argparse's SystemExit included) and what it printed."""
    from harness.cli import main

    def run(*argv: str) -> subprocess.CompletedProcess:
        capsys.readouterr()  # only this command's output
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["python", "-m", "harness", *argv], code, out, err)

    return run


@pytest.fixture
def in_process_workers(monkeypatch):
    """The local executor's workers (`python -m harness.worker PAYLOAD`) run in this process, through
    harness.worker.main, for tests about what a run writes rather than about its process. Any other
    command the executor starts still gets a real process."""
    import harness.executors
    import harness.worker

    real = harness.executors.subprocess

    class FinishedWorker:
        def __init__(self, returncode: int):
            self.returncode = returncode

        def wait(self, timeout=None) -> int:
            return self.returncode

        def poll(self) -> int:
            return self.returncode

        def send_signal(self, signum) -> None:
            pass

    def popen(args, *rest, **kwargs):
        if list(args[:3]) == [sys.executable, "-m", "harness.worker"] and len(args) == 4:
            return FinishedWorker(harness.worker.main([args[3]]))
        return real.Popen(args, *rest, **kwargs)

    monkeypatch.setattr(harness.executors, "subprocess", types.SimpleNamespace(**(vars(real) | {"Popen": popen})))
