"""DreamerV3 (Hafner et al. 2023, the v1 paper that the NM512 torch port and D.Va follow) from pixels:
a recurrent world model learned from replayed sequences, and an actor-critic trained on its
imagined rollouts. Checklist: reference/baselines.md section 2 (components, sizes, settings).

World model (one update on a batch of 16 chunks x 64 consecutive timesteps, which may cross
episodes; `is_first` resets the latent state there):
  - CNN encoder of the 64 x 64 frame (stride-2 kernel-4 convs, channels depth x 1, 2, 4, 8 down to
    4 x 4, LayerNorm over channels + SiLU), RSSM with a LayerNorm GRU (deterministic h, 512 in S)
    and 32 categorical variables x 32 classes (z, 1% unimix, straight-through one-hot samples);
    the prior p(z | h) from h, the posterior q(z | h, embed);
  - heads on the feature [z, h]: a transposed-CNN decoder (MSE summed over pixels, pixels in
    [0, 1]), a reward head and a continue head (Bernoulli on the stored discount: 0 only at a
    termination, so a time limit keeps its bootstrap);
  - loss = image + reward + continue + 0.5 max(1, KL[sg q || p]) + 0.1 max(1, KL[q || sg p]);
    Adam lr 1e-4, eps 1e-8, global-norm clip 1000.
Behaviour (from every posterior state of the batch, detached, 16 x 64 = 1024 starts; or from
`imagine_starts` of them drawn at random, a CPU-cost knob):
  - imagine 15 steps with the actor (actions reparameterised; the actor reads detached features,
    its gradient flows back through the dynamics), predict rewards, continues (gamma 0.997 times
    the continue head's mode, p > 0.5, as the official code has it: NM512 uses the probability,
    whose gradient pays the actor for ending episodes of negative imagined value) and values;
  - lambda-returns (lambda 0.95) bootstrapped with the online critic; weights: the cumulative
    product of the predicted discounts;
  - actor loss: -weights * ((R - v) / S + 3e-4 entropy), S = max(1, EMA(P95) - EMA(P5)) of the
    returns (decay 0.99); the baseline v is not detached, as in the reference. `actor_grad:
    reinforce` is the Nature version's estimator instead: -weights * (sg((R - v) / S) log pi(a) +
    3e-4 entropy) on a rollout without gradient;
  - critic: two-hot cross-entropy to R (detached) plus 1 x cross-entropy to the slow critic's
    prediction, the slow critic an EMA of the critic (mix 0.02 per update); Adam lr 3e-5, eps
    1e-5, clip 100 for both.
Reward and critic heads predict 255 logits over bins on [-20, 20] in symlog space, decoded with
symexp; their output layers start at zero, so both predict exactly 0 at initialisation.
Acting: per env the latent state and previous action are carried; a sampled action in training
and the mean in evaluation. `prefill` uniform agent steps first, then `pretrain_updates` updates
at once, then train_ratio / (16 x 64) updates per agent step (512: one update per 2 agent steps).

Where this differs from the reference (README, "DreamerV3"): the observation is the env's last
frame only (frame_stack 1, as D.Va's configuration reads only the last RGB frame of its stack);
the `cpu` preset is smaller than the paper's S model and uses DreamerV2's learning rates, 64
imagination starts and 8 x 32 chunks (chosen by measurement, README); images may be a band of
rows narrower than wide (`crop_static_rows`), padded inside the CNN; the `cpu` preset adds a
penalty 1e-3 * mean(mu^2) on the actor's pre-tanh mean (`actor_mean_reg`, as the original SAC code
has): without it an untrained model's tiny but consistent gradient, which Adam scales up to full
steps, saturates tanh(mu) within ~20-100 updates and CartPole's early termination keeps it there;
no torch.compile; optional bf16 autocast.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from methods.base import PhaseClock
from methods.discrete_regression import TwoHot
from methods.normalization import PercentileScale
from methods.precision import PRECISIONS, autocast, check_precision
from methods.replay import FrameReplay
from methods.replay_agent import ReplayAgent
from methods.returns import lambda_returns
from methods.update_credit import UpdateCredit

# baselines.md 2.1, "Model sizes": GRU (deter), CNN multiplier (depth), dense units, MLP layers.
MODEL_SIZES: dict[str, dict[str, int]] = {
    "XS": {"deter": 256, "depth": 24, "units": 256, "layers": 1},
    "S": {"deter": 512, "depth": 32, "units": 512, "layers": 2},
    "M": {"deter": 1024, "depth": 48, "units": 640, "layers": 3},
    "L": {"deter": 2048, "depth": 64, "units": 768, "layers": 4},
    "XL": {"deter": 4096, "depth": 96, "units": 1024, "layers": 5},
}
MIN_RESOLUTION = 4  # the encoder halves the image down to a grid 4-7 cells wide


@dataclass
class DreamerV3Config:
    # Environment (D.Va's profile: 64 x 64, 4 envs, action repeat 2; the last frame only).
    num_envs: int = 4
    image_size: int = 64
    supersample: int = 1
    # Drop the rows only the static backdrop ever fills (envs.make): a band of H < W rows, which
    # the CNN pads back to a multiple of its stride (a CPU-preset knob; the reference sees it all).
    crop_static_rows: bool = False
    frame_stack: int = 1
    action_repeat: int = 2
    # Model (baselines.md 2.1).
    model_size: str = "S"
    stoch: int = 32
    classes: int = 32
    unimix: float = 0.01
    num_bins: int = 255
    bin_limit: float = 20.0
    norm_eps: float = 1e-3
    gru_update_bias: float = -1.0
    actor_min_std: float = 0.1
    actor_max_std: float = 1.0
    # World-model loss.
    dyn_scale: float = 0.5
    rep_scale: float = 0.1
    free_nats: float = 1.0
    # Behaviour learning.
    horizon: int = 15
    # Imagination starts per update: 0 (the reference) starts from every posterior state of the
    # batch; N > 0 from N of them drawn uniformly without replacement (a CPU-cost knob).
    imagine_starts: int = 0
    discount: float = 0.997
    return_lambda: float = 0.95
    actor_entropy: float = 3e-4
    # How the actor's gradient is estimated. "dynamics" (the v1 paper and the NM512 port for
    # continuous actions): backpropagate the normalised advantage through the imagined dynamics.
    # "reinforce" (the Nature 2025 version, for all action spaces): the score function of the
    # sampled actions times the normalised advantage, with the rollout itself free of gradients.
    actor_grad: str = "dynamics"
    # Weight of a penalty on the squared pre-tanh mean, mean over states of sum(mu^2) (0: none, as in
    # the reference; the `cpu` preset uses 1e-3, as the original SAC code did). It keeps tanh(mu)
    # out of saturation while the model's gradient is still noise (README, "DreamerV3").
    actor_mean_reg: float = 0.0
    return_norm_decay: float = 0.99
    return_norm_low: float = 0.05
    return_norm_high: float = 0.95
    slow_critic_fraction: float = 0.02
    slow_critic_every: int = 1
    slow_critic_reg: float = 1.0
    # Optimisation.
    model_lr: float = 1e-4
    model_eps: float = 1e-8
    model_grad_clip: float = 1000.0
    actor_lr: float = 3e-5
    critic_lr: float = 3e-5
    ac_eps: float = 1e-5
    ac_grad_clip: float = 100.0
    batch_size: int = 16
    batch_length: int = 64
    train_ratio: float = 512.0  # replayed timesteps per agent step
    prefill: int = 2500  # agent steps (summed over envs) of uniform actions before training
    pretrain_updates: int = 100
    replay_capacity: int = 1_000_000
    # "fp32" (the reference's default) or "bf16": autocast of the updates and acting.
    precision: str = "fp32"
    vector_steps_per_iteration: int = 8  # env steps per `iterate` call (logging granularity)
    # The open-loop reconstruction written after each evaluation (reconstruction.npz).
    video_sequences: int = 4
    video_context: int = 5
    video_length: int = 16


# -- building blocks ---------------------------------------------------------------------------------
def _fans(weight: torch.Tensor, transposed: bool = False) -> tuple[int, int]:
    space = int(np.prod(weight.shape[2:])) if weight.dim() > 2 else 1
    out_ch, in_ch = weight.shape[:2]
    if transposed:
        in_ch, out_ch = out_ch, in_ch
    return in_ch * space, out_ch * space


def trunc_normal_fan_avg_(module: nn.Module) -> None:
    """The reference's default init: truncated normal (at 2 std) with variance 1 / mean(fan_in,
    fan_out), corrected for the truncation; zero bias."""
    fan_in, fan_out = _fans(module.weight, isinstance(module, nn.ConvTranspose2d))
    std = math.sqrt(1.0 / ((fan_in + fan_out) / 2)) / 0.87962566103423978
    nn.init.trunc_normal_(module.weight, 0.0, std, -2 * std, 2 * std)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def uniform_fan_avg_(module: nn.Module, outscale: float) -> None:
    """Output layers: uniform with variance outscale / mean(fan_in, fan_out); outscale 0 gives zeros."""
    fan_in, fan_out = _fans(module.weight, isinstance(module, nn.ConvTranspose2d))
    limit = math.sqrt(3 * outscale / ((fan_in + fan_out) / 2))
    nn.init.uniform_(module.weight, -limit, limit)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def dense(in_dim: int, out_dim: int, eps: float) -> nn.Sequential:
    """Linear (no bias: a norm follows) -> LayerNorm -> SiLU."""
    return nn.Sequential(nn.Linear(in_dim, out_dim, bias=False), nn.LayerNorm(out_dim, eps=eps), nn.SiLU())


class MLPHead(nn.Module):
    """`layers` dense blocks, then a linear output initialised uniform with `outscale`."""

    def __init__(self, in_dim: int, units: int, layers: int, out_dim: int, eps: float, outscale: float):
        super().__init__()
        dims = [in_dim] + [units] * layers
        self.hidden = nn.Sequential(*[dense(a, b, eps) for a, b in zip(dims[:-1], dims[1:])])
        self.out = nn.Linear(dims[-1], out_dim)
        self.hidden.apply(lambda m: trunc_normal_fan_avg_(m) if isinstance(m, nn.Linear) else None)
        uniform_fan_avg_(self.out, outscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x))


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of each pixel (the reference's image LayerNorm)."""

    def __init__(self, channels: int, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _stages(image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """(halvings, padded height, padded width). As the reference's CNN, the number of stride-2
    stages is floor(log2(width / 4)), so the last grid is 4-7 cells wide (32 and 64 px: 4 x 4;
    48 px: 6 x 6; 84 px: 6 x 6). The image is zero-padded (mid-grey after centring) at the bottom
    and right to a multiple of 2^stages, so every halving is exact and the decoder mirrors it;
    a `crop_static_rows` band (fewer rows than columns) is padded the same way."""
    height, width = image_shape[1], image_shape[2]
    if width < 2 * MIN_RESOLUTION:
        raise ValueError(f"DreamerV3's CNN needs images at least {2 * MIN_RESOLUTION} px wide, got {width}")
    if not 1 <= height <= width:
        raise ValueError(f"DreamerV3's CNN takes images at most as tall as wide, got {height} x {width}")
    stages = int(math.floor(math.log2(width / MIN_RESOLUTION)))
    block = 2**stages
    return stages, -(-height // block) * block, -(-width // block) * block


class ConvEncoder(nn.Module):
    """uint8 [N, C, H, W] -> [N, 8 depth * h * w]: kernel-4 stride-2 'same' convs, depth x 2^i
    channels, on the image zero-padded (mid-grey) at the bottom and right as `_stages` says."""

    def __init__(self, image_shape: tuple[int, int, int], depth: int, eps: float):
        super().__init__()
        channels = image_shape[0]
        stages, padded_rows, padded_cols = _stages(image_shape)
        self.pad_rows, self.pad_cols = padded_rows - image_shape[1], padded_cols - image_shape[2]
        layers: list[nn.Module] = []
        for i in range(stages):
            out = depth * 2**i
            conv = nn.Conv2d(channels, out, 4, stride=2, padding=1, bias=False)
            trunc_normal_fan_avg_(conv)
            layers += [conv, ChannelNorm(out, eps), nn.SiLU()]
            channels = out
        self.convs = nn.Sequential(*layers)
        self.out_dim = channels * (padded_rows // 2**stages) * (padded_cols // 2**stages)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float() / 255.0 - 0.5
        if self.pad_rows or self.pad_cols:  # no copy for images the CNN takes as they are
            x = F.pad(x, (0, self.pad_cols, 0, self.pad_rows))
        return self.convs(x).flatten(1)


class ConvDecoder(nn.Module):
    """feature [N, F] -> image mean [N, C, H, W] in [0, 1] units (a Linear to the encoder's last
    grid, then transposed convs mirroring the encoder; the last one has a bias and no norm). It
    decodes the encoder's padded image and drops the padding rows and columns."""

    def __init__(self, feat_dim: int, image_shape: tuple[int, int, int], depth: int, eps: float):
        super().__init__()
        stages, padded_rows, padded_cols = _stages(image_shape)
        self.rows, self.cols = image_shape[1], image_shape[2]
        self.min_rows, self.min_cols = padded_rows // 2**stages, padded_cols // 2**stages
        self.channels = depth * 2 ** (stages - 1)
        self.linear = nn.Linear(feat_dim, self.channels * self.min_rows * self.min_cols)
        trunc_normal_fan_avg_(self.linear)
        layers: list[nn.Module] = []
        channels = self.channels
        for i in range(stages):
            last = i == stages - 1
            out = image_shape[0] if last else channels // 2
            deconv = nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1, bias=last)
            if last:
                uniform_fan_avg_(deconv, 1.0)
                layers.append(deconv)
            else:
                trunc_normal_fan_avg_(deconv)
                layers += [deconv, ChannelNorm(out, eps), nn.SiLU()]
            channels = out
        self.deconvs = nn.Sequential(*layers)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        x = self.linear(feat).view(-1, self.channels, self.min_rows, self.min_cols)
        return self.deconvs(x)[..., : self.rows, : self.cols] + 0.5


class LayerNormGRUCell(nn.Module):
    """The reference's GRU: one bias-free Linear on [input, h] -> LayerNorm -> reset, candidate,
    update gates; the update gate's pre-activation is shifted by -1 (keep the state early on)."""

    def __init__(self, input_dim: int, size: int, eps: float, update_bias: float):
        super().__init__()
        self.linear = nn.Linear(input_dim + size, 3 * size, bias=False)
        self.norm = nn.LayerNorm(3 * size, eps=eps)
        self.update_bias = update_bias
        trunc_normal_fan_avg_(self.linear)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        reset, candidate, update = self.norm(self.linear(torch.cat([x, h], -1))).chunk(3, -1)
        candidate = torch.tanh(torch.sigmoid(reset) * candidate)
        update = torch.sigmoid(update + self.update_bias)
        return update * candidate + (1 - update) * h


def unimix_logits(logits: torch.Tensor, mix: float) -> torch.Tensor:
    """log of (1 - mix) softmax(logits) + mix / K over the last axis: every class keeps >= mix / K."""
    probs = logits.float().softmax(-1)
    if mix > 0:
        probs = (1 - mix) * probs + mix / probs.shape[-1]
    return probs.log()


def sample_one_hot(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A one-hot sample of each categorical (last axis), with the straight-through gradient of the
    probabilities: forward value one-hot, gradient d probs."""
    probs = logits.exp()
    # Inverse-CDF draw: one uniform per categorical (torch.multinomial draws one exponential per
    # class, and was 9% of an update on the CPU).
    with torch.no_grad():
        cdf = probs.float().cumsum(-1)
        u = torch.rand(*probs.shape[:-1], 1, generator=generator, device=probs.device) * cdf[..., -1:]
        index = (cdf < u).sum(-1, keepdim=True).clamp_(max=probs.shape[-1] - 1)
    one_hot = torch.zeros_like(probs).scatter_(-1, index, 1.0)
    return one_hot + (probs - probs.detach())  # exactly one-hot forward


def categorical_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL[p || q] of categoricals given as log-probabilities [..., S, K], summed over the S variables."""
    return (p_logits.exp() * (p_logits - q_logits)).sum((-2, -1))


def kl_loss(post_logits: torch.Tensor, prior_logits: torch.Tensor, free: float, dyn_scale: float, rep_scale: float):
    """KL balancing with free bits: dyn_scale max(free, KL[sg q || p]) + rep_scale max(free, KL[q || sg p]).

    Below `free` nats a term is a constant (zero gradient); the dynamics term trains only the prior,
    the representation term only the posterior. Returns (loss, dyn KL, rep KL), each [...]."""
    dyn = categorical_kl(post_logits.detach(), prior_logits)
    rep = categorical_kl(post_logits, prior_logits.detach())
    loss = dyn_scale * dyn.clamp(min=free) + rep_scale * rep.clamp(min=free)
    return loss, dyn, rep


@dataclass
class LatentState:
    deter: torch.Tensor  # [N, deter]
    stoch: torch.Tensor  # [N, stoch, classes] one-hot (with straight-through gradient)

    def feature(self) -> torch.Tensor:
        return torch.cat([self.stoch.flatten(-2), self.deter], -1)


class RSSM(nn.Module):
    def __init__(self, cfg: DreamerV3Config, size: dict[str, int], action_dim: int, embed_dim: int):
        super().__init__()
        deter, units, eps = size["deter"], size["units"], cfg.norm_eps
        self.stoch, self.classes, self.unimix = cfg.stoch, cfg.classes, cfg.unimix
        latent = cfg.stoch * cfg.classes
        self.img_in = dense(latent + action_dim, units, eps)
        self.gru = LayerNormGRUCell(units, deter, eps, cfg.gru_update_bias)
        self.img_out = dense(deter, units, eps)
        self.obs_out = dense(deter + embed_dim, units, eps)
        self.img_stat = nn.Linear(units, latent)
        self.obs_stat = nn.Linear(units, latent)
        for block in (self.img_in, self.img_out, self.obs_out):
            trunc_normal_fan_avg_(block[0])
        uniform_fan_avg_(self.img_stat, 1.0)
        uniform_fan_avg_(self.obs_stat, 1.0)
        self.initial_deter = nn.Parameter(torch.zeros(deter))  # learned: h_0 = tanh(W)
        self.feature_dim = latent + deter

    def _logits(self, layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        return unimix_logits(layer(x).view(*x.shape[:-1], self.stoch, self.classes), self.unimix)

    def initial(self, n: int) -> LatentState:
        """h_0 = tanh(W); z_0 = the mode of the prior at h_0."""
        deter = torch.tanh(self.initial_deter).expand(n, -1)
        logits = self._logits(self.img_stat, self.img_out(deter))
        stoch = F.one_hot(logits.argmax(-1), self.classes).to(deter.dtype)
        return LatentState(deter, stoch)

    def prior_step(self, state: LatentState, action: torch.Tensor, generator=None, sample: bool = True):
        """h' = GRU([z, a], h), prior logits from h'; returns (state with a sampled z' or None, logits)."""
        x = self.img_in(torch.cat([state.stoch.flatten(-2), action], -1))
        deter = self.gru(x, state.deter)
        logits = self._logits(self.img_stat, self.img_out(deter))
        stoch = sample_one_hot(logits, generator) if sample else None
        return LatentState(deter, stoch), logits

    def posterior_step(self, state: LatentState | None, action: torch.Tensor, embed: torch.Tensor, is_first: torch.Tensor, generator=None):
        """One observed step: where `is_first`, start from the initial state with a zero action.
        Returns (posterior state, posterior logits, prior logits)."""
        n = embed.shape[0]
        initial = self.initial(n)
        if state is None:
            state, action = initial, torch.zeros_like(action)
        else:
            first = is_first.to(embed.dtype).view(n, 1)
            state = LatentState(
                deter=first * initial.deter + (1 - first) * state.deter,
                stoch=first.unsqueeze(-1) * initial.stoch + (1 - first.unsqueeze(-1)) * state.stoch,
            )
            action = action * (1 - first)
        prior, prior_logits = self.prior_step(state, action, sample=False)
        post_logits = self._logits(self.obs_stat, self.obs_out(torch.cat([prior.deter, embed], -1)))
        return LatentState(prior.deter, sample_one_hot(post_logits, generator)), post_logits, prior_logits

    def observe(self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor, generator=None):
        """Posterior over a batch of chunks [T, B, ...] from the initial state: (states, post, prior logits)."""
        state = None
        deters, stochs, posts, priors = [], [], [], []
        for t in range(embed.shape[0]):
            state, post, prior = self.posterior_step(state, action[t], embed[t], is_first[t], generator)
            deters.append(state.deter)
            stochs.append(state.stoch)
            posts.append(post)
            priors.append(prior)
        return LatentState(torch.stack(deters), torch.stack(stochs)), torch.stack(posts), torch.stack(priors)


class Actor(nn.Module):
    """Gaussian policy: mean tanh(mu), std in [min_std, max_std] via sigmoid(x + 2); samples are
    scaled into [-1, 1] by a detached factor (the reference's absmax 1)."""

    def __init__(self, feat_dim: int, action_dim: int, size: dict[str, int], cfg: DreamerV3Config):
        super().__init__()
        self.net = MLPHead(feat_dim, size["units"], size["layers"], 2 * action_dim, cfg.norm_eps, outscale=1.0)
        self.min_std, self.max_std = cfg.actor_min_std, cfg.actor_max_std

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre_tanh_mean, std = self.pre_tanh(feat)
        return torch.tanh(pre_tanh_mean), std

    def pre_tanh(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean before its tanh, and the std."""
        mean, std = self.net(feat).float().chunk(2, -1)
        return mean, (self.max_std - self.min_std) * torch.sigmoid(std + 2.0) + self.min_std

    @staticmethod
    def draw(mean: torch.Tensor, std: torch.Tensor, generator=None) -> torch.Tensor:
        """An unbounded sample of N(mean, std): what REINFORCE scores."""
        return mean + std * torch.randn(mean.shape, generator=generator, device=mean.device)

    @staticmethod
    def bound(action: torch.Tensor) -> torch.Tensor:
        """Scale a sample into [-1, 1] by a detached factor (the action the env or model receives)."""
        return action * (1.0 / action.abs().clamp(min=1.0)).detach()

    @classmethod
    def sample(cls, mean: torch.Tensor, std: torch.Tensor, generator=None) -> torch.Tensor:
        return cls.bound(cls.draw(mean, std, generator))

    @staticmethod
    def log_prob(mean: torch.Tensor, std: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """log N(action; mean, std) summed over action dimensions."""
        return (-0.5 * ((action - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)

    @staticmethod
    def entropy(std: torch.Tensor) -> torch.Tensor:
        return (0.5 * math.log(2 * math.pi * math.e) + std.log()).sum(-1)


class WorldModel(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], action_dim: int, cfg: DreamerV3Config):
        super().__init__()
        size = MODEL_SIZES[cfg.model_size]
        self.encoder = ConvEncoder(image_shape, size["depth"], cfg.norm_eps)
        self.rssm = RSSM(cfg, size, action_dim, self.encoder.out_dim)
        feat = self.rssm.feature_dim
        self.decoder = ConvDecoder(feat, image_shape, size["depth"], cfg.norm_eps)
        self.reward = MLPHead(feat, size["units"], size["layers"], cfg.num_bins, cfg.norm_eps, outscale=0.0)
        self.cont = MLPHead(feat, size["units"], size["layers"], 1, cfg.norm_eps, outscale=1.0)


# -- the agent ---------------------------------------------------------------------------------------
class DreamerV3(ReplayAgent):
    name = "dreamerv3"
    config_cls = DreamerV3Config
    stacks_frames = False  # one frame per step, as published: the RSSM's state is the memory
    precisions = PRECISIONS
    model_sizes = tuple(MODEL_SIZES)
    # A 30-minute CPU run collects a few thousand control steps: evaluate often enough for a curve.
    default_eval_every_steps = 2048
    default_eval_episodes = 8
    # bench-updates: a short prefill and a single pretraining update before the timed ones.
    bench_overrides = {"prefill": 64, "pretrain_updates": 1}

    def __init__(self, spec, config: DreamerV3Config, device: str | torch.device = "cpu", seed: int = 0):
        if spec.image_shape is None:
            raise ValueError("dreamerv3 learns from pixels: build the env with render='raytrace'")
        cfg = config
        if cfg.model_size not in MODEL_SIZES:
            raise ValueError(f"unknown DreamerV3 model_size {cfg.model_size!r}; available: {', '.join(MODEL_SIZES)}")
        check_precision(cfg.precision)
        if cfg.batch_size < 1 or cfg.batch_length < 2 or cfg.horizon < 1:
            raise ValueError(f"need batch_size >= 1, batch_length >= 2 and horizon >= 1, got {cfg.batch_size}, {cfg.batch_length}, {cfg.horizon}")
        if cfg.actor_grad not in ("dynamics", "reinforce"):
            raise ValueError(f"actor_grad must be 'dynamics' or 'reinforce', got {cfg.actor_grad!r}")
        if cfg.actor_mean_reg < 0:
            raise ValueError(f"actor_mean_reg must be >= 0 (0: no penalty on the pre-tanh mean), got {cfg.actor_mean_reg}")
        if cfg.imagine_starts < 0:
            raise ValueError(f"imagine_starts must be >= 0 (0: every posterior state of the batch), got {cfg.imagine_starts}")
        if cfg.train_ratio <= 0 or cfg.prefill < 0 or cfg.pretrain_updates < 0:
            raise ValueError(f"need train_ratio > 0, prefill >= 0 and pretrain_updates >= 0, got {cfg.train_ratio}, {cfg.prefill}, {cfg.pretrain_updates}")
        if spec.frame_stack != 1:
            raise ValueError(f"dreamerv3 reads one frame per step (its RSSM carries the memory): frame_stack must be 1, got {spec.frame_stack}")
        self.config = cfg
        self.device = torch.device(device)
        self.seed = seed
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)  # replay sampling (CPU)
        self.train_generator = torch.Generator(device=self.device).manual_seed(seed + 1)  # latents, actions
        self.eval_generator = torch.Generator(device=self.device).manual_seed(seed + 2)
        self.action_dim = spec.action_dim
        size = MODEL_SIZES[cfg.model_size]
        self.wm = WorldModel(spec.image_shape, spec.action_dim, cfg).to(self.device)
        feat = self.wm.rssm.feature_dim
        self.actor = Actor(feat, spec.action_dim, size, cfg).to(self.device)
        self.critic = MLPHead(feat, size["units"], size["layers"], cfg.num_bins, cfg.norm_eps, outscale=0.0).to(self.device)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.two_hot = TwoHot(cfg.num_bins, -cfg.bin_limit, cfg.bin_limit)
        self.model_optim = torch.optim.Adam(self.wm.parameters(), lr=cfg.model_lr, eps=cfg.model_eps)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, eps=cfg.ac_eps)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, eps=cfg.ac_eps)
        # EMA (decay 0.99, from 0) of the 5th and 95th percentiles of the lambda-returns; the
        # advantage is divided by max(1, P95 - P5), so small returns are not blown up.
        self.return_scale = PercentileScale(cfg.return_norm_low, cfg.return_norm_high, 1.0 - cfg.return_norm_decay, self.device)
        self.replay = FrameReplay(spec.num_envs, cfg.replay_capacity, tuple(spec.image_shape), spec.action_dim, 1)
        self.updates_per_agent_step = cfg.train_ratio / (cfg.batch_size * cfg.batch_length)
        self.update_credit = UpdateCredit(self.updates_per_agent_step, burst_replaces_step=False)
        self.agent_steps = 0  # summed over envs
        self.control_steps = 0
        self.updates = 0
        self._collect_until = cfg.prefill
        self._obs: dict[str, torch.Tensor] | None = None
        self._episode_start: torch.Tensor | None = None
        self._latent: dict[str, tuple[LatentState, torch.Tensor] | None] = {"train": None, "eval": None}

    def num_parameters(self) -> dict[str, int]:
        """Trainable parameters per part (the slow critic is a copy, not counted)."""
        count = lambda module: sum(p.numel() for p in module.parameters() if p.requires_grad)  # noqa: E731
        parts = {"encoder": self.wm.encoder, "rssm": self.wm.rssm, "decoder": self.wm.decoder, "reward": self.wm.reward,
                 "continue": self.wm.cont, "actor": self.actor, "critic": self.critic}  # fmt: skip
        counts = {name: count(module) for name, module in parts.items()}
        return counts | {"total": sum(counts.values())}

    def autocast(self) -> torch.autocast:
        return autocast(self.device, self.config.precision)

    # -- acting ---------------------------------------------------------------------------------
    @torch.no_grad()
    def policy(self, pixels: torch.Tensor, episode_start: torch.Tensor, key: str, deterministic: bool, generator) -> torch.Tensor:
        """Filter the new observation into the env's latent state, then act from its feature."""
        with self.autocast():
            previous = self._latent[key]
            state, action = (None, torch.zeros(pixels.shape[0], self.action_dim, device=self.device)) if previous is None else previous
            embed = self.wm.encoder(pixels.to(self.device))
            state, _, _ = self.wm.rssm.posterior_step(state, action, embed, episode_start.to(self.device), generator)
            mean, std = self.actor(state.feature())
            action = mean if deterministic else Actor.sample(mean, std, generator)
        action = action.float()
        self._latent[key] = (LatentState(state.deter.float(), state.stoch.float()), action)
        return action

    def on_eval_start(self) -> None:
        self._latent["eval"] = None
        self.eval_generator.manual_seed(self.seed + 2)

    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = True) -> torch.Tensor:
        pixels = obs["pixels"]
        start = torch.zeros(pixels.shape[0], dtype=torch.bool)
        return self.policy(pixels, start, "eval", deterministic, self.eval_generator)

    def _explore(self, obs: dict[str, torch.Tensor], num_envs: int) -> torch.Tensor:
        if self.agent_steps < self.config.prefill:
            return torch.rand(num_envs, self.action_dim, generator=self.generator).mul_(2).sub_(1).to(self.device)
        return self.policy(obs["pixels"], self._episode_start, "train", False, self.train_generator)

    def _train_after_step(self, num_envs: int, control_steps: int, phases: dict[str, float]) -> dict[str, float] | None:
        self.agent_steps += num_envs
        self.control_steps += num_envs * control_steps
        if self.agent_steps < self._collect_until or int(self.replay.count.min()) < self.config.batch_length:
            return None
        metrics = None
        for _ in range(self.update_credit.owed(num_envs, burst=self.config.pretrain_updates)):
            metrics = self.update(phases)
        return metrics

    def _iteration_metrics(self) -> dict[str, float]:
        return {"updates": float(self.updates), "replay_timesteps": float(len(self.replay)),
                "return_scale": float(self.return_scale.scale)}  # fmt: skip

    # -- the update -----------------------------------------------------------------------------
    def update(self, phases: dict[str, float] | None = None) -> dict[str, float]:
        """One world-model step on a batch of chunks, then one actor and one critic step on
        rollouts imagined from every posterior state of the batch."""
        cfg = self.config
        lap = PhaseClock({} if phases is None else phases).lap
        batch = self.replay.sample_chunks(cfg.batch_size, cfg.batch_length, self.generator)
        data = {k: getattr(batch, k).transpose(0, 1).to(self.device) for k in ("obs", "action", "reward", "discount", "is_first")}
        lap("replay_sample")
        with self.autocast():
            metrics, post = self.train_world_model(data)
        lap("model_update")
        start = LatentState(post.deter.detach().flatten(0, 1), post.stoch.detach().flatten(0, 1))
        if 0 < cfg.imagine_starts < start.deter.shape[0]:
            chosen = torch.randperm(start.deter.shape[0], generator=self.generator)[: cfg.imagine_starts].to(self.device)
            start = LatentState(start.deter[chosen], start.stoch[chosen])
        with self.autocast():
            metrics |= self.train_behaviour(start)
        lap("behaviour_update")
        self.updates += 1
        if self.updates % cfg.slow_critic_every == 0:
            with torch.no_grad():
                for slow, online in zip(self.slow_critic.parameters(), self.critic.parameters()):
                    slow.lerp_(online, cfg.slow_critic_fraction)
        return metrics

    def world_model_loss(self, data: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float], LatentState]:
        """Reconstruction + reward + continue + balanced KL over [T, B] chunks, averaged."""
        cfg = self.config
        obs = data["obs"]  # uint8 [T, B, C, H, W]
        t, b = obs.shape[:2]
        embed = self.wm.encoder(obs.flatten(0, 1)).view(t, b, -1)
        post, post_logits, prior_logits = self.wm.rssm.observe(embed, data["action"], data["is_first"], self.train_generator)
        feat = post.feature()
        recon = self.wm.decoder(feat.flatten(0, 1)).float()
        image_loss = (recon - obs.flatten(0, 1).float() / 255.0).pow(2).sum((-3, -2, -1)).mean()
        reward_loss = self.two_hot.cross_entropy(self.wm.reward(feat), data["reward"]).mean()
        cont_loss = F.binary_cross_entropy_with_logits(self.wm.cont(feat).squeeze(-1).float(), data["discount"])
        kl, dyn, rep = kl_loss(post_logits.float(), prior_logits.float(), cfg.free_nats, cfg.dyn_scale, cfg.rep_scale)
        loss = image_loss + reward_loss + cont_loss + kl.mean()
        metrics = {"image_loss": float(image_loss.detach()), "reward_loss": float(reward_loss.detach()), "cont_loss": float(cont_loss.detach()),
                   "dyn_kl": float(dyn.detach().mean()), "rep_kl": float(rep.detach().mean()), "model_loss": float(loss.detach())}  # fmt: skip
        return loss, metrics, post

    def train_world_model(self, data: dict[str, torch.Tensor]) -> tuple[dict[str, float], LatentState]:
        self.wm.train()
        loss, metrics, post = self.world_model_loss(data)
        self.model_optim.zero_grad(set_to_none=True)
        loss.backward()
        metrics["model_grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.wm.parameters(), self.config.model_grad_clip))
        self.model_optim.step()
        return metrics, post

    def imagine(self, start: LatentState, act=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Roll the prior `horizon` steps with the actor from `start` [N]: features [H+1, N, F], and
        the actor's pre-tanh mean and std at the H states it acted in [H, N, A] (the pre-tanh mean
        so that `actor_mean_reg` needs no second actor pass). The actor reads detached features;
        its sampled actions carry the gradient into the dynamics. `act(mean, std, generator)`, given
        tanh(mean), replaces the sampled action (the saturation probe in results/ compares fixed
        actions with the actor's)."""
        act = act or Actor.sample
        state = start
        feats, pre_tanh_means, stds = [state.feature()], [], []
        for _ in range(self.config.horizon):
            pre_tanh_mean, std = self.actor.pre_tanh(feats[-1].detach())
            state, _ = self.wm.rssm.prior_step(state, act(torch.tanh(pre_tanh_mean), std, self.train_generator), self.train_generator)
            feats.append(state.feature())
            pre_tanh_means.append(pre_tanh_mean)
            stds.append(std)
        return torch.stack(feats), torch.stack(pre_tanh_means), torch.stack(stds)

    def imagined_returns(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rewards [H, N], discounts [H+1, N], values [H+1, N] and lambda-returns [H, N] of imagined
        features [H+1, N, F]."""
        reward = self.two_hot.decode(self.wm.reward(feat[1:]))  # r_t of the transition into state t
        # The continue head's mode (p > 0.5), as the official code does: no gradient through the
        # predicted end of an episode, which would otherwise reward the actor for ending episodes
        # whose imagined values are negative (CartPole's early termination does exactly that).
        discount = self.config.discount * (self.wm.cont(feat).squeeze(-1).float() > 0).float()
        value = self.two_hot.decode(self.critic(feat))
        return reward, discount, value, lambda_returns(reward, value[1:], discount[1:], self.config.return_lambda)

    def train_behaviour(self, start: LatentState) -> dict[str, float]:
        cfg = self.config
        self.wm.requires_grad_(False)  # gradients reach the actor through the model, not into it
        self.critic.requires_grad_(False)
        try:
            if cfg.actor_grad == "reinforce":
                drawn: list[torch.Tensor] = []

                def draw_and_bound(mean: torch.Tensor, std: torch.Tensor, generator) -> torch.Tensor:
                    drawn.append(Actor.draw(mean, std, generator))
                    return Actor.bound(drawn[-1])

                with torch.no_grad():
                    feat, _, _ = self.imagine(start, draw_and_bound)
                pre_tanh_mean, std = self.actor.pre_tanh(feat[:-1])
            else:
                feat, pre_tanh_mean, std = self.imagine(start)
            mean = torch.tanh(pre_tanh_mean)
            _, discount, value, returns = self.imagined_returns(feat)
            weights = torch.cumprod(torch.cat([torch.ones_like(discount[:1]), discount[:-1]]), 0).detach()
            self.return_scale.update(returns)
            advantage = (returns - value[:-1]) / self.return_scale.scale
            if cfg.actor_grad == "reinforce":
                # Score function of the drawn (unbounded) samples; the bound is part of the env.
                advantage = advantage.detach() * Actor.log_prob(mean, std, torch.stack(drawn))
            entropy = Actor.entropy(std)
            actor_loss = -(weights[:-1] * (advantage + cfg.actor_entropy * entropy)).mean()
            if cfg.actor_mean_reg > 0:
                actor_loss = actor_loss + cfg.actor_mean_reg * pre_tanh_mean.square().sum(-1).mean()
        finally:
            self.wm.requires_grad_(True)
            self.critic.requires_grad_(True)
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.backward()
        actor_grad = torch.nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.ac_grad_clip)
        self.actor_optim.step()
        critic_in = feat[:-1].detach()
        logits = self.critic(critic_in)
        with torch.no_grad():
            slow = self.two_hot.decode(self.slow_critic(critic_in))
        critic_loss = self.two_hot.cross_entropy(logits, returns.detach()) + cfg.slow_critic_reg * self.two_hot.cross_entropy(logits, slow)
        critic_loss = (weights[:-1] * critic_loss).mean()
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.backward()
        critic_grad = torch.nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.ac_grad_clip)
        self.critic_optim.step()
        return {
            "actor_loss": float(actor_loss.detach()), "critic_loss": float(critic_loss.detach()), "actor_grad_norm": float(actor_grad),
            "critic_grad_norm": float(critic_grad), "imag_return": float(returns.detach().mean()), "imag_value": float(value.detach().mean()),
            "actor_entropy": float(entropy.detach().mean()), "actor_std": float(std.detach().mean()),
            # |tanh(mean)| near 1 is a saturated policy: its mean's gradient vanishes (README, "DreamerV3").
            "actor_mean_abs": float(mean.detach().abs().mean()), "actor_mean": float(mean.detach().mean()),
        }  # fmt: skip

    # -- what people look at to trust a Dreamer run --------------------------------------------
    @torch.no_grad()
    def open_loop_video(self) -> dict[str, np.ndarray] | None:
        """`video_sequences` replayed sequences of `video_length` frames inside one episode: the
        model filters the first `video_context` frames, then predicts the rest open loop from the
        actions (the reference's video_pred). uint8 truth and model [N, T, C, H, W]; None before
        the replay holds such sequences."""
        cfg = self.config
        try:
            batch = self.replay.sample_sequences(cfg.video_sequences, cfg.video_length - 1, torch.Generator().manual_seed(self.seed))
        except RuntimeError:
            return None
        obs = batch.obs.transpose(0, 1).to(self.device)  # [T, N, C, H, W]
        t, n = obs.shape[:2]
        actions = torch.cat([torch.zeros(1, n, self.action_dim), batch.action.transpose(0, 1)]).to(self.device)  # into o_t
        is_first = torch.zeros(t, n, dtype=torch.bool, device=self.device)
        is_first[0] = True
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        context = cfg.video_context
        embed = self.wm.encoder(obs[:context].flatten(0, 1)).view(context, n, -1)
        post, _, _ = self.wm.rssm.observe(embed, actions[:context], is_first[:context], generator)
        feats = [post.feature()[i] for i in range(context)]
        state = LatentState(post.deter[-1], post.stoch[-1])
        for i in range(context, t):
            state, _ = self.wm.rssm.prior_step(state, actions[i], generator)
            feats.append(state.feature())
        model = self.wm.decoder(torch.stack(feats).flatten(0, 1).float()).view(t, n, *obs.shape[2:])
        to_uint8 = lambda x: (x.clamp(0, 1) * 255).round().to(torch.uint8).transpose(0, 1).cpu().numpy()  # noqa: E731
        return {"truth": obs.transpose(0, 1).cpu().numpy(), "model": to_uint8(model), "context": np.array(context)}

    def save_artifacts(self, folder: Path) -> None:
        """reconstruction.npz: the open-loop video; the report draws it (truth, model, error)."""
        video = self.open_loop_video()
        if video is not None:
            tmp = folder / ".reconstruction.npz.tmp"
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **video)
            tmp.replace(folder / "reconstruction.npz")

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Networks, optimisers, return scale, counters and generators. The replay is not
        checkpointed: a resumed run collects `prefill` agent steps with its policy first."""
        return {
            "wm": self.wm.state_dict(), "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "slow_critic": self.slow_critic.state_dict(), "model_optim": self.model_optim.state_dict(),
            "actor_optim": self.actor_optim.state_dict(), "critic_optim": self.critic_optim.state_dict(),
            "return_scale": self.return_scale.stats.clone(),
            "counters": {"agent_steps": self.agent_steps, "control_steps": self.control_steps, "updates": self.updates, "pretrained": self.update_credit.pretrained},
            "generator": self.generator.get_state(), "train_generator": self.train_generator.get_state(),
        }  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        for name in ("wm", "actor", "critic", "slow_critic", "model_optim", "actor_optim", "critic_optim"):
            getattr(self, name).load_state_dict(state[name])
        self.return_scale.stats = torch.as_tensor(state["return_scale"], dtype=torch.float32, device=self.device).clone()
        counters = state["counters"]
        self.agent_steps, self.control_steps, self.updates = counters["agent_steps"], counters["control_steps"], counters["updates"]
        self.update_credit.restart(counters["pretrained"])
        self._collect_until = self.agent_steps + self.config.prefill if self.update_credit.pretrained else self.config.prefill
        self.generator.set_state(state["generator"])
        self.train_generator.set_state(state["train_generator"])
        self._obs = None
        self._latent = {"train": None, "eval": None}
