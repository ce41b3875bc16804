"""The method contract: every hook and declaration the harness uses, with its default.

A method is a class built as `cls(spec, config, device, seed)` from the env spec and a config
dataclass whose defaults are the paper's settings. The harness calls `iterate(env)` until the
budget is spent, `act(obs)` to evaluate, and `state_dict`/`load_state_dict` to checkpoint. What a
method needs from the harness is declared here as class attributes (pixels or state, gradients
through the simulator or the renderer, evaluation schedule, precisions, model sizes, which
benchmarks apply), so the harness never probes a method with `getattr`/`hasattr`.

Phase timing: `env.timings` is the iteration's clock (envs/timing.py). A method times its own
phases on it by name (`with env.timings.phase("critic_update"): ...`); the simulator and the
renderer time theirs on the same clock, and nested phases are not double counted. The harness
reads the clock after each iteration.

Methods are found through the Python entry-point group `dva_bench.methods` (see methods/registry.py),
so a method in another package plugs in with `pip install`.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

# Config fields that say how the env is built (the same name means the same thing in every config).
ENV_FIELDS = ("num_envs", "image_size", "supersample", "frame_stack", "crop_static_rows", "action_repeat")


@dataclass
class IterationStats:
    """What one `iterate` call did: env steps consumed, scalar metrics and finished episodes' returns."""

    env_steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    finished_episode_returns: list[float] = field(default_factory=list)


class PhaseClock:
    """Adds the seconds since the previous lap to `phases[name]`: the parts of one update, for
    methods whose update runs many times per iteration (bench-updates reads the parts too)."""

    def __init__(self, phases: dict[str, float]):
        self.phases = phases
        self.clock = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self.clock
        self.clock = now


class Method(ABC):
    # -- identity and configuration ---------------------------------------------------------------
    name: ClassVar[str]  # the short name users type, equal to the method's entry-point name
    config_cls: ClassVar[type]  # a dataclass; its defaults are the paper's settings

    # -- what the method needs from the env -------------------------------------------------------
    reads_pixels: ClassVar[bool] = True  # the policy acts from rendered pixels (else: the state vector)
    differentiable_sim: ClassVar[bool] = False  # it backpropagates through the simulator (first-order)
    differentiable_render: ClassVar[bool] = False  # ... and through the renderer (SHAC from pixels)
    stacks_frames: ClassVar[bool] = True  # reads the protocol's frame stack (DreamerV3: one frame, its RSSM remembers)

    # -- evaluation schedule (a run's --eval-every / --eval-episodes override them) ---------------
    default_eval_every_steps: ClassVar[int] = 51_200
    default_eval_episodes: ClassVar[int] = 16

    # -- options the bench commands may vary ------------------------------------------------------
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)  # values of the config's `precision`, if it has one
    model_sizes: ClassVar[tuple[Any, ...]] = ()  # values of the config's `model_size`, if it has one
    bench_overrides: ClassVar[dict[str, Any]] = {}  # config changes that keep a benchmark's warm-up short

    def __init__(self, spec, config, device: str | torch.device = "cpu", seed: int = 0):
        """Subclasses build their networks here; the base keeps nothing."""

    @classmethod
    def presets_path(cls) -> Path:
        """The method's preset file (methods/presets.py): `configs/<name>.yaml` beside its module."""
        return Path(inspect.getfile(cls)).parent / "configs" / f"{cls.name}.yaml"

    @classmethod
    def env_kwargs(cls, config) -> dict:
        """How the training and evaluation envs are built for this config (envs.make's keywords):
        the config's ENV_FIELDS, and the pixels the method reads (its `render` field, raytraced by default)."""
        names = {f.name for f in dataclasses.fields(config)}
        kwargs = {key: getattr(config, key) for key in ENV_FIELDS if key in names}
        render = config.render if "render" in names else "raytrace"
        kwargs["render"] = render if cls.reads_pixels else None
        if kwargs["render"] == "differentiable":
            kwargs["pixel_grad"] = cls.differentiable_render  # D.Va renders the same pixels without a graph
        return kwargs

    @abstractmethod
    def iterate(self, env) -> IterationStats:
        """One training iteration in `env` (collect and update); times its phases on `env.timings`."""

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



# -- capabilities some methods add (the bench commands ask for them by class) ---------------------


class ReplayUpdates(ABC):
    """A method that trains from its replay one gradient update at a time (`harness bench-updates`)."""

    updates: int  # gradient updates so far

    @abstractmethod
    def update(self, phases: dict[str, float] | None = None) -> dict[str, float]:
        """One gradient update from the replay; `phases` accumulates its parts' seconds."""


class Planner(ABC):
    """A method that acts by planning from pixels (`harness bench-plan`)."""

    @abstractmethod
    def plan(self, pixels: torch.Tensor, episode_start: torch.Tensor, eval_mode: bool, generator: torch.Generator, key: str) -> torch.Tensor:
        """Batched planning: the actions for `pixels` [N, C, H, W]."""
