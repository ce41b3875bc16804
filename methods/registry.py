"""What is installed: methods and tasks, by the names users type, from Python entry points.

Entry-point groups `dva_bench.methods` (name -> a `methods.base.Method` subclass) and
`dva_bench.tasks` (name -> an `envs.tasks.base.Task` subclass). This project registers its own
in pyproject.toml; another package adds its methods or tasks the same way and `pip install`
makes them appear in `harness run --methods/--tasks`. Names are read without importing anything,
so validating a command line costs no simulator import; a class is imported when it is used.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

METHOD_GROUP, TASK_GROUP = "dva_bench.methods", "dva_bench.tasks"  # TASK_GROUP: as envs/tasks reads it
ALIASES: dict[str, str] = {"dreamer": "dreamerv3", "tdmpc": "tdmpc2", "drq": "drqv2"}


@cache
def _installed(group: str) -> dict[str, EntryPoint]:
    found = {ep.name: ep for ep in entry_points(group=group)}
    if not found:
        raise RuntimeError(f"no entry points in group {group!r}: install the project first (python -m pip install -e .); "
                           "a stale dva_bench.egg-info folder in the checkout hides them too (delete it)")
    return found


def available_methods() -> list[str]:
    return sorted(_installed(METHOD_GROUP))


def available_tasks() -> list[str]:
    return sorted(_installed(TASK_GROUP))


def resolve_method_name(name: str) -> str:
    """The canonical name of `name` (aliases resolved); ValueError listing what is installed."""
    canonical = ALIASES.get(name, name)
    if canonical not in _installed(METHOD_GROUP):
        raise ValueError(f"unknown method {name!r}; available: {', '.join(available_methods())}")
    return canonical


def check_task_name(name: str) -> str:
    if not isinstance(name, str) or name not in _installed(TASK_GROUP):
        raise ValueError(f"unknown task {name!r}; available: {', '.join(available_tasks())}")
    return name


@cache
def get_method_class(name: str) -> type:
    """The method class registered under `name` (or an alias), imported now."""
    from methods.base import Method

    canonical = resolve_method_name(name)
    cls = _installed(METHOD_GROUP)[canonical].load()
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"entry point {canonical!r} is {cls!r}, not a methods.base.Method subclass")
    if getattr(cls, "name", None) != canonical:
        raise TypeError(f"{cls.__module__}.{cls.__qualname__}.name is {getattr(cls, 'name', None)!r}; its entry point is {canonical!r}")
    return cls


