"""A scripted market on the engine: ``python -m mmgym.demo``.

One perpetual, a market maker that quotes a ladder around the index and
pulls its bids once the index has fallen 3%, and a crowd of leveraged longs.
The index drifts, then drops 12% over two minutes; every twenty steps
(seconds) the demo prints price, 1% depth, liquidations, the insurance fund
and ADL, so you can watch a cascade unfold in the book.
"""

from __future__ import annotations

import argparse

import numpy as np

from .core import Exchange, ExchangeConfig, MarketConfig
from .core.codes import BUY, CANCEL_ALL, LIMIT, MARKET, SELL

MAKER = 1


def build(n_longs: int, seed: int) -> tuple[Exchange, np.random.Generator]:
    """An exchange with one maker and ``n_longs`` leveraged long accounts, positions opened."""
    config = ExchangeConfig(
        markets=(
            MarketConfig(
                "ALTUSDT",
                tick_size=0.01,
                lot_size=1.0,
                brackets="small_alt",
                liquidation_cap=20_000.0,
                fund_unwind_cap=2_000.0,
            ),
        ),
        n_accounts=n_longs + 1,
        book_capacity=2048,
        insurance_fund=20_000.0,
        basis_window=10,
    )
    ex = Exchange(config)
    ex.open([100.0])
    rng = np.random.default_rng(seed)
    ex.deposit(MAKER, 5e6, leverage=5)
    leverage = rng.choice([3.0, 5.0, 10.0, 20.0, 25.0], size=n_longs)
    sizes = rng.integers(5, 40, size=n_longs)
    ex.step(
        [[0, 0, MAKER, LIMIT, SELL, 10_000 + i, int(sizes.sum()) // 10 + 1, 0] for i in range(10)]
    )
    for i in range(n_longs):
        ex.deposit(2 + i, 100.0 * sizes[i] / leverage[i] * 1.1, leverage=leverage[i])
    ex.step([[0, 0, 2 + i, MARKET, BUY, 0, int(sizes[i]), 0] for i in range(n_longs)])
    return ex, rng


def maker_orders(index: float, pulled: bool) -> list[list[int]]:
    """Cancel everything, then quote 10 levels a side (no bids once pulled)."""
    rows = [[0, 0, MAKER, CANCEL_ALL, 0, 0, 0, 0]]
    centre = round(index * 100)
    for i in range(1, 11):
        if not pulled:
            rows.append([0, 0, MAKER, LIMIT, BUY, centre - 5 * i, 20, 0])
        rows.append([0, 0, MAKER, LIMIT, SELL, centre + 5 * i, 20, 0])
    return rows


def main(argv=None) -> None:
    """Command line: run the scripted cascade demo."""
    parser = argparse.ArgumentParser(
        prog="python -m mmgym.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--longs", type=int, default=200, help="leveraged long accounts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ex, rng = build(args.longs, args.seed)
    index = 100.0
    print(
        f"{'t':>4} {'index':>8} {'mark':>8} {'depth1%':>9} {'liq$':>9} {'fund':>9} "
        f"{'ADL':>4} {'in liq':>6}"
    )
    liquidated = adl = 0.0
    for t in range(300):
        shock = -0.12 / 120 if 60 <= t < 180 else 0.0
        index *= 1.0 + shock + 0.0005 * rng.standard_normal()
        pulled = index < 97.0
        ex.step(maker_orders(index, pulled), [index])
        stats, env = ex.market_stats()["ALTUSDT"], ex.env_stats()
        liquidated += stats["liq_notional_long"] + stats["liq_notional_short"]
        adl += stats["adl_count"]
        if t % 20 == 19:
            print(
                f"{t + 1:>4} {index:8.2f} {stats['mark']:8.2f} {stats['depth_1pct']:9.0f} "
                f"{liquidated:9.0f} {env['insurance_fund']:9.0f} {adl:4.0f} "
                f"{env['accounts_in_liquidation']:6.0f}"
            )
            liquidated = adl = 0.0
    inv = ex.invariants()
    print(
        f"invariants: position imbalance {inv['position_imbalance']} lots, "
        f"cash drift {inv['cash_drift']:.2e} USDT"
    )


if __name__ == "__main__":
    main()
