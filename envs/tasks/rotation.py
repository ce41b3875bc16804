"""Quaternion helpers (free-root tasks, the differentiable renderer), in Newton's (x, y, z, w) order, differentiable by torch."""

from __future__ import annotations

import torch


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] of unit quaternions [..., 4] in warp's (x, y, z, w) order."""
    x, y, z, w = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)  # fmt: skip


def quat_rotate(quat: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """Rotate vectors [N, 3] by unit quaternions [N, 4] (xyzw)."""
    xyz, w = quat[:, :3], quat[:, 3:4]
    t = 2.0 * torch.cross(xyz, vec, dim=-1)
    return vec + w * t + torch.cross(xyz, t, dim=-1)


def random_small_rotation(n: int, max_angle: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """[N, 4] quaternions: a rotation by U(-max_angle, max_angle) about a uniformly random axis."""
    axis = torch.randn(n, 3, generator=generator, device=device)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    angle = (torch.rand(n, 1, generator=generator, device=device) * 2 - 1) * max_angle
    return torch.cat([axis * torch.sin(angle / 2), torch.cos(angle / 2)], dim=-1)
