"""`harness check`: rerun the small reference configurations and compare with `results/reference.json`.

Each reference entry (task x method x preset) holds a step budget, the seeds it was made with, the
final evaluation returns those runs reached, the git sha, CPU model and package versions, and a
two-sided band per CPU model it was made on (returns differ between CPU types; a check on another
model tests the entry's latest band and says so). The
check reruns the entry (by default its first seed only, to fit CI) and fails when the mean final
return leaves the band: a drop is a regression, a jump is suspicious too (a changed reward or
evaluation). `--update` remakes the entries from fresh runs, so the diff of reference.json is what
a reviewer looks at.

Every run evaluates at its start too, so each entry also records the untrained policy's return: a
band that contains it would pass a method that learns nothing, and `--update` says so. The runs of
all selected entries go through one grid, `CHECK_WORKERS` at a time with one torch thread each, the
same on every machine (a run's numbers depend on its thread count). A run that crashes fails its
entry, not the check's other entries.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from harness.executors import GridOptions, execute_grid
from harness.io import write_json_atomic
from harness.resolved import ResolvedRun, resolve
from harness.specs import RunSpec, parse_budget
from harness.store import RunFolder
from harness.system_info import system_info

DEFAULT_REFERENCE = Path(__file__).resolve().parent.parent / "results" / "reference.json"
# Band half-width beyond the observed seeds: the larger of 10% of |mean|, 3 std and this floor.
BAND_FLOOR = 25.0
# Runs at once and torch threads per run, for checks and updates alike: fixed, not taken from the
# machine, so a check computes the same numbers as the update that made its band.
CHECK_WORKERS = 2
CHECK_THREADS = 1


@dataclass
class Entry:
    task: str
    method: str
    preset: str
    budget: str
    seeds: list[int]
    eval_episodes: int
    band: tuple[float, float] | None
    raw: dict
    bands: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)  # per CPU model

    @classmethod
    def from_dict(cls, data: dict) -> "Entry":
        try:
            band = tuple(data["band"]) if data.get("band") is not None else None
            bands = {str(cpu): tuple(b) for cpu, b in (data.get("bands") or {}).items()}
            made_on = data.get("cpu") or str(data.get("machine", "")).split(" (")[0]  # older entries: "AMD EPYC (2 cores), ..."
            if band is not None and made_on and made_on not in bands:
                bands[made_on] = band  # the band was made on this CPU model
            return cls(data["task"], data["method"], data["preset"], data["budget"], list(data["seeds"]),
                       int(data.get("eval_episodes", 16)), band, data, bands)
        except (KeyError, TypeError) as err:
            raise ValueError(f"malformed reference entry {data!r}: missing {err}") from None

    def band_for(self, cpu: str) -> tuple[tuple[float, float] | None, str]:
        """The band to test on CPU model `cpu`, and a note when it was made on another model: returns
        differ between CPU types, so a model with its own band uses it; another uses the entry's band
        and the check says so."""
        if cpu in self.bands:
            return self.bands[cpu], ""
        made_on = ", ".join(sorted(self.bands)) or self.raw.get("machine", "an unrecorded CPU")
        return self.band, f"band made on {made_on}, this is {cpu}: make one here with --update" if self.band else ""

    @property
    def name(self) -> str:
        return f"{self.task}/{self.method}/{self.preset}"

    def runs(self, seeds: list[int], overrides: dict | None = None) -> list[ResolvedRun]:
        # Evaluate only at the start (the untrained policy) and at the end (eval_every = the whole budget).
        budget = parse_budget(self.budget)
        if budget.kind != "steps":
            raise ValueError(f"reference entry {self.name}: the budget must be in env steps (reproducible), got {self.budget!r}")
        return [resolve(RunSpec(self.method, self.task, s, self.preset, self.budget, "cpu", int(budget.amount), self.eval_episodes,
                                dict(overrides or {}))) for s in seeds]


def parse_entry_overrides(items: list[str]) -> dict[str | None, dict]:
    """`["hopper/shac-state:actor_lr=1e-12", "drq:lr=0.5", "k=1"]` -> {"hopper/shac-state": {...},
    "drqv2": {...}, None: {...}}: a `TASK/METHOD:` prefix changes that entry's runs, a `METHOD:` prefix
    that method's entries, no prefix every selected entry (how a deliberately broken method is checked)."""
    from harness.specs import parse_overrides
    from methods.registry import check_task_name, resolve_method_name

    grouped: dict[str | None, list[str]] = {}
    for item in items:
        target, sep, _ = item.partition("=")[0].partition(":")
        scope = None
        if sep:
            task, slash, method = target.strip().rpartition("/")
            if slash:
                check_task_name(task)
            scope = (f"{task}/" if slash else "") + resolve_method_name(method)
        grouped.setdefault(scope, []).append(item[len(target) + 1:] if sep else item)
    return {scope: parse_overrides(texts) for scope, texts in grouped.items()}


def overrides_for(entry: Entry, overrides: dict[str | None, dict]) -> dict:
    """The overrides that apply to `entry`: unscoped, then its method's, then its own (task/method)."""
    return dict(overrides.get(None, {})) | dict(overrides.get(entry.method, {})) | dict(overrides.get(f"{entry.task}/{entry.method}", {}))


def load_reference(path: str | Path | None = None) -> tuple[dict, list[Entry]]:
    path = Path(path) if path is not None else DEFAULT_REFERENCE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the reference file {path}: {err}") from None
    return data, [Entry.from_dict(e) for e in data.get("entries", [])]


@dataclass
class Outcome:
    """An entry's runs: final and untrained (first evaluation) returns per seed, or why a run failed."""

    finals: list[float]
    untrained: list[float]
    error: str = ""
    seconds: float = 0.0


def _first_eval(folder: RunFolder) -> float:
    with open(folder.path / "metrics.jsonl") as lines:
        return float(json.loads(next(lines))["eval_return_mean"])


def execute_entries(planned: dict[str, list[ResolvedRun]], root: Path, quiet: bool) -> dict[str, Outcome]:
    """Run every entry's runs in one grid (`CHECK_WORKERS` at a time, `CHECK_THREADS` torch threads
    each) and collect each entry's returns; one entry's failed run does not stop the others."""
    runs = [run for entry_runs in planned.values() for run in entry_runs]
    options = GridOptions(root=root, quiet=quiet, workers=CHECK_WORKERS, videos=False, threads_per_run=CHECK_THREADS)
    statuses = execute_grid(runs, options)
    outcomes = {}
    for name, entry_runs in planned.items():
        outcome = Outcome([], [])
        for run in entry_runs:
            folder = RunFolder.of(root, run.run_id)
            if statuses.get(run.run_id) != "complete":
                failure = folder.read().get("failure", {})
                outcome.error = f"{run.run_id} did not complete: {failure.get('message', statuses.get(run.run_id))}"
                break
            outcome.finals.append(float(folder.last_record()["eval_return_mean"]))
            outcome.untrained.append(_first_eval(folder))
            outcome.seconds += _run_seconds(folder.read())
        outcomes[name] = outcome
    return outcomes


def _run_seconds(record: dict) -> float:
    """A run's whole time (start to finish, evaluations and setup included) from its run.json."""
    try:
        return (datetime.fromisoformat(record["finished_at"]) - datetime.fromisoformat(record["started_at"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return math.nan


def make_band(observed: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(observed)
    spread = statistics.pstdev(observed) if len(observed) > 1 else 0.0
    half = max(0.10 * abs(mean), 3.0 * spread, BAND_FLOOR)
    return (round(min(observed) - half, 1), round(max(observed) + half, 1))


def plan(entries: list[Entry], seeds_of, overrides: dict[str | None, dict]) -> dict[str, list[ResolvedRun]]:
    """Each entry's runs (ValueError naming the entry or override that cannot run)."""
    named = {m for m in overrides if m is not None}
    missing = named - {e.method for e in entries} - {f"{e.task}/{e.method}" for e in entries}
    if missing:
        raise ValueError(f"--override names {', '.join(sorted(missing))}, which no selected reference entry runs")
    planned = {}
    for entry in entries:
        try:
            planned[entry.name] = entry.runs(seeds_of(entry), overrides_for(entry, overrides))
        except ValueError as err:
            raise ValueError(f"reference entry {entry.name}: {err}") from None
    return planned


def run_check(entries: list[Entry], out: Path | None, seeds: list[int] | None, quiet: bool,
              overrides: dict[str | None, dict] | None = None) -> tuple[list[dict], bool]:
    """Rerun each entry; returns per-entry results and whether every mean stayed inside its band."""
    cpu = system_info()["cpu"]
    bands = {}
    for entry in entries:
        bands[entry.name] = entry.band_for(cpu)
        if bands[entry.name][0] is None:
            raise ValueError(f"reference entry {entry.name} has no band yet; make it with --update")
    planned = plan(entries, lambda e: seeds if seeds is not None else e.seeds[:1], overrides or {})
    results, ok = [], True
    with tempfile.TemporaryDirectory(prefix="harness-check-") as scratch:
        root = (Path(out) if out is not None else Path(scratch)) / "check"
        for run in (r for entry_runs in planned.values() for r in entry_runs):
            folder = RunFolder.of(root, run.run_id)  # a check always reruns: never a kept run of older code
            if folder.held_elsewhere():
                raise ValueError(f"{folder.path} is in use by another process")
            if folder.exists():
                folder.delete()
        outcomes = execute_entries(planned, root, quiet)
    for entry in entries:
        (band, note), outcome = bands[entry.name], outcomes[entry.name]
        mean = statistics.fmean(outcome.finals) if outcome.finals and not outcome.error else math.nan
        inside = not outcome.error and band[0] <= mean <= band[1]
        ok &= inside
        results.append({"entry": entry.name, "budget": entry.budget, "seeds": [r.spec.seed for r in planned[entry.name]],
                        "returns": outcome.finals, "mean": mean, "untrained": outcome.untrained, "band": band, "pass": inside,
                        "seconds": outcome.seconds, "note": note, "error": outcome.error,
                        "overrides": overrides_for(entry, overrides or {})})
    return results, ok


def band_contains_untrained(band: tuple[float, float] | list[float], untrained: list[float]) -> bool:
    """Whether the band would pass a policy that learned nothing (any seed's untrained return in it)."""
    return any(band[0] <= u <= band[1] for u in untrained)


def update_reference(path: Path, data: dict, entries: list[Entry], out: Path, seeds: list[int], quiet: bool, command: str) -> list[dict]:
    """Remake the selected entries from runs with `seeds`; other entries are kept as they are. Complete
    runs already in `out` are used as they are (an interrupted update resumes): give a fresh `out`
    after changing code. An entry whose run failed is left as it was and reported (RuntimeError
    after the others are saved)."""
    made, failed = [], []
    machine = system_info()
    by_name = {Entry.from_dict(e).name: i for i, e in enumerate(data.get("entries", []))}
    outcomes = execute_entries(plan(entries, lambda e: seeds, {}), out / "reference", quiet)
    for entry in entries:
        outcome = outcomes[entry.name]
        if outcome.error:
            failed.append(f"{entry.name}: {outcome.error}")
            continue
        finals = outcome.finals
        band = list(make_band(finals))
        bands = {cpu: list(b) for cpu, b in entry.bands.items()} | {machine["cpu"]: band}
        record = dict(entry.raw) | {
            "seeds": seeds, "observed": [round(v, 2) for v in finals], "untrained": [round(v, 2) for v in outcome.untrained],
            "band": band, "bands": bands, "cpu": machine["cpu"], "seconds_per_run": round(outcome.seconds / len(seeds), 1),
            "versions": machine["versions"],
            "git": machine["git"], "machine": f"{machine['cpu']} ({machine['cpu_count']} cores), torch {machine['versions']['torch']}",
            "date": time.strftime("%Y-%m-%d"), "made_by": command, "runs": str(out / "reference"),
        }
        data["entries"][by_name[entry.name]] = record
        made.append(record)
    write_json_atomic(path, data)
    if failed:
        raise RuntimeError("; ".join(failed))
    return made


def format_results(results: list[dict]) -> str:
    lines = [f"{'reference':<32} {'budget':>14} {'seeds':>6} {'untrained':>10} {'mean return':>12} {'band':>22}  result"]
    for r in results:
        band = f"[{r['band'][0]:,.0f}, {r['band'][1]:,.0f}]"
        if r.get("error"):
            verdict = "FAILED"
        else:
            verdict = "ok" if r["pass"] else ("TOO LOW" if r["mean"] < r["band"][0] else "TOO HIGH")
        mean = f"{r['mean']:,.1f}" if math.isfinite(r["mean"]) else "nan"
        untrained = f"{statistics.fmean(r['untrained']):,.1f}" if r.get("untrained") else "-"
        lines.append(f"{r['entry']:<32} {r['budget']:>14} {','.join(map(str, r['seeds'])):>6} {untrained:>10} {mean:>12} {band:>22}"
                     f"  {verdict} ({r['seconds']:.0f} s)")
        for label, text in (("overrides", r.get("overrides")), ("error", r.get("error")), ("note", r.get("note"))):
            if text:
                lines.append(f"{'':<32} {label}: {text}")
    return "\n".join(lines)
