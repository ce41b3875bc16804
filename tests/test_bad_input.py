"""Bad input gets a clear error naming the problem, never a crash deep inside warp."""

from __future__ import annotations

import pytest
import torch

import envs


@pytest.mark.parametrize(
    "action, error, words",
    [
        (torch.zeros(4, 2), ValueError, "shape"),
        (torch.zeros(3, 1), ValueError, "shape"),
        (torch.zeros(4, 1, dtype=torch.int64), TypeError, "floating"),
        (torch.tensor([[0.0], [float("nan")], [0.0], [0.0]]), ValueError, "NaN"),
        (torch.tensor([[float("inf")], [0.0], [0.0], [0.0]]), ValueError, "inf"),
        ([[0.0]] * 4, TypeError, "torch.Tensor"),
    ],
)
def test_bad_actions_are_rejected(state_env, action, error, words):
    state_env.reset()
    with pytest.raises(error, match=words):
        state_env.step(action)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"name": "cartpol"}, ValueError, "unknown task 'cartpol'"),
        ({"name": "cartpole", "num_envs": 0}, ValueError, "num_envs"),
        ({"name": "cartpole", "num_envs": -3}, ValueError, "num_envs"),
        ({"name": "cartpole", "num_envs": 2.5}, TypeError, "num_envs"),
        ({"name": "cartpole", "image_size": 8}, ValueError, "image_size"),
        ({"name": "cartpole", "frame_stack": 0}, ValueError, "frame_stack"),
        ({"name": "cartpole", "render": "pytorch3d"}, ValueError, "render"),
        ({"name": "cartpole", "device": "tpu"}, (ValueError, RuntimeError), "device|tpu"),
    ],
)
def test_bad_construction_is_rejected(kwargs, error, words):
    with pytest.raises(error, match=words):
        envs.make(**kwargs)


def test_cuda_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        envs.make("cartpole", num_envs=1, render=None, device="cuda")


@pytest.mark.parametrize(
    "q, qd, error, words",
    [
        ([[0.0, float("nan")]] * 4, [[0.0, 0.0]] * 4, ValueError, "q contains NaN"),
        ([[0.0, 0.0]] * 4, [[float("inf"), 0.0]] * 4, ValueError, "qd contains NaN or inf"),
        ([[0, 0]] * 4, [[0.0, 0.0]] * 4, TypeError, "floating-point"),
        ([[0.0, 0.0]] * 3, [[0.0, 0.0]] * 3, ValueError, "q must have shape"),
    ],
)
def test_set_sim_state_refuses_bad_states(state_env, q, qd, error, words):
    with pytest.raises(error, match=words):
        state_env.set_sim_state(torch.tensor(q), torch.tensor(qd))


def test_step_before_reset_is_an_error():
    env = envs.make("cartpole", num_envs=1, render=None)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(1, 1))


@pytest.mark.parametrize(
    "args, words",
    [
        (["bench-env", "--task", "nope"], "unknown task"),
        (["bench-env", "--num-envs", "0"], "positive integer"),
        (["bench-env", "--image-size", "8"], "image-size"),
        (["bench-env", "--device", "cuda:0"], "CUDA|cuda"),
        (["frobnicate"], "invalid choice"),
        (["bench-updates", "--precisions", "fp16"], "fp32 and/or bf16"),
        (["bench-updates", "--image-sizes", "8"], "image-sizes"),
        (["bench-updates", "--method", "dva"], "no replay update"),
        (["bench-updates", "--method", "nope"], "unknown method"),
        (["bench-updates", "--method", "dagger"], "no replay update"),
        (["bench-plan", "--method", "drqv2"], "does not plan"),
        (["bench-plan", "--model-sizes", "3"], "unknown model size"),
        (["bench-plan", "--precisions", "fp16"], "fp32 and/or bf16"),
        (["bench-plan", "--num-envs", "0"], "positive integer"),
    ],
)
def test_cli_bad_input_exits_2(args, words, capsys):
    from harness.cli import main

    if "cuda:0" in args and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    stderr = capsys.readouterr().err
    assert any(w in stderr for w in words.split("|")), stderr
