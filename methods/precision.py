"""Numeric precision of the pixel methods' updates and acting: "fp32" or bf16 autocast."""

from __future__ import annotations

import torch

PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> None:
    """Refuse an unknown precision when the agent is built, not at its first update."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """bf16 autocast on `device` when precision is "bf16", a no-op context for "fp32".

    No weight cache: weights change between updates, and a bf16 copy cached under no_grad (a
    target computed before the actor step) would carry no graph into the actor's loss (torch#65766).
    """
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False)
