"""`harness check`: per-method overrides, untrained returns, failures kept to their entry, and (slow)
a deliberately broken method failing its own entry and no other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import check
from harness.check import (
    Entry,
    band_contains_untrained,
    overrides_for,
    parse_entry_overrides,
)

REFERENCE = Path(check.DEFAULT_REFERENCE)


def _entry(method: str, task: str = "cartpole", band=(100.0, 200.0)) -> Entry:
    return Entry.from_dict({"task": task, "method": method, "preset": "check", "budget": "1024-steps", "seeds": [0],
                            "band": list(band), "cpu": "AMD EPYC"})


def test_an_override_with_a_method_prefix_changes_that_methods_entries_only():
    overrides = parse_entry_overrides(["shac-state:actor_lr=1e-12", "drq:lr=0.5", "k=3", "hopper/shac-state:critic_lr=0.1"])
    assert overrides == {"shac-state": {"actor_lr": 1e-12}, "drqv2": {"lr": 0.5}, None: {"k": 3},
                         "hopper/shac-state": {"critic_lr": 0.1}}
    assert overrides_for(_entry("shac-state"), overrides) == {"actor_lr": 1e-12, "k": 3}
    assert overrides_for(_entry("shac-state", task="hopper"), overrides) == {"actor_lr": 1e-12, "k": 3, "critic_lr": 0.1}
    assert overrides_for(_entry("dva"), overrides) == {"k": 3}


def test_a_band_that_contains_an_untrained_return_is_flagged():
    assert band_contains_untrained((100.0, 200.0), [-300.0, 150.0])
    assert not band_contains_untrained((100.0, 200.0), [-300.0, 90.0, 250.0])


def test_a_crashed_run_fails_its_entry_and_the_others_are_still_judged(tmp_path, monkeypatch):
    """The runs go through one grid; an entry whose run did not complete is FAILED, the others pass
    or fail on their own returns."""
    from harness.store import RunFolder

    def fake_grid(runs, options):
        assert options.workers == check.CHECK_WORKERS and options.threads_per_run == check.CHECK_THREADS and not options.videos
        statuses = {}
        for run in runs:
            folder = RunFolder.of(options.root, run.run_id)
            folder.path.mkdir(parents=True)
            crashed = run.method == "dva"
            record = {"status": "failed" if crashed else "complete", "started_at": "2026-01-01T00:00:00",
                      "finished_at": "2026-01-01T00:01:40"} | ({"failure": {"message": "boom"}} if crashed else {})
            (folder.path / "run.json").write_text(json.dumps(record))
            lines = [{"iteration": 0, "env_steps": 0, "eval_return_mean": -400.0}, {"iteration": 1, "env_steps": 1024, "eval_return_mean": 150.0}]
            (folder.path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
            statuses[run.run_id] = record["status"]
        return statuses

    monkeypatch.setattr(check, "execute_grid", fake_grid)
    monkeypatch.setattr(check, "system_info", lambda: {"cpu": "AMD EPYC"})
    entries = [_entry("dva"), _entry("shac-state"), _entry("drqv2", band=(300.0, 400.0))]
    results, ok = check.run_check(entries, tmp_path, None, quiet=True)
    by_method = {r["entry"].split("/")[1]: r for r in results}
    assert not ok
    assert by_method["dva"]["error"] and "boom" in by_method["dva"]["error"] and not by_method["dva"]["pass"]
    assert by_method["shac-state"]["pass"] and by_method["shac-state"]["untrained"] == [-400.0]
    assert by_method["shac-state"]["seconds"] == pytest.approx(100.0)
    assert not by_method["drqv2"]["pass"] and not by_method["drqv2"]["error"]
    text = check.format_results(results)
    assert "FAILED" in text and "boom" in text and "TOO LOW" in text and text.count(" ok (") == 1


# Entries whose band still contains an untrained return: the check cannot yet tell such a method from
# one that learns nothing. Each needs a longer budget than the check's time allows on one core today
# (results/reference-check/README.md); the test fails when one of them is fixed, so the list shrinks.
WEAK_ENTRIES = {
    "hopper/dva/check": "20 D.Va iterations move the hopper's return from ~5 to 6-57 only",
    "hopper/shac-state/check": "40 iterations reach 99-231 from ~0; 3 std of that spread reaches below 0",
    "cartpole-paper/dva/check": "100 iterations end at 391-2,086 (D.Va dips on its way to 2,095); seed 2's untrained policy scores 526",
}


def test_every_reference_entry_has_a_band_that_excludes_its_untrained_returns():
    """What makes an entry a learning check: a method that learned nothing must leave the band."""
    _, entries = check.load_reference(REFERENCE)
    assert entries
    for entry in entries:
        untrained = entry.raw.get("untrained")
        assert untrained, f"{entry.name} records no untrained return: remake it with --update"
        contains = [cpu for cpu, band in entry.bands.items() if band_contains_untrained(band, untrained)]
        if entry.name in WEAK_ENTRIES:
            assert contains, f"{entry.name} is listed as weak but its bands exclude {untrained}: take it off WEAK_ENTRIES"
        else:
            assert not contains, f"{entry.name}: a band on {contains} contains an untrained return {untrained}"


# Entries not made yet, and why; the test fails once one exists, so the list is kept true.
MISSING_ENTRIES = {
    ("cartpole", "tdmpc2"): "every action is planned: even its cheap `check` preset needs over 10 minutes of one core per run",
}


def test_every_method_has_a_reference_entry():
    from methods.registry import available_methods

    _, entries = check.load_reference(REFERENCE)
    covered = {(e.task, e.method) for e in entries}
    wanted = {"dva", "shac", "dagger", "drqv2", "dreamerv3", "tdmpc2", "shac-state"}
    assert wanted <= set(available_methods())
    wanted_entries = {("cartpole", m) for m in wanted} | {("cartpole-paper", "dva"), ("hopper", "dva"), ("hopper", "shac-state")}
    assert wanted_entries - set(MISSING_ENTRIES) <= covered
    assert not set(MISSING_ENTRIES) & covered, "an entry listed as missing exists: take it off MISSING_ENTRIES"


@pytest.mark.slow
def test_a_method_with_its_learning_rate_forced_to_zero_fails_its_entry_and_only_that_entry(cli, tmp_path):
    """The check guards learning: shac-state on CartPole with its learning rates at 1e-12 (Adam takes
    no visible step) stays near its untrained return and leaves its band; the hopper's shac-state
    entry, run in the same check, passes. Two of the cheapest entries, run side by side."""
    result = cli("check", "--methods", "shac-state", "--tasks", "cartpole,hopper", "--override", "cartpole/shac-state:actor_lr=1e-12",
                 "--override", "cartpole/shac-state:critic_lr=1e-12", "--out", tmp_path, "--quiet")
    assert result.returncode == 1, result.stdout + result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith(("cartpole/", "hopper/"))}
    assert set(rows) == {"cartpole/shac-state/check", "hopper/shac-state/check"}, result.stdout
    assert "TOO LOW" in rows["cartpole/shac-state/check"] and " ok (" in rows["hopper/shac-state/check"], result.stdout
