"""The per-iteration clock: seconds per named phase (sim_forward, render, actor_update, ...).

One `PhaseTimes` belongs to an env (`env.timings`); the env times its own phases with it and a
method times its phases with the same clock, by name (`with env.timings.phase("actor_update")`).
Each phase gets its *own* time: a phase opened inside another (the simulator's forward inside the
method's rollout, its backward inside the actor update) is not counted again in the enclosing one,
so the phases of an iteration add up to its wall-clock and no method subtracts env timings itself.
The harness reads and clears the clock after each iteration (`pop`).

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
        # The open phases, innermost last, each with the seconds already charged to phases nested
        # in it. One stack, not one per thread: CUDA autograd runs backward hooks on its own
        # thread while the caller's `backward()` waits inside the enclosing phase.
        self._open: list[list] = []

    @property
    def current(self) -> str | None:
        """The innermost open phase (the profile leaves the critic's phase out of its graph count)."""
        return self._open[-1][0] if self._open else None

    @contextmanager
    def phase(self, name: str):
        if self.synchronize and torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        self._open.append([name, 0.0])
        try:
            yield
        finally:
            if self.synchronize and torch.cuda.is_available():
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            self.seconds[name] += elapsed - self._open.pop()[1]
            if self._open:
                self._open[-1][1] += elapsed  # this phase and those inside it: none of it is the outer phase's

    def add(self, name: str, seconds: float) -> None:
        """Charge `seconds` measured elsewhere (laps of an update) to `name`, and not to the enclosing phase."""
        self.seconds[name] += seconds
        if self._open:
            self._open[-1][1] += seconds

    def pop(self) -> dict[str, float]:
        """Return the accumulated seconds and start again from zero."""
        out = dict(self.seconds)
        self.seconds.clear()
        return out
