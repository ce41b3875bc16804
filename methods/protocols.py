"""Observation protocols: the pixels a budget class gives every pixel method on a task.

A fair comparison needs every method to read the same pixels, so image size, supersampling,
cropping and frame stacking are declared once per budget class and task in `protocols.yaml`, not in
each method's preset (methods/presets.py applies them and refuses preset rows that set them).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

PROTOCOL_KEYS = ("image_size", "supersample", "crop_static_rows", "frame_stack")
# What envs.make does for a key a method's config does not have.
ENV_DEFAULTS = {"supersample": 1, "crop_static_rows": False}
PATH = Path(__file__).with_name("configs") / "protocols.yaml"


@lru_cache(maxsize=1)
def _table() -> dict:
    table = yaml.safe_load(PATH.read_text()) or {}
    for name, rows in table.items():
        for row_name, row in rows.items():
            unknown = set(row) - set(PROTOCOL_KEYS)
            if unknown:
                raise ValueError(f"{PATH.name}[{name}][{row_name}] has unknown keys: {', '.join(sorted(unknown))}")
    return table


def budget_classes() -> tuple[str, ...]:
    """The budget classes that declare a protocol (`paper`, `cpu`)."""
    return tuple(_table())


def task_rows(task: str) -> tuple[str, ...]:
    """The rows a task reads, most general first: a variant `<base>-<variant>` reads `<base>`'s too
    (protocols and method presets alike)."""
    base = task.split("-", 1)[0]
    return (base, task) if base != task else (task,)


def protocol(budget_class: str | None, task: str) -> dict:
    """The protocol's values for `task` in `budget_class` ({} for a class without one, e.g. smoke)."""
    rows = _table().get(budget_class or "", {})
    values: dict = {}
    for row_name in ("default", *task_rows(task)):
        values.update(rows.get(row_name) or {})
    return values


def describe(values: dict) -> str:
    """'48x48 px traced at 2x, full frame, 3 frames': a protocol as the report's header states it."""
    size, ss = values.get("image_size"), values.get("supersample", 1)
    text = f"{size}x{size} px" + (f" traced at {ss}x and averaged" if ss > 1 else "")
    text += ", static rows cropped" if values.get("crop_static_rows") else ", full frame"
    return text + f", {values.get('frame_stack', 1)} frame" + ("s" if values.get("frame_stack", 1) != 1 else "")
