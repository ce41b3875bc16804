"""Budgets, seed ranges and run specs: parsing of user input, with errors that name the problem."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field

import yaml

_TIME_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_COUNT_SUFFIX = {"": 1, "k": 1_000, "K": 1_000, "m": 1_000_000, "M": 1_000_000}
MAX_BUDGET_SECONDS = 366 * 24 * 3600.0  # a year of training: anything longer is a typo
MAX_BUDGET_STEPS = 1e12
MAX_SEED = 2**31 - 1 - 10_000  # torch, numpy and the evaluation env (seed + 10,000) all take it


@dataclass(frozen=True)
class Budget:
    """Training budget: wall-clock seconds of training (evaluation excluded) or env steps."""

    kind: str  # "seconds" | "steps"
    amount: float
    text: str

    def spent(self, train_seconds: float, env_steps: int) -> float:
        """Fraction of the budget used, in [0, inf)."""
        used = train_seconds if self.kind == "seconds" else env_steps
        return used / self.amount


def parse_budget(text: str) -> Budget:
    """'20m', '90s', '1.5h' (training wall-clock) or '1M-steps', '500k-steps', '2048-steps'."""
    s = text.strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smh])", s)
    if m:
        amount = float(m.group(1)) * _TIME_UNITS[m.group(2)]
        if not 0 < amount <= MAX_BUDGET_SECONDS:
            raise ValueError(f"budget {_short(text)} must be more than 0 and at most a year of training")
        return Budget("seconds", amount, s)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)-steps", s)
    if m:
        amount = float(m.group(1)) * _COUNT_SUFFIX[m.group(2)]
        if not 1 <= amount <= MAX_BUDGET_STEPS:
            raise ValueError(f"budget {_short(text)} must be between 1 and {MAX_BUDGET_STEPS:.0e} env steps")
        return Budget("steps", amount, s)
    raise ValueError(f"malformed budget {_short(text)}: use a duration like 20m, 90s, 1.5h or a step count like 1M-steps, 500k-steps")


def _short(text: str, limit: int = 40) -> str:
    """repr of user input, cut so that a pasted megabyte does not become the error message."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def parse_seeds(text: str) -> list[int]:
    """'0-4' -> [0..4], '0,3,7' -> [0, 3, 7], '2' -> [2]. Ranges must be ascending."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ValueError(f"seed range {part!r} is descending; write {hi}-{lo}")
            if hi - lo >= 10_000:
                raise ValueError(f"seed range {_short(part)} names more than 10,000 seeds")
            seeds.extend(range(lo, hi + 1))
        elif re.fullmatch(r"\d+", part):
            seeds.append(int(part))
        else:
            raise ValueError(f"malformed seeds {_short(text)}: use 0-4, 0,3,7 or 2 (non-negative integers)")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {_short(text)} repeat a seed")
    if max(seeds) > MAX_SEED:
        raise ValueError(f"seeds {_short(text)}: a seed must be at most {MAX_SEED:,}")
    if len(seeds) > 10_000:
        raise ValueError(f"seeds {_short(text)} name {len(seeds):,} seeds; at most 10,000 per grid")
    return seeds


def parse_overrides(items: list[str]) -> dict:
    """`["actor_lr=1e-3", "actor_units=[32,32]"]` -> {"actor_lr": 0.001, "actor_units": [32, 32]} (YAML values)."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_]\w*", key.strip()):
            raise ValueError(f"malformed override {_short(item)}: use key=value, e.g. actor_lr=1e-3")
        overrides[key.strip()] = _parse_value(value.strip())
    return overrides


def _parse_value(text: str):
    """Numbers as numbers (YAML would read `1e-3` as a string), everything else as YAML."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid. Everything that changes the numbers is in here (and so in run.json)."""

    method: str
    task: str
    seed: int
    preset: str
    budget: str
    device: str = "cpu"
    eval_every_steps: int = 0  # 0: the method's default (Method.default_eval_every_steps)
    eval_episodes: int = 0  # 0: the method's default (Method.default_eval_episodes)
    overrides: dict = field(default_factory=dict, hash=False)  # config keys changed from the preset

    @property
    def config_name(self) -> str:
        """The preset, suffixed with a short hash of the overrides, so a changed config never shares a folder."""
        if not self.overrides:
            return self.preset
        digest = hashlib.sha1(json.dumps(self.overrides, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.preset}+{digest}"

    @property
    def run_id(self) -> str:
        return f"{self.task}/{self.method}/{self.config_name}/seed{self.seed}"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunSpec":
        return cls(**data)


# `harness run` without --budget: a preset's default training wall-clock per run. `cpu` is short so
# the README's first command finishes while a newcomer reads on; `paper` is the paper's CartPole
# comparison point (30 minutes); `smoke` is seconds. A preset of a method's own needs --budget.
DEFAULT_BUDGETS: dict[str, str] = {"cpu": "5m", "paper": "30m", "smoke": "1024-steps"}


def default_budget(preset: str) -> str:
    if preset not in DEFAULT_BUDGETS:
        raise ValueError(f"--budget is required with preset {preset!r} (default budgets: "
                         + ", ".join(f"{p} {b}" for p, b in DEFAULT_BUDGETS.items()) + ")")
    return DEFAULT_BUDGETS[preset]


def expand_grid(methods: list[str], tasks: list[str], seeds: list[int], **common) -> list[RunSpec]:
    """The method x task x seed grid, task-major then method then seed (the order runs start in)."""
    return [RunSpec(method=m, task=t, seed=s, **common) for t in tasks for m in methods for s in seeds]
