"""Commands that never simulate import no simulator: validating a grid, `check`'s own process.

A fresh interpreter is the point (this test session has long imported warp).
"""

from __future__ import annotations

import subprocess
import sys

SIMULATOR = ("warp", "newton", "envs")


def _imports_in_fresh_process(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint('imported:', *(m for m in " + repr(SIMULATOR) + " if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.strip().splitlines()[-1].split()[1:])


def test_resolving_every_method_and_the_check_command_import_no_simulator():
    code = """
from harness import check, cli
from harness.resolved import resolve
from harness.specs import RunSpec
from methods.registry import available_methods, available_tasks
runs = [resolve(RunSpec(m, t, 0, "cpu", "1M-steps")) for m in available_methods() for t in available_tasks()]
assert len(runs) == len(available_methods()) * len(available_tasks())
check.load_reference()
"""
    assert _imports_in_fresh_process(code) == set()
