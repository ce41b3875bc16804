"""The run folder: the only code that knows its files and what their states mean.

    <root>/<task>/<method>/<config>/seed<k>/
        run.json        the resolved run (spec, config, budget, evaluation), machine, status, failure
        metrics.jsonl   one record per evaluation, appended and fsynced
        checkpoint.pt   method state and counters, replaced atomically right after each record
        worker.log      a worker's output when it has no terminal of its own

Status in run.json: `running`, `interrupted` (Ctrl-C, SIGTERM: resumable), `complete`, `failed`
(with `failure`; type `WorkerDied` when the process was killed: resumable from its checkpoint).
Everything else (runner, executors, check, report, DAgger's teacher, results scripts) reads and
writes runs through `RunFolder`. It imports nothing of the harness but its two leaf helpers, so a
method may use it without a cycle.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from harness.claim import RunClaim, held_elsewhere
from harness.io import write_json_atomic

RUN_JSON, METRICS, CHECKPOINT, WORKER_LOG = "run.json", "metrics.jsonl", "checkpoint.pt", "worker.log"
VIDEO = "policy.gif"  # the final policy acting (harness/video.py)
REPORT_SUMMARY = "summary.md"  # marks a report folder (harness/report.py), whose runs/ holds copies
SUBMITIT_FOLDER = ".submitit"  # submitit's job files under a grid's root: not runs


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


class RunFolder:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def of(cls, root: str | os.PathLike, run_id: str) -> RunFolder:
        """The folder of run `run_id` (`task/method/config/seed<k>`) under a grid's root."""
        return cls(Path(root) / run_id)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def delete(self) -> None:
        shutil.rmtree(self.path, ignore_errors=False)

    def exists(self) -> bool:
        return self.path.exists()

    # -- run.json ---------------------------------------------------------------------------------
    def read(self) -> dict:
        """run.json, or {} when there is none or it cannot be read (a run that never started)."""
        try:
            run = json.loads((self.path / RUN_JSON).read_text())
        except (OSError, ValueError):
            return {}
        return run if isinstance(run, dict) else {}

    def read_strict(self) -> dict:
        """run.json, raising ValueError that names the file when it is not valid JSON (the report)."""
        path = self.path / RUN_JSON
        try:
            return json.loads(path.read_text())
        except ValueError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from None

    def write(self, run: dict) -> None:
        write_json_atomic(self.path / RUN_JSON, run)

    def update(self, **fields) -> dict:
        """Read run.json, change `fields`, write it back atomically; returns the new content."""
        run = self.read() | fields
        self.write(run)
        return run

    @property
    def status(self) -> str | None:
        return self.read().get("status")

    # -- metrics.jsonl ----------------------------------------------------------------------------
    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    def records(self, strict: bool = False) -> list[dict]:
        """The evaluation records in order. A torn last line (a write cut by a kill) ends the list,
        or raises ValueError naming file and line when `strict`."""
        if not self.metrics_path.exists():
            return []
        records = []
        for number, line in enumerate(self.metrics_path.read_text().splitlines(), start=1):
            try:
                records.append(json.loads(line))
            except ValueError:
                if strict:
                    raise ValueError(f"{self.metrics_path}:{number} is not valid JSON (a torn write?)") from None
                break
        return records

    def last_record(self) -> dict | None:
        records = self.records()
        return records[-1] if records else None

    def append(self, record: dict) -> None:
        """Add one record, on disk before returning (a kill right after loses nothing)."""
        with open(self.metrics_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def keep_records_up_to(self, env_steps: int) -> None:
        """Drop a torn last line and every record after `env_steps` (the checkpoint a run resumes from)."""
        kept = [r for r in self.records() if r["env_steps"] <= env_steps]
        self.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def clear_records(self) -> None:
        self.metrics_path.unlink(missing_ok=True)

    # -- checkpoint.pt ----------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    def save_checkpoint(self, state: dict) -> None:
        import torch

        tmp = self.path / f".{CHECKPOINT}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint_path)

    def load_checkpoint(self, map_location=None) -> dict:
        import torch

        return torch.load(self.checkpoint_path, map_location=map_location, weights_only=False)

    # -- what a grid does with it -----------------------------------------------------------------
    def claim(self) -> RunClaim:
        return RunClaim(self.path)

    def held_elsewhere(self) -> bool:
        return held_elsewhere(self.path)

    def next_action(self) -> str:
        """`skip` (complete), `resume` (running, interrupted, or its worker died, with a checkpoint: a
        killed, Ctrl-C'd or preempted run), `start` (nothing there, no checkpoint, or failed in the
        method itself, e.g. diverged: begins from scratch). The caller holds the claim or only plans."""
        run = self.read()
        status = run.get("status")
        if status == "complete":
            return "skip"
        died = status == "failed" and run.get("failure", {}).get("type") == "WorkerDied"
        if (status in ("running", "interrupted") or died) and self.has_checkpoint():
            return "resume"
        return "start"

    def plan(self) -> str:
        """What rerunning a grid does here: `busy` (another process, on this host or another node,
        holds its claim), else `next_action()`."""
        return "busy" if self.held_elsewhere() else self.next_action()

    def record_failure(self, failure: dict, identity: dict) -> None:
        """Mark the run failed (run.json is created with `identity` if the run died before writing one)."""
        self.create()
        run = self.read()
        run.update(status="failed", failure=failure, stopped_at=now())
        for key, value in identity.items():
            run.setdefault(key, value)
        self.write(run)

    def worker_log(self):
        """The worker's output file, appended to (a resumed run keeps the earlier attempts' output)."""
        self.create()
        return open(self.path / WORKER_LOG, "a")


def find_run_folders(paths: list[str | os.PathLike]) -> list[RunFolder]:
    """Every run folder (one with a run.json) under `paths`, sorted, except submitit's job files and
    the copies inside a report below a path (a grid's own `<out>/report/runs/...`): a report folder
    given as the path itself is read, so a committed report can be recomputed from its copies."""
    folders = []
    for root in map(Path, paths):
        for p in sorted(root.rglob(RUN_JSON)):
            below = p.parent.relative_to(root).parts
            in_report = any((root.joinpath(*below[:i]) / REPORT_SUMMARY).exists() for i in range(1, len(below)))
            if SUBMITIT_FOLDER not in p.parts and not in_report:
                folders.append(RunFolder(p.parent))
    return folders
