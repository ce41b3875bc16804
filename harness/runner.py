"""One run: build env + method, train until the budget, evaluate, record, checkpoint, resume.

Folder layout (one per run): `run.json` (spec, resolved config, machine, git sha, status),
`metrics.jsonl` (one record per evaluation) and `checkpoint.pt` (written right after each
record, so a killed run resumes from its last record without duplicating or losing any).
Training wall-clock excludes evaluation and checkpointing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import socket
import threading
import time
import traceback
from collections import deque
from pathlib import Path

import torch
from tqdm import tqdm

import envs
from harness.claim import RunClaim, held_elsewhere
from harness.io import write_json_atomic
from harness.loggers import make_loggers
from harness.resources import PeakMemory
from harness.specs import RunSpec, parse_budget
from harness.system_info import system_info
from methods import get_method_class, resolve_method_name
from methods.presets import load_config

TRAIN_RETURN_WINDOW = 100  # the paper plots the moving average of the last ~100 training episodes
DEFAULT_EVAL_EVERY_STEPS = 51_200


def run_dir(root: str | os.PathLike, spec: RunSpec) -> Path:
    return Path(root) / spec.task / spec.method / spec.config_name / f"seed{spec.seed}"


def read_run_json(folder: Path) -> dict:
    try:
        return json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def plan_action(folder: Path) -> str:
    """What rerunning a grid does with this folder.

    `busy` (another process holds its claim: another grid, on this host or another node, runs
    it), else what `status_action` says from its run.json."""
    if held_elsewhere(folder):
        return "busy"
    return status_action(folder)


def status_action(folder: Path) -> str:
    """`skip` (complete), `resume` (running, interrupted, or its worker died, with a checkpoint: a
    killed, Ctrl-C'd or preempted run), `start` (nothing there, no checkpoint, or failed in the
    method itself, e.g. diverged: begins from scratch). The caller holds the claim or only plans."""
    run = read_run_json(folder)
    status = run.get("status")
    if status == "complete":
        return "skip"
    died = status == "failed" and run.get("failure", {}).get("type") == "WorkerDied"  # killed, OOM, preempted
    if (status in ("running", "interrupted") or died) and (folder / "checkpoint.pt").exists():
        return "resume"
    return "start"


@torch.no_grad()
def evaluate(method, env, episodes_seed: int) -> list[float]:
    """One full episode per eval env with the deterministic policy; returns each episode's return."""
    obs = env.reset(seed=episodes_seed)
    method.on_eval_start()
    returns = torch.zeros(env.num_envs, device=env.device)
    finished = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
    for _ in range(env.spec.episode_length):
        obs, reward, done, _ = env.step(method.act(obs, deterministic=True))
        returns += torch.where(finished, torch.zeros_like(reward), reward)
        finished |= done
        if bool(finished.all()):
            break
    return returns.tolist()


def _append_record(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _records_up_to(path: Path, env_steps: int) -> list[str]:
    """Complete records at or before `env_steps`; drops a torn last line and anything after a checkpoint."""
    if not path.exists():
        return []
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            break
        if record["env_steps"] > env_steps:
            break
        kept.append(line)
    return kept


class Run:
    def __init__(self, spec: RunSpec, root: str | os.PathLike, quiet: bool = False, loggers: list[str] | None = None):
        self.spec = spec
        self.folder = run_dir(root, spec)
        self.quiet = quiet
        self.logger_names = list(loggers or [])  # optional TensorBoard / W&B mirrors of metrics.jsonl
        self.loggers: list = []
        self.budget = parse_budget(spec.budget)
        self.method_name = resolve_method_name(spec.method)
        self.method_cls = get_method_class(self.method_name)
        self.config = load_config(self.method_name, spec.task, spec.preset, self.method_cls.config_cls, spec.overrides)
        self.device = torch.device(spec.device)
        self.run_json: dict = {}

    # -- bookkeeping ----------------------------------------------------------------------------
    def _write_run_json(self, **updates) -> None:
        self.run_json.update(updates)
        write_json_atomic(self.folder / "run.json", self.run_json)

    def _save_checkpoint(self, method, counters: dict) -> None:
        tmp = self.folder / ".checkpoint.pt.tmp"
        torch.save({"method": method.state_dict(), "counters": counters, "torch_rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, self.folder / "checkpoint.pt")

    # -- the run --------------------------------------------------------------------------------
    def execute(self) -> str:
        """Train to completion (or resume); returns the final status: complete | failed, or `busy`
        (another process holds the folder's claim: nothing was read or written)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        claim = RunClaim(self.folder)
        if not claim.acquire():
            return "busy"
        try:
            action = status_action(self.folder)  # decided under the claim: no other process can change it now
            if action == "skip":
                return "complete"
            return self._train(action)
        finally:
            claim.release()

    def _train(self, action: str) -> str:
        checkpoint_path, metrics_path = self.folder / "checkpoint.pt", self.folder / "metrics.jsonl"
        previous_attempts = read_run_json(self.folder).get("attempts", 0) if action == "resume" else 0
        env_kwargs = self.method_cls.env_kwargs(self.config)
        torch.manual_seed(self.spec.seed)
        env = envs.make(self.spec.task, device=self.device, seed=self.spec.seed, **env_kwargs)
        eval_env = envs.make(
            self.spec.task, device=self.device, seed=10_000 + self.spec.seed, **(env_kwargs | {"num_envs": self.spec.eval_episodes})
        )
        method = self.method_cls(env.spec, self.config, self.device, self.spec.seed)
        counters = {"iteration": 0, "env_steps": 0, "train_s": 0.0, "eval_s": 0.0, "next_eval": 0, "train_returns": []}
        phase_totals: dict[str, float] = {}
        resumed = False
        if action == "resume":
            state = torch.load(checkpoint_path, map_location=self.device, weights_only=False)
            method.load_state_dict(state["method"])
            counters = state["counters"]
            torch.set_rng_state(state["torch_rng"])
            metrics_path.write_text("".join(line + "\n" for line in _records_up_to(metrics_path, counters["env_steps"])))
            phase_totals = dict(counters.get("phase_totals", {}))
            resumed = True
        else:
            metrics_path.unlink(missing_ok=True)
        eval_every = self.spec.eval_every_steps or getattr(self.method_cls, "default_eval_every_steps", DEFAULT_EVAL_EVERY_STEPS)
        self.run_json = {
            "spec": self.spec.as_dict(),
            "run_id": self.spec.run_id,
            "method": self.method_name,
            "config": dataclasses.asdict(self.config),
            "env_kwargs": env_kwargs,
            "budget": dataclasses.asdict(self.budget),
            "eval": {"every_env_steps": eval_every, "episodes": self.spec.eval_episodes, "policy": "deterministic"},
            "machine": system_info(),
            "status": "running",
            "resumed": resumed,
            "attempts": previous_attempts + 1,  # processes that trained this run: 1 unless it was resumed
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self.run_json.get("started_at", time.strftime("%Y-%m-%dT%H:%M:%S")),
        }
        self._write_run_json()
        self.loggers = make_loggers(self.logger_names, self.folder, self.spec.run_id, self.run_json["config"])
        memory = PeakMemory(self.device)
        train_returns = deque(counters["train_returns"], maxlen=TRAIN_RETURN_WINDOW)
        grad_norms: list[float] = []
        bar = tqdm(
            total=self.budget.amount,
            initial=counters["train_s"] if self.budget.kind == "seconds" else counters["env_steps"],
            disable=self.quiet,
            desc=self.spec.run_id,
            unit="s" if self.budget.kind == "seconds" else "step",
            unit_scale=self.budget.kind == "steps",
            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}{postfix}]",
        )

        def record_eval(last_metrics: dict) -> None:
            start = time.perf_counter()
            returns = evaluate(method, eval_env, episodes_seed=self.spec.seed)
            counters["eval_s"] += time.perf_counter() - start
            mean = sum(returns) / len(returns)
            std = math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns))
            record = {
                "iteration": counters["iteration"],
                "env_steps": counters["env_steps"],
                "sim_steps": counters["env_steps"] * env.spec.substeps,
                "train_wall_s": round(counters["train_s"], 3),
                "eval_wall_s": round(counters["eval_s"], 3),
                "eval_return_mean": mean,
                "eval_return_std": std,
                "eval_returns": returns,
                "train_return_mean": (sum(train_returns) / len(train_returns)) if train_returns else None,
                "train_episodes_in_window": len(train_returns),
                "phase_s": {k: round(v, 3) for k, v in phase_totals.items()},
                "grad_norm_mean": (sum(grad_norms) / len(grad_norms)) if grad_norms else None,
                "grad_norm_max": max(grad_norms) if grad_norms else None,
                "grad_norms": [round(g, 4) for g in grad_norms],  # every iteration of the window, before clipping
                "metrics": last_metrics,
                **memory.as_dict(),
            }
            _append_record(metrics_path, record)
            method.save_artifacts(self.folder)
            for logger in self.loggers:
                logger.log(record, step=counters["env_steps"])
            counters["last_eval_steps"] = counters["env_steps"]
            while counters["next_eval"] <= counters["env_steps"]:  # before the checkpoint, so a resume keeps the grid
                counters["next_eval"] += eval_every
            grad_norms.clear()
            counters["train_returns"] = list(train_returns)
            counters["phase_totals"] = dict(phase_totals)
            self._save_checkpoint(method, counters)
            self._write_run_json(progress={"env_steps": counters["env_steps"], "train_wall_s": counters["train_s"]})
            bar.set_postfix(eval_return=f"{mean:.0f}", train_return=f"{record['train_return_mean'] or float('nan'):.0f}")

        try:
            last_metrics: dict = {}
            if counters["iteration"] == 0 and not resumed:
                record_eval({})  # the untrained policy: every curve starts at step 0
            while self.budget.spent(counters["train_s"], counters["env_steps"]) < 1.0:
                start = time.perf_counter()
                stats = method.iterate(env)
                elapsed = time.perf_counter() - start
                counters["iteration"] += 1
                counters["env_steps"] += stats.env_steps
                counters["train_s"] += elapsed
                for name, seconds in stats.phase_s.items():
                    phase_totals[name] = phase_totals.get(name, 0.0) + seconds
                train_returns.extend(stats.finished_episode_returns)
                if "actor_grad_norm" in stats.metrics:
                    grad_norms.append(stats.metrics["actor_grad_norm"])
                last_metrics = stats.metrics
                memory.sample()
                # Never past the total: tqdm drops a total it has passed, and the bar format then fails.
                bar.update(min(elapsed if self.budget.kind == "seconds" else stats.env_steps, max(bar.total - bar.n, 0)))
                if counters["env_steps"] >= counters["next_eval"]:
                    record_eval(last_metrics)
            if counters["env_steps"] > counters.get("last_eval_steps", -1):  # the end is always evaluated
                record_eval(last_metrics)
        except KeyboardInterrupt:
            in_main = threading.current_thread() is threading.main_thread()
            # A second Ctrl-C must not tear the write below; the handler comes back afterwards, or a run
            # executed in-process (tests, submitit's local mode) would leave SIGINT ignored, and every
            # process started later inherits that.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
            try:
                bar.close()
                self._write_run_json(status="interrupted", stopped_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
            finally:
                if in_main:
                    signal.signal(signal.SIGINT, previous)
            raise
        except Exception as err:  # a diverging or crashing run is recorded, never takes a grid down
            bar.close()
            self._write_run_json(
                status="failed",
                failure={"type": type(err).__name__, "message": str(err), "traceback": traceback.format_exc(limit=5)},
                stopped_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
            )
            return "failed"
        finally:
            for logger in self.loggers:
                logger.close()
        bar.close()
        self._write_run_json(status="complete", finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
        return "complete"
