"""Per-method, per-task hyperparameter presets from `methods/configs/<method>.yaml`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

CONFIG_DIR = Path(__file__).parent / "configs"


def available_presets(method: str) -> list[str]:
    path = CONFIG_DIR / f"{method}.yaml"
    return sorted(yaml.safe_load(path.read_text())) if path.exists() else []


def load_config(method: str, task: str, preset: str, config_cls):
    """The config dataclass for (method, task, preset); unknown names raise ValueError naming them."""
    path = CONFIG_DIR / f"{method}.yaml"
    if not path.exists():
        raise ValueError(f"no config file for method {method!r} ({path})")
    table = yaml.safe_load(path.read_text())
    if preset not in table:
        raise ValueError(f"unknown preset {preset!r} for {method}; available: {', '.join(sorted(table))}")
    if task not in table[preset]:
        raise ValueError(f"method {method} has no {preset!r} config for task {task!r}; has: {', '.join(sorted(table[preset]))}")
    values = dict(table[preset][task])
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{path.name}[{preset}][{task}] has unknown keys: {', '.join(sorted(unknown))}")
    if "betas" in values:
        values["betas"] = tuple(values["betas"])
    return config_cls(**values)
