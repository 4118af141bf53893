"""Training callback that logs market-making episode metrics to TensorBoard."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

# TensorBoard tag -> (info key(s) summed over the episode, divide by its length?)
EPISODE_METRICS = {
    "episode/pnl": (("pnl",), False),
    "episode/presence": (("quoted",), True),
    "episode/compliance": (("obligation_compliant",), True),
    "episode/liq_notional": (("liq_notional_long", "liq_notional_short"), False),
    "episode/adl_count": (("adl_count",), False),
}


class EpisodeMetrics(BaseCallback):
    """Sums the env's per-step infos over each episode and records, per finished
    episode, its PnL (USDT), presence (share of steps quoting both sides),
    obligation compliance, liquidation notional and ADL count (``EPISODE_METRICS``);
    SB3's logger writes their means at its next dump."""

    def _on_training_start(self) -> None:
        n = self.training_env.num_envs
        self.sums = {tag: np.zeros(n) for tag in EPISODE_METRICS}
        self.lengths = np.zeros(n, np.int64)

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        for tag, (keys, _) in EPISODE_METRICS.items():
            self.sums[tag] += [sum(info[key] for key in keys) for info in infos]
        self.lengths += 1
        for i in np.flatnonzero(dones):
            for tag, (_, mean) in EPISODE_METRICS.items():
                value = self.sums[tag][i] / self.lengths[i] if mean else self.sums[tag][i]
                self.logger.record_mean(tag, float(value))
                self.sums[tag][i] = 0.0
            self.lengths[i] = 0
        return True
