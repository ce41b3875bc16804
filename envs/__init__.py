"""Batched, differentiable, rendered tasks on Newton. Entry point: `envs.make`."""

from __future__ import annotations

import torch
import warp as wp

wp.config.log_level = wp.LOG_WARNING  # before any kernel load: at INFO warp logs every module it loads

from envs.action_repeat import ActionRepeat
from envs.batched_env import DiffVisualEnv
from envs.spec import EnvSpec
from envs.tasks import available_tasks, get_task

__all__ = ["ActionRepeat", "DiffVisualEnv", "EnvSpec", "make", "available_tasks"]


def make(
    name: str,
    num_envs: int = 64,
    device: str | torch.device = "cpu",
    seed: int = 0,
    image_size: int = 84,
    frame_stack: int = 3,
    render: str | None = "raytrace",
    supersample: int = 1,
    crop_static_rows: bool = False,
    pixel_grad: bool = True,
    action_repeat: int = 1,
) -> DiffVisualEnv | ActionRepeat:
    """Build `num_envs` worlds of task `name` on `device` (see DESIGN.md, "The environment contract").

    `render="raytrace"` adds `obs["pixels"]` (uint8 `[N, 3*frame_stack, H, W]`, oldest frame
    first, no gradient); `render="differentiable"` gives float pixels in [0, 255] of the paper's
    PyTorch3D scene (meshes, Phong, point light, floor and sky; envs/diff_render.py) that carry
    gradients to the simulator state (SHAC's side of the comparison; `pixel_grad=False` renders
    them without a graph, D.Va's like-for-like setting);
    `render=None` gives state observations only (the cheapest mode).
    `supersample=k` traces at k x `image_size` and averages k x k blocks (anti-aliasing for
    small images; the cost is that of tracing the larger image).
    `crop_static_rows=True` drops the image rows the task's bodies can never reach (they show the
    fixed backdrop only): `image_size` columns by fewer rows, the same information, a cheaper encoder.
    `action_repeat=k > 1` (the replay-based baselines) acts every k control steps, sums the rewards
    and stacks `frame_stack` frames seen at agent steps (envs/action_repeat.py); no gradients.
    """
    if action_repeat != 1:
        if isinstance(action_repeat, bool) or not isinstance(action_repeat, int) or action_repeat < 1:
            raise ValueError(f"action_repeat must be an int >= 1, got {action_repeat!r}")
        inner = DiffVisualEnv(get_task(name), num_envs, device, seed, image_size, 1, render, supersample, crop_static_rows, pixel_grad)
        return ActionRepeat(inner, action_repeat, frame_stack)
    return DiffVisualEnv(get_task(name), num_envs, device, seed, image_size, frame_stack, render, supersample, crop_static_rows, pixel_grad)
