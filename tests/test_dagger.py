"""State-to-visual DAgger: teacher phase, relabelling, FIFO buffer, the student's loss on a fixed teacher."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import envs
from methods.dagger import DAgger, TeacherLabelBuffer
from methods.dva import SHACState
from methods.presets import load_config

SMOKE = load_config(DAgger, "cartpole", "smoke")


@pytest.fixture(scope="module")
def dagger_env():
    return envs.make("cartpole", **(DAgger.env_kwargs(SMOKE) | {"seed": 0}))


def test_teacher_trains_first_and_counts_its_env_steps(dagger_env):
    agent = DAgger(dagger_env.spec, SMOKE, seed=0)
    teacher_steps = 0
    for _ in range(SMOKE.teacher_iterations):
        assert not agent.teacher_ready
        stats = agent.iterate(dagger_env)
        assert "teacher_training" in dagger_env.timings.pop() and stats.finished_episode_returns == []
        teacher_steps += stats.env_steps
    assert agent.teacher_ready and teacher_steps == SMOKE.teacher_iterations * agent.teacher_config.num_envs * agent.teacher_config.horizon
    stats = agent.iterate(dagger_env)
    assert stats.env_steps == SMOKE.horizon * dagger_env.num_envs
    assert len(agent.buffer) == SMOKE.horizon * dagger_env.num_envs


def test_every_visited_state_is_labelled_with_the_teachers_mean(dagger_env):
    agent = DAgger(dagger_env.spec, SMOKE, seed=1)
    for _ in range(SMOKE.teacher_iterations):
        agent.iterate(dagger_env)
    seen = []
    original = agent.teacher_labels
    agent.teacher_labels = lambda state: (seen.append(state.clone()), original(state))[1]
    agent.iterate(dagger_env)
    states = torch.cat(seen)
    expected = agent.teacher.actor(agent.teacher.obs_rms.normalize(states), deterministic=True)
    assert torch.allclose(agent.buffer.labels[: len(states)], expected.detach(), atol=1e-6)


def test_buffer_is_fifo():
    buffer = TeacherLabelBuffer(capacity=5, image_shape=(3, 1, 1), action_dim=1)
    for value in range(8):
        buffer.add(torch.full((1, 3, 1, 1), value, dtype=torch.uint8), torch.tensor([[float(value)]]))
    assert len(buffer) == 5 and sorted(buffer.labels.flatten().tolist()) == [3.0, 4.0, 5.0, 6.0, 7.0]


def test_minibatches_walk_the_buffer_without_replacement(dagger_env):
    agent = DAgger(dagger_env.spec, SMOKE, seed=2)
    agent.buffer.written = 64
    batches = [agent._next_minibatch() for _ in range(64 // SMOKE.batch_size)]
    drawn = torch.cat(batches)
    assert len(set(drawn.tolist())) == len(drawn) == 64


def test_student_loss_falls_on_a_fixed_teacher(dagger_env):
    config = dataclasses.replace(SMOKE, early_stop_loss=-float("inf"), updates_per_epoch=60, learning_starts=SMOKE.buffer_size)
    agent = DAgger(dagger_env.spec, config, seed=3)
    for _ in range(config.teacher_iterations):
        agent.iterate(dagger_env)
    for _ in range(4):  # fill the buffer; learning_starts is out of reach, so the student is untouched
        agent.iterate(dagger_env)
    pixels, labels = agent.buffer.pixels[: len(agent.buffer)], agent.buffer.labels[: len(agent.buffer)]
    with torch.no_grad():
        before = float(agent.student_loss(pixels, labels))
    agent.train_student()
    with torch.no_grad():
        after = float(agent.student_loss(pixels, labels))
    assert after < before - 0.3, (before, after)


def test_early_stop_ends_an_epoch_at_the_first_small_loss(dagger_env):
    agent = DAgger(dagger_env.spec, dataclasses.replace(SMOKE, early_stop_loss=float("inf")), seed=4)
    agent.buffer.pixels.zero_()
    agent.buffer.labels.zero_()
    agent.buffer.written = 64
    _, steps = agent.train_student()
    assert steps == 1


def test_teacher_loaded_from_a_shac_state_run(tmp_path, dagger_env):
    state_env = envs.make("cartpole", num_envs=8, render=None)
    teacher_config = load_config(SHACState, "cartpole", "smoke")
    teacher = SHACState(state_env.spec, teacher_config, "cpu", 0)
    teacher.iterate(state_env)
    (tmp_path / "run.json").write_text(json.dumps({"method": "shac-state", "config": dataclasses.asdict(teacher_config)}))
    torch.save({"method": teacher.state_dict()}, tmp_path / "checkpoint.pt")
    agent = DAgger(dagger_env.spec, dataclasses.replace(SMOKE, teacher_checkpoint=str(tmp_path)), seed=0)
    assert agent.teacher_ready
    state = torch.randn(3, state_env.spec.state_dim)
    with torch.no_grad():
        expected = teacher.actor(teacher.obs_rms.normalize(state), deterministic=True)
    assert torch.allclose(agent.teacher_labels(state), expected)
    (tmp_path / "run.json").write_text(json.dumps({"method": "dva", "config": {}}))
    with pytest.raises(ValueError, match="shac-state"):
        DAgger(dagger_env.spec, dataclasses.replace(SMOKE, teacher_checkpoint=str(tmp_path)), seed=0)


def test_checkpoint_round_trip_keeps_teacher_and_student(dagger_env):
    agent = DAgger(dagger_env.spec, SMOKE, seed=5)
    for _ in range(SMOKE.teacher_iterations + 1):
        agent.iterate(dagger_env)
    restored = DAgger(dagger_env.spec, SMOKE, seed=6)
    restored.load_state_dict(agent.state_dict())
    obs = dagger_env.reset()
    assert restored.teacher_ready
    assert torch.equal(restored.act(obs), agent.act(obs))
    assert torch.equal(restored.teacher_labels(obs["state"]), agent.teacher_labels(obs["state"]))


def test_learning_rate_decays_linearly_over_max_epochs_updates(dagger_env):
    config = dataclasses.replace(SMOKE, max_epochs=10, updates_per_epoch=100)
    agent = DAgger(dagger_env.spec, config, seed=7)
    assert agent._set_learning_rate() == pytest.approx(config.lr)
    agent.updates = 500
    assert agent._set_learning_rate() == pytest.approx((config.lr + config.lr_final) / 2)
    agent.updates = 5000
    assert agent._set_learning_rate() == pytest.approx(config.lr_final)


def test_mse_student_matches_means_and_acts_without_noise(dagger_env):
    agent = DAgger(dagger_env.spec, dataclasses.replace(SMOKE, loss="mse"), seed=8)
    obs = dagger_env.reset()
    labels = torch.randn(dagger_env.num_envs, 1)
    with torch.no_grad():
        mu = agent.student(obs["pixels"], deterministic=True)
    assert agent.student_loss(obs["pixels"], labels).item() == pytest.approx(float((mu - labels).square().mean()), rel=1e-5)
    for _ in range(SMOKE.teacher_iterations):
        agent.iterate(dagger_env)
    actions = []
    original = dagger_env.step
    dagger_env.step = lambda action: (actions.append(action), original(action))[1]
    try:
        agent.iterate(dagger_env)
    finally:
        dagger_env.step = original
    obs_again = agent.buffer.pixels[: dagger_env.num_envs]
    assert torch.allclose(actions[0], agent.act({"pixels": obs_again}, deterministic=True))
    with pytest.raises(ValueError, match="loss"):
        DAgger(dagger_env.spec, dataclasses.replace(SMOKE, loss="huber"))
