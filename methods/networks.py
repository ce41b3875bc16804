"""Network blocks shared by the methods: the DrQ-v2 conv encoder and trunk, and the MLPs."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import nn


class PixelEncoder(nn.Module):
    """DrQ-v2 / D.Va conv encoder: uint8 (or float 0..255) [B, C, H, W] -> features.

    Conv(C->32, 3, stride 2) then three Conv(32->32, 3, stride 1), ReLU after each, no padding;
    the flattened size `repr_dim` is computed from the input shape (the reference hard-codes
    32*35*35, i.e. 84x84 only). With `feature_dim` (D.Va's actor) a trunk Linear -> LayerNorm ->
    Tanh follows; without it (DrQ-v2, whose actor and critic each have their own trunk) the flat
    conv features are the output. Orthogonal init (gain sqrt 2 for convs, 1 for the trunk).
    Pixels are scaled to [-0.5, 0.5]; channels-last memory is ~2x faster on CPU.
    """

    def __init__(self, image_shape: tuple[int, int, int], feature_dim: int | None = None, channels: int = 32):
        super().__init__()
        in_channels, height, width = image_shape
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=1), nn.ReLU(),
        )  # fmt: skip
        with torch.no_grad():
            self.repr_dim = self.convs(torch.zeros(1, *image_shape)).numel()
        # (construction order kept: it fixes the random init, and so the reference returns)
        self.trunk = _trunk_layers(self.repr_dim, feature_dim) if feature_dim else None
        for module in self.convs:
            if isinstance(module, nn.Conv2d):
                nn.init.orthogonal_(module.weight, gain=math.sqrt(2))
                nn.init.zeros_(module.bias)
        if self.trunk is not None:
            orthogonal_init_(self.trunk, gain=1.0)
        self.to(memory_format=torch.channels_last)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.dtype == torch.uint8:  # the usual case: scale a fresh float copy in place
            x = pixels.float().div_(255.0).sub_(0.5)
        else:  # float pixels from the differentiable renderer may carry a graph: no in-place ops
            x = pixels / 255.0 - 0.5
        x = x.contiguous(memory_format=torch.channels_last)
        features = self.convs(x).flatten(1)
        return self.trunk(features) if self.trunk is not None else features


def feature_trunk(in_dim: int, feature_dim: int) -> nn.Sequential:
    """DrQ-v2's per-network trunk on the conv features: Linear -> LayerNorm -> Tanh, orthogonal init."""
    return orthogonal_init_(_trunk_layers(in_dim, feature_dim), gain=1.0)


def _trunk_layers(in_dim: int, feature_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())


def mlp(
    in_dim: int, hidden: list[int], out_dim: int, block: Callable[[int, int], list[nn.Module]], output: Callable[[int, int], nn.Module] = nn.Linear
) -> nn.Sequential:
    """One flat Sequential: the modules of `block(d_in, d_out)` per hidden layer, then `output`.

    SHAC/D.Va's, DrQ-v2's and TD-MPC2's MLPs differ in their hidden block (and TD-MPC2's dynamics
    in its output layer); building them here keeps the layer order, and so the parameter names and
    the order of random initialisation, in one place.
    """
    dims = [in_dim, *hidden]
    layers = [module for d_in, d_out in itertools.pairwise(dims) for module in block(d_in, d_out)]
    return nn.Sequential(*layers, output(dims[-1], out_dim))


def elu_layernorm_mlp(in_dim: int, hidden: list[int], out_dim: int) -> nn.Sequential:
    """SHAC/D.Va MLP: hidden layers Linear -> ELU -> LayerNorm, linear output."""
    return mlp(in_dim, hidden, out_dim, lambda d_in, d_out: [nn.Linear(d_in, d_out), nn.ELU(), nn.LayerNorm(d_out)])


def relu_mlp(in_dim: int, hidden: list[int], out_dim: int) -> nn.Sequential:
    """DrQ-v2's actor and Q heads: hidden layers Linear -> ReLU (in place), linear output."""
    return mlp(in_dim, hidden, out_dim, lambda d_in, d_out: [nn.Linear(d_in, d_out), nn.ReLU(inplace=True)])


def orthogonal_init_(module: nn.Module, gain: float = math.sqrt(2)) -> nn.Module:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain=gain)
            nn.init.zeros_(layer.bias)
    return module
