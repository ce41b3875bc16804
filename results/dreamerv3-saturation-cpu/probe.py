"""Saturation probe for a DreamerV3 CartPole checkpoint (README, "DreamerV3": "Seed 1 is stuck in
the actor, not in the model"). Runs one deterministic evaluation episode per env (4 envs) with the
checkpoint, prints the actor's pre-tanh mean over the states visited until each env's first episode
end, then the model's imagined lambda-return (horizon 15, one fixed noise draw) from those
posterior states under the actor and under fixed actions, through the agent's own `imagine` and
`imagined_returns`.

Usage, from the repository root: python results/dreamerv3-saturation-cpu/probe.py RUN_FOLDER
(RUN_FOLDER holds checkpoint.pt of a `cpu`-preset cartpole run)."""

import sys

import torch

sys.path.insert(0, ".")
from harness.resolved import build  # noqa: E402
from harness.store import RunFolder  # noqa: E402
from methods.dreamerv3 import Actor, DreamerV3, LatentState  # noqa: E402
from methods.presets import load_config  # noqa: E402

POLICIES = {
    "actor sample": Actor.sample,
    "actor mean": lambda mean, std, g: mean,
    "a=+1": lambda mean, std, g: torch.ones_like(mean),
    "a=-1": lambda mean, std, g: -torch.ones_like(mean),
    "a=0": lambda mean, std, g: torch.zeros_like(mean),
    "a=mean*0.3": lambda mean, std, g: 0.3 * mean,
    "a=N(0,0.3)": lambda mean, std, g: (0.3 * torch.randn(mean.shape, generator=g)).clamp(-1, 1),
}


@torch.no_grad()
def main(run: str) -> None:
    torch.set_num_threads(1)
    built = build(DreamerV3, "cartpole", load_config(DreamerV3, "cartpole", "cpu"), "cpu", seed=0)
    env, agent = built.env, built.method
    agent.load_state_dict(RunFolder(run).load_checkpoint()["method"])
    agent.on_eval_start()
    obs = env.reset()
    pre_tanh, states, rewards = [], [], []
    ended = torch.zeros(env.spec.num_envs, dtype=torch.bool)
    for _ in range(env.spec.episode_length):
        action = agent.act(obs)
        state, _ = agent._latent["eval"]
        pre_tanh.append(agent.actor.pre_tanh(state.feature())[0].squeeze(-1))
        states.append(state)
        obs, reward, done, _ = env.step(action)
        rewards.append(reward * ~ended)
        ended |= done
        if bool(ended.all()):
            break
    pre_tanh = torch.stack(pre_tanh)
    print("steps", len(pre_tanh), "pre-tanh mean: min %.2f max %.2f mean %.2f" % (pre_tanh.min(), pre_tanh.max(), pre_tanh.mean()))
    print("episode returns", torch.stack(rewards).sum(0))
    start = LatentState(torch.cat([s.deter for s in states]), torch.cat([s.stoch for s in states]))
    for name, act in POLICIES.items():
        agent.train_generator.manual_seed(5)
        feat, _, _ = agent.imagine(start, act)
        reward, discount, value, returns = agent.imagined_returns(feat)
        print(f"{name:12s} R0 {returns[0].mean().item():9.2f}  mean imag reward {reward.mean().item():8.2f}  "
              f"v0 {value[0].mean().item():8.2f}  imagined terminal frac {(discount[1:] == 0).float().mean().item():.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
