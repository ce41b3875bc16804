"""DrQ-v2 (Yarats et al. 2021): DDPG from pixels with random-shift augmentation, n-step returns
and a scheduled exploration std. Checklist: reference/baselines.md section 1; D.Va's settings:
dva_paper.md section 5 and baselines.md section 1.3.

Per vector step of the batched env (every env acts; each agent step is `action_repeat` control
steps, envs/action_repeat.py):
  1. act: uniform actions for the first `num_expl_steps` agent steps, then tanh(mu) + N(0, std(t))
     (no clip when acting), std(t) from the schedule indexed by agent steps summed over envs;
  2. store the new frames in the replay (single frames; stacks are built on sampling);
  3. once `num_seed_frames` control steps are collected, one update per `update_every_steps`
     agent steps (num_envs / 2 updates per vector step, as D.Va ran it):
     critic: random shift (pad 4) of obs and next obs, the conv encoder on both (next obs without
     gradient; no target encoder), n-step target r + gamma^n min(Q1', Q2')(s', a'), a' with noise
     clipped to 0.3; one Adam step for encoder and critic. Actor: on the detached features,
     -min(Q1, Q2)(s, a) with clipped noise; the encoder learns only through the critic.
     Polyak tau 0.01 for the target critic (its trunk included).
Deviations from the reference adapter that D.Va used (baselines.md 1.3), on purpose: no tanh on
the already bounded action (its env saw [-0.76, 0.76]); terminations get discount 0 and time
limits bootstrap from the terminal observation (it used discount 1 everywhere); every transition
enters the replay as it happens (not when its episode ends); n-step windows stop at episode ends
instead of never starting in an episode's last n-1 steps; returns count every control step.
Kept from DrQ-v2 itself (not D.Va's adapter): the frame stack holds frames seen at agent steps
(envs/action_repeat.py), not 3 consecutive simulator frames. Sampling is uniform over stored
transitions (env, then timestep) rather than episode first, then step (the same thing when
episodes have equal length, as CartPole's mostly do).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from methods.base import PhaseClock
from methods.networks import PixelEncoder, feature_trunk, orthogonal_init_, relu_mlp
from methods.precision import PRECISIONS, autocast, check_precision
from methods.replay import FrameReplay
from methods.replay_agent import ReplayAgent


@dataclass
class DrQV2Config:
    # Environment (D.Va ran DrQ-v2 with 16 cartpole envs, 84x84, action repeat 2, 3 frames).
    num_envs: int = 16
    image_size: int = 84
    supersample: int = 1
    crop_static_rows: bool = False  # read the rows the robot reaches only (a protocol may ask it; envs.make)
    frame_stack: int = 3
    action_repeat: int = 2
    # Agent (baselines.md 1.1).
    feature_dim: int = 50
    hidden_dim: int = 1024
    lr: float = 1e-4
    critic_tau: float = 0.01
    gamma: float = 0.99
    nstep: int = 3
    batch_size: int = 256
    replay_capacity: int = 1_000_000
    num_seed_frames: int = 4000  # control steps before the first update
    num_expl_steps: int = 2000  # agent steps of uniform random actions
    update_every_steps: int = 2
    stddev_schedule: str = "linear(1.0,0.1,500000)"
    stddev_clip: float = 0.3
    augment_pad: int = 4
    # "fp32" (the reference) or "bf16": autocast of the update's convs and matmuls (CPU with
    # AVX-512-bf16, or CUDA); measured 1.4-2.6x faster updates on the 2-core CPU (README).
    precision: str = "fp32"
    vector_steps_per_iteration: int = 8  # how many env steps one `iterate` call takes (logging granularity)


def schedule(spec: str | float, step: int) -> float:
    """DrQ-v2's schedules: a constant, `linear(init,final,duration)` or
    `step_linear(init,final1,duration1,final2,duration2)`, indexed by agent step."""
    try:
        return float(spec)
    except ValueError:
        pass
    match = re.fullmatch(r"\s*linear\(([^,]+),([^,]+),([^,]+)\)\s*", spec)
    if match:
        init, final, duration = (float(g) for g in match.groups())
        mix = min(max(step / duration, 0.0), 1.0)
        return (1.0 - mix) * init + mix * final
    match = re.fullmatch(r"\s*step_linear\(([^,]+),([^,]+),([^,]+),([^,]+),([^,]+)\)\s*", spec)
    if match:
        init, final1, duration1, final2, duration2 = (float(g) for g in match.groups())
        if step <= duration1:
            mix = min(max(step / duration1, 0.0), 1.0)
            return (1.0 - mix) * init + mix * final1
        mix = min(max((step - duration1) / duration2, 0.0), 1.0)
        return (1.0 - mix) * final1 + mix * final2
    raise ValueError(f"unknown schedule {spec!r}: use a number, linear(a,b,n) or step_linear(a,b,n,c,m)")


def random_shift(pixels: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ-v2's augmentation: replicate-pad by `pad`, then crop back at a whole-pixel offset drawn
    per sample in {0..2*pad}^2, i.e. an integer translation in [-pad, pad]. The reference does it
    with bilinear `grid_sample` at integer offsets; two gathers with clamped indices give the same
    pixels exactly, in the input's dtype (uint8: no float copies), without a padded copy."""
    if pad == 0:
        return pixels
    n, c, h, w = pixels.shape
    shift = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator).to(pixels.device) - pad
    rows = (shift[:, 0:1] + torch.arange(h, device=pixels.device)).clamp_(0, h - 1)
    cols = (shift[:, 1:2] + torch.arange(w, device=pixels.device)).clamp_(0, w - 1)
    shifted_rows = pixels.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w))
    return shifted_rows.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def clipped_noise_sample(mu: torch.Tensor, std: float, clip: float | None) -> torch.Tensor:
    """mu + eps*std with eps*std clipped to +-clip, then clamped to (-1, 1) with a straight-through
    gradient (DrQ-v2's TruncatedNormal): da/dmu = 1 everywhere."""
    noise = torch.randn_like(mu) * std
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    action = mu + noise
    eps = 1e-6
    clamped = action.clamp(-1.0 + eps, 1.0 - eps)
    return action - action.detach() + clamped.detach()


class DrQActor(nn.Module):
    def __init__(self, repr_dim: int, action_dim: int, feature_dim: int, hidden_dim: int):
        super().__init__()
        self.trunk = feature_trunk(repr_dim, feature_dim)
        self.policy = relu_mlp(feature_dim, [hidden_dim, hidden_dim], action_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The mean action tanh(mu); the std comes from the schedule."""
        return torch.tanh(self.policy(self.trunk(features)))


class DrQCritic(nn.Module):
    def __init__(self, repr_dim: int, action_dim: int, feature_dim: int, hidden_dim: int):
        super().__init__()
        self.trunk = feature_trunk(repr_dim, feature_dim)
        self.q1 = relu_mlp(feature_dim + action_dim, [hidden_dim, hidden_dim], 1)
        self.q2 = relu_mlp(feature_dim + action_dim, [hidden_dim, hidden_dim], 1)

    def forward(self, features: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([self.trunk(features), action], dim=-1)
        return self.q1(h), self.q2(h)


class DrQV2(ReplayAgent):
    name = "drqv2"
    config_cls = DrQV2Config
    precisions = PRECISIONS
    # Control steps between evaluations unless --eval-every says otherwise. DrQ-v2 evaluates every
    # 10k frames; a 30-minute CPU run takes ~45k, so evaluate 2.5x as often to draw a curve.
    default_eval_every_steps = 4096

    def __init__(self, spec, config: DrQV2Config, device: str | torch.device = "cpu", seed: int = 0):
        if spec.image_shape is None:
            raise ValueError("drqv2 learns from pixels: build the env with render='raytrace'")
        if config.nstep < 1 or config.update_every_steps < 1 or config.batch_size < 1:
            raise ValueError(f"nstep, update_every_steps and batch_size must be >= 1, got {config.nstep}, {config.update_every_steps}, {config.batch_size}")
        schedule(config.stddev_schedule, 0)  # fail early on a malformed schedule
        check_precision(config.precision)
        self.config = config
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)  # replay sampling and augmentation
        self.action_dim = spec.action_dim
        self.encoder = PixelEncoder(spec.image_shape).to(self.device)
        repr_dim = self.encoder.repr_dim
        self.actor = DrQActor(repr_dim, spec.action_dim, config.feature_dim, config.hidden_dim)
        self.critic = DrQCritic(repr_dim, spec.action_dim, config.feature_dim, config.hidden_dim)
        for net in (self.actor.policy, self.critic.q1, self.critic.q2):
            orthogonal_init_(net, gain=1.0)  # DrQ-v2's weight_init for the MLPs
        self.actor.to(self.device)
        self.critic.to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.encoder_opt = torch.optim.Adam(self.encoder.parameters(), lr=config.lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.lr)
        frame_shape = (3, *spec.image_shape[1:])
        self.replay = FrameReplay(spec.num_envs, config.replay_capacity, frame_shape, spec.action_dim, spec.frame_stack)
        self.agent_steps = 0  # summed over envs: the schedule's and warm-up's clock
        self.control_steps = 0
        self.updates = 0
        # Control steps before the first update: the seed frames, and at least enough for every env
        # to hold one complete n-step window (a tiny `num_seed_frames` would leave nothing to sample).
        self._min_fill = (config.nstep + 1) * spec.num_envs * config.action_repeat
        self._updates_from = max(config.num_seed_frames, self._min_fill)
        self._obs: dict[str, torch.Tensor] | None = None

    # -- acting ---------------------------------------------------------------------------------
    def stddev(self) -> float:
        return schedule(self.config.stddev_schedule, self.agent_steps)

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = True) -> torch.Tensor:
        mu = self.actor(self.encoder(obs["pixels"].to(self.device)))
        if deterministic:
            return mu
        return clipped_noise_sample(mu, self.stddev(), clip=None)

    def _explore(self, obs: dict[str, torch.Tensor], num_envs: int) -> torch.Tensor:
        if self.agent_steps < self.config.num_expl_steps:
            return torch.rand(num_envs, self.action_dim, generator=self.generator).mul_(2).sub_(1).to(self.device)
        return self.act(obs, deterministic=False)

    # -- training after each vector step -------------------------------------------------------
    def _train_after_step(self, num_envs: int, control_steps: int, phases: dict[str, float]) -> dict[str, float] | None:
        cfg = self.config
        metrics = None
        for _ in range(num_envs):  # D.Va's vectorisation: one update check per env's agent step
            self.agent_steps += 1
            if self.control_steps >= self._updates_from and self.agent_steps % cfg.update_every_steps == 0:
                metrics = self.update(phases)
        self.control_steps += num_envs * control_steps
        return metrics

    def _iteration_metrics(self) -> dict[str, float]:
        return {"stddev": self.stddev(), "updates": float(self.updates), "replay_timesteps": float(len(self.replay))}

    def update(self, phases: dict[str, float] | None = None) -> dict[str, float]:
        """One DrQ-v2 update from a replay batch; adds its seconds to `phases` by part."""
        cfg = self.config
        lap = PhaseClock({} if phases is None else phases).lap
        batch = self.replay.sample(cfg.batch_size, cfg.nstep, cfg.gamma, self.generator)
        obs = random_shift(batch.obs.to(self.device), cfg.augment_pad, self.generator)
        next_obs = random_shift(batch.next_obs.to(self.device), cfg.augment_pad, self.generator)
        action, reward, discount = (x.to(self.device) for x in (batch.action, batch.reward, batch.discount))
        lap("replay_sample")
        # (autocast has no weight cache: the actor runs under no_grad for the critic's target first)
        with autocast(self.device, cfg.precision):
            metrics, features = self.update_critic(obs, action, reward, discount, next_obs)
            lap("critic_update")
            metrics |= self.update_actor(features.detach())
        with torch.no_grad():
            for target, online in zip(self.critic_target.parameters(), self.critic.parameters()):
                target.lerp_(online, cfg.critic_tau)
        lap("actor_update")
        self.updates += 1
        return metrics

    def update_critic(self, obs, action, reward, discount, next_obs) -> tuple[dict, torch.Tensor]:
        """One step of encoder and critic; returns the metrics and the encoded (augmented) obs."""
        cfg = self.config
        features = self.encoder(obs)
        with torch.no_grad():
            next_features = self.encoder(next_obs)
            next_action = clipped_noise_sample(self.actor(next_features), self.stddev(), cfg.stddev_clip)
            target_q1, target_q2 = self.critic_target(next_features, next_action)
            target_q = reward.unsqueeze(-1) + discount.unsqueeze(-1) * torch.min(target_q1, target_q2).float()
        q1, q2 = (q.float() for q in self.critic(features, action))
        critic_loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        self.encoder_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        self.encoder_opt.step()
        metrics = {"critic_loss": float(critic_loss.detach()), "critic_q1": float(q1.detach().mean()), "critic_target_q": float(target_q.mean())}
        return metrics, features

    def update_actor(self, features: torch.Tensor) -> dict:
        action = clipped_noise_sample(self.actor(features), self.stddev(), self.config.stddev_clip)
        self.critic.requires_grad_(False)  # the actor loss only steps the actor: skip the critic's weight gradients
        try:
            q1, q2 = self.critic(features, action)
            actor_loss = -torch.min(q1, q2).float().mean()
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
        finally:
            self.critic.requires_grad_(True)
        self.actor_opt.step()
        return {"actor_loss": float(actor_loss.detach())}

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Networks, optimisers and counters. The replay is not checkpointed (1M frames would be
        gigabytes per record): a resumed run refills `num_seed_frames` control steps with its
        current policy before it updates again."""
        return {
            "encoder": self.encoder.state_dict(),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "encoder_opt": self.encoder_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "counters": {"agent_steps": self.agent_steps, "control_steps": self.control_steps, "updates": self.updates},
            "generator": self.generator.get_state(),  # replay sampling, augmentation, warm-up actions
        }

    def load_state_dict(self, state: dict) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.encoder_opt.load_state_dict(state["encoder_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        counters = state["counters"]
        self.agent_steps, self.control_steps, self.updates = counters["agent_steps"], counters["control_steps"], counters["updates"]
        self._updates_from = self.control_steps + max(self.config.num_seed_frames, self._min_fill)
        if "generator" in state:
            self.generator.set_state(state["generator"])
        self._obs = None
