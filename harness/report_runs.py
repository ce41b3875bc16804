"""The report's reader of run folders (through `harness.store`), every field checked.

The other report modules see only `RunRecord`s.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.store import METRICS, RUN_JSON, VIDEO, RunFolder, find_run_folders

REQUIRED_RECORD_KEYS = ("env_steps", "train_wall_s", "eval_return_mean")
RECONSTRUCTION = "reconstruction.npz"  # a world-model method's video of its predictions (figure input)


@dataclass
class RunRecord:
    folder: Path
    run: dict
    records: list[dict]

    @property
    def spec(self) -> dict:
        return self.run["spec"]

    @property
    def config_name(self) -> str:
        return self.folder.parent.name  # the preset, or preset+hash when the config was overridden

    @property
    def key(self) -> tuple[str, str, str]:
        return self.spec["task"], self.run["method"], self.config_name

    @property
    def complete(self) -> bool:
        return self.run.get("status") == "complete" and bool(self.records)

    @property
    def reconstruction(self) -> Path | None:
        """The run's reconstruction video, when it wrote one."""
        path = self.folder / RECONSTRUCTION
        return path if path.exists() else None

    @property
    def video(self) -> Path | None:
        """The GIF of the run's final policy, when it wrote one."""
        path = self.folder / VIDEO
        return path if path.exists() else None

    @property
    def copy_path(self) -> Path:
        """Where the report keeps this run's small files, relative to the report folder."""
        return Path("runs") / self.spec["task"] / self.run["method"] / self.config_name / f"seed{self.spec['seed']}"


def load_runs(paths: list[str | Path]) -> list[RunRecord]:
    """Every run folder under `paths` (recursively, submitit's folders skipped); ValueError when there
    is none, when one is malformed, or when one run (task, method, config, seed) appears twice."""
    for root in map(Path, paths):
        if not root.exists():
            raise ValueError(f"{root} does not exist")
    runs = [_load_run(folder) for folder in find_run_folders(paths)]
    if not runs:
        raise ValueError(f"no run folders (run.json) under {', '.join(map(str, paths))}")
    seen: dict[tuple, Path] = {}
    for run in runs:
        ident = (*run.key, run.spec["seed"])
        if ident in seen:
            raise ValueError(f"the same run appears twice: {seen[ident]} and {run.folder}; report one of them")
        seen[ident] = run.folder
    return runs


def copy_run_files(runs: list[RunRecord], out: Path) -> None:
    """Keep each run's small files (and its video) beside the report so anyone can recompute it (never checkpoints)."""
    for run in runs:
        target = out / run.copy_path
        if target.resolve() == run.folder.resolve():
            continue
        target.mkdir(parents=True, exist_ok=True)
        for name in (RUN_JSON, METRICS, RECONSTRUCTION, VIDEO):
            if (run.folder / name).exists():
                shutil.copyfile(run.folder / name, target / name)


def _load_run(folder: RunFolder) -> RunRecord:
    """A run folder's run.json and metrics.jsonl, checked field by field (ValueError naming file and field)."""
    run_json = folder.path / RUN_JSON
    run = folder.read_strict()
    spec = run.get("spec") if isinstance(run, dict) else None
    if not isinstance(spec, dict) or not {"task", "method", "seed", "preset"} <= set(spec) or "method" not in run:
        raise ValueError(f"{run_json} is not a harness run folder (run.json needs spec.task/method/seed/preset and method)")
    for where, value in (("spec.task", spec["task"]), ("spec.method", spec["method"]), ("spec.preset", spec["preset"]), ("method", run["method"])):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{run_json}: {where} must be a non-empty string, got {value!r}")
    if not _is_int(spec["seed"]) or spec["seed"] < 0:
        raise ValueError(f"{run_json}: spec.seed must be an integer >= 0, got {spec['seed']!r}")
    if "status" in run and not isinstance(run["status"], str):
        raise ValueError(f"{run_json}: status must be a string, got {run['status']!r}")
    metrics = folder.metrics_path
    records = [_checked_record(record, f"{metrics}:{number}") for number, record in enumerate(folder.records(strict=True), start=1)]
    steps = [r["env_steps"] for r in records]
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"{metrics}: env_steps are not strictly increasing (duplicated or out-of-order records)")
    return RunRecord(folder.path, run, records)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_record(record, where: str) -> dict:
    """One metrics.jsonl record: an object whose env_steps is an integer >= 0, train_wall_s a finite
    number >= 0 and eval_return_mean a finite number."""
    if not isinstance(record, dict):
        raise ValueError(f"{where} is {type(record).__name__}, not a record (an object with {', '.join(REQUIRED_RECORD_KEYS)})")
    missing = [k for k in REQUIRED_RECORD_KEYS if k not in record]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}")
    for key in REQUIRED_RECORD_KEYS:
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{where} has a non-finite {key} ({value!r}); the report refuses NaN and non-numbers")
    if not _is_int(record["env_steps"]) or record["env_steps"] < 0:
        raise ValueError(f"{where}: env_steps must be an integer >= 0, got {record['env_steps']!r}")
    if record["train_wall_s"] < 0:
        raise ValueError(f"{where}: train_wall_s must be >= 0, got {record['train_wall_s']!r}")
    return record
