"""Running mean and variance of observations (SHAC/D.Va `RunningMeanStd`)."""

from __future__ import annotations

import copy

import torch


class RunningMeanStd:
    """Parallel-variance running statistics; mean 0, var 1, count 1e-4 at start (as the reference).

    Batch variance is the biased one, normalize(x) = (x - mean) / sqrt(var + 1e-5), no clipping.
    """

    def __init__(self, shape: tuple[int, ...], device: torch.device | str = "cpu", epsilon: float = 1e-4):
        self.mean = torch.zeros(shape, dtype=torch.float32, device=device)
        self.var = torch.ones(shape, dtype=torch.float32, device=device)
        self.count = epsilon

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        batch = batch.reshape(-1, *self.mean.shape).float()
        batch_mean, batch_var, batch_count = batch.mean(0), batch.var(0, unbiased=False), batch.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta.square() * self.count * batch_count / total
        self.var = m2 / total
        self.count = total

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / torch.sqrt(self.var + 1e-5)

    def copy(self) -> RunningMeanStd:
        return copy.deepcopy(self)

    def state_dict(self) -> dict:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean = state["mean"].to(self.mean.device)
        self.var = state["var"].to(self.var.device)
        self.count = float(state["count"])
