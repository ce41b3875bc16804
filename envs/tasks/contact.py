"""What every locomotion task shares: penalty contact with its own ground plane, Featherstone with
the mass matrix cached per control step, and uniform start-state noise."""

from __future__ import annotations

import math
from abc import abstractmethod

import torch

import newton
from envs.tasks.base import Task


class ContactTask(Task):
    contact: dict[str, float]  # ke, kd, kf, mu of every shape and of the ground
    # Joint limits of all paper tasks: ke 1e3, kd 10. dflex applies the limit kd to every 1-dof joint
    # at all times, not only past a limit (docs/locomotion-fidelity.md, C3), so the 10 is viscous
    # joint damping here (added to every hinge and planar-root dof's damping) and Newton's limit kd,
    # which acts past a limit only, is 0.
    limit_ke, limit_kd = 1.0e3, 0.0
    always_on_damping = 10.0
    tracking_camera = True
    # Every locomotion task of the paper: 60 Hz control, 1000-step episodes, unbounded reward.
    episode_length = 1000
    control_dt = 1.0 / 60.0
    reward_range = (-math.inf, math.inf)

    def add_ground(self, builder: newton.ModelBuilder) -> None:
        """Each world's own ground (collision only: the renderer draws the floor itself)."""
        builder.add_ground_plane(cfg=newton.ModelBuilder.ShapeConfig(is_visible=False, **self.contact))

    def uses_contacts(self) -> bool:
        return True

    @abstractmethod
    def camera_mount(self, q: torch.Tensor) -> torch.Tensor:
        """World position [N, 3] of the tracking camera's mount at coordinates `q`."""

    def make_solver(self, model: newton.Model) -> newton.solvers.SolverBase:
        # The mass matrix once per control step (the paper's MM caching of 16 or 48 substeps): every
        # call of the bridge runs exactly `substeps` solver steps, so the refresh is each step's first.
        return newton.solvers.SolverFeatherstone(model, update_mass_matrix_interval=self.substeps)

    @staticmethod
    def uniform(generator: torch.Generator, device: torch.device, scale: float, *shape: int) -> torch.Tensor:
        """U(-scale, scale) noise of `shape`."""
        return (torch.rand(*shape, generator=generator, device=device) * 2 - 1) * scale
