"""`harness check`: rerun the small reference configurations and compare with `results/reference.json`.

Each reference entry (task x method x preset) holds a step budget, the seeds it was made with, the
final evaluation returns those runs reached, the git sha, CPU model and package versions, and a
two-sided band per CPU model it was made on (returns differ between CPU types; a check on another
model tests the entry's latest band and says so). The
check reruns the entry (by default its first seed only, to fit CI) and fails when the mean final
return leaves the band: a drop is a regression, a jump is suspicious too (a changed reward or
evaluation). `--update` remakes the entries from fresh runs, so the diff of reference.json is what
a reviewer looks at.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import tempfile
import time
from dataclasses import dataclass
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

    def runs(self, seeds: list[int]) -> list[ResolvedRun]:
        # Evaluate only at the start and at the end (eval_every = the whole budget).
        budget = parse_budget(self.budget)
        if budget.kind != "steps":
            raise ValueError(f"reference entry {self.name}: the budget must be in env steps (reproducible), got {self.budget!r}")
        return [resolve(RunSpec(self.method, self.task, s, self.preset, self.budget, "cpu", int(budget.amount), self.eval_episodes)) for s in seeds]


def load_reference(path: str | Path | None = None) -> tuple[dict, list[Entry]]:
    path = Path(path) if path is not None else DEFAULT_REFERENCE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the reference file {path}: {err}") from None
    return data, [Entry.from_dict(e) for e in data.get("entries", [])]


def _final_returns(runs: list[ResolvedRun], root: Path, quiet: bool) -> list[float]:
    statuses = execute_grid(runs, GridOptions(root=root, quiet=quiet, workers=1))
    finals = []
    for run in runs:
        folder = RunFolder.of(root, run.run_id)
        if statuses.get(run.run_id) != "complete":
            failure = folder.read().get("failure", {})
            raise RuntimeError(f"{run.run_id} did not complete: {failure.get('message', statuses.get(run.run_id))}")
        finals.append(float(folder.last_record()["eval_return_mean"]))
    return finals


def make_band(observed: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(observed)
    spread = statistics.pstdev(observed) if len(observed) > 1 else 0.0
    half = max(0.10 * abs(mean), 3.0 * spread, BAND_FLOOR)
    return (round(min(observed) - half, 1), round(max(observed) + half, 1))


def run_check(entries: list[Entry], out: Path | None, seeds: list[int] | None, quiet: bool) -> tuple[list[dict], bool]:
    """Rerun each entry; returns per-entry results and whether every mean stayed inside its band."""
    results, ok = [], True
    with tempfile.TemporaryDirectory(prefix="harness-check-") as scratch:
        root = Path(out) if out is not None else Path(scratch)
        cpu = system_info()["cpu"]
        for entry in entries:
            band, note = entry.band_for(cpu)
            if band is None:
                raise ValueError(f"reference entry {entry.name} has no band yet; make it with --update")
            chosen = seeds if seeds is not None else entry.seeds[:1]
            start = time.perf_counter()
            finals = _final_returns(entry.runs(chosen), root / "check", quiet)
            mean = statistics.fmean(finals)
            inside = band[0] <= mean <= band[1]
            ok &= inside
            results.append({"entry": entry.name, "budget": entry.budget, "seeds": chosen, "returns": finals, "mean": mean,
                            "band": band, "pass": inside, "seconds": time.perf_counter() - start, "note": note})
    return results, ok


def update_reference(path: Path, data: dict, entries: list[Entry], out: Path, seeds: list[int], quiet: bool, command: str) -> list[dict]:
    """Remake the selected entries from fresh runs with `seeds`; other entries are kept as they are."""
    made = []
    machine = system_info()
    by_name = {Entry.from_dict(e).name: i for i, e in enumerate(data.get("entries", []))}
    for entry in entries:
        finals = _final_returns(entry.runs(seeds), out / "reference", quiet)
        band = list(make_band(finals))
        bands = {cpu: list(b) for cpu, b in entry.bands.items()} | {machine["cpu"]: band}
        record = dict(entry.raw) | {
            "seeds": seeds, "observed": [round(v, 2) for v in finals], "band": band, "bands": bands, "cpu": machine["cpu"],
            "versions": machine["versions"],
            "git": machine["git"], "machine": f"{machine['cpu']} ({machine['cpu_count']} cores), torch {machine['versions']['torch']}",
            "date": time.strftime("%Y-%m-%d"), "made_by": command, "runs": str(out / "reference"),
        }
        data["entries"][by_name[entry.name]] = record
        made.append(record)
    write_json_atomic(path, data)
    return made


def format_results(results: list[dict]) -> str:
    lines = [f"{'reference':<30} {'budget':>14} {'seeds':>8} {'mean return':>12} {'band':>22}  result"]
    for r in results:
        band = f"[{r['band'][0]:,.0f}, {r['band'][1]:,.0f}]"
        verdict = "ok" if r["pass"] else ("TOO LOW" if r["mean"] < r["band"][0] else "TOO HIGH")
        mean = f"{r['mean']:,.1f}" if math.isfinite(r["mean"]) else "nan"
        lines.append(f"{r['entry']:<30} {r['budget']:>14} {','.join(map(str, r['seeds'])):>8} {mean:>12} {band:>22}  {verdict} ({r['seconds']:.0f} s)")
        if r.get("note"):
            lines.append(f"{'':<30} note: {r['note']}")
    return "\n".join(lines)
