"""D.Va (and SHAC on privileged state): short-horizon actor-critic with analytic policy gradients.

Paper: "Accelerating Visual-Policy Learning through Parallel Differentiable Simulation"
(reference/dva_paper.md sections 1 and 5). Per iteration (one "epoch"):
  1. linear LR decay of actor and critic towards 1e-5;
  2. roll the policy out for `horizon` steps through the differentiable env. The D.Va actor reads
     the uint8 frame stack, detached (no path observation -> state), the critic reads the state
     normalised by a frozen copy of the running mean/std. The actor loss is the negative
     discounted return, bootstrapped with the target critic at episode ends (0 on early
     termination, V(terminal obs) on a time limit) and at the horizon; its gradient flows
     reward -> simulator state -> action -> policy;
  3. one Adam step of the actor (grad-norm clip 1.0; abort on NaN or norm > 1e8);
  4. TD(lambda) targets from the target critic, 16 epochs x 4 contiguous minibatches of critic MSE;
  5. Polyak update of the target critic.
`shac-state` is the same loop with the actor on the normalised state obs, graph kept (SHAC).
`shac` (visual SHAC, the paper's baseline) reads the pixel stack of the differentiable renderer
with its graph kept, so the actor gradient also flows reward -> state -> pixels -> encoder.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from methods.base import IterationStats, Method
from methods.networks import PixelEncoder, elu_layernorm_mlp, orthogonal_init_
from methods.normalization import RunningMeanStd
from methods.returns import td_lambda_targets


@dataclass
class DVAConfig:
    # Environment (the paper's D.Va settings: 64 envs, 84x84, 3 frames).
    num_envs: int = 64
    image_size: int = 84
    supersample: int = 1
    frame_stack: int = 3
    crop_static_rows: bool = False  # drop rows that only ever show the backdrop (envs.make)
    # "raytrace" (uint8, no gradient) or "differentiable" (float pixels with a graph to the state;
    # SHAC needs it, D.Va can run on it for a like-for-like comparison, the paper's diff_render_*).
    render: str = "raytrace"
    # Algorithm (section 5 "common to all tasks").
    horizon: int = 32
    gamma: float = 0.99
    lam: float = 0.95
    critic_iterations: int = 16
    critic_minibatches: int = 4
    betas: tuple[float, float] = (0.7, 0.95)
    grad_norm: float = 1.0
    abort_grad_norm: float = 1e8
    actor_logstd_init: float = -1.0
    lr_schedule: str = "linear"
    lr_final: float = 1e-5
    # Per task (section 5 table; cartpole values as defaults).
    actor_units: list[int] = field(default_factory=lambda: [64, 64])
    critic_units: list[int] = field(default_factory=lambda: [64, 64])
    actor_lr: float = 2e-3
    critic_lr: float = 2e-4
    target_alpha: float = 0.2
    max_epochs: int = 4000


class NonFiniteGradientError(RuntimeError):
    """The actor gradient was NaN/inf or above the abort threshold: the run is diverging."""


class Actor(nn.Module):
    """Gaussian policy with a state-independent log-std; tanh is applied outside, by the caller."""

    def __init__(self, obs_encoder: nn.Module | None, in_dim: int, units: list[int], action_dim: int, logstd_init: float):
        super().__init__()
        self.encoder = obs_encoder
        # Layer sizes [in_dim] + units + [action_dim], hidden Linear -> ELU -> LayerNorm (the paper's
        # ActorStochasticMLP; with pixels, in_dim is the encoder's feature size units[0]).
        self.mu = elu_layernorm_mlp(in_dim, units, action_dim)
        self.logstd = nn.Parameter(torch.full((action_dim,), logstd_init))

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        features = self.encoder(obs) if self.encoder is not None else obs
        mu = self.mu(features)
        if deterministic:
            return mu
        return mu + self.logstd.exp() * torch.randn_like(mu)  # reparameterised sample


@dataclass
class Rollout:
    """One short-horizon rollout: the actor's loss (graph attached) and the critic's data, [T, N]."""

    actor_loss: torch.Tensor
    states: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    next_values: torch.Tensor
    finished: list[float]


class ShortHorizonActorCritic(Method):
    """The shared loop; subclasses only choose what the actor observes."""

    differentiable_sim = True
    # SHAC keeps the graph observation -> simulator state (state, or differentiable pixels);
    # D.Va cuts it (detached pixels, or detached state in the paper's state-only variant).
    observation_gradient: bool
    config_cls = DVAConfig

    def __init__(self, spec, config: DVAConfig, device: str | torch.device = "cpu", seed: int = 0):
        self.config = config
        self.device = torch.device(device)
        if config.render not in ("raytrace", "differentiable"):
            raise ValueError(f"render must be 'raytrace' or 'differentiable', got {config.render!r}")
        if self.reads_pixels and self.observation_gradient and config.render != "differentiable":
            raise ValueError(f"{self.name} backpropagates through the pixels: it needs render='differentiable', got {config.render!r}")
        torch.manual_seed(seed)
        self.state_dim, self.action_dim = spec.state_dim, spec.action_dim
        if self.reads_pixels:
            if spec.image_shape is None:
                raise ValueError(f"{self.name} needs pixels: build the env with render={config.render!r}")
            encoder = PixelEncoder(spec.image_shape, feature_dim=config.actor_units[0])
            self.actor = Actor(encoder, config.actor_units[0], config.actor_units, spec.action_dim, config.actor_logstd_init)
        else:
            self.actor = Actor(None, spec.state_dim, config.actor_units, spec.action_dim, config.actor_logstd_init)
        self.critic = orthogonal_init_(elu_layernorm_mlp(spec.state_dim, config.critic_units, 1))
        self.actor.to(self.device)
        self.critic.to(self.device)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, betas=config.betas)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr, betas=config.betas)
        self.obs_rms = RunningMeanStd((spec.state_dim,), self.device)
        self.epoch = 0
        self._obs: dict[str, torch.Tensor] | None = None

    # -- acting ---------------------------------------------------------------------------------
    def _actor_input(self, obs: dict[str, torch.Tensor], rms: RunningMeanStd) -> torch.Tensor:
        observation = obs["pixels"] if self.reads_pixels else rms.normalize(obs["state"])
        # SHAC: the observation keeps its graph to the simulator state; D.Va: that path is cut.
        return observation if self.observation_gradient else observation.detach()

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = True) -> torch.Tensor:
        return torch.tanh(self.actor(self._actor_input(obs, self.obs_rms), deterministic=deterministic))

    # -- one iteration --------------------------------------------------------------------------
    def _set_learning_rates(self) -> None:
        cfg = self.config
        if cfg.lr_schedule != "linear":
            return
        frac = min(self.epoch / max(cfg.max_epochs, 1), 1.0)
        for optimizer, lr0 in ((self.actor_optimizer, cfg.actor_lr), (self.critic_optimizer, cfg.critic_lr)):
            for group in optimizer.param_groups:
                group["lr"] = lr0 + (cfg.lr_final - lr0) * frac

    def _terminal_values(self, next_value: torch.Tensor, info: dict, done: torch.Tensor, rms: RunningMeanStd) -> torch.Tensor:
        """0 on early termination (or an invalid terminal state), V(terminal obs) on a time limit."""
        if not bool(done.any()):
            return next_value
        terminal_state = info["terminal_obs"]["state"]
        invalid = ~torch.isfinite(terminal_state).all(dim=1) | (terminal_state.detach().abs() > 1e6).any(dim=1)
        terminal_value = self.target_critic(rms.normalize(torch.nan_to_num(terminal_state))).squeeze(-1)
        value = torch.where(done, terminal_value, next_value)
        return torch.where(info["terminated"] | (done & invalid), torch.zeros_like(value), value)

    def iterate(self, env) -> IterationStats:
        clock = env.timings  # the env's sim_forward/render/sim_backward/render_backward are timed inside, apart
        with clock.phase("actor_forward"):
            rollout = self._rollout(env)
        with clock.phase("actor_update"):
            grad_norm = self._update_actor(rollout.actor_loss, env)
        with clock.phase("critic_update"):
            critic_loss = self._update_critic(rollout)
        self.epoch += 1
        metrics = {
            "actor_loss": float(rollout.actor_loss.detach()),
            "critic_loss": critic_loss,
            "actor_grad_norm": grad_norm,
            "actor_lr": self.actor_optimizer.param_groups[0]["lr"],
            "policy_std": float(self.actor.logstd.detach().exp().mean()),
        }
        return IterationStats(env_steps=rollout.rewards.numel(), metrics=metrics, finished_episode_returns=rollout.finished)

    def _rollout(self, env) -> Rollout:
        """`horizon` steps of all envs with the graph kept: the actor's loss (the negated, discounted
        short-horizon return bootstrapped by the target critic) and the critic's training data."""
        cfg = self.config
        n, horizon, gamma = env.num_envs, cfg.horizon, cfg.gamma
        self._set_learning_rates()
        if self._obs is None:
            self._obs = env.reset()
            self.obs_rms.update(self._obs["state"])
        env.detach()  # cut the graph at the iteration boundary; episodes run on
        obs = {k: v.detach() for k, v in self._obs.items()}
        rms = self.obs_rms.copy()  # frozen normalisation for this rollout

        states = torch.empty(horizon, n, self.state_dim, device=self.device)
        rewards = torch.empty(horizon, n, device=self.device)
        dones = torch.empty(horizon, n, device=self.device)
        next_values = torch.empty(horizon, n, device=self.device)
        discounted_return = torch.zeros(n, device=self.device)
        discount = torch.ones(n, device=self.device)
        actor_loss = torch.zeros((), device=self.device)
        finished: list[float] = []

        for t in range(horizon):
            states[t] = rms.normalize(obs["state"]).detach()
            action = torch.tanh(self.actor(self._actor_input(obs, rms)))
            obs, reward, done, info = env.step(action)
            next_state = obs["state"]
            self.obs_rms.update(next_state.detach())
            next_value = self.target_critic(rms.normalize(next_state)).squeeze(-1)
            next_value = self._terminal_values(next_value, info, done, rms)
            discounted_return = discounted_return + discount * reward
            cut = done if t < horizon - 1 else torch.ones_like(done)
            actor_loss = actor_loss - (cut * (discounted_return + gamma * discount * next_value)).sum()
            discount = torch.where(done, torch.ones_like(discount), discount * gamma)
            discounted_return = torch.where(done, torch.zeros_like(discounted_return), discounted_return)
            rewards[t], dones[t], next_values[t] = reward.detach(), cut.float(), next_value.detach()
            finished.extend(info["episode_returns"].tolist())
        self._obs = {k: v.detach() for k, v in obs.items()}  # the next rollout starts here; its graph is never used
        return Rollout(actor_loss / (horizon * n), states, rewards, dones, next_values, finished)

    def _update_actor(self, actor_loss: torch.Tensor, env) -> float:
        """Backpropagate the loss through the rollout (and the simulator) and step the actor; returns
        the gradient norm before clipping (an exploding one aborts the run)."""
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.actor.parameters(), float("inf")))
        if not math.isfinite(grad_norm) or grad_norm > self.config.abort_grad_norm:
            raise NonFiniteGradientError(f"actor gradient norm {grad_norm} at epoch {self.epoch}")
        torch.nn.utils.clip_grad_norm_(self.actor.parameters(), self.config.grad_norm)
        self.actor_optimizer.step()
        env.detach()
        return grad_norm

    def _update_critic(self, rollout: Rollout) -> float:
        """TD(lambda) targets from the target critic, the critic's regression, then Polyak averaging."""
        cfg = self.config
        targets = td_lambda_targets(rollout.rewards, rollout.next_values, rollout.dones, cfg.gamma, cfg.lam)
        critic_loss = self._train_critic(rollout.states.reshape(-1, self.state_dim), targets.reshape(-1))
        with torch.no_grad():
            for target, online in zip(self.target_critic.parameters(), self.critic.parameters()):
                target.mul_(cfg.target_alpha).add_(online, alpha=1.0 - cfg.target_alpha)
        return critic_loss

    def _train_critic(self, states: torch.Tensor, targets: torch.Tensor) -> float:
        """16 epochs x 4 contiguous (unshuffled, as the reference) minibatches of value regression."""
        cfg = self.config
        batch = states.shape[0] // cfg.critic_minibatches
        loss_value = 0.0
        for _ in range(cfg.critic_iterations):
            for b in range(cfg.critic_minibatches):
                sl = slice(b * batch, (b + 1) * batch)
                loss = (self.critic(states[sl]).squeeze(-1) - targets[sl]).square().mean()
                self.critic_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                for p in self.critic.parameters():
                    if p.grad is not None:
                        torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
                torch.nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.grad_norm)
                self.critic_optimizer.step()
                loss_value = float(loss.detach())
        return loss_value

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "obs_rms": self.obs_rms.state_dict(),
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.target_critic.load_state_dict(state["target_critic"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.obs_rms.load_state_dict(state["obs_rms"])
        self.epoch = int(state["epoch"])
        self._obs = None  # the env restarts its episodes after a resume


class DVA(ShortHorizonActorCritic):
    """D.Va: the actor reads detached pixels; gradients reach it through the simulator only."""

    name = "dva"
    reads_pixels = True
    observation_gradient = False


class DVAState(ShortHorizonActorCritic):
    """State-only D.Va (the paper's ablation): the actor reads the state obs detached. Against
    shac-state it isolates the cut observation gradient from learning from pixels."""

    name = "dva-state"
    reads_pixels = False
    observation_gradient = False


class SHAC(ShortHorizonActorCritic):
    """Visual SHAC: the actor reads differentiable pixels, gradients also flow back through rendering."""

    name = "shac"
    reads_pixels = True
    observation_gradient = True
    differentiable_render = True


class SHACState(ShortHorizonActorCritic):
    """SHAC on privileged state: the oracle line and the DAgger teacher."""

    name = "shac-state"
    reads_pixels = False
    observation_gradient = True
