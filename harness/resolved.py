"""A run resolved once: the spec the user typed, turned into everything that fixes its numbers.

`resolve(spec)` parses the budget, loads the config from the presets and the overrides, and fixes
the evaluation schedule and the env's construction, raising ValueError on bad input (the CLI turns
it into exit status 2 before anything is written). The result is written into run.json and sent
to the worker as it is (`as_dict` / `from_dict`), so nothing is parsed or looked up twice.
`build` is the one place an env and a method are built from a config: runs, the
profile and the bench commands all use it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from harness.specs import Budget, RunSpec, parse_budget


@dataclass(frozen=True)
class ResolvedRun:
    spec: RunSpec
    method: str  # canonical name (aliases resolved)
    config: object  # the method's config dataclass
    budget: Budget
    eval_every_steps: int
    eval_episodes: int
    env_kwargs: dict
    preset_info: dict = dataclasses.field(default_factory=dict)  # methods.presets.preset_info: tuning, modified

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def method_cls(self) -> type:
        from methods.registry import get_method_class

        return get_method_class(self.method)

    def as_dict(self) -> dict:
        """The JSON form, written into run.json and sent to the worker."""
        return {
            "spec": self.spec.as_dict(),
            "method": self.method,
            "config": dataclasses.asdict(self.config),
            "budget": dataclasses.asdict(self.budget),
            "eval": {"every_env_steps": self.eval_every_steps, "episodes": self.eval_episodes, "policy": "deterministic"},
            "env_kwargs": self.env_kwargs,
            "preset_info": self.preset_info,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ResolvedRun:
        from methods.presets import config_from_dict
        from methods.registry import get_method_class

        return cls(
            spec=RunSpec.from_dict(data["spec"]),
            method=data["method"],
            config=config_from_dict(get_method_class(data["method"]).config_cls, data["config"]),
            budget=Budget(**data["budget"]),
            eval_every_steps=int(data["eval"]["every_env_steps"]),
            eval_episodes=int(data["eval"]["episodes"]),
            env_kwargs=dict(data["env_kwargs"]),
            preset_info=dict(data.get("preset_info") or {}),
        )


def resolve(spec: RunSpec) -> ResolvedRun:
    """Everything `spec` implies, checked (ValueError naming the problem)."""
    from methods.presets import load_config, preset_info
    from methods.registry import check_task_name, get_method_class, resolve_method_name

    method = resolve_method_name(spec.method)
    check_task_name(spec.task)
    cls = get_method_class(method)
    config = load_config(cls, spec.task, spec.preset, spec.overrides)
    return ResolvedRun(
        spec=dataclasses.replace(spec, method=method),
        method=method,
        config=config,
        budget=parse_budget(spec.budget),
        eval_every_steps=spec.eval_every_steps or cls.default_eval_every_steps,
        eval_episodes=spec.eval_episodes or cls.default_eval_episodes,
        env_kwargs=cls.env_kwargs(config),
        preset_info=preset_info(cls, spec.preset),
    )


@dataclass
class Built:
    env: object
    method: object
    eval_env: object | None = None


def build(method_cls, task: str, config, device, seed: int, eval_envs: int | None = None, **env_changes) -> Built:
    """The training env (`envs.make` with the method's env_kwargs, then `env_changes`), with
    `eval_envs` an evaluation env (seed + 10,000: its episodes never repeat training's), and the
    method built on the env's spec: seeded and in the order a run builds them."""
    import torch

    import envs

    kwargs = method_cls.env_kwargs(config) | env_changes
    torch.manual_seed(seed)
    env = envs.make(task, device=device, seed=seed, **kwargs)
    eval_env = envs.make(task, device=device, seed=10_000 + seed, **(kwargs | {"num_envs": eval_envs})) if eval_envs else None
    return Built(env, method_cls(env.spec, config, device, seed), eval_env)
