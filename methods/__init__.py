"""Methods (one module per method) and the blocks they share (networks, normalisation, returns).

Importing this package registers every method under its short name; `get_method_class("dva")`.
"""

from methods import dagger, dreamerv3, drqv2, dva, tdmpc2  # noqa: F401  (registers dagger, dreamerv3, drqv2, dva, dva-state, shac, shac-state, tdmpc2)
from methods.base import ALIASES, REGISTRY, IterationStats, Method, get_method_class, resolve_method_name

__all__ = ["ALIASES", "REGISTRY", "IterationStats", "Method", "get_method_class", "resolve_method_name"]
