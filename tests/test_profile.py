"""`harness profile`: output schema, the graph-memory probe, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from harness.profile import ProfileCase, SavedTensorBytes, profile_cases, run_case


def test_saved_tensor_bytes_counts_each_storage_once():
    saved = SavedTensorBytes()
    x = torch.ones(1000, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
        y = (x * x).sum()  # saves x twice: one storage
    assert saved.bytes == 4000
    y.backward()
    assert torch.equal(x.grad, 2 * torch.ones(1000))


def test_cases_put_shac_on_the_differentiable_renderer_and_dva_on_each():
    cases = profile_cases(["dva", "shac"], ["paper"], ["raytrace", "differentiable"], "cartpole", "cpu", {})
    assert [c.label for c in cases] == ["dva (raytrace)", "dva (differentiable)", "shac (differentiable)"]


def test_shac_keeps_more_graph_than_dva_on_the_same_renderer():
    shac = run_case(ProfileCase("shac", "differentiable", "smoke", "cartpole", "cpu"), iterations=1, warmup=0)
    dva = run_case(ProfileCase("dva", "differentiable", "smoke", "cartpole", "cpu"), iterations=1, warmup=0)
    assert shac["graph_bytes"] > dva["graph_bytes"] > 0
    assert shac["phase_s"]["render_backward"] > 0 and dva["phase_s"]["render_backward"] == 0


@pytest.fixture
def cases_in_this_process(monkeypatch):
    """`profile` measures each case in a fresh `python -m harness.profile CASE` (its memory apart
    from the others'); here the case runs in this process, through harness.profile.main, since the
    test is about what the command writes. Any other command still gets a real process."""
    import contextlib
    import io
    import subprocess
    import sys
    import types

    import harness.profile

    real = harness.profile.subprocess

    def run(args, *rest, **kwargs):
        if list(args[:3]) != [sys.executable, "-m", "harness.profile"] or len(args) != 4:
            return real.run(args, *rest, **kwargs)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = harness.profile.main([args[3]])
        return subprocess.CompletedProcess(args, code, out.getvalue(), "")

    monkeypatch.setattr(harness.profile, "subprocess", types.SimpleNamespace(**(vars(real) | {"run": run})))


def test_profile_command_writes_table_json_and_figure(tmp_path, cli, cases_in_this_process):
    out = tmp_path / "prof"
    proc = cli("profile", "--methods", "dva,shac", "--presets", "smoke", "--renderers", "differentiable", "--iterations", "1",
                "--warmup", "0", "--out", out)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "profile.json").read_text())
    assert [c["label"] for c in data["cases"]] == ["dva (differentiable)", "shac (differentiable)"]
    for case in data["cases"]:
        assert set(case) >= {"s_per_iteration", "phase_s", "graph_mb", "cpu_rss_peak_mb", "cpu_rss_increase_mb", "settings"}
        assert case["settings"]["num_envs"] == 8 and case["s_per_iteration"] > 0
    assert data["ratios"][0]["versus"] == "dva (differentiable)" and data["ratios"][0]["time_ratio"] > 0
    assert "SHAC / D.Va" in (out / "profile.md").read_text()
    assert (out / "profile.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--renderers", "pytorch3d"], "--renderers"),
    (["--presets", "nope"], "unknown preset"),
    (["--methods", "dvaa"], "unknown method"),
    (["--override", "image_sise=32"], "unknown config key"),
])
def test_profile_bad_input_exits_2_and_writes_nothing(tmp_path, cli, args, message):
    proc = cli("profile", *args, "--out", tmp_path / "prof")
    assert proc.returncode == 2 and message in proc.stderr
    assert not (tmp_path / "prof").exists()
