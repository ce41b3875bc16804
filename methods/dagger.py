"""State-to-visual DAgger, the paper's teacher-student baseline (dva_paper.md sections 2 and 5).

A `shac-state` teacher is trained first, inside the run's budget (or loaded from a shac-state
run's checkpoint). Then every epoch the pixel student acts in `num_envs` envs for `horizon` steps
(pure DAgger: the student always acts, no teacher mixing, no beta schedule), the teacher labels
every visited state with its deterministic mean action (pre-tanh, on the state normalised by its
own running statistics), the pairs go into a FIFO buffer, and once the buffer holds
`learning_starts` of them the student takes up to `updates_per_epoch` Adam steps on minibatches
drawn without replacement, stopping early as soon as a minibatch loss falls below
`early_stop_loss`. The loss is the negative log-likelihood of the teacher's mean under the
student's Gaussian (CartPole's stochastic student) or the MSE between the means (the
deterministic students of the other tasks, which act without noise). The curves count the
teacher's env steps and training time, as the paper does; while the teacher trains, evaluations
score the untrained student. A teacher loaded from a checkpoint is not re-counted on the axes
(its run already recorded them); its env steps and training seconds are logged with every
record (`teacher_env_steps`, `teacher_train_s`), so a reader can add them.

Fixed against the reference (section 8): a minibatch never loses samples at the buffer's
wrap-around, minibatches walk one permutation per pass over the buffer instead of drawing a
full permutation for each, and the logged learning rate is the current one. The `mse` student
is D.Va's actor (ELU/LayerNorm MLP, `student_units`), not the reference's orthogonally
initialised ActorDeterministicMLP; for CartPole (the `nll` student) they are the same network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from harness.store import RunFolder
from methods.base import IterationStats, Method
from methods.dva import Actor, DVAConfig, SHACState
from methods.networks import PixelEncoder
from methods.presets import config_from_dict, load_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class DAggerConfig:
    # Student env (the paper's D.Va settings: 64 envs, 84x84, 3 frames).
    num_envs: int = 64
    image_size: int = 84
    supersample: int = 1
    crop_static_rows: bool = False  # read the rows the robot reaches only (a protocol may ask it; envs.make)
    frame_stack: int = 3
    horizon: int = 32  # steps per epoch
    # Student (CartPole: ActorStochasticMLP [64, 64] with the D.Va encoder, NLL loss).
    student_units: list[int] = field(default_factory=lambda: [64, 64])
    student_logstd_init: float = -1.0
    loss: str = "nll"  # "nll" (stochastic student) or "mse" (deterministic student)
    # Optimisation (teacher_student/*.yaml).
    lr: float = 2e-3
    lr_final: float = 1e-5
    betas: tuple[float, float] = (0.7, 0.95)
    max_epochs: int = 10000  # only sets the LR decay: max_epochs * updates_per_epoch update counts
    updates_per_epoch: int = 2000
    batch_size: int = 128
    learning_starts: int = 32000
    buffer_size: int = 100_000
    early_stop_loss: float = 0.1
    # Teacher: trained in the run with shac-state's `teacher_preset` for `teacher_iterations`
    # epochs, or loaded from a shac-state run folder (its run.json and checkpoint.pt).
    teacher_preset: str = "paper"
    teacher_iterations: int = 4000
    teacher_checkpoint: str = ""


class TeacherLabelBuffer:
    """FIFO ring of (uint8 pixel stack, teacher action) pairs, on the host."""

    def __init__(self, capacity: int, image_shape: tuple[int, int, int], action_dim: int):
        self.pixels = torch.empty(capacity, *image_shape, dtype=torch.uint8)
        self.labels = torch.empty(capacity, action_dim)
        self.capacity = capacity
        self.written = 0

    def __len__(self) -> int:
        return min(self.written, self.capacity)

    def add(self, pixels: torch.Tensor, labels: torch.Tensor) -> None:
        slots = (self.written + torch.arange(len(pixels))) % self.capacity
        self.pixels[slots] = pixels.to("cpu", torch.uint8)
        self.labels[slots] = labels.detach().to("cpu", torch.float32)
        self.written += len(pixels)


class DAgger(Method):
    name = "dagger"
    config_cls = DAggerConfig

    def __init__(self, spec, config: DAggerConfig, device: str | torch.device = "cpu", seed: int = 0):
        if spec.image_shape is None:
            raise ValueError("dagger's student learns from pixels: build the env with render='raytrace'")
        if config.loss not in ("nll", "mse"):
            raise ValueError(f"loss must be 'nll' or 'mse', got {config.loss!r}")
        if config.batch_size > config.buffer_size or config.learning_starts > config.buffer_size:
            raise ValueError("batch_size and learning_starts must not exceed buffer_size")
        self.config = config
        self.device = torch.device(device)
        self.seed = seed
        self.task = spec.name
        torch.manual_seed(seed)
        encoder = PixelEncoder(spec.image_shape, feature_dim=config.student_units[0])
        self.student = Actor(encoder, config.student_units[0], config.student_units, spec.action_dim, config.student_logstd_init).to(self.device)
        self.optimizer = torch.optim.Adam(self.student.parameters(), lr=config.lr, betas=config.betas)
        self.buffer = TeacherLabelBuffer(config.buffer_size, spec.image_shape, spec.action_dim)
        self.teacher_config = self._teacher_config()
        self.teacher: SHACState | None = None
        self.teacher_env = None
        self.teacher_ready = False
        self.updates = 0
        self.epochs = 0
        self._obs: dict[str, torch.Tensor] | None = None
        self._permutation = torch.empty(0, dtype=torch.long)
        self.loaded_teacher_cost: dict[str, float] = {}
        if config.teacher_checkpoint:
            self._load_teacher()

    # -- teacher --------------------------------------------------------------------------------
    def _teacher_config(self) -> DVAConfig:
        cfg = self.config
        if cfg.teacher_checkpoint:
            run = self._teacher_folder().read()
            if run.get("method") != "shac-state":
                raise ValueError(f"teacher_checkpoint must be a shac-state run, {cfg.teacher_checkpoint} is {run.get('method')!r}")
            return config_from_dict(DVAConfig, run["config"])
        return load_config(SHACState, self.task, cfg.teacher_preset)

    def _teacher_folder(self) -> RunFolder:
        """The shac-state run folder `teacher_checkpoint` names (the folder or its checkpoint.pt). A
        relative path that is not found from the working directory is read from the project's root,
        where a preset's committed teacher lives (`check`: results/check-teacher/)."""
        path = Path(self.config.teacher_checkpoint)
        if not path.is_absolute() and not path.exists() and (PROJECT_ROOT / path).exists():
            path = PROJECT_ROOT / path
        return RunFolder(path if path.is_dir() else path.parent)

    def _make_teacher(self) -> None:
        import envs  # the teacher's state-only env (methods import the simulator only when they build one)

        self.teacher_env = envs.make(self.task, num_envs=self.teacher_config.num_envs, device=self.device, seed=self.seed, render=None)
        self.teacher = SHACState(self.teacher_env.spec, self.teacher_config, self.device, self.seed)

    def _load_teacher(self) -> None:
        self._make_teacher()
        state = self._teacher_folder().load_checkpoint(map_location=self.device)
        self.teacher.load_state_dict(state["method"])
        counters = state.get("counters", {})
        self.loaded_teacher_cost = {"teacher_env_steps": float(counters.get("env_steps", math.nan)),
                                    "teacher_train_s": float(counters.get("train_s", math.nan))}  # fmt: skip
        self.teacher_ready = True

    @torch.no_grad()
    def teacher_labels(self, state: torch.Tensor) -> torch.Tensor:
        """The teacher's deterministic mean action, pre-tanh, on its own normalisation."""
        return self.teacher.actor(self.teacher.obs_rms.normalize(state), deterministic=True)

    def _train_teacher(self, env) -> IterationStats:
        if self.teacher is None:
            self._make_teacher()
        with env.timings.phase("teacher_training"):
            stats = self.teacher.iterate(self.teacher_env)
        self.teacher_env.timings.pop()  # the teacher's own phases are all in teacher_training
        self.teacher_ready = self.teacher.epoch >= self.config.teacher_iterations
        metrics = {f"teacher_{k}": v for k, v in stats.metrics.items()}
        metrics["teacher_train_return"] = sum(stats.finished_episode_returns) / len(stats.finished_episode_returns) if stats.finished_episode_returns else math.nan
        return IterationStats(env_steps=stats.env_steps, metrics=metrics)

    # -- student --------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = True) -> torch.Tensor:
        return torch.tanh(self.student(obs["pixels"], deterministic=deterministic))

    def student_loss(self, pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        mu = self.student(pixels, deterministic=True)
        if self.config.loss == "mse":
            return (mu - labels).square().mean()
        dist = torch.distributions.Normal(mu, self.student.logstd.exp())
        return -dist.log_prob(labels).mean()

    def _set_learning_rate(self) -> float:
        cfg = self.config
        frac = min(self.updates / max(cfg.max_epochs * cfg.updates_per_epoch, 1), 1.0)
        lr = cfg.lr + (cfg.lr_final - cfg.lr) * frac
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _next_minibatch(self) -> torch.Tensor:
        """Indices without replacement: one permutation of the buffer per pass."""
        if len(self._permutation) < self.config.batch_size:
            self._permutation = torch.randperm(len(self.buffer))
        batch, self._permutation = self._permutation[: self.config.batch_size], self._permutation[self.config.batch_size :]
        return batch

    def train_student(self) -> tuple[float, int]:
        """Up to `updates_per_epoch` steps, stopping at the first minibatch loss below the threshold."""
        cfg = self.config
        self._permutation = torch.empty(0, dtype=torch.long)  # the buffer changed: a fresh pass
        loss_value, steps = math.nan, 0
        for _ in range(cfg.updates_per_epoch):
            index = self._next_minibatch()
            pixels, labels = self.buffer.pixels[index].to(self.device), self.buffer.labels[index].to(self.device)
            self._set_learning_rate()
            loss = self.student_loss(pixels, labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.updates += 1
            steps += 1
            loss_value = float(loss.detach())
            if loss_value < cfg.early_stop_loss:
                break
        return loss_value, steps

    def iterate(self, env) -> IterationStats:
        if not self.teacher_ready:
            return self._train_teacher(env)
        cfg, clock = self.config, env.timings
        if self._obs is None:
            self._obs = env.reset()
        finished: list[float] = []
        with clock.phase("student_act"):  # the env's sim_forward and render are timed inside, apart
            for _ in range(cfg.horizon):
                obs = self._obs
                with clock.phase("relabel"):
                    labels = self.teacher_labels(obs["state"])
                self.buffer.add(obs["pixels"], labels)
                self._obs, _, _, info = env.step(self.act(obs, deterministic=cfg.loss == "mse"))
                finished.extend(info["episode_returns"].tolist())
        loss, steps = (math.nan, 0)
        with clock.phase("student_update"):
            if len(self.buffer) >= cfg.learning_starts:
                loss, steps = self.train_student()
        self.epochs += 1
        metrics = {"student_loss": loss, "student_updates": float(steps), "buffer": float(len(self.buffer)),
                   "lr": self.optimizer.param_groups[0]["lr"], "student_std": float(self.student.logstd.detach().exp().mean()),
                   **self.loaded_teacher_cost}  # fmt: skip
        return IterationStats(env_steps=cfg.horizon * env.num_envs, metrics=metrics, finished_episode_returns=finished)

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Student, optimiser, teacher and counters. The label buffer is not saved (gigabytes at
        84x84): a resumed run refills `learning_starts` pairs before the student trains again."""
        return {
            "student": self.student.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "teacher": self.teacher.state_dict() if self.teacher is not None else None,
            "teacher_ready": self.teacher_ready,
            "counters": {"updates": self.updates, "epochs": self.epochs},
        }

    def load_state_dict(self, state: dict) -> None:
        self.student.load_state_dict(state["student"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["teacher"] is not None:
            if self.teacher is None:
                self._make_teacher()
            self.teacher.load_state_dict(state["teacher"])
        self.teacher_ready = state["teacher_ready"]
        self.updates, self.epochs = state["counters"]["updates"], state["counters"]["epochs"]
        self._obs = None
