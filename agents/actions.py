"""Quotes in bps and USDT <-> the env's action values in [-1, 1], and the observation columns.

The mapping is the env's (``mmgym.env.market_making.MarketMakingEnv``): per quoted
market m the columns are bid offset, ask offset, bid size, ask size and, when
``setup.flatten``, flatten intensity. An offset action a means
``min_offset_bps + (a + 1) / 2 * (max_offset_bps - min_offset_bps)`` bps from the
fair price; a size action a means ``(a + 1) / 2 * max_quote_notional[m]`` USDT,
and no quote below ``min_size`` of that maximum; flatten intensity is
``max(a, 0)``. Observation columns follow ``mmgym.env.kernels.OB_*``.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from mmgym.env.batch import AgentSetup
from mmgym.env.kernels import (
    A_ASK_OFFSET,
    A_ASK_SIZE,
    A_BID_OFFSET,
    A_BID_SIZE,
    A_FLATTEN,
    N_MARKET_OBS,
)
from mmgym.env.observation import observation_size as _columns

NO_QUOTE = -1.0  # size action that posts nothing (size 0 is below any min_size)
NO_FLATTEN = -1.0  # flatten action whose intensity max(a, 0) is 0


def action_width(setup: AgentSetup) -> int:
    """Action columns per quoted market."""
    return 5 if setup.flatten else 4


def action_space(setup: AgentSetup) -> spaces.Box:
    """The env's single action space for ``setup``."""
    return spaces.Box(-1.0, 1.0, (len(setup.markets) * action_width(setup),), np.float32)


def observation_size(setup: AgentSetup) -> int:
    """Observation columns of the env for ``setup``."""
    return _columns(len(setup.markets))


def offset_action(bps, setup: AgentSetup):
    """Action value for a quote ``bps`` away from the fair price (clipped to the range)."""
    span = setup.max_offset_bps - setup.min_offset_bps
    return np.clip(2.0 * (np.asarray(bps) - setup.min_offset_bps) / span - 1.0, -1.0, 1.0)


def offset_bps(action, setup: AgentSetup):
    """Distance from the fair price, bps, that an offset action value asks for."""
    span = setup.max_offset_bps - setup.min_offset_bps
    return setup.min_offset_bps + 0.5 * (np.asarray(action) + 1.0) * span


def size_action(notional, setup: AgentSetup, m: int):
    """Action value for a quote of ``notional`` USDT in market ``m`` (clipped to the range)."""
    return np.clip(2.0 * np.asarray(notional) / setup.max_quote_notional[m] - 1.0, -1.0, 1.0)


def size_notional(action, setup: AgentSetup, m: int):
    """USDT a size action value quotes in market ``m`` (0 below ``min_size``: no quote)."""
    fraction = 0.5 * (np.asarray(action) + 1.0)
    return np.where(fraction >= setup.min_size, fraction * setup.max_quote_notional[m], 0.0)


def quote_actions(setup: AgentSetup, bid_bps, ask_bps, bid_size, ask_size, flatten=None):
    """Actions float32[N, width * M] from per-market quotes.

    ``bid_bps``/``ask_bps``: offsets in bps, ``bid_size``/``ask_size``: size
    action values (``size_action`` or ``NO_QUOTE``), each broadcastable to
    [N, M]; ``flatten``: intensity action values (default ``NO_FLATTEN``),
    ignored when the env has no flatten column.
    """
    columns = {
        A_BID_OFFSET: offset_action(bid_bps, setup),
        A_ASK_OFFSET: offset_action(ask_bps, setup),
        A_BID_SIZE: np.asarray(bid_size, np.float64),
        A_ASK_SIZE: np.asarray(ask_size, np.float64),
    }
    if setup.flatten:
        columns[A_FLATTEN] = np.asarray(NO_FLATTEN if flatten is None else flatten, np.float64)
    n = max(np.atleast_2d(v).shape[0] for v in columns.values())
    m = len(setup.markets)
    out = np.empty((n, m, action_width(setup)), np.float32)
    for column, values in columns.items():
        out[:, :, column] = np.broadcast_to(np.atleast_2d(values), (n, m))
    return out.reshape(n, -1)


def market_obs(obs: np.ndarray, m: int, column: int) -> np.ndarray:
    """Column ``column`` (an ``OB_*`` market constant) of market ``m`` in obs[N, D]."""
    return obs[:, m * N_MARKET_OBS + column]


def account_obs(obs: np.ndarray, setup: AgentSetup, column: int) -> np.ndarray:
    """Account-wide column ``column`` (``OB_PNL`` .. ``OB_ELAPSED``) of obs[N, D]."""
    return obs[:, len(setup.markets) * N_MARKET_OBS + column]
