"""Task registry: short name -> Task class. Adding a task touches only this folder."""

from __future__ import annotations

from envs.tasks.base import Task
from envs.tasks.cartpole import CartPoleSwingUp

TASKS: dict[str, type[Task]] = {
    "cartpole": CartPoleSwingUp,
}


def get_task(name: str) -> Task:
    if not isinstance(name, str) or name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]()
