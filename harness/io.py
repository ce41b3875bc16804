"""Atomic file writes: a crash or Ctrl-C never leaves a half-written results file behind."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are read by other users and jobs
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def check_writable_folder(path: str | os.PathLike, create: bool) -> None:
    """Make sure results can be written under `path` before any work starts (ValueError naming why).

    `create=True` makes the folder (and its parents) and writes and removes a probe file in it;
    `create=False` (a dry run, or a report that has not read its inputs yet) writes and removes the
    probe in the nearest folder that exists, and creates nothing. A probe, not `os.access`, because
    root passes `os.access` where the kernel still refuses (/proc, read-only mounts)."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{existing} is not a folder, so {path} cannot be created")
    target = path if create else existing
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=target, prefix=".write-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"cannot write in {target}: {err.strerror or err}") from None


@contextmanager
def staged_folder(out: str | os.PathLike) -> Iterator[Path]:
    """Write a folder's files into a hidden sibling and move them into `out` only once all are written.

    A report that fails half-way (a plotting error, Ctrl-C, a full disk) leaves `out` as it was;
    files of `out` that the new content does not name (a README beside a report) are kept."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging."))
    try:
        yield stage
        out.mkdir(exist_ok=True)
        for entry in sorted(stage.iterdir()):
            target = out / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
