"""A short video of a run's final policy: one deterministic episode of the first evaluation env,
drawn by the task's own camera at a watchable size, written as an animated GIF (imageio).

The policy acts on its own observations (its pixels at its size, or its state); a second env of one
world only draws: it ray-traces the acting env's simulator state at VIDEO_SIZE each agent step, so
the video looks the same for every method whatever it reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

VIDEO_SIZE = 128
MIN_FRAME_MS = 30  # GIF delays are centiseconds and browsers slow anything under 20 ms down: 60 Hz shows every 2nd step


@torch.no_grad()
def record_policy_video(method, eval_env, task: str, path: str | Path, seed: int, size: int = VIDEO_SIZE) -> int:
    """Write `path` (GIF, looping, about real time); returns the number of frames written."""
    import imageio.v3 as iio

    import envs

    camera = envs.make(task, num_envs=1, device=eval_env.device, seed=seed, image_size=size, frame_stack=1, render="raytrace")

    def frame() -> np.ndarray:
        q = eval_env.sim_state[0][:1]
        return camera.renderer.render(q)[0].permute(1, 2, 0).cpu().numpy()

    obs = eval_env.reset(seed=seed)
    method.on_eval_start()
    frames = [frame()]
    for _ in range(eval_env.spec.episode_length):
        obs, _, done, _ = eval_env.step(method.act(obs, deterministic=True))
        if bool(done[0]):  # the env has already reset world 0: its last state is not shown
            break
        frames.append(frame())
    step_ms = 1000 * eval_env.spec.control_dt
    stride = max(1, round(MIN_FRAME_MS / step_ms))
    shown = np.stack(frames[::stride])
    iio.imwrite(path, shown, extension=".gif", duration=round(stride * step_ms, -1), loop=0)
    return len(shown)
