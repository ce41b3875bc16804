"""Methods (one module per method) and the blocks they share (networks, normalisation, returns).

The method contract is `methods.base.Method`; methods are found by name through entry points
(`methods.registry`): `get_method_class("dva")`. Importing this package imports no method.
"""

from methods.base import IterationStats, Method
from methods.registry import ALIASES, available_methods, get_method_class, resolve_method_name

__all__ = ["ALIASES", "IterationStats", "Method", "available_methods", "get_method_class", "resolve_method_name"]
