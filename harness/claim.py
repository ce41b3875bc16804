"""Which process runs a run folder: an exclusive OS lock on `<run>/.claim`, held for the run's life.

Two grids started on one output folder both plan to start the same run; only the worker that takes
the claim trains it, the other reports it busy and writes nothing. The lock is `filelock.FileLock`
(flock on POSIX), so the operating system drops it when the holder dies, however it dies: a killed
run never leaves a stale claim behind. On NFS, Linux maps flock onto the server's POSIX byte-range
locks, so workers on different nodes of a SLURM or Ray cluster exclude each other too, as long as
the shared filesystem supports locking (NFSv4, or NFSv3 with lockd; Lustre and GPFS with their
`flock` mount option).
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout

CLAIM_FILE = ".claim"


class RunClaim:
    """`acquire()` is non-blocking: True when this process now owns the folder, False when another does."""

    def __init__(self, folder: Path):
        self._lock = FileLock(str(Path(folder) / CLAIM_FILE), timeout=0)

    def acquire(self) -> bool:
        try:
            self._lock.acquire()
        except Timeout:
            return False
        return True

    def release(self) -> None:
        self._lock.release()


def held_elsewhere(folder: Path) -> bool:
    """True while another process (or another claim in this one) owns the folder; never creates it."""
    folder = Path(folder)
    if not (folder / CLAIM_FILE).exists():
        return False
    claim = RunClaim(folder)
    if not claim.acquire():
        return True
    claim.release()
    return False
