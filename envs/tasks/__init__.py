"""Task registry: short name -> Task class. Adding a task touches only this folder."""

from __future__ import annotations

from envs.tasks.ant import Ant
from envs.tasks.base import Task
from envs.tasks.cartpole import CartPoleSwingUp
from envs.tasks.cheetah import Cheetah
from envs.tasks.hopper import Hopper
from envs.tasks.humanoid import Humanoid

TASKS: dict[str, type[Task]] = {
    "cartpole": CartPoleSwingUp,
    "hopper": Hopper,
    "cheetah": Cheetah,
    "ant": Ant,
    "humanoid": Humanoid,
}


def get_task(name: str) -> Task:
    if not isinstance(name, str) or name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]()
