"""Saturation probe for a DreamerV3 CartPole checkpoint (README, "DreamerV3": "Seed 1 is stuck in
the actor, not in the model"). Runs one deterministic evaluation episode per env (4 envs) with the
checkpoint, prints the actor's pre-tanh mean over the states visited until each env's first episode
end, then the model's imagined lambda-return (horizon 15, one fixed noise draw) from those
posterior states under the actor and under fixed actions.

Usage, from the repository root: python results/dreamerv3-saturation-cpu/probe.py RUN_FOLDER
(RUN_FOLDER holds checkpoint.pt of a `cpu`-preset cartpole run)."""
import sys, torch
sys.path.insert(0, '.')
torch.set_num_threads(1)
import envs
from methods.presets import load_config
from methods.dreamerv3 import DreamerV3, Actor, LatentState, lambda_returns
run = sys.argv[1]
cfg = load_config('dreamerv3', 'cartpole', 'cpu', DreamerV3.config_cls, {})
env = envs.make('cartpole', device='cpu', seed=0, **DreamerV3.env_kwargs(cfg))
agent = DreamerV3(env.spec, cfg, 'cpu', 0)
ck = torch.load(run + '/checkpoint.pt', weights_only=False)
agent.load_state_dict(ck['method'])
agent.on_eval_start()
obs = env.reset()
pre, states, rews, dones = [], [], [], []
for t in range(240):
    a = agent.act(obs)
    st, _ = agent._latent['eval']
    with torch.no_grad():
        raw = agent.actor.net(st.feature()).chunk(2, -1)[0]
    pre.append(raw.squeeze(-1)); states.append(st)
    obs, r, done, info = env.step(a)
    alive = ~torch.stack(dones).any(0) if dones else torch.ones_like(done)
    rews.append(r * alive); dones.append(done)
    if bool(torch.stack(dones).any(0).all()): break
pre = torch.stack(pre)
print('steps', len(pre), 'pre-tanh mean: min %.2f max %.2f mean %.2f' % (pre.min(), pre.max(), pre.mean()))
print('episode returns', torch.stack(rews).sum(0))
start = LatentState(torch.cat([s.deter for s in states]), torch.cat([s.stoch for s in states]))
H = cfg.horizon
def imagine_value(policy):
    g = torch.Generator().manual_seed(5)
    s = start; feats = [s.feature()]
    for _ in range(H):
        mean, std = agent.actor(feats[-1])
        a = policy(mean, std, g)
        s, _ = agent.wm.rssm.prior_step(s, a, g)
        feats.append(s.feature())
    feat = torch.stack(feats)
    rew = agent.two_hot.decode(agent.wm.reward(feat[1:]))
    disc = cfg.discount * (agent.wm.cont(feat).squeeze(-1) > 0).float()
    val = agent.two_hot.decode(agent.critic(feat))
    ret = lambda_returns(rew, val, disc[1:], cfg.return_lambda)
    return ret[0].mean().item(), rew.mean().item(), val[0].mean().item(), (disc[1:] == 0).float().mean().item()
with torch.no_grad():
    for name, pol in [('actor sample', lambda m, s, g: Actor.sample(m, s, g)), ('actor mean', lambda m, s, g: m),
                      ('a=+1', lambda m, s, g: torch.ones_like(m)), ('a=-1', lambda m, s, g: -torch.ones_like(m)), ('a=0', lambda m, s, g: torch.zeros_like(m)),
                      ('a=mean*0.3', lambda m, s, g: 0.3 * m), ('a=N(0,0.3)', lambda m, s, g: (0.3*torch.randn(m.shape, generator=g)).clamp(-1,1))]:
        R, r, v, term = imagine_value(pol)
        print(f'{name:12s} R0 {R:9.2f}  mean imag reward {r:8.2f}  v0 {v:8.2f}  imagined terminal frac {term:.3f}')
