"""Where the runs of a grid execute: local subprocesses (default), SLURM through submitit, or Ray.

Every run executes in a process of its own (`harness.worker`), so a crash, a NaN or an
out-of-memory kill ends only that run, and peak memory is the run's own. The parent only
launches, waits and, when a worker died without saying why, records the exit in the run's
`run.json` (status `failed`) so the report lists it. A run that was already complete is never
launched; an interrupted or killed one resumes from its checkpoint (`RunFolder.plan`, harness/store.py).
Runs arrive resolved (harness/resolved.py) and travel to the worker as JSON, parsed nowhere else.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from harness.resolved import ResolvedRun
from harness.store import RunFolder

EXECUTORS = ("local", "slurm", "ray")
INTERRUPTED_EXIT = 130
BUSY_EXIT = 75  # EX_TEMPFAIL: another process holds the run's claim (harness/claim.py)


@dataclass
class GridOptions:
    root: Path
    quiet: bool = False
    loggers: list[str] = field(default_factory=list)
    videos: bool = True  # each run ends with a GIF of its final policy (harness/video.py)
    retries: int = 2  # Ray: a run whose worker died (killed, lost node) starts again, resuming from its checkpoint
    workers: int = 1
    # Torch threads per run (the local executor's children): None leaves torch's default. `harness
    # check` fixes it, since a run's numbers depend on its thread count.
    threads_per_run: int | None = None
    # submitit / SLURM
    slurm_partition: str | None = None
    timeout_min: int = 24 * 60
    cpus_per_run: int = 2
    gpus_per_run: int = 0
    submitit_local: bool = False  # force submitit's local mode (CI tests it this way)
    # Ray
    ray_address: str | None = None


def worker_payload(run: ResolvedRun, options: GridOptions, quiet: bool) -> dict:
    return {"run": run.as_dict(), "root": str(options.root), "quiet": quiet, "loggers": options.loggers, "videos": options.videos}


def run_in_this_process(payload: dict) -> str:
    """Execute one run here; the entry point every executor ends up calling (in a fresh process).

    Errors while building the env or method (before the run's own bookkeeping starts) are recorded
    in run.json too, so the report can say why the run is missing."""
    from harness.runner import Run

    resolved = ResolvedRun.from_dict(payload["run"])
    try:
        return Run(resolved, payload["root"], quiet=payload["quiet"], loggers=payload["loggers"], videos=payload.get("videos", True)).execute()
    except Exception as err:
        failure = {"type": type(err).__name__, "message": str(err), "traceback": traceback.format_exc(limit=5)}
        RunFolder.of(payload["root"], resolved.run_id).record_failure(failure, payload["run"] | {"run_id": resolved.run_id})
        return "failed"


def settle(run: ResolvedRun, root: Path, reason: str, result: str | None = None) -> str:
    """The run's final status; a worker that died while `running` is recorded as failed with `reason`.

    `result` is what the worker returned, if it returned: `busy` means another process holds the
    run, whose run.json is then never touched here (nor when the claim is held at all)."""
    folder = RunFolder.of(root, run.run_id)
    if result == "busy" or folder.held_elsewhere():
        return "busy"
    status = folder.status
    if status in ("complete", "failed", "interrupted"):
        return status
    folder.record_failure({"type": "WorkerDied", "message": reason}, run.as_dict() | {"run_id": run.run_id})
    return "failed"


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"worker killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"worker killed by signal {-returncode}"
    return f"worker exited with status {returncode} before recording a result"


# -- local: one subprocess per run, at most `workers` at a time --------------------------------------
class LocalExecutor:
    def __init__(self, options: GridOptions):
        self.options = options
        self._children: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def _launch(self, spec: ResolvedRun) -> str:
        if self._stopping.is_set():
            return "not started"
        show_bar = self.options.workers == 1 and not self.options.quiet
        payload = json.dumps(worker_payload(spec, self.options, quiet=not show_bar))
        folder = RunFolder.of(self.options.root, spec.run_id)
        folder.create()
        log = None if show_bar else folder.worker_log()
        try:
            with self._lock:
                if self._stopping.is_set():
                    return "not started"
                child = subprocess.Popen([sys.executable, "-m", "harness.worker", payload], stdout=log, stderr=log, env=self._child_env())
                self._children[spec.run_id] = child
            returncode = child.wait()
        finally:
            with self._lock:
                self._children.pop(spec.run_id, None)
            if log is not None:
                log.close()
        if returncode == INTERRUPTED_EXIT or returncode == -signal.SIGINT:
            return "interrupted"
        return settle(spec, self.options.root, _exit_reason(returncode), "busy" if returncode == BUSY_EXIT else None)

    def _child_env(self) -> dict | None:
        threads = self.options.threads_per_run
        if threads is None:
            return None
        return os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    def _interrupt_children(self) -> None:
        """Ctrl-C: no new runs; running ones get SIGINT (once) and record themselves as interrupted."""
        self._stopping.set()
        deadline = time.time() + 2.0  # a terminal's Ctrl-C already reached them (same process group)
        while time.time() < deadline and any(c.poll() is None for c in list(self._children.values())):
            time.sleep(0.05)
        with self._lock:
            for child in self._children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGINT)

    def run(self, specs: list[ResolvedRun], on_done) -> dict[str, str]:
        statuses: dict[str, str] = {}
        pool = ThreadPoolExecutor(max_workers=self.options.workers)
        futures = {pool.submit(self._launch, spec): spec for spec in specs}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    spec = futures[future]
                    statuses[spec.run_id] = future.result()
                    on_done(spec, statuses[spec.run_id])
        except KeyboardInterrupt:
            self._interrupt_children()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return statuses


# -- SLURM (or its local emulation) through submitit ------------------------------------------------
class _SubmititRun:
    """A picklable callable; on SLURM preemption or timeout submitit requeues it and the run resumes
    from its checkpoint (the requeued job finds `running` + `checkpoint.pt`)."""

    def __call__(self, payload: dict) -> str:
        return run_in_this_process(payload)

    def checkpoint(self, payload: dict):
        import submitit

        return submitit.helpers.DelayedSubmission(_SubmititRun(), payload)


class SubmititExecutor:
    def __init__(self, options: GridOptions):
        import submitit

        self.options = options
        self.folder = options.root / ".submitit"
        has_slurm = shutil.which("srun") is not None
        self.local = options.submitit_local or not has_slurm
        if not self.local:
            self.executor = submitit.AutoExecutor(folder=str(self.folder / "%j"))
        else:
            if not options.submitit_local:
                print("no SLURM here (srun not found): submitit runs the jobs as local processes", file=sys.stderr)
            self.executor = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster="local")
        params = {"timeout_min": options.timeout_min, "cpus_per_task": options.cpus_per_run, "gpus_per_node": options.gpus_per_run}
        if not self.local:
            params |= {"slurm_array_parallelism": options.workers, "slurm_max_num_timeout": 3}
            if options.slurm_partition:
                params["slurm_partition"] = options.slurm_partition
        self.executor.update_parameters(**params)

    def run(self, specs: list[ResolvedRun], on_done) -> dict[str, str]:
        statuses: dict[str, str] = {}
        # submitit's local mode starts every job at once; batches of `workers` keep the machine's load bounded.
        batch = self.options.workers if self.local else len(specs)
        for first in range(0, len(specs), max(batch, 1)):
            chunk = specs[first : first + batch]
            payloads = [worker_payload(spec, self.options, quiet=True) for spec in chunk]
            jobs = self.executor.map_array(_SubmititRun(), payloads)
            for spec, job in zip(chunk, jobs):
                result = None
                try:
                    result = job.result()
                    reason = "submitit job ended without a result"
                except Exception as err:  # FailedJobError / UncompletedJobError: the job process died
                    reason = f"submitit job {job.job_id} failed: {str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__}"
                statuses[spec.run_id] = settle(spec, self.options.root, reason, result)
                on_done(spec, statuses[spec.run_id])
        return statuses


# -- Ray: an existing cluster (`--ray-address auto` or host:port) or a new local one ----------------
class RayExecutor:
    def __init__(self, options: GridOptions):
        import ray

        self.ray = ray
        self.options = options
        if not ray.is_initialized():
            ray.init(address=options.ray_address, log_to_driver=False)
        # max_calls=1: a fresh worker process per run (crash isolation, clean memory accounting).
        # max_retries: Ray reruns a task whose worker process died (never one that raised: a failed run
        # is recorded in its folder); the rerun finds the folder `running` and resumes from its checkpoint.
        self.remote = ray.remote(num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run, max_calls=1,
                                 max_retries=options.retries)(run_in_this_process)

    def run(self, specs: list[ResolvedRun], on_done) -> dict[str, str]:
        statuses: dict[str, str] = {}
        refs = {self.remote.remote(worker_payload(spec, self.options, quiet=True)): spec for spec in specs}
        pending = list(refs)
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            spec = refs[done[0]]
            result = None
            try:
                result = self.ray.get(done[0])
                reason = "ray task ended without a result"
            except Exception as err:  # WorkerCrashedError, RayTaskError
                reason = f"ray task failed: {type(err).__name__}"
            statuses[spec.run_id] = settle(spec, self.options.root, reason, result)
            on_done(spec, statuses[spec.run_id])
        return statuses


def missing_executor_package(name: str) -> str | None:
    """The pip extra an executor needs when it is not installed (checked before anything runs)."""
    import importlib.util

    package = {"slurm": "submitit", "ray": "ray"}.get(name)
    if package and importlib.util.find_spec(package) is None:
        return f"--executor {name} needs the {package} package: pip install -e \".[{name}]\""
    return None


def make_executor(name: str, options: GridOptions):
    builders = {"local": LocalExecutor, "slurm": SubmititExecutor, "ray": RayExecutor}
    return builders[name](options)


def execute_grid(specs: list[ResolvedRun], options: GridOptions, executor: str = "local") -> dict[str, str]:
    """Run the specs through `executor`; returns run_id -> final status. Ctrl-C raises KeyboardInterrupt
    after the running workers have recorded themselves as interrupted."""
    backend = make_executor(executor, options)
    show_overall = len(specs) > 1 and (executor != "local" or options.workers > 1) and not options.quiet
    bar = tqdm(total=len(specs), desc="runs", unit="run", disable=not show_overall)

    def on_done(spec: ResolvedRun, status: str) -> None:
        message = f"{status}: {spec.run_id} ({RunFolder.of(options.root, spec.run_id).path})" + (": running in another process" if status == "busy" else "")
        if show_overall:
            bar.write(message)
            bar.update(1)
        else:
            print(message, flush=True)

    try:
        return backend.run(specs, on_done)
    finally:
        bar.close()
