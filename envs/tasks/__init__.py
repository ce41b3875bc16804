"""Tasks, found by name through the Python entry-point group `dva_bench.tasks`.

This project's own are registered in pyproject.toml; a task in another package is registered the
same way and `pip install` makes it available. The harness lists the names without importing the
simulator (methods/registry.py); `get_task` imports the one asked for.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from envs.tasks.base import Task

TASK_GROUP = "dva_bench.tasks"


def available_tasks() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=TASK_GROUP))


def get_task(name: str) -> Task:
    found = {ep.name: ep for ep in entry_points(group=TASK_GROUP)}
    if not isinstance(name, str) or name not in found:
        raise ValueError(f"unknown task {name!r}; available tasks: {', '.join(sorted(found)) or 'none (install the project: pip install -e .)'}")
    return found[name].load()()
