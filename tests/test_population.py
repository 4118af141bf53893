"""Population agents against hand-computed cases, scenario validation, determinism."""

import copy
import math

import numpy as np
import pytest

from mmgym.core.codes import (
    BUY,
    CANCEL,
    ENV_STAT_NAMES,
    IOC,
    LIMIT,
    MARKET,
    MARKET_STAT_NAMES,
    PERP,
    POST_ONLY,
    SELL,
)
from mmgym.core.config import ConfigError
from mmgym.core.margin import equity_and_mm
from mmgym.population.makers import STRESS_SIGNALS
from mmgym.population.step import run_episode
from mmgym.population.traders import reopen_lots
from mmgym.scenario import build, load_scenario
from mmgym.scenario.runner import Logs

TINY = {
    "name": "tiny",
    "steps": 10,
    "exchange": {
        "markets": [
            {
                "name": "PERP",
                "kind": "perp",
                "tick_size": 0.01,
                "lot_size": 1.0,
                "brackets": [[0, 100, 0.01]],
            },
            {"name": "COIN", "kind": "spot", "tick_size": 0.0001, "lot_size": 1.0},
        ],
        "insurance_fund": 1e6,
    },
    "population": {
        "index": {"PERP": {"start": 100.0}, "COIN": {"start": 1.0}},
        "leveraged": {"count": 0},
        "makers": {
            "firms": 1,
            "capital": 1e6,
            "unified": False,
            "collateral_share": 0.0,
            "quoting": {
                "PERP": {
                    "half_spread_bps": 10.0,
                    "level_step_bps": 10.0,
                    "levels": 2,
                    "level_notional": 1000.0,
                    "inventory_limit": 1000.0,
                },
            },
            "base_volatility": {"PERP": 0.001},
            "skew": 0.5,
            "calm_steps": 3,
            "ramp_steps": 4,
        },
    },
}


def tiny(**changes):
    raw = copy.deepcopy(TINY)
    for path, value in changes.items():
        node = raw
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return raw


def step(ex, pp, ps, n=1, external=None):
    """``n`` fused steps of every env; ``external`` (int64[E, R, 8]) rows are applied at each."""
    envs, k = ex.n_envs, ex.config.n_markets
    firms = ps.stress_parts.shape[1]
    logs = Logs(
        np.zeros((envs, n, k, len(MARKET_STAT_NAMES))),
        np.zeros((envs, n, len(ENV_STAT_NAMES))),
        np.zeros((envs, n)),
        np.zeros((envs, n, firms), np.int64),
        np.zeros((envs, n, firms, len(STRESS_SIGNALS))),
        np.zeros((envs, n, k), np.int64),
        np.zeros((envs, n)),
    )
    orders = np.zeros((envs, 0, 8), np.int64) if external is None else external
    results = np.zeros((envs, orders.shape[1], 3), np.int64)
    run_episode(ex.params, ex.state, pp, ps, n, orders, results, np.zeros(k), logs)
    return logs


def rows(ps, account=None):
    """This step's population order rows (kind, side, price, qty, ref), optionally one account's."""
    out = ps.buffer[0, : ps.n_buffer[0]]
    if account is not None:
        out = out[out[:, 2] == account]
    return [tuple(int(x) for x in r[3:8]) for r in out]


def test_maker_quotes_a_skewed_ladder_around_the_mark():
    ex, pp, ps = build(load_scenario(tiny()), [0])
    step(ex, pp, ps)
    # Mark 100, half-spread 10 bps, step 10 bps, 1000 USDT = 10 lots a level.
    assert rows(ps, 1) == [
        (POST_ONLY, BUY, 9990, 10, 0),
        (POST_ONLY, BUY, 9980, 10, 0),
        (POST_ONLY, SELL, 10010, 10, 0),
        (POST_ONLY, SELL, 10020, 10, 0),
    ]
    # Long 5 lots of a 10-lot limit: q = 0.5 shifts both sides by -0.5 * 0.5 * 10 bps.
    ex.state.pos[0, 1, 0] = 5
    step(ex, pp, ps)
    new = [r for r in rows(ps, 1) if r[0] == POST_ONLY]
    assert new == [
        (POST_ONLY, BUY, 9987, 10, 0),
        (POST_ONLY, BUY, 9977, 10, 0),
        (POST_ONLY, SELL, 10008, 10, 0),
        (POST_ONLY, SELL, 10018, 10, 0),
    ]
    cancels = [r for r in rows(ps, 1) if r[0] == CANCEL]
    assert len(cancels) == 4  # last step's four quotes, by id


def test_maker_quotes_and_limits_notional_at_the_mark():
    changes = {"population.makers.quotes_at_mark": True, "population.makers.limits_at_mark": True}
    ex, pp, ps = build(load_scenario(tiny(**changes)), [0])
    # Lots per level and the lot limit were converted at 100 (10 each). With the start
    # moved to 200 the mark (100) is half the start: sizes double to 20 lots, and 10 lots
    # long count as q = 10 / 10 * 100 / 200 = 0.5, the skew of the test above.
    pp = pp._replace(index_start=np.array([200.0, 1.0]))
    ex.state.pos[0, 1, 0] = 10
    step(ex, pp, ps)
    assert rows(ps, 1) == [
        (POST_ONLY, BUY, 9987, 20, 0),
        (POST_ONLY, BUY, 9977, 20, 0),
        (POST_ONLY, SELL, 10008, 20, 0),
        (POST_ONLY, SELL, 10018, 20, 0),
    ]


@pytest.mark.parametrize(
    "weight, ladder",
    [
        (0.0, []),  # still around the mark (100): every quote stays where it is
        (0.5, [(BUY, 10039), (BUY, 10029), (SELL, 10061), (SELL, 10071)]),
        (1.0, [(BUY, 10089), (BUY, 10079), (SELL, 10111), (SELL, 10121)]),
    ],
)
def test_maker_centres_its_ladder_between_mark_and_index(weight, ladder):
    changes = {
        "population.makers.fair_index_weight": weight,
        "population.makers.widen_volatility": 0.0,
    }
    ex, pp, ps = build(load_scenario(tiny(**changes)), [0])
    step(ex, pp, ps)
    ps.log_index[0, 0] = math.log(101.0)  # the index jumps 1% while the mark is at 100
    step(ex, pp, ps)
    # Half-spread 10 bps and step 10 bps around 100 + weight * (101 - 100).
    assert [r[1:3] for r in rows(ps, 1) if r[0] == POST_ONLY] == ladder


def test_maker_keeps_quotes_within_the_requote_band():
    ex, pp, ps = build(load_scenario(tiny(**{"population.makers.requote_bps": 5.0})), [0])
    step(ex, pp, ps)
    ids = ps.maker_orders[0, 0, 0].copy()
    # Long 5 lots: targets move 2.5 bps (< 5 bps), so every quote keeps its place.
    ex.state.pos[0, 1, 0] = 5
    step(ex, pp, ps)
    assert rows(ps, 1) == []
    assert (ps.maker_orders[0, 0, 0] == ids).all()
    # A partly filled quote is replaced at full size.
    buyer = pp.flow_start
    ex.step([[0, 0, buyer, IOC, BUY, 10010, 4, 0]])
    step(ex, pp, ps)
    cancel, new = rows(ps, 1)
    assert cancel == (CANCEL, 0, 0, 0, int(ids[1, 0]))
    assert new[:2] == (POST_ONLY, SELL) and new[3] == 10


def test_maker_withdraws_under_stress_everywhere_and_returns_gradually():
    ex, pp, ps = build(load_scenario(tiny()), [0])
    step(ex, pp, ps)
    ps.liq_signal[0, 0] = 10.0 * pp.liquidation_reference[0]  # a liquidation burst
    logs = step(ex, pp, ps)
    assert ps.away[0, 0] == 1
    # The burst is 10 references; the one firm has the default threshold, 0.5.
    parts = dict(zip(STRESS_SIGNALS, logs.maker_stress[0, 0, 0], strict=True))
    assert parts["liquidations"] == pytest.approx(10.0 / 0.5)
    assert max(parts, key=parts.get) == "liquidations"
    assert logs.maker_away[0, 0, 0] == 1
    assert all(r[0] == CANCEL for r in rows(ps, 1))
    assert ex.book("PERP") == {"bids": [], "asks": []}
    ps.liq_signal[0, 0] = 0.0
    ps.vol_signal[0, 0] = 0.0
    step(ex, pp, ps, 2)
    assert ps.away[0, 0] == 1  # calm for 2 of the 3 steps it waits
    step(ex, pp, ps)
    assert ps.away[0, 0] == 0
    assert ps.ramp[0, 0] == pytest.approx(0.25)  # sizes ramp back over 4 steps
    assert [r[3] for r in rows(ps, 1)] == [2, 2, 2, 2]  # int(10 * 0.25)


def test_obliged_maker_stays_with_capped_spread():
    raw = tiny(**{"population.obligations": {"max_spread_bps": 10.0, "min_notional": 500.0}})
    ex, pp, ps = build(load_scenario(raw, mm_obligations=True), [0])
    ps.liq_signal[0, 0] = 10.0 * pp.liquidation_reference[0]
    step(ex, pp, ps)
    assert ps.away[0, 0] == 0
    quotes = [r for r in rows(ps, 1) if r[0] == POST_ONLY]
    # Stressed: spread cap 10 bps x 3, so half-spread 15 bps; size 10 lots >= 5.
    assert quotes[0] == (POST_ONLY, BUY, math.floor(100 * (1 - 0.0015) / 0.01), 10, 0)


def one_long_trader(**extra):
    """A tiny scenario with one 2x long trader with a 5% stop, against one desk."""
    leveraged = {
        "count": 1,
        "long_share": 1.0,
        "leverage_min": 2.0,
        "leverage_max": 2.0,
        "weights": {"PERP": 1.0},
        "median_notional": {"PERP": 1000.0},
        "stop_loss_share": 1.0,
        "stop_distance": 0.05,
        "entry_dispersion": 0.0,
        "desks": 1,
        **extra,
    }
    return tiny(**{"population.leveraged": leveraged})


def test_stop_loss_closes_with_a_market_order_once_crossed():
    raw = one_long_trader()
    ex, pp, ps = build(load_scenario(raw), [0])
    trader = pp.lev_start
    lots = int(ex.state.pos[0, trader, 0])
    assert lots > 0 and 0.925 * 100 <= ps.stop_price[0, 0] <= 0.975 * 100
    step(ex, pp, ps)
    assert rows(ps, trader) == []
    ex.state.mark_price[0, 0] = ps.stop_price[0, 0] - 0.01
    ex.state.index_price[0, 0] = ex.state.mark_price[0, 0]
    ps.log_index[0, 0] = math.log(ex.state.mark_price[0, 0])
    step(ex, pp, ps)
    assert rows(ps, trader) == [(MARKET, SELL, 0, lots, 0)]
    assert ps.stop_price[0, 0] == 0.0


def step_until_turnover(ex, pp, ps):
    """Step the one trader until it turns over; its mark and equity before that step."""
    s, trader = ex.state, pp.lev_start
    for _ in range(20):
        mark = s.mark_price[0, 0]
        equity = s.cash[0, trader] + s.pos[0, trader, 0] * mark
        step(ex, pp, ps)
        if ps.turned_at[0, 0] >= 0:
            return mark, equity
    raise AssertionError("no turnover in 20 steps at one per step")


def test_turnover_closes_reopens_and_rearms_the_stop():
    raw = one_long_trader(holding_period=1.0)  # one turnover per step on average
    ex, pp, ps = build(load_scenario(raw), [0])
    pp = pp._replace(long_share=0.0)  # opened long, reopens short
    s, trader = ex.state, pp.lev_start
    lots = int(s.pos[0, trader, 0])
    assert lots > 0 and ps.n_stops[0] == 1
    mark, equity = step_until_turnover(ex, pp, ps)
    # Hand-computed: close all, then open 90% of equity x 2 at the mark.
    reopen = int(0.9 * equity * 2.0 / mark)
    assert rows(ps, trader) == [(MARKET, SELL, 0, lots, 0), (MARKET, SELL, 0, reopen, 0)]
    assert s.pos[0, trader, 0] == -reopen
    assert ps.n_stops[0] == 0  # the old stop is dropped; the new one waits for the fill
    # Next step (no further turnover): the stop is set above the short's entry.
    step(ex, pp._replace(turnover_rate=0.0), ps)
    assert ps.n_stops[0] == 1 and ps.stop_list[0, 0] == 0
    assert ps.stop_price[0, 0] == s.entry[0, trader, 0] * (1.0 + ps.stop_gap[0, 0])


@pytest.mark.parametrize("leverage, lots", [(20.0, 45), (2.0, 18)])
def test_reopened_position_is_sized_within_the_brackets(leverage, lots):
    """90% of 1,000 USDT of equity as margin, at a mark of 100, with brackets of 100x
    below 1,000 USDT, 5x to 5,000 and 2x above: at 20x, 9 lots fit the first bracket,
    45 the second (4,500 USDT at 5x) and none the third, where 180 lots would be
    20x of the margin; at 2x the brackets never bind and it is 18 lots, 2x of it."""
    brackets = [[0, 100, 0.01], [1000, 5, 0.05], [5000, 2, 0.1]]
    raw = one_long_trader()
    raw["exchange"]["markets"][0]["brackets"] = brackets
    ex, pp, ps = build(load_scenario(raw), [0])
    s, trader = ex.state, pp.lev_start
    s.pos[0, trader, 0] = 0
    s.cash[0, trader] = 1000.0
    s.mark_price[0, 0] = 100.0
    s.leverage[0, trader] = leverage
    assert reopen_lots(ex.params, s, 0, trader, 0) == lots


def test_reopened_position_stays_within_the_position_limit():
    """At 2x, 18 lots of 100 USDT fit the margin (above); a 1,250 USDT limit leaves 12,
    where a larger order would be refused whole."""
    ex, pp, ps = build(load_scenario(one_long_trader(), position_limits=1250.0), [0])
    s, trader = ex.state, pp.lev_start
    s.pos[0, trader, 0] = 0
    s.cash[0, trader] = 1000.0
    s.mark_price[0, 0] = 100.0
    s.leverage[0, trader] = 2.0
    assert reopen_lots(ex.params, s, 0, trader, 0) == 12


@pytest.mark.parametrize(
    "slippage, limit_of",
    [
        (0.003, lambda mark: math.floor(mark / 0.01 * (1.0 - 0.003))),  # 30 bps under the mark
        (0.5, lambda mark: math.ceil(mark * (1.0 - 0.05) / 0.01 - 1e-9)),  # the 5% band's floor
    ],
)
def test_turnover_with_a_slippage_cap_sends_iocs_at_the_cap(slippage, limit_of):
    raw = one_long_trader(holding_period=1.0, turnover_slippage=slippage)
    ex, pp, ps = build(load_scenario(raw), [0])
    pp = pp._replace(long_share=0.0)  # opened long, reopens short
    s, trader = ex.state, pp.lev_start
    lots = int(s.pos[0, trader, 0])
    mark, equity = step_until_turnover(ex, pp, ps)
    limit = limit_of(mark)
    reopen = int(0.9 * equity * 2.0 / mark)
    assert rows(ps, trader) == [(IOC, SELL, limit, lots, 0), (IOC, SELL, limit, reopen, 0)]


def _one_role(**flow):
    """TINY with no firm and, in PERP, only the background flow given (and noise's account)."""
    quiet = {
        "noise_rate": 0.0,
        "limit_rate": 0.0,
        "momentum_rate": 0.0,
        "arb_notional": 0.0,
        "anchor_notional": 0.0,
    }
    return tiny(**{"population.flow": {"PERP": {**quiet, **flow}}, "population.makers.firms": 0})


def _anchor_only():
    """One anchor trader in PERP: threshold 1%, 10 lots a threshold."""
    return _one_role(anchor_bps=100.0, anchor_notional=1000.0, anchor_capacity=100000.0)


def test_anchor_buys_below_the_index_in_proportion_to_the_gap():
    ex, pp, ps = build(load_scenario(_anchor_only()), [0])
    seller = pp.flow_start + 0  # the noise account of PERP rests an ask at 97
    ex.step([[0, 0, seller, 0, SELL, 9700, 50, 0]])
    step(ex, pp, ps)
    anchor = pp.flow_start + 1
    # Gap -3% is 3 thresholds: int(10 lots * 3) + 1 = 31 lots, IOC limited at 99.
    assert rows(ps, anchor) == [(IOC, BUY, 9900, 31, 0)]


def test_anchor_sends_at_the_band_edge_when_its_bound_is_outside():
    ex, pp, ps = build(load_scenario(_anchor_only()), [0])
    seller = pp.flow_start + 0
    ex.step([[0, 0, seller, 0, SELL, 9700, 50, 0]])
    # A mark far below the index: 99 is outside the 5% band around 90 (85.5-94.5),
    # so the venue would reject it; the anchor buys at the band's top instead.
    ex.state.mark_price[0, 0] = 90.0
    step(ex, pp, ps)
    assert rows(ps, pp.flow_start + 1) == [(IOC, BUY, 9450, 31, 0)]


@pytest.mark.parametrize("blocked_from, lots", [(-1, 31), (5, 31), (0, 15)])
def test_arbitrage_trades_the_gap_with_less_inventory_once_blocked(blocked_from, lots):
    raw = _one_role(arb_bps=100.0, arb_notional=1000.0, arb_capacity=1e5, blocked_capacity=1500.0)
    raw["population"]["arbitrage_blocked_from"] = blocked_from
    ex, pp, ps = build(load_scenario(raw), [0])
    ex.step([[0, 0, pp.flow_start, 0, SELL, 9700, 50, 0]])  # an ask at 97, index 100
    step(ex, pp, ps)  # step 1: blocked only when blocking started at step 0
    # Gap -3% is 3 thresholds: int(10 lots * 3) + 1 = 31 lots, IOC limited at 99;
    # blocked, its 1,500 USDT of inventory is 15 lots.
    assert rows(ps, pp.flow_start + 3) == [(IOC, BUY, 9900, lots, 0)]


@pytest.mark.parametrize(
    "blocked_from, side, price, lots",
    [
        # A 3% discount is 3 thresholds of 1,000 coins, + 1 (0.97 in ticks of 1e-4
        # reads a hair above 0.97, so the product is 2,999.99...).
        (-1, BUY, 9700, 3000),
        (0, BUY, 9700, 1500),  # blocked: 1,500 USDT of room
        (-1, SELL, 10300, 3001),  # a 3% premium: sells coins it holds
        (0, SELL, 10300, 1500),
    ],
)
def test_spot_arbitrage_holds_its_book_to_the_conversion_value_both_ways(
    blocked_from, side, price, lots
):
    """The collateral's arbitrageur starts with coins to sell and cash to buy: it
    buys a discount as it sells a premium, within its capacity either way."""
    quiet = {"noise_rate": 0.0, "limit_rate": 0.0, "momentum_rate": 0.0, "anchor_notional": 0.0}
    arb = {
        "arb_bps": 100.0,
        "arb_notional": 1000.0,
        "arb_capacity": 1e5,
        "blocked_capacity": 1500.0,
    }
    raw = tiny(
        **{"population.flow": {"COIN": {**quiet, **arb}}, "population.makers.firms": 0},
    )
    raw["population"]["arbitrage_blocked_from"] = blocked_from
    ex, pp, ps = build(load_scenario(raw), [0])
    noise, arbitrageur = pp.flow_start + 4, pp.flow_start + 4 + 3
    assert ex.state.pos[0, arbitrageur, 1] == 100_000  # its capacity in coins at 1 USDT
    ex.step([[0, 1, noise, 0, -side, price, 5000, 0]])  # the other side of the gap, index 1
    step(ex, pp, ps)
    limit = 9900 if side == BUY else 10100  # the threshold, 1% from the index
    assert rows(ps, arbitrageur) == [(IOC, side, limit, lots, 0)]


@pytest.mark.parametrize("trend, side", [(0.002, BUY), (-0.002, SELL), (0.0004, None)])
def test_momentum_follows_a_trend_beyond_its_threshold(trend, side):
    raw = _one_role(momentum_rate=1.0, momentum_bps=5.0, momentum_notional=1000.0)
    ex, pp, ps = build(load_scenario(raw), [0])
    ps.trend[0, 0] = trend  # the EWMA of the mark's returns, read before this step's update
    step(ex, pp, ps)
    orders = rows(ps, pp.flow_start + 2)
    if side is None:  # 4 bps of trend: under the 5 bps threshold
        assert orders == []
    else:  # 1,000 USDT at 100 is 10 lots, times a Pareto draw >= 1 capped at 100
        [(kind, got_side, price, lots, _)] = orders
        assert (kind, got_side, price) == (MARKET, side, 0) and 10 <= lots <= 1000


def test_limit_orders_sit_further_from_a_jumpy_mark():
    raw = _one_role(limit_rate=20.0, limit_offset_bps=100.0, limit_vol_scaling=0.5)
    raw["population"]["index"]["PERP"]["volatility"] = 0.0

    def limit_orders(mark_vol):
        ex, pp, ps = build(load_scenario(raw), [0])
        # The mark does not move, so the step only decays the signal before the flow reads it.
        ps.mark_vol[0, 0] = mark_vol / (1.0 - pp.volatility_alpha)
        step(ex, pp, ps)
        orders = rows(ps, pp.flow_start)  # the noise account of PERP
        return [(side, price) for kind, side, price, _, _ in orders if kind == LIMIT]

    usual = limit_orders(0.001**2)  # the base volatility: the configured distance
    jumpy = limit_orders(0.003**2)  # three times it: 1 + 0.5 * (3 - 1) = twice as far
    assert len(usual) == len(jumpy) > 5
    for (side, usual_price), (jumpy_side, jumpy_price) in zip(usual, jumpy, strict=True):
        assert side == jumpy_side
        # Distances from the mark (100.00, in ticks of 0.01), each rounded away once.
        usual_gap, jumpy_gap = abs(10_000 - usual_price), abs(10_000 - jumpy_price)
        assert abs(jumpy_gap - 2 * usual_gap) <= 2


def test_loopers_unwind_once_risk_off():
    raw = tiny(
        **{
            "population.loopers": {
                "count": 2,
                "market": "COIN",
                "equity": 1000.0,
                "loop": 4.0,
                "unwind_trigger": 0.05,
                "unwind_rate": 0.1,
            },
            "population.shocks": [{"market": "PERP", "start": 1, "duration": 1, "size": -0.1}],
        }
    )
    ex, pp, ps = build(load_scenario(raw), [0])
    assert ex.state.pos[0, pp.loop_start, 1] == 4000 and ex.state.cash[0, pp.loop_start] == -3000
    step(ex, pp, ps)
    assert rows(ps, pp.loop_start) == []
    step(ex, pp, ps)  # index now 10% down
    assert rows(ps, pp.loop_start) == [(MARKET, SELL, 0, 400, 0)]


def test_index_follows_scheduled_shock_and_rebound():
    raw = tiny(
        **{
            "population.shocks": [
                {
                    "market": "PERP",
                    "start": 2,
                    "duration": 4,
                    "size": -0.2,
                    "rebound": 0.5,
                    "rebound_duration": 2,
                }
            ]
        },
        steps=10,
    )
    ex, pp, ps = build(load_scenario(raw), [0])
    logs = step(ex, pp, ps, 10)
    index = logs.market[0, :, 0, MARKET_STAT_NAMES.index("index")]
    expected = 100 * np.exp(np.array([0, 0, -0.05, -0.1, -0.15, -0.2, -0.15, -0.1, -0.1, -0.1]))
    np.testing.assert_allclose(index, expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"population.makers.firmz": 3}, r"unknown field\(s\) \['firmz'\] in population.makers"),
        ({"population.makers.firms": "five"}, "population.makers.firms must be an integer"),
        ({"population.leveraged.long_share": 1.5}, r"population.leveraged.long_share must be in"),
        (
            {"population.leveraged.holding_period": 0.5},
            r"population.leveraged.holding_period must be in \[1.0, inf\]",
        ),
        (
            {"population.leveraged.turnover_slippage": 0.0},
            r"population.leveraged.turnover_slippage must be in \(0.0, inf\]",
        ),
        (
            {"population.makers.fair_index_weight": -0.1},
            r"population.makers.fair_index_weight must be in \[0.0, 1.0\]",
        ),
        ({"population.shocks": [{"market": "XYZ"}]}, r"population.shocks\[0\].market must name"),
        (
            {"switches": {"circuit_breakr": 0.1}},
            r"unknown field\(s\) \['circuit_breakr'\] in switches",
        ),
        ({"switches": {"collateral_pricing": "oracle"}}, "switches.collateral_pricing must be"),
        ({"steps": 0}, r"steps must be in \[2, "),
        ({"population.index": {"PERP": {"start": 100.0}}}, "needs an entry for market 'COIN'"),
        ({"exchange.n_accounts": 5}, "n_accounts is set by the population"),
    ],
)
def test_bad_scenarios_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        load_scenario(tiny(**changes))


def test_unknown_scenario_and_override():
    with pytest.raises(ConfigError, match="unknown scenario 'nope'; known: .*oct10"):
        load_scenario("nope")
    with pytest.raises(ConfigError, match="unknown override 'colour'"):
        load_scenario("calm", colour="red")


def test_no_account_starts_below_maintenance_margin():
    # Seed 38 once drew a hedge whose alt leg was sized by the major's bracket:
    # it started at a fifth of its maintenance margin and was liquidated at once.
    ex, _, _ = build(load_scenario("oct10"), range(40))
    accounts = range(ex.state.pos.shape[1])
    ratios = (
        eq / mm
        for e in range(40)
        for eq, mm in (equity_and_mm(ex.params, ex.state, e, a) for a in accounts)
        if mm > 0
    )
    assert min(ratios) > 1.0


def test_a_desk_flipped_at_setup_enters_at_the_flip_price_as_the_engine_books_it():
    from types import SimpleNamespace

    from mmgym.population.build import _trade

    s = SimpleNamespace(
        pos=np.zeros((1, 3, 1), np.int64), entry=np.zeros((1, 3, 1)), cash=np.zeros((1, 3))
    )
    desk = 2
    _trade(s, 0, 1, desk, 0, -10, 100.0, 1000.0)  # the desk buys 10 at 100
    _trade(s, 0, 0, desk, 0, 25, 110.0, 2750.0)  # and sells 25 at 110: short 15 from 110
    assert s.pos[0, desk, 0] == -15 and s.entry[0, desk, 0] == 110.0
    # Its wallet balance (cash + position at entry) holds the 100 it realised.
    assert s.cash[0, desk] + s.pos[0, desk, 0] * s.entry[0, desk, 0] == 100.0


def test_leveraged_traders_open_within_the_position_limit():
    scenario = load_scenario("oct10", **{"switches.position_limits": 1e5})
    ex, pp, _ = build(scenario, [0])
    start = np.array([scenario.population.index[m.name].start for m in scenario.exchange.markets])
    traders = slice(pp.lev_start, pp.lev_start + pp.n_lev)
    notional = np.abs(ex.state.pos[0, traders, :2]) * ex.params.lot_size[:2] * start[:2]
    assert notional.max() <= 1e5
    # Without the limit the largest traders hold several times that.
    free, pp, _ = build(load_scenario("oct10"), [0])
    assert (np.abs(free.state.pos[0, traders, :2]) * ex.params.lot_size[:2] * start[:2]).max() > 2e5


def test_same_seed_same_run_and_conservation():
    from mmgym.scenario import run

    a = run("oct10", seed=1, steps=600)
    b = run("oct10", seed=1, steps=600)
    c = run("oct10", seed=2, steps=600)
    for key in ("last", "depth_1pct", "liq_notional_long"):
        for name in a.timeline[key]:
            assert np.array_equal(a.timeline[key][name], b.timeline[key][name], equal_nan=True)
    assert not np.array_equal(a.timeline["last"]["BTCUSDT"], c.timeline["last"]["BTCUSDT"])
    for result in (a, c):
        assert result.invariants["position_imbalance"] == 0
        assert result.invariants["cash_drift"] < 1e-3


def test_each_step_logs_every_market_total_so_a_passing_drift_is_caught():
    """The episode kernel logs each market's sum of positions at every step: a
    perpetual's stays 0 and a spot book's stays at its deposits, and a change made
    between steps shows in the next step's record, not only at the end."""
    ex, pp, ps = build(load_scenario("calm"), [0])
    deposits = ex.deposited_holdings[0].astype(np.int64)
    perp = ex.params.market_kind == PERP
    logs = step(ex, pp, ps, n=3)
    assert np.all(logs.totals[0][:, perp] == 0)
    assert np.all(logs.totals[0][:, ~perp] == deposits[~perp])
    spot = int(np.flatnonzero(~perp)[0])
    holder = int(np.argmax(ex.state.pos[0, :, spot]))
    ex.state.pos[0, holder, spot] += 5
    assert step(ex, pp, ps).totals[0, 0, spot] == deposits[spot] + 5
