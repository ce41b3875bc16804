"""DreamerV3: the faithful-test list of baselines.md section 5, the chunk replay, gradient routing,
the open-loop reconstruction and the harness wiring."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import types

import numpy as np
import pytest
import torch

from conftest import replay_agent, step_to_first_update
from methods import get_method_class
from methods.discrete_regression import TwoHot, symexp, symlog
from methods.dreamerv3 import (
    RSSM,
    Actor,
    DreamerV3,
    DreamerV3Config,
    LatentState,
    kl_loss,
    sample_one_hot,
    unimix_logits,
)
from methods.normalization import PercentileScale
from methods.replay import FrameReplay
from methods.returns import lambda_returns


def _spec(image: int = 16, action_dim: int = 1, num_envs: int = 2):
    return types.SimpleNamespace(image_shape=(3, image, image), action_dim=action_dim, num_envs=num_envs, frame_stack=1, episode_length=120)


def _agent(preset: str = "smoke", **overrides) -> tuple[DreamerV3, object]:
    return replay_agent(DreamerV3, preset, **overrides)


@pytest.fixture(scope="module")
def trained():
    """A smoke agent past its warm-up, with a few updates done."""
    return step_to_first_update(*_agent())


def test_the_alias_resolves_to_dreamerv3():
    assert get_method_class("dreamer") is DreamerV3


# 1. symlog
def test_symlog_is_odd_zero_at_zero_and_symexp_inverts_it():
    x = torch.linspace(-1e4, 1e4, 20001, dtype=torch.float64)
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(symlog(-x), -symlog(x))
    assert float(symlog(torch.zeros(1))) == 0.0


# 2. two-hot, 255 bins on [-20, 20]
def test_two_hot_255_bins_has_two_adjacent_weights_and_round_trips():
    two_hot = TwoHot(255, -20, 20)
    y = symexp(torch.linspace(-19.9, 19.9, 2001, dtype=torch.float64))
    weights = two_hot.encode(y)
    assert ((weights > 0).sum(-1) <= 2).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2001, dtype=torch.float64))
    nonzero = [row.nonzero().flatten() for row in weights]
    assert all(len(i) == 1 or int(i[1] - i[0]) == 1 for i in nonzero)
    torch.testing.assert_close((weights * two_hot.bins(y)).sum(-1), symlog(y), atol=1e-9, rtol=0)
    decoded = symexp((weights * two_hot.bins(y)).sum(-1))
    assert float(((decoded - y).abs() / y.abs().clamp(min=1e-6)).max()) < 1e-4


# 3. unimix
def test_unimix_keeps_every_class_above_one_percent_over_k_and_samples_carry_gradients():
    logits = torch.randn(64, 32, 32) * 30  # near one-hot softmaxes
    logits.requires_grad_(True)
    mixed = unimix_logits(logits, 0.01)
    probs = mixed.exp()
    assert float(probs.detach().min()) >= 0.01 / 32 * (1 - 1e-5)
    torch.testing.assert_close(probs.sum(-1), torch.ones(64, 32))
    sample = sample_one_hot(mixed, torch.Generator().manual_seed(0))
    assert torch.equal(sample.detach().sum(-1), torch.ones(64, 32)) and set(sample.detach().unique().tolist()) <= {0.0, 1.0}
    (sample * torch.randn(64, 32, 32)).sum().backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) > 0


# 4. free bits and KL balancing
def test_free_bits_give_zero_gradient_below_one_nat():
    post = torch.zeros(4, 32, 32, requires_grad=True)
    prior = (torch.randn(4, 32, 32) * 1e-3).requires_grad_(True)  # KL far below 1 nat
    loss, dyn, rep = kl_loss(torch.log_softmax(post, -1), torch.log_softmax(prior, -1), 1.0, 0.5, 0.1)
    assert (dyn < 1).all() and (rep < 1).all()
    torch.testing.assert_close(loss, torch.full((4,), 0.6))
    loss.sum().backward()
    assert float(post.grad.abs().max()) == 0.0 and float(prior.grad.abs().max()) == 0.0


def test_dyn_term_trains_only_the_prior_and_rep_term_only_the_posterior():
    post = (torch.randn(4, 32, 32) * 3).requires_grad_(True)
    prior = (torch.randn(4, 32, 32) * 3).requires_grad_(True)
    dyn_only, dyn, _ = kl_loss(torch.log_softmax(post, -1), torch.log_softmax(prior, -1), 1.0, 0.5, 0.0)
    assert (dyn > 1).all()
    dyn_only.sum().backward()
    assert float(post.grad.abs().max()) == 0.0 and float(prior.grad.abs().max()) > 0
    post.grad, prior.grad = None, None
    rep_only, _, rep = kl_loss(torch.log_softmax(post, -1), torch.log_softmax(prior, -1), 1.0, 0.0, 0.1)
    assert (rep > 1).all()
    rep_only.sum().backward()
    assert float(prior.grad.abs().max()) == 0.0 and float(post.grad.abs().max()) > 0


# 5. lambda-returns
def test_lambda_returns_limits_are_td_and_bootstrapped_monte_carlo():
    torch.manual_seed(0)
    h = 6
    reward, value, discount = torch.randn(h, 3), torch.randn(h + 1, 3), torch.rand(h, 3)
    torch.testing.assert_close(lambda_returns(reward, value[1:], discount, 0.0), reward + discount * value[1:])
    mc = value[-1].clone()
    expected = []
    for t in reversed(range(h)):
        mc = reward[t] + discount[t] * mc
        expected.append(mc)
    torch.testing.assert_close(lambda_returns(reward, value[1:], discount, 1.0), torch.stack(expected[::-1]))


# 6. return scale
def test_return_scale_is_the_ema_percentile_range_and_never_below_one():
    scale = PercentileScale(0.05, 0.95, 1.0 - 0.99, torch.device("cpu"))
    for _ in range(50):
        scale.update(torch.rand(1000) * 0.5)  # spread below 1
    assert float(scale.scale) == 1.0
    scale = PercentileScale(0.05, 0.95, 1.0 - 0.99, torch.device("cpu"))
    returns = torch.linspace(0, 100, 1001)
    scale.update(returns)
    low, high = torch.quantile(returns, torch.tensor([0.05, 0.95]))
    torch.testing.assert_close(scale.stats, 0.01 * torch.stack([low, high]))  # EMA from 0
    assert float(scale.scale) == pytest.approx(max(1.0, 0.01 * float(high - low)))


# 7. zero initial predictions
def test_fresh_reward_head_and_critic_predict_exactly_zero():
    agent = DreamerV3(_spec(), DreamerV3Config(model_size="XS", replay_capacity=100, image_size=16), "cpu", 0)
    feat = torch.randn(10, agent.wm.rssm.feature_dim) * 5
    assert torch.equal(agent.two_hot.decode(agent.wm.reward(feat)), torch.zeros(10))
    assert torch.equal(agent.two_hot.decode(agent.critic(feat)), torch.zeros(10))


# 8. sizes
@pytest.mark.parametrize("size, millions", [("S", 17.9), ("XS", 8.3)])
def test_parameter_counts_on_64x64_rgb_with_six_actions(size, millions):
    agent = DreamerV3(_spec(64, action_dim=6, num_envs=1), DreamerV3Config(model_size=size, replay_capacity=100), "cpu", 0)
    assert agent.num_parameters()["total"] / 1e6 == pytest.approx(millions, abs=0.05)
    if size == "S":
        assert agent.wm.rssm.feature_dim == 32 * 32 + 512


@pytest.mark.parametrize("rows, padded_min_rows", [(17, 3), (32, 4), (9, 2)])
def test_a_band_of_rows_is_padded_for_the_encoder_and_cropped_from_the_decoder(rows, padded_min_rows):
    """crop_static_rows gives H < W images (e.g. 33 x 64): the CNN pads them to a multiple of its
    stride and the reconstruction has exactly the observation's shape."""
    spec = types.SimpleNamespace(**(vars(_spec(32)) | {"image_shape": (3, rows, 32)}))
    agent = DreamerV3(spec, DreamerV3Config(model_size="XS", image_size=32, replay_capacity=100), "cpu", 0)
    assert agent.wm.encoder.out_dim == 24 * 4 * padded_min_rows * 4  # XS depth 24 x 2^(3 - 1) channels at the last stage
    pixels = torch.randint(0, 256, (2, 3, rows, 32), dtype=torch.uint8)
    embed = agent.wm.encoder(pixels)
    assert embed.shape == (2, agent.wm.encoder.out_dim)
    recon = agent.wm.decoder(torch.zeros(2, agent.wm.rssm.feature_dim))
    assert recon.shape == (2, 3, rows, 32)
    with pytest.raises(ValueError, match="as tall as wide"):
        DreamerV3(types.SimpleNamespace(**(vars(spec) | {"image_shape": (3, 64, 32)})), DreamerV3Config(replay_capacity=100), "cpu", 0)


@pytest.mark.parametrize("size, grid, padded", [(32, 4, 32), (48, 6, 48), (84, 6, 96), (64, 4, 64)])
def test_any_width_is_halved_to_a_grid_of_4_to_7_cells_as_the_reference_does(size, grid, padded):
    """The reference CNN takes floor(log2(width / 4)) stride-2 stages: 48 px (the shared CartPole
    `cpu` protocol) ends on 6 x 6 and 84 px (the paper's) on 6 x 6 after padding to 96; the decoder
    returns exactly the observation's shape, and the padding is where the zeros are."""
    spec = _spec(size)
    agent = DreamerV3(spec, DreamerV3Config(model_size="XS", image_size=size, replay_capacity=100), "cpu", 0)
    stages = {32: 3, 48: 3, 64: 4, 84: 4}[size]
    assert agent.wm.encoder.out_dim == 24 * 2 ** (stages - 1) * grid * grid
    assert (agent.wm.encoder.pad_rows, agent.wm.encoder.pad_cols) == (padded - size, padded - size)
    assert agent.wm.encoder(torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8)).shape == (2, agent.wm.encoder.out_dim)
    assert agent.wm.decoder(torch.zeros(2, agent.wm.rssm.feature_dim)).shape == (2, 3, size, size)


# -- beyond the list: the RSSM, the replay, gradient routing ----------------------------------------
def test_is_first_restarts_the_posterior_from_the_initial_state():
    rssm = RSSM(DreamerV3Config(), {"deter": 32, "units": 32, "depth": 8, "layers": 1}, 1, 20)
    embed, action = torch.randn(3, 20), torch.randn(3, 1)
    other = LatentState(torch.randn(3, 32), sample_one_hot(torch.log_softmax(torch.randn(3, 32, 32), -1)))
    fresh, fresh_post, _ = rssm.posterior_step(None, action, embed, torch.ones(3, dtype=torch.bool))
    reset, reset_post, _ = rssm.posterior_step(other, action, embed, torch.tensor([True, False, True]))
    torch.testing.assert_close(reset_post[[0, 2]], fresh_post[[0, 2]])
    torch.testing.assert_close(reset.deter[[0, 2]], fresh.deter[[0, 2]])
    assert not torch.allclose(reset_post[1], fresh_post[1])


def test_chunks_cross_episodes_and_mark_their_first_steps():
    replay = FrameReplay(1, 100, (3, 2, 2), 1, 1)
    replay.add_first(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    for step in range(1, 40):
        last = torch.tensor([step % 7 == 0])
        replay.add(torch.full((1, 3, 2, 2), step, dtype=torch.uint8), torch.full((1, 1), float(step)), torch.full((1,), float(step)),
                   torch.tensor([0.0 if step == 14 else 1.0]), last)  # fmt: skip
        if last.item():
            replay.add_first(torch.full((1, 3, 2, 2), 100 + step, dtype=torch.uint8))
    batch = replay.sample_chunks(256, 10, torch.Generator().manual_seed(0))
    assert batch.obs.shape == (256, 10, 3, 2, 2) and batch.action.shape == (256, 10, 1)
    assert batch.is_first.any(1).all(), "every 10-step chunk of 8-step episodes crosses a start"
    frame = batch.obs[:, :, 0, 0, 0].long()
    # An episode's first step has a zero action and reward; other steps hold the action that led to them.
    assert (batch.action[batch.is_first] == 0).all() and (batch.reward[batch.is_first] == 0).all()
    inner = ~batch.is_first
    assert torch.equal(batch.action[inner][:, 0].long(), frame[inner]) and torch.equal(batch.reward[inner].long(), frame[inner])
    assert ((batch.discount == 0) == (frame == 14)).all()  # the one termination, nothing else


@pytest.fixture(params=["dynamics", "reinforce"])
def actor_grad(request, trained, monkeypatch):
    """Run a test on the trained agent with each actor-gradient estimator (restored afterwards)."""
    monkeypatch.setattr(trained[0].config, "actor_grad", request.param)
    return request.param


def test_behaviour_gradient_reaches_the_actor_but_not_the_model(trained, actor_grad):
    agent, _ = trained
    initial = agent.wm.rssm.initial(8)
    start = LatentState(initial.deter.detach().clone(), initial.stoch.detach().clone())  # as update() passes them
    before = [p.detach().clone() for p in agent.wm.parameters()]
    critic_before = [p.detach().clone() for p in agent.critic.parameters()]
    for module in (agent.wm, agent.actor, agent.critic):
        module.zero_grad(set_to_none=True)
    agent.actor_optim.step = lambda: None  # keep parameters: inspect the gradients only
    agent.critic_optim.step = lambda: None
    try:
        agent.train_behaviour(start)
    finally:
        del agent.actor_optim.step, agent.critic_optim.step
    assert all(p.grad is None or float(p.grad.abs().max()) == 0 for p in agent.wm.parameters())
    assert any(p.grad is not None and float(p.grad.abs().max()) > 0 for p in agent.actor.parameters())
    assert any(p.grad is not None and float(p.grad.abs().max()) > 0 for p in agent.critic.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, agent.wm.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(critic_before, agent.critic.parameters()))
    assert all(p.requires_grad for p in agent.wm.parameters()), "the world model is trainable again afterwards"


def _actor_gradient(agent, start) -> list[torch.Tensor]:
    """The actor's gradient of one behaviour step from `start`, leaving every parameter and the
    return scale as they were."""
    scale = agent.return_scale.stats.clone()
    agent.train_generator.manual_seed(123)
    agent.actor.zero_grad(set_to_none=True)
    agent.actor_optim.step = lambda: None
    agent.critic_optim.step = lambda: None
    try:
        agent.train_behaviour(start)
    finally:
        del agent.actor_optim.step, agent.critic_optim.step
        agent.return_scale.stats.copy_(scale)
    return [p.grad.detach().clone() for p in agent.actor.parameters()]


def test_imagined_episode_ends_use_the_continue_mode_so_the_actor_gets_no_gradient_through_them(trained):
    """Official DreamerV3 discounts imagination by the continue head's mode: doubling its logits
    (same signs, different probabilities) must leave the actor's gradient unchanged."""
    agent, _ = trained
    initial = agent.wm.rssm.initial(8)
    start = LatentState(initial.deter.detach().clone(), initial.stoch.detach().clone())
    out_layer = [m for m in agent.wm.cont.modules() if isinstance(m, torch.nn.Linear)][-1]
    reference = _actor_gradient(agent, start)
    with torch.no_grad():
        out_layer.weight.mul_(2.0)
        out_layer.bias.mul_(2.0)
    try:
        doubled = _actor_gradient(agent, start)
    finally:
        with torch.no_grad():
            out_layer.weight.div_(2.0)
            out_layer.bias.div_(2.0)
    assert any(float(g.abs().max()) > 0 for g in reference)
    for a, b in zip(reference, doubled):
        torch.testing.assert_close(a, b)


@contextlib.contextmanager
def _behaviour_state_restored(agent):
    """Let a test take real behaviour steps, then put the actor, critic, their optimisers and the
    return scale back as they were (the module-scoped agent is shared)."""
    state = copy.deepcopy((agent.actor.state_dict(), agent.actor_optim.state_dict(), agent.critic.state_dict(),
                           agent.critic_optim.state_dict(), agent.return_scale.stats.clone()))  # fmt: skip
    try:
        yield
    finally:
        agent.actor.load_state_dict(state[0]), agent.actor_optim.load_state_dict(state[1])
        agent.critic.load_state_dict(state[2]), agent.critic_optim.load_state_dict(state[3])
        agent.return_scale.stats.copy_(state[4])


def test_actor_follows_the_advantage_with_either_gradient_estimator(trained, actor_grad, monkeypatch):
    """Make the imagined return of each step the action drawn there (x 10): both estimators must
    raise the actor's mean, dynamics backprop through the drawn action's reparameterisation and
    REINFORCE through its score function alone (without the log-probability it sees only entropy)."""
    agent, _ = trained
    drawn: list[torch.Tensor] = []
    draw = Actor.draw
    monkeypatch.setattr(Actor, "draw", staticmethod(lambda mean, std, generator=None: drawn.append(draw(mean, std, generator)) or drawn[-1]))

    def returns_are_the_drawn_actions(feat):
        steps = torch.stack(drawn[-agent.config.horizon :])[..., 0]
        zeros = torch.zeros_like(feat[..., 0])
        return zeros[1:], torch.full_like(zeros, agent.config.discount), zeros, 10.0 * steps

    monkeypatch.setattr(agent, "imagined_returns", returns_are_the_drawn_actions)
    initial = agent.wm.rssm.initial(64)
    start = LatentState(initial.deter.detach().clone(), initial.stoch.detach().clone())
    with _behaviour_state_restored(agent):
        before = agent.actor(start.feature())[0].mean().detach()
        for _ in range(10):
            agent.train_behaviour(start)
        after = agent.actor(start.feature())[0].mean().detach()
    assert float(after) > float(before) + 1e-3, (actor_grad, float(before), float(after))


@pytest.mark.parametrize("mean_reg", [0.0, 1e-2])
def test_the_pre_tanh_mean_penalty_pulls_a_saturated_mean_back_and_nothing_else_does(trained, monkeypatch, mean_reg):
    """With imagined returns that do not depend on the action (zero advantage), only the penalty on
    the squared pre-tanh mean moves a saturated mean; without it the mean stays where it is."""
    agent, _ = trained

    def flat_returns(feat):
        zeros = torch.zeros_like(feat[..., 0])
        return zeros[1:], torch.full_like(zeros, agent.config.discount), zeros, zeros[1:]

    monkeypatch.setattr(agent, "imagined_returns", flat_returns)
    monkeypatch.setattr(agent.config, "actor_mean_reg", mean_reg)
    monkeypatch.setattr(agent.config, "actor_entropy", 0.0)  # the std head shares the hidden layers
    out_layer = [m for m in agent.actor.modules() if isinstance(m, torch.nn.Linear)][-1]
    initial = agent.wm.rssm.initial(16)
    start = LatentState(initial.deter.detach().clone(), initial.stoch.detach().clone())
    with _behaviour_state_restored(agent):
        with torch.no_grad():
            out_layer.bias[: agent.action_dim] += 5.0  # pre-tanh mean near 5: tanh' < 2e-4
        agent.actor_optim.state.clear()  # no momentum from earlier updates: only this loss moves it
        before = agent.actor.pre_tanh(start.feature())[0].mean().detach()
        for _ in range(10):
            agent.train_behaviour(start)
        after = agent.actor.pre_tanh(start.feature())[0].mean().detach()
    if mean_reg:
        assert float(after) < float(before) - 1e-3
    else:
        torch.testing.assert_close(after, before)


def test_reinforce_scores_the_unbounded_draw_with_the_gaussian_log_density():
    mean, std = torch.tensor([[0.3, -0.9]]), torch.tensor([[0.2, 0.7]])
    action = torch.tensor([[1.4, -2.5]])  # outside [-1, 1]: the draw, not the bounded action
    expected = torch.distributions.Normal(mean, std).log_prob(action).sum(-1)
    torch.testing.assert_close(Actor.log_prob(mean, std, action), expected)
    torch.testing.assert_close(Actor.sample(mean, std, torch.Generator().manual_seed(4)),
                               Actor.bound(Actor.draw(mean, std, torch.Generator().manual_seed(4))))  # fmt: skip


def test_actor_samples_stay_in_bounds_with_gradient_and_std_in_range():
    actor = Actor(16, 3, {"units": 16, "layers": 1}, DreamerV3Config())
    mean, std = actor(torch.randn(500, 16) * 10)
    assert (mean.abs() <= 1).all() and (std >= 0.1).all() and (std <= 1.0).all()
    action = Actor.sample(mean, std * 10, torch.Generator().manual_seed(0))
    assert (action.abs() <= 1 + 1e-6).all()
    action.sum().backward()
    assert all(p.grad is not None for p in actor.parameters())


def test_updates_are_finite_and_the_slow_critic_is_an_ema_of_the_critic(trained):
    agent, env = trained
    first = agent.updates
    metrics = [agent.update() for _ in range(4)]
    assert agent.updates == first + 4
    assert all(math.isfinite(v) for m in metrics for v in m.values())
    slow_before = [p.clone() for p in agent.slow_critic.parameters()]
    agent.update()
    frac = agent.config.slow_critic_fraction
    for before, slow, online in zip(slow_before, agent.slow_critic.parameters(), agent.critic.parameters()):
        torch.testing.assert_close(slow, before.lerp(online, frac))  # one mix of 0.02 toward the updated critic
    assert any(not torch.equal(s, o) for s, o in zip(agent.slow_critic.parameters(), agent.critic.parameters()))


def test_eval_is_deterministic_after_on_eval_start_and_actions_are_bounded(trained):
    agent, env = trained
    obs = env.reset(seed=5)
    agent.on_eval_start()
    first = agent.act(obs)
    assert first.shape == (env.num_envs, 1) and (first.abs() <= 1).all()
    agent.on_eval_start()
    assert torch.equal(agent.act(obs), first)


def test_open_loop_video_and_checkpoint_round_trip(trained, tmp_path):
    agent, env = trained
    agent.save_artifacts(tmp_path)
    with np.load(tmp_path / "reconstruction.npz") as video:
        cfg = agent.config
        assert video["truth"].shape == video["model"].shape == (cfg.video_sequences, cfg.video_length, 3, 16, 16)
        assert video["model"].dtype == np.uint8 and int(video["context"]) == cfg.video_context
    state = agent.state_dict()
    clone, _ = _agent()
    clone.load_state_dict(state)
    feat = torch.randn(4, agent.wm.rssm.feature_dim)
    torch.testing.assert_close(clone.critic(feat), agent.critic(feat))
    assert clone.updates == agent.updates and clone._collect_until == agent.agent_steps + agent.config.prefill


def test_imagine_starts_draws_that_many_distinct_posterior_states_and_zero_takes_all(trained):
    agent, _ = trained
    cfg = agent.config
    seen: list[LatentState] = []
    original = agent.train_behaviour
    agent.train_behaviour = lambda start: seen.append(start) or {}
    try:
        for starts in (0, 5):
            cfg.imagine_starts = starts
            agent.update()
    finally:
        agent.train_behaviour = original
        cfg.imagine_starts = 0
    assert seen[0].deter.shape[0] == cfg.batch_size * cfg.batch_length
    assert seen[1].deter.shape[0] == 5 and seen[1].stoch.shape[0] == 5
    assert torch.unique(seen[1].deter, dim=0).shape[0] == 5, "drawn without replacement"
    with pytest.raises(ValueError, match="imagine_starts"):
        DreamerV3(_spec(), DreamerV3Config(imagine_starts=-1, replay_capacity=100), "cpu", 0)


def test_bad_configs_are_rejected_with_the_reason():
    with pytest.raises(ValueError, match="at least 8 px wide"):
        DreamerV3(_spec(6), DreamerV3Config(image_size=6, replay_capacity=100), "cpu", 0)
    with pytest.raises(ValueError, match="actor_grad"):
        DreamerV3(_spec(), DreamerV3Config(actor_grad="straight-through", replay_capacity=100), "cpu", 0)
    with pytest.raises(ValueError, match="actor_mean_reg"):
        DreamerV3(_spec(), DreamerV3Config(actor_mean_reg=-1e-3, replay_capacity=100), "cpu", 0)
    with pytest.raises(ValueError, match="model_size"):
        DreamerV3(_spec(), DreamerV3Config(model_size="XXL", replay_capacity=100), "cpu", 0)
    with pytest.raises(ValueError, match="frame_stack"):
        DreamerV3(types.SimpleNamespace(**(vars(_spec()) | {"frame_stack": 3})), DreamerV3Config(replay_capacity=100), "cpu", 0)


def test_harness_run_dreamer_writes_metrics_and_a_reconstruction_the_report_draws(tmp_path, in_process_workers):
    from harness.cli import main

    out = tmp_path / "runs"
    code = main(["run", "--no-report", "--no-videos", "--methods", "dreamer", "--tasks", "cartpole", "--seeds", "0", "--preset", "smoke", "--budget", "64-steps",
                 "--eval-every", "32", "--eval-episodes", "2", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    folder = out / "cartpole" / "dreamerv3" / "smoke" / "seed0"
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["env_steps"] >= 64 and records[-1]["metrics"]["updates"] > 0
    assert (folder / "reconstruction.npz").exists()
    report = tmp_path / "report"
    assert main(["report", str(out), "--out", str(report), "--reps", "50"]) == 0
    assert (report / "reconstruction_cartpole_dreamerv3_smoke.png").exists()
    assert "reconstruction_cartpole_dreamerv3_smoke.png" in (report / "summary.md").read_text()


def test_one_hot_samples_follow_the_categorical_probabilities():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    logits = probs.log().expand(20000, 1, 4)
    counts = sample_one_hot(logits, torch.Generator().manual_seed(0)).detach().sum((0, 1))
    torch.testing.assert_close(counts / 20000, probs, atol=0.015, rtol=0)
