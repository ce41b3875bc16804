"""Running statistics that normalise what a method learns from: observations (SHAC/D.Va's
`RunningMeanStd`) and the spread of returns or values (DreamerV3, TD-MPC2: `PercentileScale`)."""

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


class PercentileScale:
    """max(1, P_high - P_low) of batches (returns or Q values), smoothed by an EMA with weight `rate`.

    The divisor of an advantage or a Q value: it keeps the loss on one scale across tasks without
    blowing up small ones. `smooth="percentiles"` (DreamerV3) smooths the two percentiles, from 0,
    and clamps their range; `smooth="range"` (TD-MPC2) smooths the clamped range itself, from 1.
    `stats` (the smoothed tensor: [2] or []) is what a checkpoint saves. It stays on `device`, so an
    update never waits for the device.
    """

    def __init__(self, low: float, high: float, rate: float, device: torch.device | str, smooth: str = "percentiles"):
        if smooth not in ("percentiles", "range"):
            raise ValueError(f"smooth must be 'percentiles' or 'range', got {smooth!r}")
        self.rate = rate
        self.smooth = smooth
        self.levels = torch.tensor([low, high], device=device)
        self.stats = torch.zeros(2, device=device) if smooth == "percentiles" else torch.ones((), device=device)

    def update(self, batch: torch.Tensor) -> None:
        quantiles = torch.quantile(batch.detach().float().flatten(), self.levels.to(batch.device))
        if self.smooth == "percentiles":
            self.stats.lerp_(quantiles, self.rate)
        else:
            self.stats.lerp_((quantiles[1] - quantiles[0]).clamp(min=1.0), self.rate)

    @property
    def scale(self) -> torch.Tensor:
        if self.smooth == "percentiles":
            return (self.stats[1] - self.stats[0]).clamp(min=1.0)
        return self.stats
