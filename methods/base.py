"""The method contract (DESIGN.md) and the registry of short names.

A method is built from the env spec, a config, a device and a seed. The harness calls
`iterate(env)` until the budget is spent and `act(obs)` to evaluate; `state_dict` checkpoints.
Each method also says how its training env must be built (`env_kwargs`), since pixels or not,
image size and number of envs are part of a method's configuration.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch


@dataclass
class IterationStats:
    """What one `iterate` call did: env steps consumed, seconds per phase, and scalar metrics."""

    env_steps: int
    phase_s: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    finished_episode_returns: list[float] = field(default_factory=list)


class PhaseClock:
    """Adds the seconds since the previous lap to `phases[name]`: per-part timings of an update."""

    def __init__(self, phases: dict[str, float]):
        self.phases = phases
        self.clock = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self.clock
        self.clock = now


class Method(ABC):
    name: str

    @abstractmethod
    def iterate(self, env) -> IterationStats: ...

    @abstractmethod
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = True) -> torch.Tensor: ...

    def on_eval_start(self) -> None:
        """Evaluation episodes begin on a fresh eval env (a planner drops its warm start here)."""

    def save_artifacts(self, folder) -> None:
        """After each evaluation: files a method wants beside its run (DreamerV3's reconstructions)."""

    @abstractmethod
    def state_dict(self) -> dict: ...

    @abstractmethod
    def load_state_dict(self, state: dict) -> None: ...


REGISTRY: dict[str, type] = {}
ALIASES: dict[str, str] = {"dreamer": "dreamerv3", "tdmpc": "tdmpc2", "drq": "drqv2"}


def register(name: str):
    def decorator(cls):
        REGISTRY[name] = cls
        cls.name = name
        return cls

    return decorator


def resolve_method_name(name: str) -> str:
    canonical = ALIASES.get(name, name)
    if canonical not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(REGISTRY))}")
    return canonical


def get_method_class(name: str) -> type:
    return REGISTRY[resolve_method_name(name)]

