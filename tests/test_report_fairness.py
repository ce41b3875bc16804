"""`harness report` compares like with like: it refuses runs that read different pixels or ran on
different CPU models (exit 2 naming the runs and fields), reports them with --allow-mixed and a
header saying what differs, and rescales wall-clock by each host's calibration on request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

AMD = {"cpu": "AMD EPYC", "cpu_count": 2, "versions": {"torch": "2.13.0+cpu"}}
PIXELS_48 = {"image_size": 48, "supersample": 2, "crop_static_rows": False, "render": "raytrace", "frame_stack": 3}


def _run(root: Path, method: str, seed: int, env_kwargs: dict = PIXELS_48, machine: dict = AMD,
         calibration: dict | None = None, wall_per_eval: float = 60.0) -> Path:
    folder = root / "cartpole" / method / "cpu" / f"seed{seed}"
    folder.mkdir(parents=True)
    run = {"spec": {"task": "cartpole", "method": method, "seed": seed, "preset": "cpu", "budget": "5m", "device": "cpu"},
           "method": method, "status": "complete", "env_kwargs": env_kwargs, "machine": machine}
    if calibration:
        run["calibration"] = calibration
    (folder / "run.json").write_text(json.dumps(run))
    lines = [json.dumps({"iteration": i, "env_steps": i * 1000, "train_wall_s": i * wall_per_eval, "eval_return_mean": 100.0 * i + seed,
                         "train_return_mean": None, "phase_s": {}, "cpu_rss_peak_mb": 1.0}) for i in range(4)]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize("field, changed, words", [
    ("env_kwargs", PIXELS_48 | {"image_size": 32}, ("observation differs", "48 px x2, full frame, raytrace (dva", "32 px x2")),
    ("machine", AMD | {"cpu": "Intel Xeon"}, ("CPU model differs", "AMD EPYC (dva", "Intel Xeon (drqv2")),
])  # fmt: skip
def test_a_group_mixing_image_sizes_or_cpu_models_is_refused_and_allowed_with_a_header(tmp_path, cli, field, changed, words):
    for seed in range(2):
        _run(tmp_path / "runs", "dva", seed)
    _run(tmp_path / "runs", "drqv2", 0, **{field: changed})
    refused = cli("report", tmp_path / "runs", "--out", tmp_path / "report")
    assert refused.returncode == 2, refused.stdout
    assert all(w in refused.stderr for w in words) and "drqv2 (cpu) seed 0" in refused.stderr and "dva (cpu) seeds 0,1" in refused.stderr
    assert "--allow-mixed" in refused.stderr
    assert not (tmp_path / "report").exists(), "nothing is written for a refused report"
    allowed = cli("report", tmp_path / "runs", "--out", tmp_path / "report", "--allow-mixed")
    assert allowed.returncode == 0, allowed.stderr
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "Mixed comparison (--allow-mixed)" in summary and all(w in summary for w in words)


def test_like_for_like_runs_are_reported_with_their_shared_observation_and_host(tmp_path, cli):
    _run(tmp_path / "runs", "dva", 0)
    _run(tmp_path / "runs", "drqv2", 0)
    _run(tmp_path / "runs", "shac-state", 0, env_kwargs={"render": None})  # state-only: no pixels to compare
    proc = cli("report", tmp_path / "runs", "--out", tmp_path / "report")
    assert proc.returncode == 0, proc.stderr
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "Observation on cartpole: 48 px x2, full frame, raytrace" in summary and "Mixed comparison" not in summary
    assert "Host AMD EPYC (2 cores)" in summary


def test_calibrated_wall_clock_rescales_each_host_by_its_measured_speed(tmp_path, cli):
    """Two hosts, the Intel one twice as slow in both measurements: its minutes count as half."""
    amd_cal = {"encoder_ms": 10.0, "sim_step_ms": 1.0, "encoder_work": "w", "sim_work": "s"}
    intel_cal = {"encoder_ms": 20.0, "sim_step_ms": 2.0, "encoder_work": "w", "sim_work": "s"}
    for seed in range(2):
        _run(tmp_path / "runs", "dva", seed, calibration=amd_cal)
    _run(tmp_path / "runs", "dva", 2, machine=AMD | {"cpu": "Intel Xeon"}, calibration=intel_cal)
    proc = cli("report", tmp_path / "runs", "--out", tmp_path / "report", "--allow-mixed", "--calibrated", "--at", "1m")
    assert proc.returncode == 0, proc.stderr
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "calibrated seconds of AMD EPYC (2 cores)" in summary and "Intel Xeon (2 cores) 2.00" in summary
    copied = json.loads((tmp_path / "report" / "runs" / "cartpole" / "dva" / "cpu" / "seed2" / "run.json").read_text())
    assert copied["calibration"] == intel_cal
    uncalibrated = cli("report", tmp_path / "runs", "--out", tmp_path / "plain", "--allow-mixed")
    assert "calibrated seconds" not in (tmp_path / "plain" / "summary.md").read_text()
    _run(tmp_path / "runs", "drqv2", 0)  # no calibration
    missing = cli("report", tmp_path / "runs", "--out", tmp_path / "other", "--allow-mixed", "--calibrated")
    assert missing.returncode == 2 and "needs every run's calibration" in missing.stderr
    assert uncalibrated.returncode == 0


def test_calibration_divides_a_slower_hosts_seconds_by_its_slowness(tmp_path):
    from harness.report_fairness import calibrated
    from harness.report_runs import load_runs

    _run(tmp_path / "runs", "dva", 0, calibration={"encoder_ms": 10.0, "sim_step_ms": 1.0, "encoder_work": "w", "sim_work": "s"})
    _run(tmp_path / "runs", "dva", 1, calibration={"encoder_ms": 10.0, "sim_step_ms": 1.0, "encoder_work": "w", "sim_work": "s"})
    _run(tmp_path / "runs", "dva", 2, machine=AMD | {"cpu": "Intel Xeon"},
         calibration={"encoder_ms": 40.0, "sim_step_ms": 1.0, "encoder_work": "w", "sim_work": "s"})  # slowness sqrt(4 * 1) = 2
    scaled, _ = calibrated(load_runs([tmp_path / "runs"]))
    walls = {run.spec["seed"]: [r["train_wall_s"] for r in run.records] for run in scaled}
    assert walls[0] == [0.0, 60.0, 120.0, 180.0] and walls[2] == [0.0, 30.0, 60.0, 90.0]


def test_check_keeps_one_band_per_cpu_model_and_says_when_it_tests_another_models_band():
    from harness.check import Entry, format_results

    raw = {"task": "cartpole", "method": "dva", "preset": "cpu", "budget": "1024-steps", "seeds": [0], "band": [10.0, 20.0],
           "machine": "AMD EPYC (2 cores), torch 2.13.0+cpu", "bands": {"Intel Xeon": [30.0, 50.0]}}
    entry = Entry.from_dict(raw)
    assert entry.band_for("AMD EPYC") == ((10.0, 20.0), "")  # an older entry: its band was made on its machine's CPU
    assert entry.band_for("Intel Xeon") == ((30.0, 50.0), "")
    band, note = entry.band_for("ARM Neoverse")
    assert band == (10.0, 20.0) and "this is ARM Neoverse" in note
    text = format_results([{"entry": entry.name, "budget": "1024-steps", "seeds": [0], "mean": 15.0, "band": band, "pass": True,
                            "seconds": 1.0, "note": note}])
    assert "ok" in text and "note: band made on AMD EPYC, Intel Xeon, this is ARM Neoverse" in text


def test_calibration_leaves_the_global_random_state_alone():
    """A run's numbers must not depend on its calibration: the encoder it builds draws no numbers
    from the generator training uses."""
    import torch

    from harness.calibration import calibrate

    torch.manual_seed(123)
    before = torch.get_rng_state()
    result = calibrate(16, "cpu")
    assert torch.equal(torch.get_rng_state(), before)
    assert result["encoder_ms"] > 0 and result["sim_step_ms"] > 0
