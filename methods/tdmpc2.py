"""TD-MPC2 (Hansen et al. 2024) from pixels: a decoder-free latent world model, learned by
self-prediction, reward and TD losses, and MPPI planning in its latent space guided by a policy
prior. Checklist: reference/baselines.md section 3 (architecture, losses, planner, sizes).

Per vector step of the batched env (each agent step is `action_repeat` control steps,
envs/action_repeat.py, with 3 agent-step frames stacked):
  1. act: uniform actions for the first `seed_steps` agent steps (summed over envs), then MPPI
     planning for every env at once (one batched rollout of num_envs x num_samples trajectories);
  2. store the new frames in the replay (single frames; methods/replay.py);
  3. when the seed steps are done, `seed_steps` updates at once (the reference's pretraining),
     then `updates_per_agent_step` updates per agent step (1 in the reference).
An update samples 256 windows of horizon + 1 = 4 observations inside one episode and:
  - encodes o_1..o_H with the online encoder (no target encoder) for the consistency targets and
    the TD targets r_t + gamma (1 - terminated_t) min(2 random target Qs)(z_{t+1}, pi(z_{t+1}));
  - rolls the latent dynamics from enc(o_0) through the actions, and sums with weights rho^t:
    20 * consistency (MSE to sg enc(o_{t+1})), 0.1 * reward CE, 0.1 * value CE over the 5 Qs,
    plus 1 * termination BCE (the reference's `episodic` mode; CartPole terminates early);
  - steps the policy prior on the detached latents: -(1e-4 entropy * dA + Q / S) with weights
    rho^t, S a running 5-95 percentile range of Q; then Polyak-averages the target Qs (tau 0.01).

Choices where the reference does something else (README, "TD-MPC2"):
  - Shift augmentation: the reference's ShiftAug sits inside the encoder, so planning encodes a
    randomly shifted observation too. Here it is applied in training only (`plan_augment=False`;
    set True for the reference's behaviour): the planner and the evaluation see the observation
    as it is (shift 0 is one of the 49 shifts the model is trained on), and evaluation stays a
    function of the observation and the seed.
  - The 5 Qs are one fused module of batched matmuls (torch.bmm) instead of torch.func.vmap, and
    the planner scores only the 2 heads it samples instead of all 5.
  - The pixel encoder ends in a Linear to the latent size when its conv output (32 x 4 x 4 = 512
    at 64 x 64 and 32 x 2 x 2 = 128 at 48 x 48) differs from it; the reference has no such layer
    and works only when they match (5M at 64 x 64).
  - Evaluation picks the elite by the same Gumbel draw as training, from a generator reseeded at
    every evaluation, and adds no action noise (the reference's eval_mode).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from methods.base import PhaseClock, Planner
from methods.discrete_regression import TwoHot
from methods.drqv2 import random_shift
from methods.networks import mlp
from methods.normalization import PercentileScale
from methods.precision import PRECISIONS, autocast, check_precision
from methods.replay import FrameReplay
from methods.replay_agent import ReplayAgent
from methods.update_credit import UpdateCredit

# baselines.md 3.4: enc_dim, mlp_dim, latent_dim, num_enc_layers, num_q (in millions of parameters).
MODEL_SIZES: dict[int, dict[str, int]] = {
    1: {"enc_dim": 256, "mlp_dim": 384, "latent_dim": 128, "num_enc_layers": 2, "num_q": 2},
    5: {"enc_dim": 256, "mlp_dim": 512, "latent_dim": 512, "num_enc_layers": 2, "num_q": 5},
    19: {"enc_dim": 1024, "mlp_dim": 1024, "latent_dim": 768, "num_enc_layers": 3, "num_q": 5},
    48: {"enc_dim": 1792, "mlp_dim": 1792, "latent_dim": 768, "num_enc_layers": 4, "num_q": 5},
    317: {"enc_dim": 4096, "mlp_dim": 4096, "latent_dim": 1376, "num_enc_layers": 5, "num_q": 8},
}


@dataclass
class TDMPC2Config:
    # Environment (the reference: 1 env, 64x64, 3 frames, action repeat 2 in its DMC wrapper).
    num_envs: int = 1
    image_size: int = 64
    supersample: int = 1
    crop_static_rows: bool = False  # read the rows the robot reaches only (a protocol may ask it; envs.make)
    frame_stack: int = 3
    action_repeat: int = 2
    # Model (baselines.md 3.1, 3.4).
    model_size: int = 5
    num_channels: int = 32
    simnorm_dim: int = 8
    num_bins: int = 101
    vmin: float = -10.0
    vmax: float = 10.0
    dropout: float = 0.01
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    episodic: bool = True  # termination head and (1 - terminated) in targets and planning
    # Training (baselines.md 3.2).
    lr: float = 3e-4
    enc_lr_scale: float = 0.3
    grad_clip_norm: float = 20.0
    batch_size: int = 256
    horizon: int = 3
    rho: float = 0.5
    consistency_coef: float = 20.0
    reward_coef: float = 0.1
    value_coef: float = 0.1
    termination_coef: float = 1.0
    entropy_coef: float = 1e-4
    tau: float = 0.01
    discount: float = 0.0  # 0: the heuristic from the episode length in agent steps
    discount_denom: float = 5.0
    discount_min: float = 0.95
    discount_max: float = 0.995
    seed_steps: int = 0  # agent steps of uniform actions; 0: max(1000, 5 * episode length)
    updates_per_agent_step: float = 1.0
    replay_capacity: int = 1_000_000
    augment_pad: int = 3
    plan_augment: bool = False
    # MPPI (baselines.md 3.3).
    iterations: int = 6
    num_samples: int = 512
    num_elites: int = 64
    num_pi_trajs: int = 24
    min_std: float = 0.05
    max_std: float = 2.0
    temperature: float = 0.5
    # "fp32" (the reference) or "bf16": autocast of planning and updates (CPU with AVX-512-bf16, or CUDA).
    precision: str = "fp32"
    vector_steps_per_iteration: int = 8  # env steps per `iterate` call (logging granularity)


def discount_heuristic(episode_length: int, denom: float = 5.0, low: float = 0.95, high: float = 0.995) -> float:
    """TD-MPC2's discount from the episode length L in agent steps: clip((L/5 - 1) / (L/5), .95, .995)."""
    frac = episode_length / denom
    return min(max((frac - 1) / frac, low), high)


def simnorm(x: torch.Tensor, group: int) -> torch.Tensor:
    """Softmax within consecutive groups of `group` features: each group is a point on a simplex."""
    shape = x.shape
    return x.reshape(*shape[:-1], -1, group).softmax(-1).reshape(shape)


def warm_start(previous: torch.Tensor | None, episode_start: torch.Tensor, horizon: int, n: int, adim: int, device) -> torch.Tensor:
    """MPPI's initial mean [H, N, A]: the previous plan's mean shifted by one step (its last step
    0), and all zeros for envs that start an episode (or when there is no previous plan)."""
    mean = torch.zeros(horizon, n, adim, device=device)
    if previous is not None and previous.shape[1] == n:
        keep = (~episode_start.to(device)).float().view(1, n, 1)
        mean[:-1] = previous[1:] * keep
    return mean


class SimNorm(nn.Module):
    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return simnorm(x, self.group)


class NormedLinear(nn.Linear):
    """Linear -> (Dropout) -> LayerNorm -> activation (Mish unless given)."""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0, act: nn.Module | None = None):
        super().__init__(in_features, out_features)
        self.ln = nn.LayerNorm(out_features)
        self.act = act if act is not None else nn.Mish()
        self.drop = nn.Dropout(dropout) if dropout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.drop is not None:
            x = self.drop(x)
        return self.act(self.ln(x))


def normed_mlp(in_dim: int, hidden: list[int], out_dim: int, act: nn.Module | None = None) -> nn.Sequential:
    """NormedLinear hidden layers; the last layer is NormedLinear with `act`, or a plain Linear."""
    output = (lambda a, b: NormedLinear(a, b, act=act)) if act is not None else nn.Linear
    return mlp(in_dim, hidden, out_dim, lambda a, b: [NormedLinear(a, b)], output)


class EnsembleLinear(nn.Module):
    """`members` independent Linear layers applied as one batched matmul: [E, B, in] -> [E, B, out]."""

    def __init__(self, members: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_features))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None, detach: bool = False) -> torch.Tensor:
        weight, bias = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        if detach:
            weight, bias = weight.detach(), bias.detach()
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(weight.shape[0], -1, -1)
        return torch.baddbmm(bias, x, weight)


class QEnsemble(nn.Module):
    """TD-MPC2's Q functions: E MLPs [z, a] -> mlp -> mlp -> bins, dropout on the first layer only,
    LayerNorm + Mish, last layer zero-initialised. One fused module: each layer is a batched matmul."""

    def __init__(self, members: int, in_dim: int, hidden: int, num_bins: int, dropout: float):
        super().__init__()
        self.members = members
        self.layers = nn.ModuleList([EnsembleLinear(members, in_dim, hidden), EnsembleLinear(members, hidden, hidden), EnsembleLinear(members, hidden, num_bins)])
        self.ln_weight = nn.Parameter(torch.ones(2, members, 1, hidden))
        self.ln_bias = nn.Parameter(torch.zeros(2, members, 1, hidden))
        self.dropout = dropout
        nn.init.zeros_(self.layers[-1].weight)

    def forward(self, za: torch.Tensor, members: torch.Tensor | None = None, detach: bool = False) -> torch.Tensor:
        """za [B, in] -> logits [E, B, bins] (E = len(members) when given)."""
        h = za
        for i in range(2):
            h = self.layers[i](h, members, detach)
            if i == 0 and self.dropout and self.training:
                h = F.dropout(h, self.dropout, training=True)
            w, b = self.ln_weight[i], self.ln_bias[i]
            if members is not None:
                w, b = w[members], b[members]
            if detach:
                w, b = w.detach(), b.detach()
            h = F.mish(F.layer_norm(h, h.shape[-1:]) * w + b)
        return self.layers[2](h, members, detach)


class PixelEncoderTDMPC(nn.Module):
    """uint8 [B, 9, H, W] -> SimNorm latent: x/255 - 0.5, Conv 7/s2, 5/s2, 3/s2, 3/s1 (32 channels,
    ReLU between), flatten, [Linear to latent_dim if the sizes differ], SimNorm. A band of H < W
    rows (a `crop_static_rows` observation) is zero-padded (mid-grey) at the bottom to a square
    first: the reference's CNN takes square images, and the padded band equals the full frame with
    its static rows blanked."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, channels: int, simnorm_dim: int):
        super().__init__()
        self.pad_rows = max(0, image_shape[2] - image_shape[1])
        image_shape = (image_shape[0], image_shape[1] + self.pad_rows, image_shape[2])
        c = channels
        self.convs = nn.Sequential(
            nn.Conv2d(image_shape[0], c, 7, stride=2), nn.ReLU(),
            nn.Conv2d(c, c, 5, stride=2), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=1),
        )  # fmt: skip
        with torch.no_grad():
            try:
                self.conv_dim = self.convs(torch.zeros(1, *image_shape)).numel()
            except RuntimeError as err:
                raise ValueError(f"TD-MPC2's pixel encoder needs images of at least 42x42, got {image_shape[1]}x{image_shape[2]}") from err
        self.project = nn.Linear(self.conv_dim, latent_dim) if self.conv_dim != latent_dim else None
        self.simnorm_dim = simnorm_dim
        self.to(memory_format=torch.channels_last)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float().div_(255.0).sub_(0.5)
        if self.pad_rows:
            x = F.pad(x, (0, 0, 0, self.pad_rows))
        h = self.convs(x.contiguous(memory_format=torch.channels_last)).flatten(1)
        if self.project is not None:
            h = self.project(h)
        return simnorm(h, self.simnorm_dim)


class WorldModel(nn.Module):
    """Encoder, latent dynamics, reward, termination, policy prior and the Q ensemble (+ target)."""

    def __init__(self, image_shape: tuple[int, int, int], action_dim: int, cfg: TDMPC2Config):
        super().__init__()
        if cfg.model_size not in MODEL_SIZES:
            raise ValueError(f"unknown model_size {cfg.model_size}; available: {', '.join(map(str, MODEL_SIZES))}")
        size = MODEL_SIZES[cfg.model_size]
        latent, hidden = size["latent_dim"], size["mlp_dim"]
        if latent % cfg.simnorm_dim:
            raise ValueError(f"latent_dim {latent} is not a multiple of simnorm_dim {cfg.simnorm_dim}")
        self.latent_dim, self.action_dim, self.num_q = latent, action_dim, size["num_q"]
        self.log_std_min, self.log_std_dif = cfg.log_std_min, cfg.log_std_max - cfg.log_std_min
        self.encoder = PixelEncoderTDMPC(image_shape, latent, cfg.num_channels, cfg.simnorm_dim)
        self.dynamics = normed_mlp(latent + action_dim, [hidden, hidden], latent, act=SimNorm(cfg.simnorm_dim))
        self.reward = normed_mlp(latent + action_dim, [hidden, hidden], cfg.num_bins)
        self.termination = normed_mlp(latent, [hidden, hidden], 1) if cfg.episodic else None
        self.pi = normed_mlp(latent, [hidden, hidden], 2 * action_dim)
        self.qs = QEnsemble(self.num_q, latent + action_dim, hidden, cfg.num_bins, cfg.dropout)
        for module in self.modules():  # truncated normal (std 0.02) Linear weights, zero biases
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.reward[-1].weight)
        self.target_qs = copy.deepcopy(self.qs).requires_grad_(False)

    def world_model_parameters(self) -> list[dict]:
        """Adam groups: the encoder at lr * enc_lr_scale (set by the caller), then the rest."""
        rest = [*self.dynamics.parameters(), *self.reward.parameters(), *self.qs.parameters()]
        if self.termination is not None:
            rest += list(self.termination.parameters())
        return [{"params": list(self.encoder.parameters()), "encoder": True}, {"params": rest}]

    def next(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.dynamics(torch.cat([z, a], dim=-1))

    def policy(self, z: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """A reparameterised tanh-Gaussian sample, its squashed mean, log-prob and scaled entropy."""
        mean, raw_log_std = self.pi(z).chunk(2, dim=-1)
        log_std = self.log_std_min + 0.5 * self.log_std_dif * (torch.tanh(raw_log_std) + 1)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device)  # fp32 noise under bf16 autocast too
        pre_tanh = mean + eps * log_std.exp()
        action = torch.tanh(pre_tanh)
        gaussian_log_prob = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1, keepdim=True)
        log_prob = gaussian_log_prob - torch.log(F.relu(1 - action.pow(2)) + 1e-6).sum(-1, keepdim=True)
        # The reference's entropy bonus works out to -dA * (the pre-squash Gaussian log-prob): its
        # `-log_prob * scaled_log_prob / (log_prob + 1e-8)` cancels the squashed log-prob.
        info = {"mean": torch.tanh(mean), "log_std": log_std, "log_prob": log_prob, "scaled_entropy": -gaussian_log_prob * self.action_dim}
        return action, info

    def q_pair(self, z: torch.Tensor, a: torch.Tensor, target: bool = False, detach: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits of 2 randomly chosen Q heads: [2, B, bins] (TD-MPC2's min / avg use 2 of them)."""
        draw_on = generator.device if generator is not None else torch.device("cpu")
        members = torch.randperm(self.num_q, generator=generator, device=draw_on)[:2].to(z.device)
        net = self.target_qs if target else self.qs
        return net(torch.cat([z, a], dim=-1), members, detach)

    def terminated(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of termination for the latent z (an episode-ending next state)."""
        return self.termination(z)


class TDMPC2(ReplayAgent, Planner):
    name = "tdmpc2"
    act_phase = "plan"
    config_cls = TDMPC2Config
    precisions = PRECISIONS
    model_sizes = tuple(MODEL_SIZES)
    # A 30-minute CPU run takes ~10k control steps: evaluate often enough to draw a curve
    # (planning 16 eval envs costs as much as a few hundred training steps).
    default_eval_every_steps = 2048
    # Every evaluation action is a full MPPI plan: 4 episodes instead of 16 (--eval-episodes overrides).
    default_eval_episodes = 4
    # bench-updates: the pretraining burst is as many updates as seed steps; keep it short there.
    bench_overrides = {"seed_steps": 64}

    def __init__(self, spec, config: TDMPC2Config, device: str | torch.device = "cpu", seed: int = 0):
        if spec.image_shape is None:
            raise ValueError("tdmpc2 learns from pixels: build the env with render='raytrace'")
        cfg = config
        if cfg.horizon < 1 or cfg.batch_size < 1 or cfg.iterations < 1:
            raise ValueError(f"horizon, batch_size and iterations must be >= 1, got {cfg.horizon}, {cfg.batch_size}, {cfg.iterations}")
        if not 0 <= cfg.num_pi_trajs < cfg.num_samples or not 0 < cfg.num_elites <= cfg.num_samples:
            raise ValueError(f"need 0 <= num_pi_trajs < num_samples and 0 < num_elites <= num_samples, got {cfg.num_pi_trajs}, {cfg.num_elites}, {cfg.num_samples}")
        check_precision(cfg.precision)
        if cfg.updates_per_agent_step < 0:
            raise ValueError(f"updates_per_agent_step must be >= 0, got {cfg.updates_per_agent_step}")
        self.config = cfg
        self.device = torch.device(device)
        self.seed = seed
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)  # replay sampling and augmentation (CPU)
        self.plan_generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.eval_generator = torch.Generator(device=self.device).manual_seed(seed + 2)
        self.action_dim = spec.action_dim
        self.model = WorldModel(spec.image_shape, spec.action_dim, cfg).to(self.device).eval()
        self.two_hot = TwoHot(cfg.num_bins, cfg.vmin, cfg.vmax)
        groups = self.model.world_model_parameters()
        for group in groups:
            if group.pop("encoder", False):
                group["lr"] = cfg.lr * cfg.enc_lr_scale
        self.optim = torch.optim.Adam(groups, lr=cfg.lr)
        self._model_params = [p for group in groups for p in group["params"]]  # clipped together
        self.pi_optim = torch.optim.Adam(self.model.pi.parameters(), lr=cfg.lr, eps=1e-5)
        # max(1, P95 - P5) of Q at t = 0, lerped with tau from 1: the policy loss divides Q by it.
        self.q_scale = PercentileScale(0.05, 0.95, cfg.tau, self.device, smooth="range")
        self.gamma = cfg.discount or discount_heuristic(spec.episode_length, cfg.discount_denom, cfg.discount_min, cfg.discount_max)
        self.seed_steps = cfg.seed_steps or max(1000, 5 * spec.episode_length)
        frame_shape = (3, *spec.image_shape[1:])
        self.replay = FrameReplay(spec.num_envs, cfg.replay_capacity, frame_shape, spec.action_dim, spec.frame_stack)
        self.agent_steps = 0  # summed over envs
        self.control_steps = 0
        self.updates = 0
        # The reference's pretraining: as many updates as seed steps, then updates_per_agent_step.
        self.update_credit = UpdateCredit(cfg.updates_per_agent_step, burst_replaces_step=True)
        self._collect_until = self.seed_steps  # agent steps before updates start (again, after a resume)
        self._obs: dict[str, torch.Tensor] | None = None
        self._episode_start: torch.Tensor | None = None
        self._plan_mean: dict[str, torch.Tensor | None] = {"train": None, "eval": None}

    def autocast(self) -> torch.autocast:
        return autocast(self.device, self.config.precision)

    # -- planning -------------------------------------------------------------------------------
    def encode(self, pixels: torch.Tensor, augment: bool) -> torch.Tensor:
        if augment:
            pixels = random_shift(pixels, self.config.augment_pad, self.generator)
        return self.model.encoder(pixels)

    @torch.no_grad()
    def estimate_value(self, z: torch.Tensor, actions: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Sum of discounted predicted rewards over the horizon, plus gamma^H avg-of-2 Q(z_H, pi(z_H));
        terms after a predicted termination count 0. z [M, latent], actions [H, M, A] -> [M]."""
        value = torch.zeros(z.shape[0], device=z.device)
        alive = torch.ones_like(value)
        discount = 1.0
        for t in range(actions.shape[0]):
            za = torch.cat([z, actions[t]], dim=-1)
            reward = self.two_hot.decode(self.model.reward(za))
            z = self.model.dynamics(za)
            value = value + discount * alive * reward
            discount *= self.gamma
            if self.model.termination is not None:
                alive = alive * (self.model.terminated(z).squeeze(-1) <= 0).float()
        action, _ = self.model.policy(z, generator)
        q = self.two_hot.decode(self.model.q_pair(z, action, generator=generator)).mean(0)
        return value + discount * alive * q

    @torch.no_grad()
    def plan(self, pixels: torch.Tensor, episode_start: torch.Tensor, eval_mode: bool, generator: torch.Generator, key: str) -> torch.Tensor:
        """MPPI for every env at once: [N, C, H, W] -> actions [N, A] in [-1, 1].

        `episode_start` [N] marks envs whose warm start (the previous plan's mean, shifted by one
        step) is dropped; `key` names the stored mean ("train" or "eval")."""
        with self.autocast():
            return self._plan(pixels, episode_start, eval_mode, generator, key)

    def _plan(self, pixels, episode_start, eval_mode, generator, key) -> torch.Tensor:
        cfg = self.config
        n, horizon, samples, pis, elites, adim = pixels.shape[0], cfg.horizon, cfg.num_samples, cfg.num_pi_trajs, cfg.num_elites, self.action_dim
        z = self.encode(pixels.to(self.device), augment=cfg.plan_augment)
        actions = torch.empty(horizon, n, samples, adim, device=self.device)
        if pis:
            zp = z.repeat_interleave(pis, dim=0)
            for t in range(horizon):
                action, _ = self.model.policy(zp, generator)
                action = action.float()
                actions[t, :, :pis] = action.view(n, pis, adim)
                if t < horizon - 1:
                    zp = self.model.next(zp, action)
        z = z.repeat_interleave(samples, dim=0)
        mean = warm_start(self._plan_mean[key], episode_start, horizon, n, adim, self.device)
        std = torch.full((horizon, n, adim), cfg.max_std, device=self.device)
        for _ in range(cfg.iterations):
            noise = torch.randn(horizon, n, samples - pis, adim, generator=generator, device=self.device)
            actions[:, :, pis:] = (mean.unsqueeze(2) + std.unsqueeze(2) * noise).clamp_(-1, 1)
            value = self.estimate_value(z, actions.view(horizon, n * samples, adim), generator).view(n, samples).nan_to_num_(0.0)
            elite_value, elite_index = value.topk(elites, dim=1)
            elite_actions = actions.gather(2, elite_index.view(1, n, elites, 1).expand(horizon, n, elites, adim))
            score = torch.exp(cfg.temperature * (elite_value - elite_value.max(1, keepdim=True).values))
            score = score / score.sum(1, keepdim=True)
            weight = score.view(1, n, elites, 1)
            mean = (weight * elite_actions).sum(2) / (score.sum(1).view(1, n, 1) + 1e-9)
            std = ((weight * (elite_actions - mean.unsqueeze(2)).pow(2)).sum(2) / (score.sum(1).view(1, n, 1) + 1e-9)).sqrt()
            std = std.clamp_(cfg.min_std, cfg.max_std)
        # Gumbel-max: one elite per env, drawn with probability `score`.
        gumbel = -torch.empty_like(score).exponential_(generator=generator).log()
        choice = (score.log() + gumbel).argmax(1)
        chosen = elite_actions[:, torch.arange(n, device=self.device), choice]  # [H, N, A]
        action = chosen[0]
        if not eval_mode:
            action = action + std[0] * torch.randn(n, adim, generator=generator, device=self.device)
        self._plan_mean[key] = mean
        self.last_plan = {"score": score, "std": std, "mean": mean}
        return action.clamp(-1, 1)

    def on_eval_start(self) -> None:
        """Evaluation episodes start: no warm start, and the planner's draws start from the seed."""
        self._plan_mean["eval"] = None
        self.eval_generator.manual_seed(self.seed + 2)

    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = True) -> torch.Tensor:
        pixels = obs["pixels"]
        start = torch.zeros(pixels.shape[0], dtype=torch.bool)
        return self.plan(pixels, start, eval_mode=deterministic, generator=self.eval_generator, key="eval")

    # -- acting and training after each vector step ---------------------------------------------
    def _explore(self, obs: dict[str, torch.Tensor], num_envs: int) -> torch.Tensor:
        """Uniform actions for the seed steps, then MPPI with training noise."""
        if self.agent_steps < self.seed_steps:
            return torch.rand(num_envs, self.action_dim, generator=self.generator).mul_(2).sub_(1).to(self.device)
        return self.plan(obs["pixels"], self._episode_start, eval_mode=False, generator=self.plan_generator, key="train")

    def _train_after_step(self, num_envs: int, control_steps: int, phases: dict[str, float]) -> dict[str, float] | None:
        self.agent_steps += num_envs
        self.control_steps += num_envs * control_steps
        metrics = None
        if self.agent_steps >= self._collect_until:
            for _ in range(self.update_credit.owed(num_envs, burst=self.agent_steps)):
                metrics = self.update(phases)
        return metrics

    def _iteration_metrics(self) -> dict[str, float]:
        return {"updates": float(self.updates), "replay_timesteps": float(len(self.replay)), "value_scale": float(self.q_scale.scale)}

    # -- the update -----------------------------------------------------------------------------
    def td_targets(self, next_z: torch.Tensor, reward: torch.Tensor, terminated: torch.Tensor) -> torch.Tensor:
        """r_t + gamma (1 - terminated_t) min over 2 random target Qs of Q(z_{t+1}, pi(z_{t+1}))."""
        action, _ = self.model.policy(next_z)
        q = self.two_hot.decode(self.model.q_pair(next_z.flatten(0, 1), action.flatten(0, 1), target=True)).min(0).values
        q = q.view(next_z.shape[:2])
        not_done = 1.0 - terminated if self.model.termination is not None else torch.ones_like(terminated)
        return reward + self.gamma * not_done * q

    def update(self, phases: dict[str, float] | None = None) -> dict[str, float]:
        """One TD-MPC2 update (world model and Qs, then the policy prior, then the target Qs)."""
        cfg = self.config
        lap = PhaseClock({} if phases is None else phases).lap
        batch = self.replay.sample_sequences(cfg.batch_size, cfg.horizon, self.generator)
        obs = batch.obs.transpose(0, 1).to(self.device)  # [H+1, B, C, h, w]
        action, reward, terminated = (x.transpose(0, 1).to(self.device) for x in (batch.action, batch.reward, batch.terminated))
        lap("replay_sample")
        with self.autocast():
            metrics, latents = self._update_model(obs, action, reward, terminated)
        lap("model_update")
        with self.autocast():
            metrics |= self.update_policy(latents.detach())
        with torch.no_grad():
            for target, online in zip(self.model.target_qs.parameters(), self.model.qs.parameters()):
                target.lerp_(online, cfg.tau)
        self.model.eval()
        lap("policy_update")
        self.updates += 1
        return metrics

    def _update_model(self, obs, action, reward, terminated) -> tuple[dict[str, float], torch.Tensor]:
        """World model and Q step; returns its metrics and the rolled-out latents [H+1, B, latent]."""
        cfg = self.config
        horizon, b = action.shape[:2]
        with torch.no_grad():
            next_z = self.encode(obs[1:].flatten(0, 1), augment=True).view(horizon, b, -1).float()
            targets = self.td_targets(next_z, reward, terminated)
        self.model.train()
        z = self.encode(obs[0], augment=True)
        zs = [z]
        consistency = torch.zeros((), device=self.device)
        for t in range(horizon):
            z = self.model.next(z, action[t])
            consistency = consistency + cfg.rho**t * F.mse_loss(z.float(), next_z[t])
            zs.append(z)
        latents = torch.stack(zs)  # [H+1, B, latent]
        za = torch.cat([latents[:-1], action], dim=-1).flatten(0, 1)
        q_logits = self.model.qs(za).view(self.model.num_q, horizon, b, -1)
        reward_logits = self.model.reward(za).view(horizon, b, -1)
        rho = cfg.rho ** torch.arange(horizon, device=self.device, dtype=torch.float32)
        reward_loss = (self.two_hot.cross_entropy(reward_logits, reward).mean(1) * rho).sum() / horizon
        value_loss = (self.two_hot.cross_entropy(q_logits, targets.unsqueeze(0).expand_as(q_logits[..., 0])).mean(2).sum(0) * rho).sum()
        value_loss = value_loss / (horizon * self.model.num_q)
        consistency = consistency / horizon
        total = cfg.consistency_coef * consistency + cfg.reward_coef * reward_loss + cfg.value_coef * value_loss
        termination_loss = torch.zeros((), device=self.device)
        if self.model.termination is not None:
            termination_loss = F.binary_cross_entropy_with_logits(self.model.terminated(latents[1:]).squeeze(-1).float(), terminated)
            total = total + cfg.termination_coef * termination_loss
        self.optim.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self._model_params, cfg.grad_clip_norm)
        self.optim.step()
        return {
            "consistency_loss": float(consistency.detach()), "reward_loss": float(reward_loss.detach()),
            "value_loss": float(value_loss.detach()), "termination_loss": float(termination_loss.detach()),
            "total_loss": float(total.detach()), "model_grad_norm": float(grad_norm),
        }, latents  # fmt: skip

    def update_policy(self, latents: torch.Tensor) -> dict[str, float]:
        """-(entropy_coef * scaled entropy + Q / scale) over the detached latents, weighted rho^t;
        Q is the mean of 2 random online heads with detached parameters."""
        cfg = self.config
        action, info = self.model.policy(latents)
        h1, b = latents.shape[:2]
        q = self.two_hot.decode(self.model.q_pair(latents.flatten(0, 1), action.flatten(0, 1), detach=True)).mean(0).view(h1, b)
        self.q_scale.update(q[0])
        q = q / self.q_scale.scale
        rho = cfg.rho ** torch.arange(h1, device=self.device, dtype=torch.float32)
        loss = (-(cfg.entropy_coef * info["scaled_entropy"].squeeze(-1) + q).mean(1) * rho).mean()
        self.pi_optim.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.pi.parameters(), cfg.grad_clip_norm)
        self.pi_optim.step()
        return {"pi_loss": float(loss.detach()), "pi_grad_norm": float(grad_norm), "pi_log_std": float(info["log_std"].detach().mean()),
                "pi_entropy": float(-info["log_prob"].detach().mean())}  # fmt: skip

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Model (target Qs included), optimisers, value scale, counters and generators. The replay is
        not checkpointed: a resumed run collects `seed_steps` agent steps with its planner before it
        updates again."""
        return {
            "model": self.model.state_dict(),
            "optim": self.optim.state_dict(),
            "pi_optim": self.pi_optim.state_dict(),
            "scale": self.q_scale.stats.clone(),
            "counters": {"agent_steps": self.agent_steps, "control_steps": self.control_steps, "updates": self.updates, "pretrained": self.update_credit.pretrained},
            "generator": self.generator.get_state(),
            "plan_generator": self.plan_generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.pi_optim.load_state_dict(state["pi_optim"])
        self.q_scale.stats = torch.as_tensor(state["scale"], dtype=torch.float32, device=self.device).clone()
        counters = state["counters"]
        self.agent_steps, self.control_steps, self.updates = counters["agent_steps"], counters["control_steps"], counters["updates"]
        self.update_credit.restart(counters["pretrained"])
        self._collect_until = self.agent_steps + self.seed_steps if self.update_credit.pretrained else self.seed_steps
        self.generator.set_state(state["generator"])
        self.plan_generator.set_state(state["plan_generator"])
        self._obs = None
        self._plan_mean = {"train": None, "eval": None}
