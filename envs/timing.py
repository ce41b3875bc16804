"""Per-phase wall-clock accumulators (sim_forward, render, sim_backward, ...).

Phases are timed with `perf_counter` around host-side calls. On CPU that is the true cost; on CUDA,
asynchronous kernels are charged to whichever phase next synchronises unless `synchronize` is set
(the profile command sets it; training runs do not, to avoid slowing them down).
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

import torch


class PhaseTimes:
    def __init__(self, synchronize: bool = False):
        self.seconds: dict[str, float] = defaultdict(float)
        self.synchronize = synchronize

    @contextmanager
    def phase(self, name: str):
        if self.synchronize and torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.synchronize and torch.cuda.is_available():
                torch.cuda.synchronize()
            self.seconds[name] += time.perf_counter() - start

    def pop(self) -> dict[str, float]:
        """Return the accumulated seconds and start again from zero."""
        out = dict(self.seconds)
        self.seconds.clear()
        return out
