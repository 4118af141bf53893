"""Hand-built liquidation cascades with figures computed by hand in the comments."""

import math

import numpy as np
import pytest

from mmgym.core import FUND, Exchange, ExchangeConfig, MarketConfig
from mmgym.core.codes import BUY, CANCEL_ALL, LIMIT, MARKET, SELL

ONE_TIER = ((0.0, 100.0, 0.01),)  # MMR 1% at every size keeps the arithmetic short


def market(name, **kw):
    base = dict(
        tick_size=0.01,
        lot_size=1.0,
        maker_fee=0.0,
        taker_fee=0.0,
        price_band=0.5,
        brackets=ONE_TIER,
    )
    base.update(kw)
    return MarketConfig(name, **base)


def order(k, account, kind, side, price, qty):
    return [0, k, account, kind, side, round(price * 100), qty, 0]


def quotes(k, maker, mid):
    """The maker re-centres a one-lot-deep quote 0.10 either side of ``mid``."""
    return [
        [0, k, maker, CANCEL_ALL, 0, 0, 0, 0],
        order(k, maker, LIMIT, BUY, mid - 0.1, 5),
        order(k, maker, LIMIT, SELL, mid + 0.1, 5),
    ]


def test_cascade_walks_book_then_fund_absorbs_then_adl_hits_top_short():
    config = ExchangeConfig(
        markets=(market("ALT", fund_unwind_cap=0.0),),
        n_accounts=6,
        basis_window=1,
        insurance_fund=2000.0,
        adl_formula="binance",
    )
    ex = Exchange(config)
    ex.open([100.0])
    ex.deposit(1, 1e6, leverage=10)  # market maker
    ex.deposit(2, 100.0, leverage=10)  # long 10 @ 100: BP 90, LP 90.909
    ex.deposit(3, 220.0, leverage=10)  # long 20 @ 100: BP 89, LP 89.90
    ex.deposit(4, 1000.0, leverage=10)  # short 40 @ 100, small wallet: ranks first for ADL
    ex.deposit(5, 1e5, leverage=10)  # short 20 @ 100, huge wallet: ranks last
    ex.deposit(6, 330.0, leverage=10)  # long 30 @ 100: BP 89, LP 89.90
    ex.step(
        [
            order(0, 4, LIMIT, SELL, 100.0, 40),
            order(0, 5, LIMIT, SELL, 100.0, 20),
            order(0, 2, MARKET, BUY, 0, 10),
            order(0, 3, MARKET, BUY, 0, 20),
            order(0, 6, MARKET, BUY, 0, 30),
        ]
    )
    assert ex.state.pos[0, :, 0].tolist() == [0, 0, 10, 20, -40, -20, 30]

    # Step 1: mark 90.5 < LP of account 2 only. Its IOC (limit = BP 90) walks two bid
    # levels: 5 @ 90.40 + 5 @ 90.20 = 903. Equity left 100 + 903 - 1000 = 3, which
    # is all the clearance fee (1.25% of 903 = 11.29) can take.
    ex.step(
        [
            order(0, 1, LIMIT, BUY, 90.4, 5),
            order(0, 1, LIMIT, BUY, 90.2, 5),
            order(0, 1, LIMIT, SELL, 90.6, 5),
        ],
        [90.5],
    )
    stats = ex.market_stats()["ALT"]
    assert stats["mark"] == pytest.approx(90.5)
    assert ex.state.pos[0, 2, 0] == 0
    assert ex.state.pos[0, 1, 0] == 10
    assert stats["liq_notional_long"] == pytest.approx(903.0)
    assert ex.state.cash[0, 2] == pytest.approx(0.0, abs=1e-9)
    assert ex.state.cash[0, FUND] == pytest.approx(2003.0)
    assert ex.state.pos[0, 3, 0] == 20 and ex.state.pos[0, 6, 0] == 30
    assert math.isnan(ex.env_stats()["fund_utilisation_at_adl"])  # no ADL in this step

    # Step 2: gap to 85, both remaining longs are under water (equity -80 and -120).
    # No bid above their BP of 89: account 3's 20 lots go to the fund at 89. The
    # fund's balance, 2003 (a takeover leaves it as it is), allows 23 lots at mark 85,
    # so it takes 3 of account 6's 30 and the other 27 are auto-deleveraged at 89
    # against account 4, whose Binance rank (0.6 * 34/1600) beats account 5's.
    ex.step(quotes(0, 1, 85.0), [85.0])
    stats = ex.market_stats()["ALT"]
    pos = ex.state.pos[0, :, 0]
    assert stats["mark"] == pytest.approx(85.0)
    assert pos[3] == 0 and pos[6] == 0
    assert pos[FUND] == 23
    assert ex.state.entry[0, FUND, 0] == pytest.approx(89.0)
    assert stats["takeover_notional"] == pytest.approx(23 * 89.0)
    assert stats["adl_count"] == 1
    assert stats["adl_notional"] == pytest.approx(27 * 89.0)
    assert pos[4] == -13 and pos[5] == -20
    assert ex.state.realised_pnl[0, 4] == pytest.approx(27 * 11.0)
    assert ex.env_stats()["insurance_fund"] == pytest.approx(2003.0 + 23 * (85.0 - 89.0))
    assert ex.env_stats()["socialised_loss"] == pytest.approx(0.0, abs=1e-9)
    # When ADL starts the fund holds 23 lots at mark 85 against a limit of its
    # balance, 2003: a 24th lot would not fit.
    assert ex.env_stats()["fund_utilisation_at_adl"] == pytest.approx(23 * 85.0 / 2003.0)
    inv = ex.invariants()
    assert inv["position_imbalance"] == 0 and inv["cash_drift"] < 1e-9


def test_adl_strips_the_profitable_hedge_leg_first():
    config = ExchangeConfig(
        markets=(market("MAJOR"), market("ALT")),
        n_accounts=4,
        basis_window=1,
        insurance_fund=1000.0,
        fund_takeover_limit=0.0,  # the fund takes nothing: every shortfall goes to ADL
    )
    ex = Exchange(config)
    ex.open([100.0, 100.0])
    maker, hedger, alt_long, alt_short = 1, 2, 3, 4
    ex.deposit(maker, 1e6, leverage=10)
    ex.deposit(hedger, 300.0, leverage=10)
    ex.deposit(alt_long, 100.0, leverage=10)
    ex.deposit(alt_short, 1e5, leverage=10)
    ex.step(
        [
            order(0, maker, LIMIT, SELL, 100.0, 10),
            order(0, hedger, MARKET, BUY, 0, 10),  # long the major
            order(1, hedger, LIMIT, SELL, 100.0, 10),  # short the alt (the hedge)
            order(1, alt_short, LIMIT, SELL, 100.0, 10),
            order(1, alt_long, MARKET, BUY, 0, 10),
            order(1, maker, MARKET, BUY, 0, 10),
        ]
    )
    assert ex.state.pos[0, hedger].tolist() == [10, -10]

    # The alt crashes to 85: the alt long (BP 90) is bankrupt and the fund may take
    # nothing, so 10 lots are deleveraged at 90. The hedger's short ranks first
    # (pnl 150 / wallet 300 times MM 18 / equity 400), so the hedge goes, and
    # its resting order is cancelled with it.
    ex.step(
        quotes(0, maker, 95.0) + quotes(1, maker, 85.0) + [order(0, hedger, LIMIT, BUY, 94.0, 1)],
        [95.0, 85.0],
    )
    assert ex.state.pos[0, hedger].tolist() == [10, 0]
    assert ex.state.pos[0, alt_short].tolist() == [0, -10]
    assert ex.state.open_buy[0, hedger].tolist() == [0, 0]
    assert ex.market_stats()["ALT"]["adl_count"] == 1
    assert ex.state.realised_pnl[0, hedger] == pytest.approx(10 * (100.0 - 90.0))

    # Naked now, the hedger is liquidated when the major falls to 60 (equity
    # -600 + 600 = 0 < MM 6). Nothing bids at its BP of 60, so ADL closes it too.
    ex.step(quotes(0, maker, 60.0) + quotes(1, maker, 85.0), [60.0, 85.0])
    assert ex.state.pos[0, hedger].tolist() == [0, 0]
    assert ex.market_stats()["MAJOR"]["liq_count_long"] == 1
    assert ex.state.pos[0, maker, 0] == 0
    inv = ex.invariants()
    assert inv["position_imbalance"] == 0 and inv["cash_drift"] < 1e-9


def alt_exchange_keeping_takeovers(n_accounts, insurance_fund):
    """One 10x alt market opened at 100 (MMR 10%) whose fund keeps what it takes over."""
    config = ExchangeConfig(
        markets=(market("ALT", brackets=((0.0, 10.0, 0.10),), fund_unwind_cap=0.0),),
        n_accounts=n_accounts,
        basis_window=1,
        insurance_fund=insurance_fund,
    )
    ex = Exchange(config)
    ex.open([100.0])
    return ex


def test_fund_limit_counts_its_balance_not_what_a_takeover_below_the_mark_earned():
    ex = alt_exchange_keeping_takeovers(n_accounts=3, insurance_fund=1000.0)
    maker, long_, short = 1, 2, 3
    ex.deposit(maker, 1e6, leverage=10)
    ex.deposit(long_, 600.0, leverage=10)  # long 30 @ 100: BP 80, liquidated below 88.89
    ex.deposit(short, 1e5, leverage=10)
    ex.step([order(0, short, LIMIT, SELL, 100.0, 30), order(0, long_, MARKET, BUY, 0, 30)])

    # Index 88, book 79 / 88.20, last 100: mark 88, under the long's 88.89 but above
    # its BP of 80. No bid at 80 or more, so the fund takes over at 80: 11 lots fit
    # its limit, its balance of 1000, at 88. They are worth 11 * 8 = 88 more than it
    # paid, but that gain is unrealised and leaves the balance, and so the limit, as
    # it was: there is no room for a 12th lot and 19 go to ADL (MECHANICS.md section 4).
    ex.step([order(0, maker, LIMIT, BUY, 79.0, 5), order(0, maker, LIMIT, SELL, 88.2, 5)], [88.0])
    stats = ex.market_stats()["ALT"]
    assert stats["mark"] == pytest.approx(88.0)
    assert ex.state.pos[0, :, 0].tolist() == [11, 0, 0, -11]
    assert stats["takeover_notional"] == pytest.approx(11 * 80.0)
    assert stats["adl_notional"] == pytest.approx(19 * 80.0)
    assert ex.env_stats()["insurance_fund"] == pytest.approx(1088.0)
    assert ex.env_stats()["fund_utilisation_at_adl"] == pytest.approx(11 * 88.0 / 1000.0)
    inv = ex.invariants()
    assert inv["position_imbalance"] == 0 and inv["cash_drift"] < 1e-9


def test_fund_takes_over_again_once_closing_its_own_short_realises_a_gain():
    ex = alt_exchange_keeping_takeovers(n_accounts=5, insurance_fund=2000.0)
    maker, long_, short_, long_side, short_side = 1, 2, 3, 4, 5
    ex.deposit(maker, 1e6, leverage=10)
    ex.deposit(long_, 1200.0, leverage=10)  # long 60 @ 100: BP 80, liquidated below 88.89
    ex.deposit(short_, 100.0, leverage=10)  # short 10 @ 100: BP 110
    ex.deposit(long_side, 1e5, leverage=10)
    ex.deposit(short_side, 1e5, leverage=10)
    ex.step(
        [
            order(0, short_side, LIMIT, SELL, 100.0, 60),
            order(0, long_, MARKET, BUY, 0, 60),
            order(0, long_side, LIMIT, BUY, 100.0, 10),
            order(0, short_, MARKET, SELL, 0, 10),
        ]
    )

    # Mark 112: the short's equity is -20. No ask at its BP of 110 or less, so the
    # fund (limit 2000 / 112 = 17 lots) takes all 10 over at 110 and keeps them.
    ex.step(
        [order(0, maker, LIMIT, BUY, 111.8, 5), order(0, maker, LIMIT, SELL, 120.0, 5)], [112.0]
    )
    assert ex.market_stats()["ALT"]["mark"] == pytest.approx(112.0)
    assert ex.state.pos[0, FUND, 0] == -10

    # Mark 88: the long goes, no bid at its BP of 80. The fund may close its short
    # and hold 2000 / 88 = 22 lots long: it takes 32 at 80, and closing the short
    # realises 10 * (110 - 80) = 300. Its balance of 2300 makes room for 26 lots
    # long, so it takes 4 more; the last 24 go to ADL against the profitable short.
    ex.step(
        [
            [0, 0, maker, CANCEL_ALL, 0, 0, 0, 0],
            order(0, maker, LIMIT, BUY, 79.0, 5),
            order(0, maker, LIMIT, SELL, 88.2, 5),
        ],
        [88.0],
    )
    stats = ex.market_stats()["ALT"]
    assert stats["mark"] == pytest.approx(88.0)
    assert ex.state.pos[0, :, 0].tolist() == [26, 0, 0, 0, 10, -36]
    assert ex.state.cash[0, FUND] + 26 * 80.0 == pytest.approx(2300.0)
    assert stats["adl_notional"] == pytest.approx(24 * 80.0)
    assert ex.env_stats()["fund_utilisation_at_adl"] == pytest.approx(26 * 88.0 / 2300.0)
    inv = ex.invariants()
    assert inv["position_imbalance"] == 0 and inv["cash_drift"] < 1e-9


def test_partial_liquidation_stops_at_lower_bracket_when_healthy():
    # Tier 2 starts at 5,000 notional: cutting a 6,000 position to just under it
    # lowers the MMR from 5% to 1%, which is enough to restore health here.
    brackets = ((0.0, 100.0, 0.01), (5000.0, 20.0, 0.05))
    config = ExchangeConfig(
        markets=(market("ALT", brackets=brackets),), n_accounts=3, basis_window=1
    )
    ex = Exchange(config)
    ex.open([100.0])
    ex.deposit(1, 1e6, leverage=10)
    ex.deposit(2, 560.0, leverage=20)
    ex.step([order(0, 1, LIMIT, SELL, 100.0, 60), order(0, 2, MARKET, BUY, 0, 60)])
    # At mark 91.9: equity 560 - 60 * 8.1 = 74 < MM 5514 * 5% - cum 200 = 75.7, so
    # it is liquidated. Keep ceil(5000 / 91.9) - 1 = 54 lots: sell 6, 5 @ 91.8 and
    # 1 @ 91.7 (BP 90.67 is lower). Equity 74 - 0.7 - fee 1.25% * 550.7 = 66.4 is
    # above MM 54 * 91.9 * 1% = 49.6: healthy again, the rest stays open.
    ex.step(quotes(0, 1, 91.9) + [order(0, 1, LIMIT, BUY, 91.7, 10)], [91.9])
    assert ex.state.pos[0, 2, 0] == 54
    assert ex.state.in_liquidation[0, 2] == 0
    assert ex.market_stats()["ALT"]["liq_count_long"] == 1


def test_liquidation_cap_spreads_a_large_liquidation_over_steps():
    config = ExchangeConfig(
        markets=(market("ALT", liquidation_cap=950.0),), n_accounts=3, basis_window=1
    )
    ex = Exchange(config)
    ex.open([100.0])
    ex.deposit(1, 1e6, leverage=10)
    ex.deposit(2, 300.0, leverage=10)
    ex.step([order(0, 1, LIMIT, SELL, 100.0, 30), order(0, 2, MARKET, BUY, 0, 30)])
    # LP = (3000 - 300) / (30 * 0.99) = 90.9; at 90.5 it is liquidated, but the cap
    # lets only floor(950 / 90.5) = 10 lots reach the book per step.
    book = [order(0, 1, LIMIT, BUY, 90.4 - 0.01 * i, 10) for i in range(5)]
    sizes = []
    for orders in (book + [order(0, 1, LIMIT, SELL, 90.6, 1)], None, None):
        ex.step(orders, [90.5])
        sizes.append(int(ex.state.pos[0, 2, 0]))
        assert ex.state.in_liquidation[0, 2] == (sizes[-1] > 0)
    assert sizes == [20, 10, 0]
    assert np.all(ex.state.pos[0, :, 0].sum() == 0)


def test_fund_covers_a_loss_the_traders_own_close_left():
    # Account 2 holds 10 long at 100 on 100 of margin and closes into a bid at 85:
    # a reducing order needs no margin, and leaves cash -50 with no position.
    config = ExchangeConfig(
        markets=(market("ALT"),), n_accounts=2, basis_window=1, insurance_fund=1000.0
    )
    ex = Exchange(config)
    ex.open([100.0])
    ex.deposit(1, 1e6, leverage=10)
    ex.deposit(2, 100.0, leverage=10)
    ex.step([order(0, 1, LIMIT, SELL, 100.0, 10), order(0, 2, MARKET, BUY, 0, 10)])
    ex.step([order(0, 1, LIMIT, BUY, 85.0, 10), order(0, 2, MARKET, SELL, 0, 10)])
    assert ex.state.pos[0, 2, 0] == 0
    assert ex.state.cash[0, 2] == 0.0
    assert ex.env_stats()["fund_payout"] == pytest.approx(50.0)
    assert ex.invariants()["cash_drift"] < 1e-9


def test_unified_liquidation_sells_inside_the_band_and_keeps_its_equity():
    # The trader's collateral crashed from 1 to 0.1: equity 100 against MM 100
    # (10% of 1,000), uniMMR 1.0 < 1.05. Its bankruptcy price, 100 - 100 / 10 = 90,
    # lies beyond the 5% band (95), where the account still has equity: it sells the
    # 5 lots bid at 96 and keeps the rest, which the fund would otherwise take over at
    # the bankruptcy price left after that fill, 100 - 74 / 5 = 85.20, 15% under the mark.
    alt = market("ALT", price_band=0.05, brackets=((0.0, 5.0, 0.10),))
    col = MarketConfig(
        "COL",
        kind="spot",
        tick_size=0.01,
        lot_size=1.0,
        maker_fee=0.0,
        taker_fee=0.0,
        collateral_ratio=1.0,
        collateral_pricing="conversion",
    )
    config = ExchangeConfig(markets=(alt, col), n_accounts=2, basis_window=1, insurance_fund=1000.0)
    ex = Exchange(config)
    ex.open([100.0, 1.0])
    maker, trader = 1, 2
    ex.deposit(maker, 1e6, leverage=10)
    ex.deposit(trader, 0.0, leverage=5, kind="unified", holdings={"COL": 1000})
    ex.step([order(0, maker, LIMIT, SELL, 100.0, 10), order(0, trader, MARKET, BUY, 0, 10)])
    assert ex.state.pos[0, trader, 0] == 10

    quote = [order(0, maker, LIMIT, BUY, 96.0, 5), order(0, maker, LIMIT, SELL, 100.5, 5)]
    ex.step(quote, [100.0, 0.1])
    stats = ex.market_stats()["ALT"]
    assert stats["mark"] == pytest.approx(100.0)
    assert ex.state.pos[0, trader, 0] == 5
    assert ex.state.in_liquidation[0, trader] == 1
    assert stats["liq_notional_long"] == pytest.approx(5 * 96.0)
    assert ex.state.pos[0, FUND, 0] == 0 and stats["takeover_notional"] == 0.0
    assert stats["liq_count_long"] == 1

    # With no bid inside the band the order sent again sells nothing: no liquidation
    # is counted for it.
    ex.step([], [100.0, 0.1])
    assert ex.state.pos[0, trader, 0] == 5 and ex.state.in_liquidation[0, trader] == 1
    assert ex.market_stats()["ALT"]["liq_count_long"] == 0

    # A bid inside the band the next step takes the rest: the account still has
    # 100 - 5 * 4 - 5 * 4.5 - fees 1.25% * (480 + 477.5) = 45.5 and the fund took nothing.
    ex.step([order(0, maker, LIMIT, BUY, 95.5, 5)], [100.0, 0.1])
    assert ex.state.pos[0, trader, 0] == 0
    assert ex.state.pos[0, FUND, 0] == 0
    assert ex.market_stats()["ALT"]["liq_notional_long"] == pytest.approx(5 * 95.5)
    assert ex.market_stats()["ALT"]["liq_count_long"] == 1
    fees = 0.0125 * (480.0 + 477.5)
    held = ex.state.cash[0, trader] + 1000 * 0.1
    assert held == pytest.approx(100.0 - 20.0 - 22.5 - fees)
    inv = ex.invariants()
    assert inv["position_imbalance"] == 0 and inv["cash_drift"] < 1e-9
