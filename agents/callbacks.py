"""Training callback that logs market-making episode metrics to TensorBoard."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

# TensorBoard tag -> (info key(s) summed over the episode, divide by its length?)
EPISODE_METRICS = {
    "episode/pnl": (("pnl",), False),
    "episode/presence": (("quoted",), True),
    "episode/compliance": (("obligation_compliant",), True),
    "episode/breach": (("obligation_breach",), True),
    "episode/liq_notional": (("liq_notional_long", "liq_notional_short"), False),
    "episode/adl_count": (("adl_count",), False),
}
_KEYS = tuple(dict.fromkeys(key for keys, _ in EPISODE_METRICS.values() for key in keys))


class EpisodeMetrics(BaseCallback):
    """Sums the env's per-step infos over each episode and records, per finished
    episode, its PnL (USDT), presence (share of steps quoting both sides),
    obligation compliance and breach shares, liquidation notional and ADL count
    (``EPISODE_METRICS``); SB3's logger writes their means at its next dump."""

    def _on_training_start(self) -> None:
        n = self.training_env.num_envs
        self.sums = np.zeros((n, len(_KEYS)))
        self.lengths = np.zeros(n, np.int64)

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        self.sums += [[info[key] for key in _KEYS] for info in infos]
        self.lengths += 1
        for i in np.flatnonzero(dones):
            total = dict(zip(_KEYS, self.sums[i], strict=True))
            for tag, (keys, mean) in EPISODE_METRICS.items():
                value = sum(total[key] for key in keys)
                self.logger.record_mean(tag, float(value / self.lengths[i] if mean else value))
            self.sums[i] = 0.0
            self.lengths[i] = 0
        return True
