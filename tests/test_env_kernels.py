"""The env kernels against plain-Python twins: actions to orders, observation, accounting."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mmgym.core.codes import (
    ASK,
    BID,
    BUY,
    CANCEL,
    E_INSURANCE_FUND,
    F_MAKER,
    F_TAKER_SIDE,
    IOC,
    PERP,
    POST_ONLY,
    S_ADL_COUNT,
    S_ADL_NOTIONAL,
    S_DEPTH,
    S_LIQ_COUNT_LONG,
    S_LIQ_COUNT_SHORT,
    S_LIQ_NOTIONAL_LONG,
    S_LIQ_NOTIONAL_SHORT,
    S_VOLUME,
    SELL,
    UNIFIED,
)
from mmgym.env.kernels import (
    AC_ASK_NOTIONAL,
    AC_BID_NOTIONAL,
    AC_EQUITY,
    AC_FEES,
    AC_INVENTORY,
    AC_QUOTED,
    AC_SPREAD_BPS,
    EV_ADL_COUNT,
    EV_ADL_NOTIONAL,
    EV_FUND_DRAWDOWN,
    EV_LIQ_COUNT,
    EV_LIQ_LONG,
    EV_LIQ_SHORT,
    EV_SOCIALISED,
    EV_VOLUME,
    N_MARKET_OBS,
    OB_ADL,
    OB_BASIS,
    OB_COLLATERAL,
    OB_DEPTH,
    OB_ELAPSED,
    OB_FUND,
    OB_IMBALANCE,
    OB_INVENTORY,
    OB_LIQUIDATIONS,
    OB_MARGIN,
    OB_PNL,
    OB_RETURN,
    OB_SPREAD,
    OB_STRESS,
    OB_TIME_COS,
    OB_TIME_SIN,
    OB_TREND,
    OB_UPNL,
    OB_VOLATILITY,
    write_orders,
)
from mmgym.env.market_making import MarketMakingEnv

# Two perpetuals, and the collateral coin's spot book (the agent starts holding it) with one.
ENVS = {
    "perps": MarketMakingEnv(market=["ALTUSDT", "BTCUSDT"], horizon=200),
    "spot": MarketMakingEnv(market=["USDEUSDT", "ALTUSDT"], horizon=200),
}
TIGHT = [-1.0, -1.0, 1.0, 1.0, -1.0] * 2


def start_holdings(batch, e):
    """Each agent's holding in each quoted market, [G, M], read right after a reset."""
    return batch.state.pos[e][np.ix_(batch.agent_params.account, batch.agent_params.market)].copy()


def best(state, e, k, slot):
    n = state.n_levels[e, k, slot]
    return state.level_price[e, k, slot, n - 1] if n else -1


def others_best(state, ag, e, g, m, k, slot):
    """Best price of a side among the orders of everyone but agent g's quote."""
    own = ag.quote_id[e, g, m, slot]
    prices = [
        state.order_price[e, k, o]
        for o in range(state.order_id.shape[2])
        if state.order_id[e, k, o]
        and state.order_id[e, k, o] != own
        and (state.order_side[e, k, o] == BUY) == (slot == BID)
    ]
    if not prices:
        return -1
    return max(prices) if slot == BID else min(prices)


def naive_orders(batch, e, actions, start):
    """Order rows (market, kind, side, price, lots, ref) the agent should send, in slot order.

    ``start``: the holdings the episode began with (``start_holdings``), which
    flatten trades back to.
    """
    s, p, ap, ag = batch.state, batch.params, batch.agent_params, batch.agent_state
    width = 5 if ap.flatten else 4
    rows = []
    for g, a in enumerate(ap.account):
        for m, k in enumerate(ap.market):
            u = actions[g, m * width : (m + 1) * width]
            bid, ask = (others_best(s, ag, e, g, m, k, slot) for slot in (BID, ASK))
            tick = p.tick_size[k]
            fair = 0.5 * (bid + ask) * tick if bid > 0 and ask > 0 else s.mark_price[e, k]
            cancels, quotes = [], []
            kept_ask = 0  # lots of a resting ask left in the book
            pos = int(s.pos[e, a, k])
            excess = pos - int(start[g, m])
            flat = int(max(u[4], 0) * abs(excess)) if ap.flatten and not ag.out[e, g] else 0
            # A flatten sell would cancel the agent's own bid (self-trade prevention),
            # a flatten buy its ask: that quote is replaced after the flatten.
            crossed = (0 if excess > 0 else 1) if flat > 0 else None
            for side in (0, 1):
                offset = ap.min_offset + (u[side] + 1) / 2 * (ap.max_offset - ap.min_offset)
                fraction = (u[2 + side] + 1) / 2
                lots = 0
                if fraction >= ap.min_size and not ag.out[e, g]:  # an agent out only cancels
                    lots = int(fraction * ap.max_notional[m] / (fair * p.lot_size[k]))
                # Never at a fair price on a tick, so bid and ask never meet.
                below, above = math.ceil(fair / tick) - 1, math.floor(fair / tick) + 1
                if side == 0:
                    price = max(min(math.floor(fair * (1 - offset) / tick), below), 1)
                else:
                    price = max(math.ceil(fair * (1 + offset) / tick), above)
                oid = int(ag.quote_id[e, g, m, side])
                live = [o for o in range(s.order_id.shape[2]) if oid and s.order_id[e, k, o] == oid]
                if live:
                    o = live[0]
                    sent = ag.quote_lots[e, g, m, side]
                    same = s.order_price[e, k, o] == price and s.order_qty[e, k, o] == sent
                    if lots > 0 and same and sent == lots and side != crossed:
                        if side == 1:
                            kept_ask = sent
                        continue  # kept, with its queue place
                    cancels.append((k, CANCEL, 0, 0, 0, oid))
                if lots > 0:
                    quotes.append((k, POST_ONLY, BUY if side == 0 else SELL, price, lots, 0))
            flatten = []
            lots = flat
            if excess > 0 and p.market_kind[k] != PERP:
                lots = min(lots, pos - kept_ask)  # a spot sell of coins no ask holds
            if lots > 0:
                band = p.price_band[k]
                lo = max(math.ceil(s.mark_price[e, k] * (1 - band) / tick - 1e-9), 1)
                hi = math.floor(s.mark_price[e, k] * (1 + band) / tick + 1e-9)
                sell = (k, IOC, SELL, lo, lots, 0)
                flatten = [sell if excess > 0 else (k, IOC, BUY, hi, lots, 0)]
            rows += cancels + flatten + quotes
    return rows


def kernel_rows(batch, e):
    out = batch.agent_state.orders[e]
    return [tuple(int(x) for x in r[[1, 3, 4, 5, 6, 7]]) for r in out if r[0] == e]


actions_strategy = st.lists(
    st.lists(st.floats(-1, 1, width=32), min_size=10, max_size=10), min_size=1, max_size=6
)


@pytest.mark.parametrize("name", list(ENVS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions_strategy, st.integers(0, 3))
def test_write_orders_matches_the_twin(name, history, seed):
    env = ENVS[name]
    env.reset(seed=seed)
    batch = env.core.batch
    start = start_holdings(batch, 0)
    # Tight, large quotes first (inventory to flatten), then earlier quotes that
    # may be kept or replaced.
    for a in [TIGHT] * 10 + history[:-1]:
        if any(env.step(np.array(a, np.float32))[2:4]):
            return
    last = np.clip(np.array([history[-1]], np.float64), -1, 1)
    expected = naive_orders(batch, 0, last, start)
    write_orders(batch.params, batch.state, batch.agent_params, batch.agent_state, 0, last)
    assert sorted(kernel_rows(batch, 0)) == sorted(expected)


def test_a_spot_flatten_sells_only_the_coins_a_kept_ask_leaves_free():
    env = MarketMakingEnv(market="USDEUSDT", horizon=60, max_quote_notional=1e6)
    batch = env.core.batch
    s, ag = batch.state, batch.agent_state
    a, k = int(batch.agent_params.account[0]), int(batch.market_index[0])
    env.reset(seed=0)
    start = start_holdings(batch, 0)
    for _ in range(25):
        env.step(np.array([-1.0, 1.0, 1.0, -1.0, -1.0], np.float32))  # buy coins
    pos = int(s.pos[0, a, k])
    excess = pos - int(start[0, 0])
    # A far ask (kept from one step to the next) for all but half the excess.
    size = 2.0 * (pos - excess // 2) * ag.prev_mid[0, 0] / 1e6 - 1.0
    ask = np.array([1.0, 1.0, -1.0, size, -1.0], np.float32)
    env.step(ask)
    assert ag.present[0, 0, 0, 1] and s.pos[0, a, k] == pos
    free = pos - int(ag.quote_lots[0, 0, 0, 1])
    assert 0 < free < excess
    flatten = np.array([[1.0, 1.0, -1.0, size, 1.0]])
    expected = naive_orders(batch, 0, flatten, start)
    write_orders(batch.params, s, batch.agent_params, ag, 0, flatten)
    assert sorted(kernel_rows(batch, 0)) == sorted(expected)
    # The ask stays; the flatten sells what it leaves (rows without their price).
    assert [row[:3] + row[4:] for row in expected] == [(k, IOC, SELL, free, 0)]
    env.step(flatten[0].astype(np.float32))
    assert ag.present[0, 0, 0, 1] and s.pos[0, a, k] == pos - free  # the IOC sold them


def test_a_quote_reported_posted_is_in_the_book_while_flattening():
    """A kept bid would meet the agent's own flatten sell, and self-trade prevention
    would cancel it: it is replaced after the flatten, so it is never counted posted
    (for presence, duties and the observation) while gone from the book."""
    env = MarketMakingEnv(horizon=400, min_offset_bps=0.0, max_offset_bps=100.0)
    batch = env.core.batch
    s, ag = batch.state, batch.agent_state
    a, k = int(batch.agent_params.account[0]), int(batch.market_index[0])
    env.reset(seed=0)
    flattened = 0
    for _ in range(400):
        long = s.pos[0, a, k] > 0
        # A bid at the fair price, a far ask, half size; flatten 30% while long.
        action = np.array([-1.0, -0.6, 0.0, 0.0, 0.3 if long else -1.0], np.float32)
        first = int(s.n_fills[0])
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
        flattened += info["flattened"] > 0
        rows = s.fills[0, np.arange(first, s.n_fills[0]) % s.fills.shape[1]]
        for side, taker_side in ((0, SELL), (1, BUY)):
            oid = int(ag.quote_id[0, 0, 0, side])
            if not ag.present[0, 0, 0, side] or (s.order_id[0, k] == oid).any():
                continue
            # Posted but gone: only a fill against it this step may have taken it.
            hit = (rows[:, F_MAKER] == a) & (rows[:, F_TAKER_SIDE] == taker_side)
            assert hit.any(), f"side {side}: posted quote gone without a fill"
    assert flattened > 20  # the case was exercised


def naive_observation(batch, e, g, start_equity, start, fees_before):
    """A few observation and accounting columns recomputed from the state.

    Inventory is the holding bought or sold since ``start`` (``start_holdings``);
    the step's fees are what ``fees_paid`` grew from ``fees_before``. The quote
    figures read the agent's posted quotes: the widest spread and the smallest
    size over the markets, when both sides of every market are posted.
    """
    s, p, ap, ag = batch.state, batch.params, batch.agent_params, batch.agent_state
    a = ap.account[g]
    out = {}
    unified = s.account_kind[e, a] == UNIFIED
    equity = margin_equity = wallet = s.cash[e, a]
    upnl = inventory = mm = 0.0
    for k in range(len(p.market_kind)):
        lots = s.pos[e, a, k] * p.lot_size[k]
        if p.market_kind[k] != PERP:
            value = lots * s.collateral_price[e, k]
            equity += value
            if unified:
                margin_equity += value * p.collateral_ratio[k] if value > 0 else value
            continue
        equity += lots * s.mark_price[e, k]
        margin_equity += lots * s.mark_price[e, k]
        wallet += lots * s.entry[e, a, k]
        if lots:
            upnl += lots * (s.mark_price[e, k] - s.entry[e, a, k])
            notional = abs(lots) * s.mark_price[e, k]
            t = max(i for i in range(p.bracket_floor.shape[1]) if notional >= p.bracket_floor[k, i])
            mm += notional * p.bracket_mmr[k, t] - p.bracket_cum[k, t]
    if unified and wallet < 0:
        mm -= wallet * p.borrow_mmr
    for m, k in enumerate(ap.market):
        bid, ask = best(s, e, k, BID), best(s, e, k, ASK)
        spread = min(100 * (ask - bid) / (0.5 * (ask + bid)), 10.0) if bid > 0 and ask > 0 else 10.0
        depth_bid, depth_ask = s.market_stats[e, k, 4], s.market_stats[e, k, 5]
        total = depth_bid + depth_ask
        held = (s.pos[e, a, k] - start[g, m]) * p.lot_size[k]
        inventory += abs(held) * s.mark_price[e, k]
        out[f"{m}.spread"] = spread
        out[f"{m}.imbalance"] = (depth_bid - depth_ask) / total if total > 0 else 0.0
        out[f"{m}.inventory"] = held * s.mark_price[e, k] / ap.capital
    out["pnl"] = (equity - start_equity) / ap.capital
    out["upnl"] = upnl / ap.capital
    out["margin"] = min(mm / margin_equity, 10.0) if margin_equity > 0 else 10.0
    out["equity"] = equity
    out["inventory"] = inventory
    out["fees"] = s.fees_paid[e, a] - fees_before
    markets = range(len(ap.market))
    out["quoted"] = float(all(ag.present[e, g, m, 0] and ag.present[e, g, m, 1] for m in markets))
    spreads, bids, asks = [math.inf], [0.0], [0.0]
    if out["quoted"]:
        spreads, bids, asks = [], [], []
        for m, k in enumerate(ap.market):
            mid = ag.prev_mid[e, m]
            width = ag.quote_price[e, g, m, 1] - ag.quote_price[e, g, m, 0]
            spreads.append(1e4 * width * p.tick_size[k] / mid)
            bids.append(ag.quote_lots[e, g, m, 0] * p.lot_size[k] * mid)
            asks.append(ag.quote_lots[e, g, m, 1] * p.lot_size[k] * mid)
    out["spread_bps"], out["bid_notional"], out["ask_notional"] = max(spreads), min(bids), min(asks)
    return out


@pytest.mark.parametrize("name", list(ENVS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions_strategy, st.integers(0, 3))
def test_observation_matches_the_twin(name, history, seed):
    env = ENVS[name]
    obs, _ = env.reset(seed=seed)
    batch = env.core.batch
    start = float(batch.agent_state.start_equity[0, 0])
    holdings = start_holdings(batch, 0)
    account = batch.agent_params.account[0]
    for a in [TIGHT] * 20 + history:  # tight, large quotes first: fills, inventory, PnL
        fees_before = float(batch.state.fees_paid[0, account])
        obs, _, terminated, truncated, info = env.step(np.array(a, np.float32))
        if terminated or truncated:
            return
    want = naive_observation(batch, 0, 0, start, holdings, fees_before)
    assume(want["inventory"] > 0)  # a history that flattened everything checks too little
    base = 2 * N_MARKET_OBS
    for m in range(2):
        row = m * N_MARKET_OBS
        np.testing.assert_allclose(obs[row + OB_SPREAD], want[f"{m}.spread"], rtol=1e-5)
        np.testing.assert_allclose(obs[row + OB_IMBALANCE], want[f"{m}.imbalance"], atol=1e-6)
        np.testing.assert_allclose(obs[row + OB_INVENTORY], want[f"{m}.inventory"], atol=1e-7)
    np.testing.assert_allclose(obs[base + OB_PNL], want["pnl"], atol=1e-7)
    np.testing.assert_allclose(obs[base + OB_UPNL], want["upnl"], atol=1e-7)
    np.testing.assert_allclose(obs[base + OB_MARGIN], want["margin"], rtol=1e-5, atol=1e-7)
    acc = batch.agent_state.accounting[0, 0]
    np.testing.assert_allclose(acc[AC_EQUITY], want["equity"], rtol=1e-12)
    np.testing.assert_allclose(acc[AC_INVENTORY], want["inventory"], rtol=1e-12)
    assert info["equity"] == acc[AC_EQUITY]
    assert acc[AC_FEES] == want["fees"]
    assert acc[AC_QUOTED] == want["quoted"]
    np.testing.assert_allclose(acc[AC_SPREAD_BPS], want["spread_bps"], rtol=1e-12)
    np.testing.assert_allclose(acc[AC_BID_NOTIONAL], want["bid_notional"], rtol=1e-12)
    np.testing.assert_allclose(acc[AC_ASK_NOTIONAL], want["ask_notional"], rtol=1e-12)


class SignalTwin:
    """The market-signal, risk and clock columns and the env's flows, recomputed in
    Python from the state after every env step (one engine step per env step).

    It keeps its own history: the mid it saw last, the EWMAs of returns, squared
    returns and the mid, the references taken when the episode began, the fund.
    """

    def __init__(self, batch, e=0):
        s, ap = batch.state, batch.agent_params
        self.batch, self.e = batch, e
        self.mid = [self.fair(k) for k in ap.market]
        self.average = list(self.mid)
        self.trend = [0.0] * len(ap.market)
        self.var = [1.0] * len(ap.market)
        self.depth_ref = [max(float(s.market_stats[e, k, S_DEPTH]), 1.0) for k in ap.market]
        self.collateral_ref = self.collateral()
        self.fund = float(s.env_stats[e, E_INSURANCE_FUND])
        self.socialised = float(s.socialised_loss[e])
        self.steps = 0

    def fair(self, k):
        s, p, e = self.batch.state, self.batch.params, self.e
        bid, ask = best(s, e, k, BID), best(s, e, k, ASK)
        return 0.5 * (bid + ask) * p.tick_size[k] if bid > 0 and ask > 0 else s.mark_price[e, k]

    def collateral(self):
        s, p, e = self.batch.state, self.batch.params, self.e
        a = self.batch.agent_params.account[0]
        return sum(
            s.pos[e, a, k] * p.lot_size[k] * s.collateral_price[e, k]
            for k in range(len(p.market_kind))
            if p.market_kind[k] != PERP and s.pos[e, a, k] > 0
        )

    def step(self):
        """Advance with the step just taken; the expected columns and flows."""
        s, ap, e = self.batch.state, self.batch.agent_params, self.e
        pp, ps = self.batch.pop_params, self.batch.pop_state
        alpha = 1.0 - 0.5**0.1  # a ten-step half-life
        self.steps += 1
        out, stressed = {}, False
        for m, k in enumerate(ap.market):
            mid = self.fair(k)
            r = math.log(mid / self.mid[m]) / ap.sigma[m]
            self.mid[m] = mid
            self.trend[m] += alpha * (r - self.trend[m])
            self.var[m] += alpha * (r * r - self.var[m])
            self.average[m] += ap.average_alpha * (mid - self.average[m])
            stats = s.market_stats[e, k]
            liq = stats[S_LIQ_NOTIONAL_LONG] + stats[S_LIQ_NOTIONAL_SHORT]
            out[f"{m}.return"], out[f"{m}.trend"] = r, self.trend[m]
            out[f"{m}.volatility"] = math.sqrt(self.var[m])
            out[f"{m}.depth"] = min(stats[S_DEPTH] / self.depth_ref[m], 10.0)
            out[f"{m}.basis"] = 100.0 * (s.mark_price[e, k] / s.index_price[e, k] - 1.0)
            out[f"{m}.liquidations"] = math.log1p(liq / ap.liq_reference[m])
            out[f"{m}.adl"] = s.adl_quantile[e, ap.account[0], k] / 4.0
            stressed |= (
                math.sqrt(ps.vol_signal[e, k]) / pp.base_volatility[k] >= ap.stress_volatility
            )
            stressed |= ps.liq_signal[e, k] / pp.liquidation_reference[k] >= ap.stress_liquidations
            stressed |= abs(math.log(mid / self.average[m])) >= ap.stress_move
        out["collateral"] = self.collateral() / self.collateral_ref if self.collateral_ref else 1.0
        out["fund"] = s.env_stats[e, E_INSURANCE_FUND] / ap.fund_reference
        out["stress"] = float(stressed)
        clock = ap.start_clock + s.step[e] * ap.engine_dt
        out["time_sin"] = math.sin(2 * math.pi * clock / 86400)
        out["time_cos"] = math.cos(2 * math.pi * clock / 86400)
        out["elapsed"] = self.steps / ap.horizon
        markets = s.market_stats[e]  # this step's statistics of every market
        flows = {
            "liq_long": sum(markets[:, S_LIQ_NOTIONAL_LONG]),
            "liq_short": sum(markets[:, S_LIQ_NOTIONAL_SHORT]),
            "liq_count": sum(markets[:, S_LIQ_COUNT_LONG] + markets[:, S_LIQ_COUNT_SHORT]),
            "adl_count": sum(markets[:, S_ADL_COUNT]),
            "adl_notional": sum(markets[:, S_ADL_NOTIONAL]),
            "volume": sum(markets[:, S_VOLUME]),
            "fund_drawdown": max(self.fund - s.env_stats[e, E_INSURANCE_FUND], 0.0),
            "socialised": s.socialised_loss[e] - self.socialised,
        }
        self.fund, self.socialised = (
            float(s.env_stats[e, E_INSURANCE_FUND]),
            float(s.socialised_loss[e]),
        )
        return out, flows


MARKET_COLUMNS = {
    "return": OB_RETURN,
    "trend": OB_TREND,
    "volatility": OB_VOLATILITY,
    "depth": OB_DEPTH,
    "basis": OB_BASIS,
    "liquidations": OB_LIQUIDATIONS,
    "adl": OB_ADL,
}
ACCOUNT_COLUMNS = {
    "collateral": OB_COLLATERAL,
    "fund": OB_FUND,
    "stress": OB_STRESS,
    "time_sin": OB_TIME_SIN,
    "time_cos": OB_TIME_COS,
    "elapsed": OB_ELAPSED,
}
FLOWS = {
    "liq_long": EV_LIQ_LONG,
    "liq_short": EV_LIQ_SHORT,
    "liq_count": EV_LIQ_COUNT,
    "adl_count": EV_ADL_COUNT,
    "adl_notional": EV_ADL_NOTIONAL,
    "volume": EV_VOLUME,
    "fund_drawdown": EV_FUND_DRAWDOWN,
    "socialised": EV_SOCIALISED,
}


@pytest.mark.parametrize("seed", [0, 1])
def test_signal_columns_and_flows_match_the_twin_through_the_crash(seed):
    """Every step of an always-quoting agent through oct10's crash: returns, trend,
    volatility, depth, basis, liquidations, ADL lights, collateral, fund, stress,
    clock and the env's flows, as the twin recomputes them."""
    env = MarketMakingEnv(
        scenario="oct10", market=["ALTUSDT", "USDEUSDT"], warmup=(3300, 3300), horizon=900
    )
    env.reset(seed=seed)
    batch = env.core.batch
    twin = SignalTwin(batch)
    seen = dict.fromkeys(("liq_long", "adl_count", "fund_drawdown", "stress"), 0.0)
    action = np.array([-0.5, -0.5, 0.5, 0.5, -1.0] * 2, np.float32)
    for _ in range(900):
        obs, _, terminated, truncated, _ = env.step(action)
        want, flows = twin.step()
        for m in range(2):
            for name, col in MARKET_COLUMNS.items():
                got = obs[m * N_MARKET_OBS + col]
                np.testing.assert_allclose(got, want[f"{m}.{name}"], rtol=2e-6, atol=1e-6)
        base = 2 * N_MARKET_OBS
        for name, col in ACCOUNT_COLUMNS.items():
            np.testing.assert_allclose(obs[base + col], want[name], rtol=2e-6, atol=1e-6)
        ev = batch.agent_state.env_accounting[0]
        for name, col in FLOWS.items():
            np.testing.assert_allclose(ev[col], flows[name], rtol=1e-12, atol=1e-9, err_msg=name)
        for key in seen:
            seen[key] = max(seen[key], flows[key] if key in flows else want[key])
        if terminated or truncated:
            break
    # The crash was in the window: liquidations, ADL, the fund drawn, stress.
    assert seen["liq_long"] > 0 and seen["adl_count"] > 0 and seen["fund_drawdown"] > 0
    assert seen["stress"] == 1.0
