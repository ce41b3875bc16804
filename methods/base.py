"""The method contract (DESIGN.md) and the registry of short names.

A method is built from the env spec, a config, a device and a seed. The harness calls
`iterate(env)` until the budget is spent and `act(obs)` to evaluate; `state_dict` checkpoints.
Each method also says how its training env must be built (`env_kwargs`), since pixels or not,
image size and number of envs are part of a method's configuration.
"""

from __future__ import annotations

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


class Method(ABC):
    name: str

    @abstractmethod
    def iterate(self, env) -> IterationStats: ...

    @abstractmethod
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = True) -> torch.Tensor: ...

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

