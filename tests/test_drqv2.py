"""DrQ-v2: the properties of baselines.md section 5, the frame replay, and action repeat."""

from __future__ import annotations

import pytest
import torch

import envs
from methods.drqv2 import DrQV2, DrQV2Config, clipped_noise_sample, random_shift, schedule
from methods.networks import PixelEncoder
from methods.replay import FrameReplay

SMOKE = DrQV2Config(num_envs=4, image_size=16, feature_dim=8, hidden_dim=32, batch_size=16, replay_capacity=4000,
                    num_seed_frames=64, num_expl_steps=16, vector_steps_per_iteration=4)  # fmt: skip


# -- augmentation ------------------------------------------------------------------------------
def test_random_shift_is_an_integer_translation_of_the_replicate_padded_image():
    n, c, size, pad = 32, 3, 84, 4
    image = torch.arange(c * size * size, dtype=torch.float32).view(1, c, size, size).repeat(n, 1, 1, 1)
    shifted = random_shift(image, pad, torch.Generator().manual_seed(0))
    assert shifted.shape == image.shape
    padded = torch.nn.functional.pad(image, (pad,) * 4, mode="replicate")
    found = set()
    for i in range(n):
        matches = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if torch.allclose(shifted[i], padded[i, :, dy:dy + size, dx:dx + size], atol=1e-5)]  # fmt: skip
        assert len(matches) == 1, f"sample {i} is not a single whole-pixel crop"
        found.add(matches[0])
    assert len(found) > 1, "every sample got the same shift"


def test_random_shift_on_uint8_keeps_dtype_and_pad_zero_is_identity():
    image = torch.randint(0, 256, (8, 9, 20, 20), dtype=torch.uint8)
    assert random_shift(image, 4).dtype == torch.uint8
    assert torch.equal(random_shift(image, 0), image)


# -- encoder, schedule, exploration noise -------------------------------------------------------
def test_encoder_maps_9x84x84_to_39200_and_scales_to_half_unit_range():
    encoder = PixelEncoder((9, 84, 84))
    assert encoder(torch.zeros(2, 9, 84, 84, dtype=torch.uint8)).shape == (2, 39200)
    seen = {}
    encoder.convs[0].register_forward_hook(lambda module, inputs, output: seen.update(x=inputs[0]))
    encoder(torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 9, 84, 84))
    assert seen["x"].min() == -0.5 and seen["x"].max() == 0.5


def test_linear_std_schedule_values_and_constants():
    spec = "linear(1.0,0.1,500000)"
    assert schedule(spec, 0) == pytest.approx(1.0)
    assert schedule(spec, 250_000) == pytest.approx(0.55)
    assert schedule(spec, 500_000) == pytest.approx(0.1)
    assert schedule(spec, 2_000_000) == pytest.approx(0.1)
    assert isinstance(schedule("0.2", 10), float) and schedule("0.2", 10) == 0.2
    assert schedule("step_linear(1.0,0.5,10,0.1,10)", 15) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="unknown schedule"):
        schedule("cosine(1,0)", 0)


def test_clipped_noise_stays_in_bounds_and_is_straight_through():
    mu = torch.linspace(-0.99, 0.99, 1000).view(-1, 1).requires_grad_()
    action = clipped_noise_sample(mu, std=5.0, clip=0.3)
    assert action.abs().max() < 1.0
    assert ((action - mu).abs() <= 0.3 + 1e-6).all()
    action.sum().backward()
    assert torch.equal(mu.grad, torch.ones_like(mu))


# -- replay: n-step returns and frame stacks ----------------------------------------------------
def _replay_with_episode(rewards, last_terminated: bool, frame_stack: int = 3) -> FrameReplay:
    replay = FrameReplay(num_envs=1, capacity=64, frame_shape=(3, 2, 2), action_dim=1, frame_stack=frame_stack)
    replay.add_first(torch.zeros(1, 3, 2, 2))
    for t, r in enumerate(rewards, start=1):
        last = t == len(rewards)
        discount = 0.0 if (last and last_terminated) else 1.0
        replay.add(torch.full((1, 3, 2, 2), float(t)), torch.full((1, 1), 0.1 * t), torch.tensor([r]), torch.tensor([discount]), torch.tensor([last]))
    return replay


def test_nstep_return_of_three_unit_rewards():
    replay = _replay_with_episode([1.0, 1.0, 1.0, 1.0, 1.0], last_terminated=False)
    reward, discount, end = replay._nstep(torch.tensor([0]), torch.tensor([0]), nstep=3, gamma=0.99)
    assert reward.item() == pytest.approx(2.9701)
    assert discount.item() == pytest.approx(0.970299)
    assert end.item() == 3


def test_nstep_stops_at_a_termination_and_at_a_time_limit():
    terminated = _replay_with_episode([1.0, 2.0], last_terminated=True)
    reward, discount, end = terminated._nstep(torch.tensor([0]), torch.tensor([0]), nstep=3, gamma=0.99)
    assert reward.item() == pytest.approx(1.0 + 0.99 * 2.0) and discount.item() == 0.0 and end.item() == 2
    truncated = _replay_with_episode([1.0, 2.0], last_terminated=False)
    reward, discount, end = truncated._nstep(torch.tensor([0]), torch.tensor([0]), nstep=3, gamma=0.99)
    assert reward.item() == pytest.approx(2.98) and discount.item() == pytest.approx(0.99**2) and end.item() == 2


def test_replay_stacks_single_frames_and_repeats_the_first_frame_of_an_episode():
    replay = _replay_with_episode([1.0] * 6, last_terminated=False)
    assert replay.frames.shape[-3] == 3, "the replay must store single frames, not stacks"
    stack = replay._stack(torch.tensor([0, 0, 0]), torch.tensor([0, 1, 4]))
    oldest_first = stack[:, ::3, 0, 0]  # one value per stacked frame
    assert oldest_first.tolist() == [[0, 0, 0], [0, 0, 1], [2, 3, 4]]


def test_replay_samples_never_cross_episodes():
    replay = FrameReplay(num_envs=2, capacity=200, frame_shape=(3, 1, 1), action_dim=1, frame_stack=3)
    episode = torch.tensor([0, 100])  # the frames show their episode's id

    def frames(ids):
        return episode[ids].float().view(-1, 1, 1, 1).expand(-1, 3, 1, 1)

    replay.add_first(frames(torch.arange(2)))
    for t in range(1, 300):  # wraps the 100-timestep rings
        last = torch.tensor([t % 7 == 0, t % 11 == 0])
        replay.add(frames(torch.arange(2)), torch.zeros(2, 1), torch.ones(2), torch.ones(2), last)
        if last.any():
            episode = episode + last.long()
            replay.add_first(frames(last.nonzero().flatten()), last.nonzero().flatten())
    batch = replay.sample(512, nstep=3, gamma=0.99, generator=torch.Generator().manual_seed(0))
    assert batch.obs.shape == (512, 9, 1, 1) and batch.next_obs.shape == (512, 9, 1, 1)
    ids = torch.cat([batch.obs, batch.next_obs], dim=1).flatten(1)
    assert (ids == ids[:, :1]).all(), "a sampled transition mixes frames of two episodes"
    steps = torch.round(torch.log(batch.discount) / torch.log(torch.tensor(0.99)))
    assert set(steps.tolist()) <= {1.0, 2.0, 3.0} and (steps == 3).any() and (steps < 3).any()
    expected = (1 - 0.99**steps) / (1 - 0.99)
    assert torch.allclose(batch.reward, expected, atol=1e-5)


def test_replay_stores_one_frame_per_timestep():
    replay = FrameReplay(num_envs=16, capacity=1600, frame_shape=(3, 84, 84), action_dim=1, frame_stack=3)
    assert replay.frames.shape == (16, 100, 3, 84, 84) and replay.frames.dtype == torch.uint8
    assert replay.bytes_per_timestep == 3 * 84 * 84 + 4 + 10  # a stacked store would be 9 * 84 * 84 + ...


# -- action repeat ------------------------------------------------------------------------------
def test_action_repeat_sums_rewards_and_stacks_agent_step_frames():
    plain = envs.make("cartpole", num_envs=2, seed=3, image_size=16, frame_stack=1)
    repeated = envs.make("cartpole", num_envs=2, seed=3, image_size=16, frame_stack=3, action_repeat=2)
    assert repeated.spec.episode_length == plain.spec.episode_length // 2 and repeated.spec.image_shape == (9, 16, 16)
    first = plain.reset()["pixels"]
    repeated.reset()
    action = torch.full((2, 1), 0.2)
    _, r1, _, _ = plain.step(action)
    obs_mid, r2, _, _ = plain.step(action)
    obs, reward, done, _ = repeated.step(action)
    assert torch.allclose(reward, r1 + r2)
    assert torch.equal(obs["pixels"][:, -3:], obs_mid["pixels"]) and torch.equal(obs["pixels"][:, :3], first)


def test_action_repeat_ends_an_episode_on_an_inner_step():
    plain = envs.make("cartpole", num_envs=2, seed=5, image_size=16, frame_stack=1)
    repeated = envs.make("cartpole", num_envs=2, seed=5, image_size=16, frame_stack=3, action_repeat=2)
    start = plain.reset()
    repeated.reset()
    q, qd = plain.sim_state
    q, qd = q.clone(), qd.clone()
    q[0, 0], qd[0, 0] = 2.49, 5.0  # env 0 crosses |x| = 2.5 on the first inner step
    plain.set_sim_state(q, qd)
    repeated.env.set_sim_state(q, qd)
    repeated._frames = repeated.env._frames.repeat(1, 3, 1, 1)
    action = torch.zeros(2, 1)
    _, r1, d1, info1 = plain.step(action)
    assert d1.tolist() == [True, False] and info1["terminated"][0]
    _, r2, _, _ = plain.step(action)
    obs, reward, done, info = repeated.step(action)
    assert done.tolist() == [True, False]
    assert info["terminated"].tolist() == [True, False] and not info["truncated"].any()
    assert reward[0] == pytest.approx(float(r1[0])) and reward[1] == pytest.approx(float(r1[1] + r2[1]))
    assert torch.equal(info["terminal_obs"]["state"][0], info1["terminal_obs"]["state"][0])
    terminal_stack = info["terminal_obs"]["pixels"][0]
    assert torch.equal(terminal_stack[-3:], info1["terminal_obs"]["pixels"][0, -3:])
    new_stack = obs["pixels"][0]
    assert torch.equal(new_stack[:3], new_stack[3:6]) and torch.equal(new_stack[3:6], new_stack[6:]), "new episode stack is not one repeated frame"
    del start


def test_iterate_stores_termination_and_time_limit_discounts(drq_env):
    # No updates (seed frames beyond the test's steps): they do not touch what the replay stores.
    agent = DrQV2(drq_env.spec, DrQV2Config(**(SMOKE.__dict__ | {"num_seed_frames": 10**6})), seed=3)
    # half the envs push the cart into the rail (terminations), half stay put (time limits)
    push = torch.tensor([[0.0], [0.0], [1.0], [-1.0]])
    agent._explore = lambda obs, num_envs: push
    episode_agent_steps = drq_env.spec.episode_length
    for _ in range(episode_agent_steps // SMOKE.vector_steps_per_iteration + 2):  # every env ends at least one episode
        agent.iterate(drq_env)
    replay = agent.replay
    kinds = set()
    for e in range(replay.num_envs):
        start = 0
        for k in range(int(replay.count[e])):
            if replay.first[e, k]:
                start = k
            if replay.last[e, k]:
                assert replay.first[e, k + 1], "the timestep after an episode's last must start the next episode"
                length = k - start
                terminated = bool(replay.discounts[e, k] == 0.0)
                kinds.add(terminated)
                # discount 1 (bootstrap) only where the episode ran to its time limit
                assert terminated or length >= episode_agent_steps - 1, (e, k, length)
                assert length <= episode_agent_steps, (e, k, length)
    assert kinds == {True, False}, "the smoke run should see both terminations and time limits"
    assert agent.updates == 0


# -- the agent ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def drq_env():
    return envs.make("cartpole", **(DrQV2.env_kwargs(SMOKE) | {"seed": 0}))


def test_encoder_learns_only_through_the_critic(drq_env):
    agent = DrQV2(drq_env.spec, SMOKE, seed=0)
    while agent.updates == 0:
        agent.iterate(drq_env)
    seen = {}
    critic_step, actor_step = agent.update_critic, agent.update_actor

    def spy_critic(*args):
        out = critic_step(*args)
        seen["after_critic"] = [p.grad.clone() for p in agent.encoder.parameters()]
        return out

    def spy_actor(features):
        seen["actor_input_has_graph"] = features.requires_grad
        out = actor_step(features)
        seen["after_actor"] = [p.grad.clone() for p in agent.encoder.parameters()]
        return out

    agent.update_critic, agent.update_actor = spy_critic, spy_actor
    agent.update()
    assert not seen["actor_input_has_graph"], "the actor reads features with a graph to the encoder"
    assert all(g.abs().sum() > 0 for g in seen["after_critic"]), "the critic step gave the encoder no gradient"
    assert all(torch.equal(a, b) for a, b in zip(seen["after_critic"], seen["after_actor"])), "the actor step changed encoder gradients"
    agent.critic_opt.zero_grad(set_to_none=True)
    agent.update_actor = actor_step
    batch = agent.replay.sample(8, 3, 0.99)
    agent.update_actor(agent.encoder(batch.obs).detach())
    assert all(p.grad is None for p in agent.critic.parameters()), "the actor step computed critic weight gradients"


def test_soft_update_warmup_and_eval_action(drq_env):
    agent = DrQV2(drq_env.spec, SMOKE, seed=1)
    obs = drq_env.reset()
    assert agent.agent_steps < SMOKE.num_expl_steps
    a, b = agent._explore(obs, drq_env.num_envs), agent._explore(obs, drq_env.num_envs)
    assert not torch.equal(a, b) and a.abs().max() <= 1.0
    agent.agent_steps = SMOKE.num_expl_steps  # past the warm-up the policy acts: noise around tanh(mu)
    torch.manual_seed(0)
    policy_action = agent._explore(obs, drq_env.num_envs)
    torch.manual_seed(0)
    assert torch.equal(policy_action, agent.act(obs, deterministic=False))
    agent.agent_steps = 0
    mean = agent.act(obs, deterministic=True)
    with torch.no_grad():
        raw = agent.actor.policy(agent.actor.trunk(agent.encoder(obs["pixels"])))
    assert torch.allclose(mean, torch.tanh(raw))
    while agent.updates == 0:
        agent.iterate(drq_env)
    target_before = [p.clone() for p in agent.critic_target.parameters()]
    agent.update()
    for before, target, online in zip(target_before, agent.critic_target.parameters(), agent.critic.parameters()):
        assert torch.allclose(target, 0.99 * before + 0.01 * online, atol=1e-6)


def test_updates_are_one_per_two_agent_steps_after_seed_frames(drq_env):
    agent = DrQV2(drq_env.spec, SMOKE, seed=2)
    stats = agent.iterate(drq_env)  # 4 vector steps x 4 envs x repeat 2 = 32 control steps < 64 seed frames
    assert agent.updates == 0 and stats.env_steps == 32
    agent.iterate(drq_env)
    agent.iterate(drq_env)  # control steps 64 -> 96: updates on the 4 vector steps after seeding
    assert agent.updates == 4 * drq_env.num_envs // 2


def test_bf16_precision_trains_every_actor_layer_and_bad_precision_is_refused(drq_env):
    agent = DrQV2(drq_env.spec, DrQV2Config(**(SMOKE.__dict__ | {"precision": "bf16"})), seed=0)
    while agent.updates == 0:
        agent.iterate(drq_env)
    before = [p.detach().clone() for p in agent.actor.parameters()]
    agent.update()
    changed = [not torch.equal(b, p) for b, p in zip(before, agent.actor.parameters())]
    assert all(changed), "a bf16 actor step left some actor parameters unchanged (autocast weight cache?)"
    with pytest.raises(ValueError, match="precision"):
        DrQV2(drq_env.spec, DrQV2Config(**(SMOKE.__dict__ | {"precision": "fp8"})))


def test_bench_updates_writes_its_table_and_json(tmp_path, cli):
    import json

    out = tmp_path / "bench"
    proc = cli("bench-updates", "--preset", "smoke", "--image-sizes", "16", "--precisions", "fp32", "--updates", "2", "--warmup", "1",
               "--profile-updates", "1", "--out", out)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "bench_updates.json").read_text())
    (case,) = data["cases"]
    assert case["updates_per_s"] > 0 and case["batch_size"] == 16 and case["image_shape"] == [9, 16, 16]
    assert set(case["ms_per_update"]) == {"replay_sample", "critic_update", "actor_update"} and case["top_ops"]
    assert "updates / s" in (out / "bench_updates.md").read_text()
