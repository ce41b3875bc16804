"""Discrete regression of scalars (rewards, values) as a categorical over bins in symlog space.

TD-MPC2 (101 bins on [-10, 10]) and DreamerV3 (255 bins on [-20, 20]) both predict logits over
evenly spaced bins in symlog space, train them with cross-entropy against the "two-hot" encoding
of symlog(target) (the two bins around it, weighted by proximity), and decode with
symexp(sum softmax * bins). Targets beyond the range are clamped to its ends. With symmetric bins a
zero logit vector decodes to exactly 0, which is why both zero-initialise these heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


class TwoHot:
    """Bins `linspace(vmin, vmax, num_bins)` in symlog space; encode, decode and cross-entropy."""

    def __init__(self, num_bins: int, vmin: float, vmax: float):
        if num_bins < 2 or not vmax > vmin:
            raise ValueError(f"two-hot needs >= 2 bins and vmax > vmin, got {num_bins} bins on [{vmin}, {vmax}]")
        self.num_bins = num_bins
        self.vmin, self.vmax = float(vmin), float(vmax)
        self.bin_size = (self.vmax - self.vmin) / (num_bins - 1)
        self._bins: dict[tuple, torch.Tensor] = {}

    def bins(self, like: torch.Tensor) -> torch.Tensor:
        key = (like.device, like.dtype)
        if key not in self._bins:
            bins = torch.linspace(self.vmin, self.vmax, self.num_bins, device=like.device, dtype=like.dtype)
            if self._symmetric:  # float linspace is not exactly antisymmetric; make it so
                bins = (bins - bins.flip(0)) / 2
            self._bins[key] = bins
        return self._bins[key]

    @property
    def _symmetric(self) -> bool:
        return self.vmin == -self.vmax and self.num_bins % 2 == 1

    def encode(self, y: torch.Tensor) -> torch.Tensor:
        """y [...] -> weights [..., num_bins]: two adjacent non-zero weights summing to 1, whose
        weighted mean of the bins is symlog(y) clamped to the range."""
        x = symlog(y).clamp(self.vmin, self.vmax)
        position = (x - self.vmin) / self.bin_size
        low = position.floor().clamp(0, self.num_bins - 2)
        upper_weight = (position - low).unsqueeze(-1)
        low = low.long().unsqueeze(-1)
        weights = torch.zeros(*x.shape, self.num_bins, device=y.device, dtype=y.dtype)
        weights.scatter_(-1, low, 1.0 - upper_weight)
        weights.scatter_(-1, low + 1, upper_weight)
        return weights

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """logits [..., num_bins] -> the expected value in symlog space, mapped back: [...]."""
        logits = logits.float()  # bf16 logits (autocast) are decoded in fp32
        weighted = logits.softmax(-1) * self.bins(logits)
        if self._symmetric:  # add mirrored bins pairwise first: equal logits decode to exactly 0
            half = self.num_bins // 2
            weighted = weighted[..., :half].flip(-1) + weighted[..., half + 1 :]
        return symexp(weighted.sum(-1))

    def cross_entropy(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-element cross-entropy of `logits` [..., num_bins] against two-hot(y [...]): [...]."""
        return -(self.encode(y.float()) * F.log_softmax(logits.float(), dim=-1)).sum(-1)
