"""A run's host calibration: a few seconds of fixed work measured at the start of every run.

Wall-clock is the paper's main axis, and the same run costs ~1.8x more on one 2-core VM than on
another. Each run records how fast its host does the two kinds of work that dominate a pixel
run: the conv encoder's forward and backward at the run's image size, and simulator steps of a
fixed batch of CartPoles. The report shows them per host and can rescale wall-clock by them
(`harness report --calibrated`), so runs from two machines are compared knowingly.
"""

from __future__ import annotations

import math
import statistics
import time
from functools import lru_cache

import torch

ENCODER_BATCH = 32  # frames per forward+backward (9 channels: 3 stacked RGB frames)
ENCODER_REPEATS = 3
SIM_ENVS, SIM_STEPS = 64, 16


def _median_ms(work, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[1:])


@lru_cache(maxsize=4)
def _simulator(device: str):
    import envs

    return envs.make("cartpole", num_envs=SIM_ENVS, device=device, seed=0, render=None)


def calibrate(image_size: int, device: str | torch.device = "cpu") -> dict:
    """{'encoder_ms', 'sim_step_ms', ...}: median milliseconds of the fixed work on this host now.
    The global random state is left as it was: a run's numbers must not depend on its calibration."""
    device = torch.device(device)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        return _calibrate(image_size, device)


def _calibrate(image_size: int, device: torch.device) -> dict:
    from methods.networks import PixelEncoder

    start = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    encoder = PixelEncoder((9, image_size, image_size), feature_dim=50).to(device)
    pixels = torch.randint(0, 256, (ENCODER_BATCH, 9, image_size, image_size), generator=generator, dtype=torch.uint8).to(device)

    def encoder_step():
        encoder.zero_grad(set_to_none=True)
        encoder(pixels).square().mean().backward()

    encoder_ms = _median_ms(encoder_step, ENCODER_REPEATS, device)
    env = _simulator(str(device))
    env.reset()
    action = torch.zeros(SIM_ENVS, env.spec.action_dim, device=device)

    def sim_steps():
        with torch.no_grad():
            for _ in range(SIM_STEPS):
                env.step(action)
        env.detach()

    sim_step_ms = _median_ms(sim_steps, 2, device) / SIM_STEPS
    return {
        "encoder_ms": round(encoder_ms, 3),
        "encoder_work": f"PixelEncoder forward+backward, batch {ENCODER_BATCH} x 9 x {image_size} x {image_size}",
        "sim_step_ms": round(sim_step_ms, 4),
        "sim_work": f"cartpole, {SIM_ENVS} envs, state only, one control step",
        "torch_threads": torch.get_num_threads(),
        "seconds": round(time.perf_counter() - start, 2),
    }


def slowness(calibration: dict, reference: dict) -> float:
    """How many seconds of the reference host one second of this host's work is worth, inverted: the
    geometric mean of the two measured time ratios (this host / reference). > 1: a slower host."""
    return math.sqrt((calibration["encoder_ms"] / reference["encoder_ms"]) * (calibration["sim_step_ms"] / reference["sim_step_ms"]))
