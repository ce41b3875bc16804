"""One run: build env + method, train until the budget, evaluate, record, checkpoint, resume.

The run folder's files are harness/store.py's: a record is appended at each evaluation and the
checkpoint written right after it, so a killed run resumes from its last record without
duplicating or losing any. Training wall-clock excludes evaluation and checkpointing.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import threading
import time
import traceback
from collections import deque

import torch
from tqdm import tqdm

from harness.calibration import calibrate
from harness.loggers import make_loggers
from harness.resolved import ResolvedRun, build
from harness.resources import PeakMemory
from harness.store import VIDEO, RunFolder, now
from harness.system_info import system_info
from harness.video import record_policy_video

CALIBRATION_IMAGE_SIZE = 48  # the encoder's image for runs that read no pixels (the cpu protocol's size)

TRAIN_RETURN_WINDOW = 100  # the paper plots the moving average of the last ~100 training episodes


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


class Run:
    def __init__(self, resolved: ResolvedRun, root: str | os.PathLike, quiet: bool = False, loggers: list[str] | None = None,
                 videos: bool = True):
        self.resolved = resolved
        self.spec = resolved.spec
        self.folder = RunFolder.of(root, resolved.run_id)
        self.quiet = quiet
        self.videos = videos
        self.logger_names = list(loggers or [])  # optional TensorBoard / W&B mirrors of metrics.jsonl
        self.loggers: list = []
        self.budget = resolved.budget
        self.device = torch.device(self.spec.device)
        self.run_json: dict = {}

    def _write_run_json(self, **updates) -> None:
        self.run_json.update(updates)
        self.folder.write(self.run_json)

    # -- the run --------------------------------------------------------------------------------
    def execute(self) -> str:
        """Train to completion (or resume); returns the final status: complete | failed, or `busy`
        (another process holds the folder's claim: nothing was read or written)."""
        self.folder.create()
        claim = self.folder.claim()
        if not claim.acquire():
            return "busy"
        try:
            action = self.folder.next_action()  # decided under the claim: no other process can change it now
            if action == "skip":
                return "complete"
            return self._train(action)
        finally:
            claim.release()

    def _train(self, action: str) -> str:
        resolved = self.resolved
        previous_attempts = self.folder.read().get("attempts", 0) if action == "resume" else 0
        built = build(resolved.method_cls, self.spec.task, resolved.config, self.device, self.spec.seed, eval_envs=resolved.eval_episodes)
        env, eval_env, method = built.env, built.eval_env, built.method
        env.timings.pop()  # the clock counts training iterations only
        counters = {"iteration": 0, "env_steps": 0, "train_s": 0.0, "eval_s": 0.0, "next_eval": 0, "train_returns": []}
        phase_totals: dict[str, float] = {}
        resumed = False
        if action == "resume":
            state = self.folder.load_checkpoint(map_location=self.device)
            method.load_state_dict(state["method"])
            counters = state["counters"]
            torch.set_rng_state(state["torch_rng"])
            self.folder.keep_records_up_to(counters["env_steps"])
            phase_totals = dict(counters.get("phase_totals", {}))
            resumed = True
        else:
            self.folder.clear_records()
        eval_every = resolved.eval_every_steps
        env_kwargs = resolved.as_dict().get("env_kwargs") or {}
        calibration_size = env_kwargs.get("image_size", CALIBRATION_IMAGE_SIZE) if env_kwargs.get("render") else CALIBRATION_IMAGE_SIZE
        self.run_json = resolved.as_dict() | {
            "run_id": self.spec.run_id,
            "machine": system_info(),
            "calibration": calibrate(calibration_size, self.device),  # this process's host, before training
            "status": "running",
            "resumed": resumed,
            "attempts": previous_attempts + 1,  # processes that trained this run: 1 unless it was resumed
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self.run_json.get("started_at", now()),
        }
        self._write_run_json()
        self.loggers = make_loggers(self.logger_names, self.folder.path, self.spec.run_id, self.run_json["config"])
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
            self.folder.append(record)
            method.save_artifacts(self.folder.path)
            for logger in self.loggers:
                logger.log(record, step=counters["env_steps"])
            counters["last_eval_steps"] = counters["env_steps"]
            while counters["next_eval"] <= counters["env_steps"]:  # before the checkpoint, so a resume keeps the grid
                counters["next_eval"] += eval_every
            grad_norms.clear()
            counters["train_returns"] = list(train_returns)
            counters["phase_totals"] = dict(phase_totals)
            self.folder.save_checkpoint({"method": method.state_dict(), "counters": counters, "torch_rng": torch.get_rng_state()})
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
                for name, seconds in env.timings.pop().items():  # the iteration's phases (envs/timing.py)
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
            if self.videos:  # not counted as training or evaluation time
                record_policy_video(method, eval_env, self.spec.task, self.folder.path / VIDEO, seed=self.spec.seed)
        except KeyboardInterrupt:
            in_main = threading.current_thread() is threading.main_thread()
            # A second Ctrl-C must not tear the write below; the handler comes back afterwards, or a run
            # executed in-process (tests, submitit's local mode) would leave SIGINT ignored, and every
            # process started later inherits that.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
            try:
                bar.close()
                self._write_run_json(status="interrupted", stopped_at=now())
            finally:
                if in_main:
                    signal.signal(signal.SIGINT, previous)
            raise
        except Exception as err:  # a diverging or crashing run is recorded, never takes a grid down
            bar.close()
            self._write_run_json(
                status="failed",
                failure={"type": type(err).__name__, "message": str(err), "traceback": traceback.format_exc(limit=5)},
                stopped_at=now(),
            )
            return "failed"
        finally:
            for logger in self.loggers:
                logger.close()
        bar.close()
        self._write_run_json(status="complete", finished_at=now())
        return "complete"
