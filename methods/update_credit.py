"""How many gradient updates a replay agent owes after each vector step of its envs."""

from __future__ import annotations


class UpdateCredit:
    """A one-off pretraining burst, then `per_agent_step` updates per agent step (summed over envs).

    Fractional credit carries over, so a ratio such as DreamerV3's 512 / (16 x 64) = 0.5 gives one
    update every 2 agent steps. With `burst_replaces_step` the first call earns the burst only
    (TD-MPC2: as many updates as seed steps); without it, the burst and that step's credit
    (DreamerV3's pretrain_updates).
    """

    def __init__(self, per_agent_step: float, burst_replaces_step: bool):
        self.per_agent_step = per_agent_step
        self.burst_replaces_step = burst_replaces_step
        self.credit = 0.0
        self.pretrained = False

    def owed(self, agent_steps: int, burst: float) -> int:
        """Earn the credit of `agent_steps` new agent steps (and `burst` on the first call), and
        take out the whole updates it now holds."""
        earn_steps = True
        if not self.pretrained:
            self.credit += burst
            self.pretrained = True
            earn_steps = not self.burst_replaces_step
        if earn_steps:
            self.credit += agent_steps * self.per_agent_step
        updates = 0
        while self.credit >= 1.0:
            self.credit -= 1.0
            updates += 1
        return updates

    def restart(self, pretrained: bool) -> None:
        """After loading a checkpoint: no credit carried over, the burst spent or not as saved."""
        self.credit = 0.0
        self.pretrained = pretrained
