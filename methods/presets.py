"""Hyperparameter presets: what differs from a method's config defaults, per preset and task.

A method's config dataclass holds the paper's settings as its defaults. Its preset file
(`Method.presets_path()`, `methods/configs/<name>.yaml` for this project's methods) holds only
the differences:

    paper:                    # the paper's per-task settings where they differ from the defaults
      hopper: {max_epochs: 30000}
    cpu:
      inherits: paper         # cpu = paper's values, then these
      default: {image_size: 32}   # every task
      cartpole: {image_size: 48, supersample: 2}

The value of a key for (preset, task) is the dataclass default, overridden by each preset of the
inheritance chain from the root down (its `default` row, then its row for the task), then by the
run's `--override`s. A variant task named `<task>-<variant>` (`cartpole-paper`) takes its base task's
row, then its own: the paper's `cartpole` settings are those of the CartPole its code runs. A task
without a row runs on the rows above; the standard presets `paper`,
`cpu` and `smoke` exist for every method (`cpu` and `smoke` inherit from `paper` unless the file
says otherwise), so every method runs every task.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from methods.config_values import check_config, check_value

STANDARD_PRESETS = ("paper", "cpu", "smoke")
RESERVED_KEYS = ("inherits", "default")


def _table(method_cls) -> tuple[Path, dict]:
    """The method's preset file, parsed and checked for shape (ValueError naming the problem)."""
    path = method_cls.presets_path()
    table = yaml.safe_load(path.read_text()) if path.exists() else {}
    table = table or {}
    if not isinstance(table, dict) or not all(isinstance(rows, dict) for rows in table.values()):
        raise ValueError(f"{path}: each preset must map task names (and `inherits`, `default`) to rows of config values")
    for name in STANDARD_PRESETS:
        table.setdefault(name, {})
    for name, rows in table.items():
        parent = rows.get("inherits", "paper" if name != "paper" else None)
        if parent is not None and parent not in table:
            raise ValueError(f"{path}[{name}] inherits from unknown preset {parent!r}")
    return path, table


def available_presets(method_cls) -> list[str]:
    return sorted(_table(method_cls)[1])


def _chain(table: dict, preset: str, path: Path) -> list[str]:
    """`preset` and its ancestors, root first."""
    chain = [preset]
    while (parent := table[chain[-1]].get("inherits", "paper" if chain[-1] != "paper" else None)) is not None:
        if parent in chain:
            raise ValueError(f"{path}: presets inherit in a cycle ({' -> '.join(chain + [parent])})")
        chain.append(parent)
    return chain[::-1]


def task_rows(task: str) -> tuple[str, ...]:
    """The rows a task reads, most general first: a variant `<base>-<variant>` reads `<base>`'s too."""
    base = task.split("-", 1)[0]
    return (base, task) if base != task else (task,)


def preset_values(method_cls, task: str, preset: str) -> tuple[dict, dict]:
    """The preset's values for `task` (only the keys it changes) and, per key, the row it came from."""
    path, table = _table(method_cls)
    if preset not in table:
        raise ValueError(f"unknown preset {preset!r} for {method_cls.name}; available: {', '.join(sorted(table))}")
    known = {f.name for f in dataclasses.fields(method_cls.config_cls)}
    values, source = {}, {}
    for name in _chain(table, preset, path):
        for row_name in ("default", *task_rows(task)):
            row = table[name].get(row_name) or {}
            where = f"{path.name}[{name}][{row_name}]"
            if not isinstance(row, dict):
                raise ValueError(f"{where} must be a mapping of config keys to values, got {row!r}")
            unknown = set(row) - known
            if unknown:
                raise ValueError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
            values.update(row)
            source.update(dict.fromkeys(row, where))
    return values, source


def load_config(method_cls, task: str, preset: str, overrides: dict | None = None):
    """The config dataclass of `method_cls` for (task, preset), with `overrides` applied on top.

    Unknown presets or keys (in the file or in the overrides), values of the wrong type and values
    out of their range (methods/config_values.py) raise ValueError naming them.
    """
    values, source = preset_values(method_cls, task, preset)
    config_cls, method = method_cls.config_cls, method_cls.name
    known = {f.name for f in dataclasses.fields(config_cls)}
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
        source[key] = "override"
    for key, value in values.items():
        try:
            check_value(key, value)
        except ValueError as err:
            raise ValueError(f"{method} {source[key]}: {err}") from None
    config = config_from_dict(config_cls, values)
    check_config(config)  # the defaults the preset left alone too
    return config


def config_from_dict(config_cls, values: dict):
    """`config_cls(**values)`, with lists turned back into tuples where the default is a tuple (JSON
    and YAML have no tuples): how a resolved config written to run.json is read back."""
    defaults = config_cls()
    fixed = {k: tuple(v) if isinstance(getattr(defaults, k, None), tuple) and isinstance(v, list) else v for k, v in values.items()}
    return config_cls(**fixed)
