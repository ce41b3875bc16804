"""The static description of a batched task, shared by every method and by the harness."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvSpec:
    """What a method needs to size its networks and what the harness needs to schedule runs.

    `image_shape` is the shape of one observation's pixel stack, `(3 * frame_stack, H, W)`,
    or `None` when the env was made with `render=None`.
    """

    name: str
    num_envs: int
    state_dim: int
    action_dim: int
    episode_length: int
    control_dt: float
    substeps: int
    image_shape: tuple[int, int, int] | None
    frame_stack: int
    reward_range: tuple[float, float]
    render: str | None
