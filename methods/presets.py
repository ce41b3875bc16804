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

The value of a key for (preset, task) is the dataclass default, then the observation protocol of
the preset's budget class (methods/configs/protocols.yaml: image size, supersampling, cropping, frame stack,
the same for every pixel method; preset rows may not set these), overridden by each preset of the
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

from methods.protocols import ENV_DEFAULTS as PROTOCOL_ENV_DEFAULTS
from methods.protocols import PROTOCOL_KEYS, budget_classes, protocol, task_rows
from methods.config_values import check_config, check_value

STANDARD_PRESETS = ("paper", "cpu", "smoke")
RESERVED_KEYS = ("inherits", "default")
# Top-level keys of a preset file that are not presets: `tuning` maps a preset to how much tuning
# chose it (the report's header lists it); `modified` lists presets that change the published
# algorithm (named variants such as DreamerV3's `cpu-penalty`; the report labels their runs).
FILE_KEYS = ("tuning", "modified")


def _file(method_cls) -> tuple[Path, dict]:
    """The method's preset file as parsed YAML ({} when it has none)."""
    path = method_cls.presets_path()
    return path, (yaml.safe_load(path.read_text()) if path.exists() else {}) or {}


def _table(method_cls) -> tuple[Path, dict]:
    """The method's presets, parsed and checked for shape (ValueError naming the problem)."""
    path, table = _file(method_cls)
    if isinstance(table, dict):
        table = {k: v for k, v in table.items() if k not in FILE_KEYS}
    if not isinstance(table, dict) or not all(isinstance(rows, dict) for rows in table.values()):
        raise ValueError(f"{path}: each preset must map task names (and `inherits`, `default`) to rows of config values")
    for name in STANDARD_PRESETS:
        table.setdefault(name, {})
    for name, rows in table.items():
        parent = rows.get("inherits", "paper" if name != "paper" else None)
        if parent is not None and parent not in table:
            raise ValueError(f"{path}[{name}] inherits from unknown preset {parent!r}")
    return path, table


def preset_info(method_cls, preset: str) -> dict:
    """{'tuning': how the preset was chosen, 'modified': whether it changes the published algorithm},
    from the preset file's `tuning` and `modified` keys (the nearest preset of the chain that says)."""
    path, table = _table(method_cls)
    raw = _file(method_cls)[1]
    tuning, modified = raw.get("tuning") or {}, set(raw.get("modified") or [])
    chain = _chain(table, preset, path)
    text = next((tuning[name] for name in reversed(chain) if name in tuning), "not stated")
    return {"tuning": str(text), "modified": bool(modified & set(chain))}


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


def budget_class(method_cls, preset: str) -> str:
    """The standard preset `preset` descends from, nearest first (`cpu-penalty` -> `cpu`): it
    names the observation protocol the preset's runs read."""
    path, table = _table(method_cls)
    return next(name for name in reversed(_chain(table, preset, path)) if name in STANDARD_PRESETS)


def _protocol_values(method_cls, known: set[str], budget: str, task: str) -> dict:
    """The protocol's values for the config keys this method has. A pixel method must be able to
    read the protocol: a key its config lacks must be what envs.make does without it."""
    if not method_cls.reads_pixels:
        return {}
    values = {}
    for key, value in protocol(budget, task).items():
        if key == "frame_stack" and not method_cls.stacks_frames:
            continue
        if key in known:
            values[key] = value
        elif PROTOCOL_ENV_DEFAULTS.get(key) != value:
            raise ValueError(f"{method_cls.name} cannot read the {budget} protocol on {task}: its config has no {key} (protocol: {value!r})")
    return values


def preset_values(method_cls, task: str, preset: str) -> tuple[dict, dict]:
    """The preset's values for `task` (only the keys it changes) and, per key, the row it came from."""
    path, table = _table(method_cls)
    if preset not in table:
        raise ValueError(f"unknown preset {preset!r} for {method_cls.name}; available: {', '.join(sorted(table))}")
    known = {f.name for f in dataclasses.fields(method_cls.config_cls)}
    budget = budget_class(method_cls, preset)
    values = _protocol_values(method_cls, known, budget, task)
    source = dict.fromkeys(values, f"protocols.yaml[{budget}][{task}]")
    protocol_classes = budget_classes()
    for name in _chain(table, preset, path):
        for row_name in ("default", *task_rows(task)):
            row = table[name].get(row_name) or {}
            where = f"{path.name}[{name}][{row_name}]"
            if not isinstance(row, dict):
                raise ValueError(f"{where} must be a mapping of config keys to values, got {row!r}")
            unknown = set(row) - known
            if unknown:
                raise ValueError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
            fixed = set(row) & set(PROTOCOL_KEYS)
            if fixed and budget_class(method_cls, name) in protocol_classes:
                raise ValueError(f"{where} sets {', '.join(sorted(fixed))}: the observation protocol declares them for every "
                                 f"method (methods/configs/protocols.yaml); change them there, or per run with --override")
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
