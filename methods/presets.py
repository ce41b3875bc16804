"""Per-method, per-task hyperparameter presets from `methods/configs/<method>.yaml`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from methods.config_values import check_config, check_value

CONFIG_DIR = Path(__file__).parent / "configs"


def available_presets(method: str) -> list[str]:
    path = CONFIG_DIR / f"{method}.yaml"
    return sorted(yaml.safe_load(path.read_text())) if path.exists() else []


def load_config(method: str, task: str, preset: str, config_cls, overrides: dict | None = None):
    """The config dataclass for (method, task, preset), with `overrides` applied on top.

    Unknown presets, tasks or keys (in the file or in the overrides), values of the wrong type and
    values out of their range (methods/config_values.py) raise ValueError naming them.
    """
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
    bad_overrides = set(overrides or {}) - known
    if bad_overrides:
        raise ValueError(f"unknown config key(s) for {method}: {', '.join(sorted(bad_overrides))}; known: {', '.join(sorted(known))}")
    defaults = config_cls()
    for key, value in (overrides or {}).items():
        default = getattr(defaults, key)
        if isinstance(default, bool) != isinstance(value, bool) or (
            isinstance(default, (int, float)) and not isinstance(value, (int, float))
        ) or (isinstance(default, (list, tuple)) and not isinstance(value, (list, tuple))) or (
            isinstance(default, str) and not isinstance(value, str)
        ):
            raise ValueError(f"override {key}={value!r} has the wrong type; {method}'s {key} is like {default!r}")
        if isinstance(default, float) and isinstance(value, int):
            value = float(value)
        values[key] = value
    for key, value in values.items():
        try:
            check_value(key, value)
        except ValueError as err:
            where = "override" if key in (overrides or {}) else f"{path.name}[{preset}][{task}]"
            raise ValueError(f"{method} {where}: {err}") from None
    if "betas" in values:
        values["betas"] = tuple(values["betas"])
    config = config_cls(**values)
    check_config(config)  # the defaults the preset left alone too
    return config
