"""Bad input to every command ends in one clear line and exit status 2, before anything is written.

In-process (`harness.cli.main`), so the battery stays fast; the process boundary is tested where it
is the point (concurrent grids, tests/test_grid.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.cli import main

BAD_RUN_ARGS = [
    (["--methods", "dva,,drqv2"], "empty name"),
    (["--methods", "dva,"], "empty name"),
    (["--methods", ","], "empty name"),
    (["--tasks", "cartpole,,hopper"], "empty name"),
    (["--override", "actor_lr=nan"], "actor_lr"),
    (["--override", "actor_lr=inf"], "actor_lr"),
    (["--override", "actor_lr=-1"], "actor_lr"),
    (["--override", "actor_lr=0"], "actor_lr"),
    (["--override", "num_envs=0"], "num_envs"),
    (["--override", "num_envs=-4"], "num_envs"),
    (["--override", "num_envs=2.5"], "num_envs"),
    (["--override", "gamma=1.5"], "gamma"),
    (["--override", "lam=-0.1"], "lam"),
    (["--override", "horizon=0"], "horizon"),
    (["--override", "actor_units=[64,0]"], "actor_units"),
    (["--override", "betas=[0.7,1.5]"], "betas"),
    (["--override", "grad_norm=nan"], "grad_norm"),
    (["--seeds", "99999999999999999999"], "seed"),
    (["--seeds", "-1"], "seeds"),
    (["--seeds", "0,,1"], "seeds"),
    (["--budget", "1" + "0" * 400 + "m"], "budget"),
    (["--budget", "99999999999h"], "budget"),
    (["--budget", "1" + "0" * 30 + "-steps"], "budget"),
    (["--budget", "0m"], "budget"),
    (["--budget", "nan-steps"], "budget"),
    (["--eval-every", "0"], "positive integer"),
    (["--eval-episodes", "-2"], "positive integer"),
    (["--workers", "0"], "workers"),
    (["--gpus-per-run", "-1"], "gpus-per-run"),
]


@pytest.fixture(autouse=True)
def _no_work(monkeypatch):
    """Should a bad input slip through, fail at once instead of training, profiling or benchmarking."""

    def refuse(*args, **kwargs):
        raise AssertionError("bad input reached the work")

    for target in (
        "harness.executors.execute_grid", "harness.check.run_check", "harness.check.update_reference",
        "harness.profile.profile", "harness.bench_env.bench_env", "harness.bench_updates.bench_case",
        "harness.bench_plan.bench_plan_case",
    ):  # fmt: skip
        monkeypatch.setattr(target, refuse)


def _cli(args: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(args)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*")] if folder.exists() else []


@pytest.mark.parametrize("extra, words", BAD_RUN_ARGS)
def test_run_refuses_bad_input_before_writing_anything(tmp_path, capsys, extra, words):
    args = {"--methods": "dva", "--budget": "1m", "--out": str(tmp_path / "runs")}
    for flag, value in zip(extra[::2], extra[1::2]):
        args[flag] = value
    # --dry-run validates everything a real run does and starts nothing, should a case slip through.
    argv = ["run", "--dry-run"] + [x for pair in args.items() for x in pair]
    code, err = _cli(argv, capsys)
    assert code == 2, err
    assert words in err, err
    assert len(err.strip().splitlines()) <= 3, "one line of usage, one of error: " + err  # argparse's usage + the message
    assert not (tmp_path / "runs").exists()


def _unwritable_outs(tmp_path: Path) -> list[Path]:
    regular = tmp_path / "a_file"
    regular.write_text("x")
    outs = [regular / "runs", regular]
    if os.path.exists("/proc/self"):
        outs.append(Path("/proc/forbidden/runs"))
    return outs


@pytest.mark.parametrize("which", [0, 1, 2])
@pytest.mark.parametrize("dry_run", [False, True])
def test_run_refuses_an_out_folder_it_cannot_write(tmp_path, capsys, which, dry_run):
    outs = _unwritable_outs(tmp_path)
    if which >= len(outs):
        pytest.skip("no /proc here")
    code, err = _cli(["run", "--methods", "dva", "--budget", "1m", "--out", str(outs[which])] + (["--dry-run"] if dry_run else []), capsys)
    assert code == 2 and "--out" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def _fake_run(root: Path, seed=0, run_updates: dict | None = None, metrics_lines: list[str] | None = None) -> Path:
    folder = root / "cartpole" / "dva" / "cpu" / f"seed{seed}"
    folder.mkdir(parents=True)
    run = {"spec": {"method": "dva", "task": "cartpole", "seed": seed, "preset": "cpu", "budget": "1m"}, "method": "dva", "status": "complete"}
    run.update(run_updates or {})
    (folder / "run.json").write_text(json.dumps(run))
    lines = metrics_lines if metrics_lines is not None else [
        json.dumps({"env_steps": s, "train_wall_s": s / 100.0, "eval_return_mean": 10.0 + s / 1000.0}) for s in (0, 1000, 2000)
    ]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return folder


BAD_REPORT_INPUTS = [
    ({"metrics_lines": ["null"]}, "metrics.jsonl:1"),
    ({"metrics_lines": ["[1, 2]"]}, "metrics.jsonl:1"),
    ({"metrics_lines": ['{"env_steps": "0", "train_wall_s": 0, "eval_return_mean": 1}']}, "env_steps"),
    ({"metrics_lines": ['{"env_steps": -5, "train_wall_s": 0, "eval_return_mean": 1}']}, "env_steps"),
    ({"metrics_lines": ['{"env_steps": 1.5, "train_wall_s": 0, "eval_return_mean": 1}']}, "env_steps"),
    ({"metrics_lines": ['{"env_steps": 0, "train_wall_s": true, "eval_return_mean": 1}']}, "train_wall_s"),
    ({"run_updates": {"spec": {"method": "dva", "task": "cartpole", "seed": [0, 1], "preset": "cpu"}}}, "seed"),
    ({"run_updates": {"spec": {"method": "dva", "task": ["cartpole"], "seed": 0, "preset": "cpu"}}}, "task"),
    ({"run_updates": {"spec": {"method": "dva", "task": "cartpole", "seed": -1, "preset": "cpu"}}}, "seed"),
    ({"run_updates": {"method": 7}}, "method"),
    ({"run_updates": {"status": ["complete"]}}, "status"),
]


@pytest.mark.parametrize("fake, words", BAD_REPORT_INPUTS)
def test_report_names_the_file_and_field_of_bad_input(tmp_path, capsys, fake, words):
    _fake_run(tmp_path / "runs", **fake)
    code, err = _cli(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")], capsys)
    assert code == 2, err
    assert words in err and ("run.json" in err or "metrics.jsonl" in err), err
    assert not (tmp_path / "report").exists()


def test_report_refuses_a_run_json_that_is_not_an_object(tmp_path, capsys):
    folder = _fake_run(tmp_path / "runs")
    (folder / "run.json").write_text("[1, 2, 3]")
    code, err = _cli(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")], capsys)
    assert code == 2 and "run.json" in err, err


@pytest.mark.parametrize("threshold", ["nan", "inf", "-inf"])
def test_report_refuses_a_non_finite_threshold(tmp_path, capsys, threshold):
    _fake_run(tmp_path / "runs")
    code, err = _cli(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report"), "--threshold", threshold], capsys)
    assert code == 2 and "threshold" in err, err
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("which", [0, 1, 2])
def test_report_refuses_an_out_folder_it_cannot_write(tmp_path, capsys, which):
    _fake_run(tmp_path / "runs")
    outs = _unwritable_outs(tmp_path)
    if which >= len(outs):
        pytest.skip("no /proc here")
    code, err = _cli(["report", str(tmp_path / "runs"), "--out", str(outs[which])], capsys)
    assert code == 2 and "--out" in err, err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["bench-env", "--seed", "-1"], "seed"),
        (["bench-env", "--steps", "0"], "positive integer"),
        (["bench-env", "--horizon", "-3"], "positive integer"),
        (["check", "--methods", "dva,,shac-state"], "empty name"),
        (["check", "--tasks", ","], "empty name"),
        (["check", "--seeds", "x"], "seeds"),
        (["check", "--override", "nosuchmethod:lr=1"], "nosuchmethod"),
        (["check", "--override", "nosuchtask/dva:actor_lr=1"], "nosuchtask"),
        (["check", "--override", "shac-state:actor_lr=-1"], "actor_lr"),
        (["check", "--methods", "dva", "--override", "shac-state:actor_lr=1e-12"], "no selected reference entry"),
        (["check", "--override", "dva:no_such_key=1"], "no_such_key"),
        (["check", "--update", "--override", "dva:actor_lr=1e-3"], "--update"),
        (["profile", "--methods", "dva,,shac"], "empty name"),
        (["profile", "--presets", "cpu,"], "empty name"),
        (["profile", "--override", "actor_lr=nan"], "actor_lr"),
        (["profile", "--warmup", "-1"], "warmup"),
        (["bench-updates", "--override", "lr=-1"], "lr"),
        (["bench-updates", "--image-sizes", "32,,84"], "empty"),
        (["bench-plan", "--model-sizes", "1,,5"], "empty"),
        (["report", "nowhere", "--out", "x", "--reps", "0"], "positive integer"),
        (["report", "nowhere", "--out", "x", "--at", "1" + "0" * 400 + "m"], "budget"),
        (["check", "--out", "/proc/forbidden/check"], "--out"),
        (["profile", "--out", "/proc/forbidden/profile"], "--out"),
        (["bench-updates", "--out", "/proc/forbidden/bench"], "--out"),
        (["bench-plan", "--out", "/proc/forbidden/bench"], "--out"),
        (["bench-env", "--json", "/proc/forbidden/bench.json"], "--json"),
    ],
)
def test_other_commands_refuse_bad_input(tmp_path, capsys, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    code, err = _cli(argv, capsys)
    assert code == 2 and words in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_report_that_fails_half_way_leaves_the_out_folder_as_it_was(tmp_path, capsys, monkeypatch):
    import harness.report

    _fake_run(tmp_path / "runs")
    out = tmp_path / "report"
    out.mkdir()
    (out / "README.md").write_text("notes beside the report")

    def broken(*args, **kwargs):
        raise RuntimeError("a plotting error half-way")

    monkeypatch.setattr(harness.report, "_plot_phases", broken)
    with pytest.raises(RuntimeError, match="half-way"):
        main(["report", str(tmp_path / "runs"), "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["README.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "runs"], "no staging folder left behind"
    monkeypatch.undo()
    assert main(["report", str(tmp_path / "runs"), "--out", str(out)]) == 0
    assert {"README.md", "summary.md", "summary.csv", "runs"} <= {p.name for p in out.iterdir()}
