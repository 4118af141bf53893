"""Order entry, book semantics and bad input through the ``Exchange`` front end."""

import math

import numpy as np
import pytest

from mmgym.core import BookFullError, ConfigError, Exchange, ExchangeConfig, MarketConfig
from mmgym.core.codes import (
    ACCEPTED,
    BUY,
    CANCEL,
    CANCEL_ALL,
    IOC,
    LIMIT,
    MARKET,
    POST_ONLY,
    REJECT_BALANCE,
    REJECT_MARGIN,
    REJECT_POST_ONLY,
    REJECT_PRICE_BAND,
    REJECT_UNKNOWN_ORDER,
    SELL,
)


def exchange(**kw):
    markets = kw.pop(
        "markets",
        (
            MarketConfig("BTC", tick_size=1.0, lot_size=0.001, maker_fee=-0.0001),
            MarketConfig("USDE", kind="spot", tick_size=0.0001, lot_size=1.0),
        ),
    )
    ex = Exchange(ExchangeConfig(markets=markets, n_accounts=kw.pop("n_accounts", 4), **kw))
    ex.open([100_000.0, 1.0])
    for a in range(1, ex.config.n_accounts + 1):
        ex.deposit(a, 1e6, leverage=10, holdings={"USDE": 1000.0})
    return ex


def row(account, kind, side=BUY, price=0, qty=1, market=0, ref=0):
    return [0, market, account, kind, side, price, qty, ref]


def test_price_time_priority_and_partial_fills():
    ex = exchange()
    res = ex.step(
        [
            row(1, LIMIT, SELL, 100_010, 5),
            row(2, LIMIT, SELL, 100_005, 5),
            row(3, LIMIT, SELL, 100_005, 5),  # same price, later: behind account 2
            row(4, MARKET, BUY, qty=8),
        ]
    )
    assert res[:, 0].tolist() == [ACCEPTED] * 4 and res[3, 2] == 8
    fills = ex.fills()
    assert fills[:, 2].tolist() == [2, 3]  # makers in time order
    assert fills[:, 5].tolist() == [5, 3]
    assert ex.book("BTC")["asks"] == [(100_005.0, pytest.approx(0.002)), (100_010.0, 0.005)]


def test_maker_rebate_and_taker_fee_are_conserved():
    ex = exchange()
    ex.step([row(1, LIMIT, SELL, 100_000, 10), row(2, MARKET, BUY, qty=10)])
    notional = 100_000.0 * 0.01
    assert ex.state.fees_paid[0, 1] == pytest.approx(-0.0001 * notional)
    assert ex.state.fees_paid[0, 2] == pytest.approx(0.0005 * notional)
    assert ex.invariants()["cash_drift"] < 1e-6


def test_invariants_see_each_kind_of_leak():
    """The conservation checks read ``invariants()``: it must report what leaks."""
    ex = exchange()
    ex.step([row(1, LIMIT, SELL, 100_000, 10), row(2, MARKET, BUY, qty=10)])
    assert ex.invariants() == {"position_imbalance": 0, "holdings_drift": 0.0, "cash_drift": 0.0}
    ex.state.cash[0, 3] += 1.5
    assert ex.invariants()["cash_drift"] == pytest.approx(1.5)
    ex.state.pos[0, 4, 0] += 7
    assert ex.invariants()["position_imbalance"] == 7
    ex.state.pos[0, 4, 1] -= 3
    assert ex.invariants()["holdings_drift"] == 3.0


def test_self_trade_prevention_cancels_the_resting_order():
    ex = exchange()
    ex.step([row(1, LIMIT, SELL, 100_000, 5), row(2, LIMIT, SELL, 100_001, 5)])
    res = ex.step([row(1, LIMIT, BUY, 100_001, 5)])
    assert res[0, 2] == 5
    assert ex.fills()[-1, 2] == 2  # filled against account 2, own order cancelled
    assert ex.book("BTC")["asks"] == []
    assert ex.state.open_sell[0, 1, 0] == 0


def test_order_kinds_and_cancels():
    ex = exchange()
    res = ex.step([row(1, LIMIT, SELL, 100_000, 5), row(2, LIMIT, BUY, 99_990, 5)])
    ask_id, bid_id = res[:, 1]
    res = ex.step(
        [
            row(3, POST_ONLY, BUY, 100_000, 1),  # would take
            row(3, POST_ONLY, BUY, 99_995, 1),
            row(3, IOC, BUY, 100_000, 7),  # takes 5, the rest is dropped
            row(4, CANCEL, ref=bid_id),  # not account 4's order
            row(2, CANCEL, ref=bid_id),
            row(2, CANCEL, ref=bid_id),  # already gone
            row(1, CANCEL, ref=ask_id),  # already filled
            row(3, CANCEL_ALL),
        ]
    )
    assert res[:, 0].tolist() == [
        REJECT_POST_ONLY,
        ACCEPTED,
        ACCEPTED,
        REJECT_UNKNOWN_ORDER,
        ACCEPTED,
        REJECT_UNKNOWN_ORDER,
        REJECT_UNKNOWN_ORDER,
        ACCEPTED,
    ]
    assert res[2, 2] == 5
    assert ex.book("BTC") == {"bids": [], "asks": []}


def test_price_band_rejects_limits_and_caps_market_orders():
    ex = exchange()
    res = ex.step([row(1, LIMIT, SELL, 106_000, 1), row(1, LIMIT, SELL, 104_000, 1)])
    assert res[:, 0].tolist() == [REJECT_PRICE_BAND, ACCEPTED]
    ex.step([row(1, LIMIT, SELL, 105_000, 1)])
    res = ex.step([row(2, MARKET, BUY, qty=2)])
    assert res[0, 2] == 2  # 105,000 is exactly the band edge


def test_initial_margin_and_spot_balance_checks():
    ex = exchange()
    ex.deposit(1, 0.0, leverage=2)
    # Account 1 holds 1e6 USDT: at 2x it may open 2e6 notional = 20 BTC.
    ex.step([row(2, LIMIT, SELL, 100_000, 30_000)])
    res = ex.step([row(1, LIMIT, BUY, 100_000, 20_001), row(1, LIMIT, BUY, 99_000, 19_000)])
    assert res[:, 0].tolist() == [REJECT_MARGIN, ACCEPTED]
    res = ex.step([row(3, LIMIT, SELL, 10_000, 1001, market=1)])
    assert res[0, 0] == REJECT_BALANCE


def test_an_order_pays_its_open_loss_against_the_mark():
    """Order cost = initial margin + open loss (Binance): what an order loses against
    the mark of 100,000 as it fills must be covered too, else a 100x account could
    open a position bankrupt at once and leave the loss to the insurance fund."""
    btc = MarketConfig("BTC", tick_size=1.0, lot_size=0.001)
    ex = Exchange(ExchangeConfig(markets=(btc,), n_accounts=4))
    ex.open([100_000.0])
    ex.deposit(1, 1_000.0, leverage=100)  # initial margin of 1 BTC: 1,000
    ex.deposit(4, 1_000.0, leverage=100)
    ex.deposit(2, 1e6, leverage=10)
    ex.deposit(3, 2_000.0, leverage=100)
    res = ex.step(
        [
            row(2, LIMIT, SELL, 100_000, 500),
            row(2, LIMIT, SELL, 102_000, 1000),
            # A market buy of 1 BTC sweeps 0.5 at the mark and 0.5 at 102,000: open loss
            # 0.5 * 2,000 = 1,000 on top of the 1,000 initial margin.
            row(1, MARKET, BUY, qty=1000),
            row(3, MARKET, BUY, qty=1000),
            # A limit order is charged at its price: 0.5 * 1,000 = 500, plus 500 margin.
            row(1, LIMIT, BUY, 101_000, 500),
            row(4, LIMIT, BUY, 101_000, 501),  # 501 + 501 > 1,000
        ]
    )
    assert res[2:, 0].tolist() == [REJECT_MARGIN, ACCEPTED, ACCEPTED, REJECT_MARGIN]
    assert res[3, 2] == 1000 and ex.state.pos[0, 3, 0] == 1000  # 3 could pay it


def test_a_cross_account_pays_for_coins_from_its_balance_not_its_profit():
    """Unrealised profit backs a cross account's positions, but coins bought with it
    would leave the margin (a cross account's coins are no collateral)."""
    usde = MarketConfig("USDE", kind="spot", tick_size=0.0001, lot_size=1.0)
    btc = MarketConfig("BTC", tick_size=1.0, lot_size=0.001)
    ex = Exchange(ExchangeConfig(markets=(btc, usde), n_accounts=3))
    ex.open([100_000.0, 1.0])
    ex.deposit(1, 20_000.0, leverage=10)
    ex.deposit(2, 1e6, leverage=10, holdings={"USDE": 100_000.0})
    ex.deposit(3, 1e6, leverage=10)
    ex.step([row(2, LIMIT, SELL, 100_000, 1000), row(1, LIMIT, BUY, 100_000, 1000)])
    # The index rises 10% and a trade there moves the mark with it.
    trade = [row(2, LIMIT, SELL, 105_000, 10), row(3, LIMIT, BUY, 105_000, 10)]
    ex.step(trade, index_prices=[105_000.0, 1.0])
    trade = [row(2, LIMIT, SELL, 110_000, 10), row(3, LIMIT, BUY, 110_000, 10)]
    ex.step(trade, index_prices=[110_000.0, 1.0])
    s = ex.state
    mark, entry = s.mark_price[0, 0], s.entry[0, 1, 0]
    wallet = s.cash[0, 1] + entry  # 1 BTC held
    profit = mark - entry
    spendable = wallet - mark / 10  # less the initial margin at 10x
    assert profit > 5_000 and spendable > 1_000
    ask = row(2, LIMIT, SELL, 10_000, 100_000, market=1)  # USDE at 1.0
    over = row(1, LIMIT, BUY, 10_000, int(spendable + profit / 2), market=1)
    within = row(1, LIMIT, BUY, 10_000, int(spendable) - 1, market=1)
    res = ex.step([ask, over, within])
    assert res[1:, 0].tolist() == [REJECT_MARGIN, ACCEPTED]
    assert s.pos[0, 1, 1] == int(spendable) - 1


def test_book_full_raises_a_clear_error():
    ex = exchange(book_capacity=4)
    ex.step([row(1, LIMIT, SELL, 100_000 + i, 1) for i in range(4)])
    with pytest.raises(BookFullError, match="book_capacity=4"):
        ex.step([row(2, LIMIT, SELL, 100_010, 1)])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (row(9, LIMIT, BUY, 100_000), r"orders\[0\]\.account must be in \[1, 4\]"),
        (row(0, LIMIT, BUY, 100_000), r"orders\[0\]\.account must be in \[1, 4\]"),
        (row(1, LIMIT, BUY, 100_000, market=2), r"orders\[0\]\.market must be in \[0, 1\]"),
        (row(1, 9, BUY, 100_000), r"orders\[0\]\.kind must be in \[0, 5\]"),
        (row(1, LIMIT, 0, 100_000), r"orders\[0\]\.side must be \+1"),
        (row(1, LIMIT, BUY, 100_000, qty=0), r"orders\[0\]\.qty must be in \[1, "),
        (row(1, LIMIT, BUY, -5), r"orders\[0\]\.price must be in \[1, "),
        (row(1, CANCEL, ref=0), r"orders\[0\]\.ref must be in \[1, "),
    ],
)
def test_bad_orders_name_the_field(bad, message):
    ex = exchange()
    with pytest.raises(ValueError, match=message):
        ex.step([bad])


def test_bad_order_arrays_and_prices():
    ex = exchange()
    with pytest.raises(ValueError, match=r"shape \(n, 8\)"):
        ex.step([[0, 0, 1]])
    with pytest.raises(ValueError, match="integers"):
        ex.step(np.zeros((1, 8)))
    with pytest.raises(ValueError, match="index_prices must be finite"):
        ex.step(None, [math.nan, 1.0])
    with pytest.raises(ValueError, match=r"index_prices must have shape \(2,\)"):
        ex.step(None, [1.0])
    with pytest.raises(ValueError, match="not a positive multiple of tick size"):
        ex.ticks("BTC", 100.5)
    with pytest.raises(ConfigError, match="unknown market 'ETH'"):
        ex.book("ETH")
    with pytest.raises(ValueError, match=r"account must be in \[1, 4\]"):
        ex.deposit(5, 1.0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"n_acounts": 3}, r"unknown field\(s\) \['n_acounts'\] in exchange"),
        ({"n_accounts": 0}, r"n_accounts must be in \[1, "),
        ({"n_accounts": 2.5}, "n_accounts must be an integer"),
        ({"adl_formula": "pro_rata"}, "adl_formula must be one of"),
        ({"markets": []}, "at least one market"),
        ({"markets": [{"tick_size": 1.0}]}, r"markets\[0\]\.name is required"),
        (
            {"markets": [{"name": "X", "tick": 1.0}]},
            r"unknown field\(s\) \['tick'\] in markets\[0\]",
        ),
        (
            {"markets": [{"name": "X", "tick_size": -1.0}]},
            r"markets\[0\]\.tick_size must be in \(0",
        ),
        ({"markets": [{"name": "X", "kind": "option"}]}, r"markets\[0\]\.kind must be one of"),
        (
            {"markets": [{"name": "X", "brackets": [[0, 10, 0.02], [100, 5, 0.01]]}]},
            r"markets\[0\]\.brackets\[1\]\.mmr must not decrease",
        ),
        (
            {"markets": [{"name": "X", "collateral_pricing": "oracle"}]},
            r"markets\[0\]\.collateral_pricing must be one of",
        ),
        ({"markets": [{"name": "X"}, {"name": "X"}]}, "names must be unique"),
        ({"borrow_imr": 0.01, "borrow_mmr": 0.05}, r"borrow_imr must be in \[0.05, 1"),
    ],
)
def test_bad_configs_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message):
        ExchangeConfig.from_dict(data)


def test_config_from_dict_round_trip():
    config = ExchangeConfig.from_dict(
        {
            "n_accounts": 3,
            "markets": [
                {"name": "ALT", "tick_size": 0.001, "brackets": "small_alt"},
                {"name": "USDE", "kind": "spot", "collateral_pricing": 0.3},
            ],
        }
    )
    assert config.markets[0].brackets[1].floor == 5000.0
    assert config.markets[1].book_weight == 0.3


def test_vector_of_envs_is_independent_and_identical():
    ex = exchange()
    ex2 = Exchange(ex.config, n_envs=3)
    ex2.open([100_000.0, 1.0])
    for a in range(1, 5):
        ex2.deposit(a, 1e6, leverage=10, holdings={"USDE": 1000.0})
    orders = [row(1, LIMIT, SELL, 100_000, 5), row(2, MARKET, BUY, qty=3)]
    ex.step(orders)
    batch = [[e] + r[1:] for e in (0, 2) for r in orders]
    ex2.step(batch)
    assert np.array_equal(ex2.state.pos[0], ex.state.pos[0])
    assert np.array_equal(ex2.state.pos[2], ex.state.pos[0])
    assert not ex2.state.pos[1, :, 0].any()  # env 1 got no orders


def test_position_limit_rejects_orders_that_would_exceed_it():
    from mmgym.core.codes import REJECT_POSITION_LIMIT

    markets = (
        MarketConfig("BTC", tick_size=1.0, lot_size=0.001, position_limit=500_000.0),
        MarketConfig("USDE", kind="spot", tick_size=0.0001, lot_size=1.0),
    )
    ex = exchange(markets=markets)
    ex.step([row(1, LIMIT, SELL, 100_000, 20_000)])
    # 5 BTC at mark 100,000 is the limit; 5.001 is over it, and so is 3 + 3 resting.
    res = ex.step(
        [
            row(2, LIMIT, BUY, 99_000, 5_001),
            row(2, LIMIT, BUY, 99_000, 3_000),
            row(2, LIMIT, BUY, 98_000, 3_000),
        ]
    )
    assert res[:, 0].tolist() == [REJECT_POSITION_LIMIT, ACCEPTED, REJECT_POSITION_LIMIT]


def test_circuit_breaker_halts_then_reopens():
    from mmgym.core.codes import REJECT_HALTED

    markets = (MarketConfig("BTC", tick_size=1.0, lot_size=0.001, circuit_breaker=0.02),)
    ex = Exchange(
        ExchangeConfig(
            markets=markets, n_accounts=2, breaker_window=100, breaker_halt=3, basis_window=1
        )
    )
    ex.open([100_000.0])
    for a in (1, 2):
        ex.deposit(a, 1e7, leverage=10)
    ex.step()  # step 0 anchors the reference at 100,000
    # Quotes around 97,000 take the mark there (mid 97,000, index 97,000): 3% > 2%.
    ex.step([row(1, LIMIT, SELL, 97_010, 1), row(2, LIMIT, BUY, 96_990, 1)], [97_000.0])
    assert ex.state.mark_price[0, 0] == pytest.approx(97_000.0)
    blocked = [row(2, LIMIT, BUY, 96_000, 1), row(1, CANCEL_ALL)]
    for _ in range(2):
        assert ex.step(blocked, [97_000.0])[:, 0].tolist() == [REJECT_HALTED, ACCEPTED]
    assert ex.step([row(2, LIMIT, BUY, 96_000, 1)], [97_000.0])[0, 0] == ACCEPTED
