"""What a task is: model, observation, reward, termination, reset noise, camera.

A task never touches warp arrays or the renderer; it works on torch tensors of generalised
coordinates `q [N, q_dim]` and velocities `qd [N, qd_dim]`, so every function below is
differentiable by torch and the physics bridge stays task-agnostic.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

import newton
from envs.camera import CameraSpec


class Task(ABC):
    name: str
    state_dim: int
    action_dim: int
    episode_length: int
    control_dt: float
    substeps: int
    reward_range: tuple[float, float]
    camera: CameraSpec
    # World box that the moving bodies can never leave (for a fixed camera, pixels outside its
    # projection are the static backdrop and are not traced); None: trace every pixel.
    visual_bounds: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    # Locomotion cameras follow the robot (`camera` is then relative to `ContactTask.camera_mount(q)`); the
    # floor strip spans |y| <= floor_half_width with the grey wall at its far edge.
    tracking_camera: bool = False
    # The paper's ant and humanoid observe their previous action: the env appends it (zeros after a
    # reset) to `state_obs`, which then returns state_dim - action_dim numbers.
    observes_previous_action: bool = False
    floor_half_width: float = 10.0

    @abstractmethod
    def build_world(self, builder: newton.ModelBuilder) -> None:
        """Add one world's articulation to `builder` (called between begin_world/end_world)."""

    @abstractmethod
    def make_solver(self, model: newton.Model) -> newton.solvers.SolverBase:
        """The solver and its settings for this task."""

    @abstractmethod
    def initial_state(self, n: int, generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Start (q, qd) for `n` worlds, with the paper's uniform init noise drawn from `generator`."""

    @abstractmethod
    def action_to_joint_f(self, action: torch.Tensor) -> torch.Tensor:
        """Map actions in [-1, 1] (already clipped) to generalised forces [N, qd_dim]."""

    @abstractmethod
    def state_obs(self, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        """Privileged state observation [N, state_dim]."""

    @abstractmethod
    def reward(self, q: torch.Tensor, qd: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Per-step reward [N] of the state reached and the clipped action that reached it."""

    @abstractmethod
    def terminated(self, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        """Early termination [N] bool (no gradient)."""

    def uses_contacts(self) -> bool:
        return False
