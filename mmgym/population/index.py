"""The exogenous index: stochastic-volatility log returns plus scheduled shocks."""

from __future__ import annotations

import math

from .._jit import kernel
from .rng import normal


@kernel
def advance_index(pp, ps, e, t, out):
    """Write the index of step ``t`` for every market of env ``e`` into ``out[k]``."""
    n_markets = ps.log_index.shape[1]
    common = 0.0
    for k in range(n_markets):
        h = (1.0 - pp.index_reversion[k]) * ps.vol_state[e, k]
        h += pp.index_vol_of_vol[k] * normal(ps.streams, e)
        ps.vol_state[e, k] = h
        r = pp.index_volatility[k] * math.exp(h) * normal(ps.streams, e)
        if k == 0:
            common = r
        else:
            r += pp.index_beta[k] * common
        ps.log_index[e, k] += r
    for s in range(pp.shock_market.shape[0]):
        k = pp.shock_market[s]
        start = pp.shock_start[s]
        end = start + pp.shock_duration[s]
        if start <= t < end:
            ps.shock_log[e, k] += pp.shock_size[s] / pp.shock_duration[s]
        elif end <= t < end + pp.shock_rebound_duration[s]:
            ps.shock_log[e, k] -= (
                pp.shock_size[s] * pp.shock_rebound[s] / pp.shock_rebound_duration[s]
            )
    for k in range(n_markets):
        out[k] = math.exp(ps.log_index[e, k] + ps.shock_log[e, k])
