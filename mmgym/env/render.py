"""Rendering: a text view (book ladder, positions, fund, ADL lights) and an RGB chart.

``rgb_array`` needs matplotlib (extra ``render``); it draws the quoted
market's depth chart and its recent price with the liquidations of each
step marked, from the env's ``history`` of info dicts.
"""

from __future__ import annotations

import numpy as np

from ..core.codes import ASK, BID, E_INSURANCE_FUND
from .kernels import AC_EQUITY, AC_MARGIN

LADDER_LEVELS = 5


def _ladder(batch, e: int, k: int, slot: int, depth: int):
    """(price, lots) of the best ``depth`` levels of one side, best first."""
    s = batch.state
    n = int(s.n_levels[e, k, slot])
    tick = batch.params.tick_size[k]
    out = []
    for i in range(n - 1, max(n - 1 - depth, -1), -1):
        out.append((s.level_price[e, k, slot, i] * tick, int(s.level_qty[e, k, slot, i])))
    return out


def ansi(batch, e: int, g: int, history) -> str:
    """Text view of env ``e`` for agent ``g``."""
    s = batch.state
    a = int(batch.agent_params.account[g])
    lines = [f"step {int(s.step[e])}  insurance fund {s.env_stats[e, E_INSURANCE_FUND]:,.0f} USDT"]
    for k in batch.market_index:
        name = batch.names[k]
        lines.append(
            f"{name}  mark {s.mark_price[e, k]:.6g}  index {s.index_price[e, k]:.6g}  "
            f"position {int(s.pos[e, a, k])} lots  ADL light {int(s.adl_quantile[e, a, k])}/4"
        )
        own = {
            int(s.order_price[e, k, o])
            for o in range(s.order_id.shape[2])
            if s.order_id[e, k, o] and s.order_owner[e, k, o] == a
        }
        tick = batch.params.tick_size[k]
        for price, lots in reversed(_ladder(batch, e, k, ASK, LADDER_LEVELS)):
            mark = " <- agent" if round(price / tick) in own else ""
            lines.append(f"    ask {price:>14.6g} {lots:>10d}{mark}")
        for price, lots in _ladder(batch, e, k, BID, LADDER_LEVELS):
            mark = " <- agent" if round(price / tick) in own else ""
            lines.append(f"    bid {price:>14.6g} {lots:>10d}{mark}")
    acc = batch.agent_state.accounting[e, g]
    lines.append(f"equity {acc[AC_EQUITY]:,.2f} USDT  margin ratio {acc[AC_MARGIN]:.3f}")
    if history:
        last = history[-1]
        lines.append(
            f"liquidations long {last['liq_notional_long']:,.0f} short "
            f"{last['liq_notional_short']:,.0f}  ADL {last['adl_count']:.0f}  "
            f"quoting firms {last['mm_quoting']:.0%}"
        )
    return "\n".join(lines) + "\n"


def rgb_array(batch, e: int, history) -> np.ndarray:
    """RGB image (H, W, 3) of the first quoted market: depth chart and recent price."""
    # A figure of its own on an Agg canvas: the caller's pyplot backend is left alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = int(batch.market_index[0])
    fig = Figure(figsize=(8, 3), dpi=80)
    FigureCanvasAgg(fig)
    depth_ax, price_ax = fig.subplots(1, 2)
    for slot, colour in ((BID, "tab:green"), (ASK, "tab:red")):
        levels = _ladder(batch, e, k, slot, 200)
        if levels:
            prices = [p for p, _ in levels]
            notional = np.cumsum([p * q * batch.params.lot_size[k] for p, q in levels])
            depth_ax.step(prices, notional, color=colour, where="post")
    depth_ax.set_title(f"{batch.names[k]} depth (USDT)")
    if history:
        mids = [h["mid"] for h in history]
        price_ax.plot(mids, color="black", lw=1)
        liq = np.array([h["liq_notional_long"] + h["liq_notional_short"] for h in history])
        hit = np.flatnonzero(liq > 0)
        price_ax.scatter(hit, np.asarray(mids)[hit], s=8, color="tab:orange", label="liquidations")
    price_ax.set_title("price")
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()
