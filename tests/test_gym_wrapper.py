"""The gymnasium vector view follows gymnasium's SAME_STEP autoreset API: gymnasium's own vector
wrappers run over whole episodes on it and agree with the env's own bookkeeping, and a small
PPO loop written against gymnasium's API (CleanRL's layout) trains on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import vector as wrappers

from envs.gym_wrapper import make_vector_env


def _episodes(venv, steps: int, seed: int = 0):
    """Random actions for `steps` steps; yields each step's (terminated, truncated, info)."""
    venv.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        actions = rng.uniform(-1.5, 1.5, size=venv.action_space.shape).astype(np.float32)  # beyond the box: ClipAction's job
        _, reward, terminated, truncated, info = venv.step(actions)
        assert np.isfinite(reward).all()
        yield terminated, truncated, info


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_record_episode_statistics_agrees_with_the_envs_own_returns(mode):
    venv = make_vector_env("cartpole", num_envs=4, render=None, observation="state", autoreset_mode=mode)
    venv = wrappers.RecordEpisodeStatistics(wrappers.ClipAction(venv))
    finished = 0
    for terminated, truncated, info in _episodes(venv, 600):
        done = terminated | truncated
        if not done.any():
            assert "episode" not in info and "final_obs" not in info
            continue
        own = info["final_info"] if mode == AutoresetMode.SAME_STEP else info
        assert np.array_equal(info["_episode"], done) and np.array_equal(own["_return"], done)
        assert np.allclose(info["episode"]["r"][done], own["return"][done], rtol=1e-5, atol=1e-3)
        assert np.array_equal(info["episode"]["l"][done], own["length"][done])
        if mode == AutoresetMode.SAME_STEP:
            assert info["final_obs"].dtype == object and info["final_obs"].shape == (4,)
            assert all((obs is None) != d for obs, d in zip(info["final_obs"], done))
        finished += int(done.sum())
    assert finished >= 8  # random pushes end episodes early; every env finishes at least one in 600 steps


def test_next_step_autoreset_shows_the_last_observation_then_the_first_and_ignores_that_action():
    venv = make_vector_env("cartpole", num_envs=4, render=None, observation="state")
    inner = venv.env
    venv.reset(seed=4)
    rng = np.random.default_rng(4)
    for _ in range(600):
        state_before = inner.sim_state[0].clone()
        obs, reward, terminated, truncated, _ = venv.step(rng.uniform(-1, 1, (4, 1)).astype(np.float32))
        done = terminated | truncated
        if done.any():
            i = int(np.flatnonzero(done)[0])
            # the episode's last observation: the state the step reached, not the new episode's start
            assert not np.allclose(obs[i], inner.task.state_obs(*[x[i : i + 1] for x in inner.sim_state]).numpy()[0])
            start = inner.sim_state[0][i].clone()
            obs, reward, terminated, truncated, _ = venv.step(rng.uniform(-1, 1, (4, 1)).astype(np.float32))
            assert reward[i] == 0 and not terminated[i] and not truncated[i]
            assert torch.equal(inner.sim_state[0][i], start) and int(inner.progress[i]) == 0  # held: the action was ignored
            assert np.allclose(obs[i], inner.task.state_obs(*[x[i : i + 1] for x in inner.sim_state]).numpy()[0])
            assert not torch.equal(state_before[i], start)
            return
    pytest.fail("no episode ended in 600 random steps")


def test_dict_observations_and_their_final_observations():
    venv = make_vector_env("cartpole", num_envs=2, image_size=16, frame_stack=1, autoreset_mode=AutoresetMode.SAME_STEP)
    obs, _ = venv.reset(seed=1)
    assert venv.observation_space.contains(obs)
    for terminated, truncated, info in _episodes(venv, 300, seed=1):
        if (terminated | truncated).any():
            i = int(np.flatnonzero(terminated | truncated)[0])
            assert venv.single_observation_space.contains(info["final_obs"][i])
            return
    pytest.fail("no episode ended in 300 random steps")


def test_normalisation_wrappers_run_over_whole_episodes():
    venv = make_vector_env("cartpole", num_envs=4, render=None, observation="state")
    venv = wrappers.NormalizeReward(wrappers.NormalizeObservation(wrappers.ClipAction(venv)), gamma=0.99)
    venv = wrappers.RecordEpisodeStatistics(venv)
    seen = 0
    for terminated, truncated, info in _episodes(venv, 500, seed=2):
        seen += int((terminated | truncated).sum())
    assert seen >= 4


def test_pixels_only_observation_and_bad_choices():
    venv = make_vector_env("cartpole", num_envs=2, image_size=16, observation="pixels")
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (2, 9, 16, 16) and obs.dtype == np.uint8 and venv.observation_space.contains(obs)
    with pytest.raises(ValueError, match="observation must be one of"):
        make_vector_env("cartpole", num_envs=1, render=None, observation="rgb")
    with pytest.raises(ValueError, match="rendering env"):
        make_vector_env("cartpole", num_envs=1, render=None, observation="pixels")
    with pytest.raises(ValueError, match="autoreset_mode"):
        make_vector_env("cartpole", num_envs=1, render=None, autoreset_mode=AutoresetMode.DISABLED)


def test_a_cleanrl_style_ppo_loop_trains_on_it():
    """PPO as CleanRL's ppo_continuous_action.py lays it out (gymnasium vector env, RecordEpisodeStatistics,
    ClipAction, NormalizeObservation/Reward, GAE, clipped surrogate), shortened: it runs end to end on
    the wrapper and the policy's loss and the episode returns it reads are finite."""
    torch.manual_seed(0)
    num_envs, num_steps, iterations = 8, 64, 3
    venv = make_vector_env("cartpole", num_envs=num_envs, render=None, observation="state")
    venv = wrappers.RecordEpisodeStatistics(wrappers.NormalizeReward(wrappers.NormalizeObservation(wrappers.ClipAction(venv))))
    obs_dim, act_dim = venv.single_observation_space.shape[0], venv.single_action_space.shape[0]
    actor = torch.nn.Sequential(torch.nn.Linear(obs_dim, 64), torch.nn.Tanh(), torch.nn.Linear(64, act_dim))
    critic = torch.nn.Sequential(torch.nn.Linear(obs_dim, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
    log_std = torch.nn.Parameter(torch.zeros(act_dim))
    optimizer = torch.optim.Adam([*actor.parameters(), *critic.parameters(), log_std], lr=3e-4, eps=1e-5)
    obs, _ = venv.reset(seed=0)
    episode_returns, losses = [], []
    for _ in range(iterations):
        batch = {k: [] for k in ("obs", "actions", "logprobs", "rewards", "dones", "values")}
        for _ in range(num_steps):
            x = torch.as_tensor(obs, dtype=torch.float32)
            with torch.no_grad():
                dist = torch.distributions.Normal(actor(x), log_std.exp())
                action = dist.sample()
                batch["values"].append(critic(x).squeeze(-1))
            batch["obs"].append(x)
            batch["actions"].append(action)
            batch["logprobs"].append(dist.log_prob(action).sum(-1))
            obs, reward, terminated, truncated, info = venv.step(action.numpy())
            batch["rewards"].append(torch.as_tensor(reward, dtype=torch.float32))
            batch["dones"].append(torch.as_tensor(terminated | truncated, dtype=torch.float32))
            if "episode" in info:
                episode_returns.extend(info["episode"]["r"][info["_episode"]].tolist())
        b = {k: torch.stack(v) for k, v in batch.items()}
        with torch.no_grad():
            next_value = critic(torch.as_tensor(obs, dtype=torch.float32)).squeeze(-1)
            advantages, last = torch.zeros_like(b["rewards"]), torch.zeros(num_envs)
            for t in reversed(range(num_steps)):
                value_next = next_value if t == num_steps - 1 else b["values"][t + 1]
                delta = b["rewards"][t] + 0.99 * value_next * (1 - b["dones"][t]) - b["values"][t]
                last = delta + 0.99 * 0.95 * (1 - b["dones"][t]) * last
                advantages[t] = last
            returns = advantages + b["values"]
        flat = {k: v.reshape(num_steps * num_envs, *v.shape[2:]) for k, v in b.items()}
        adv, ret = advantages.flatten(), returns.flatten()
        for _ in range(2):
            dist = torch.distributions.Normal(actor(flat["obs"]), log_std.exp())
            ratio = (dist.log_prob(flat["actions"]).sum(-1) - flat["logprobs"]).exp()
            norm_adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            policy_loss = torch.max(-norm_adv * ratio, -norm_adv * ratio.clamp(0.8, 1.2)).mean()
            value_loss = 0.5 * (critic(flat["obs"]).squeeze(-1) - ret).pow(2).mean()
            loss = policy_loss + 0.5 * value_loss - 0.0 * dist.entropy().sum(-1).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([*actor.parameters(), *critic.parameters(), log_std], 0.5)
            optimizer.step()
            losses.append(float(loss.detach()))
    assert all(np.isfinite(losses)) and len(losses) == 2 * iterations
    assert episode_returns and all(np.isfinite(episode_returns))
