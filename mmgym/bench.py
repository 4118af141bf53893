"""Speed benchmark: ``python -m mmgym.bench``.

Measures, on one core after compilation:

* ``book``: mixed limit / cancel / market events applied to one L3 book;
* ``orders``: limit and market orders through the full exchange path (band and
  margin checks, matching, settlement, fees) in one ``advance`` call;
* ``margin``: the maintenance-margin check over every account of an env;
* ``oct10``: the full ``oct10`` scenario (5,000 leveraged accounts, 5 maker
  firms, 9,000 one-second steps) with its scripted population;
* ``env``: ``gymnasium.make("mmgym/MarketMaking-v0")`` steps per second and the
  native vector env's env-steps per second at N = 256 (default scenario,
  quoting action), with ``CartPole-v1`` measured in the same run as the
  yardstick; on a machine with several cores also the vector env stepped on
  one thread per core (``threads=``), the only figure that uses more than one.
  ``--set KEY=VALUE`` changes their scenario, to see what a part of the
  population costs.

The same book stream also runs through the pure-Python reference book of
the tests (``tests/naive.py``, in a source checkout), which must end with the
same book, and the ratio is printed: a figure that travels across noisy
machines better than events per second.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from .cli_types import add_overrides_argument, positive_int
from .core import Exchange, ExchangeConfig, MarketConfig
from .core.codes import (
    ACCEPTED,
    ASK,
    BID,
    BUY,
    CANCEL,
    LIMIT,
    MARKET,
    ORDER_COLUMNS,
    R_ORDER_ID,
    R_STATUS,
    RESULT_COLUMNS,
    SELL,
)
from .core.margin import count_liquidatable
from .core.state import allocate_state
from .core.step import advance
from .core.streams import apply_book_stream, book_event_stream

# Market orders, base cancel probability, target live orders (see ``core.streams``).
BOOK_MIX = (0.15, 0.35, 1000)
BOOK_CONFIG = ExchangeConfig(
    markets=(MarketConfig("BTCUSDT", tick_size=0.1, lot_size=0.001),),
    n_accounts=16,
    book_capacity=4096,
    max_levels=1024,
)


def _best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_book(n_events: int, repeat: int, seed: int = 0) -> dict:
    """Events per second of the jitted book on a seeded mixed stream."""
    rng = np.random.default_rng(seed)
    warm = book_event_stream(rng, 50_000)
    events = book_event_stream(rng, n_events)
    holder = {}

    def run():
        state = allocate_state(BOOK_CONFIG, 1)
        apply_book_stream(state, 0, 0, warm, *BOOK_MIX)  # a realistic, non-empty book first
        holder["start_orders"] = int(BOOK_CONFIG.book_capacity - state.n_free[0, 0])
        t0 = time.perf_counter()
        holder["counts"] = apply_book_stream(state, 0, 0, events, *BOOK_MIX)
        holder["elapsed"] = time.perf_counter() - t0
        holder["levels"] = state.n_levels[0, 0].tolist()
        holder["end_orders"] = int(BOOK_CONFIG.book_capacity - state.n_free[0, 0])

    run()  # compile
    elapsed = float("inf")
    for _ in range(repeat):
        run()
        elapsed = min(elapsed, holder["elapsed"])
    fills, limits, cancels, markets, rejected = holder["counts"]
    return {
        "events": n_events,
        "seconds": elapsed,
        "events_per_s": n_events / elapsed,
        "limits": int(limits),
        "cancels": int(cancels),
        "markets": int(markets),
        "fills": int(fills),
        "rejected_full": int(rejected),
        "orders_start_end": (holder["start_orders"], holder["end_orders"]),
        "levels_bid_ask_end": holder["levels"],
    }


def _reference_module():
    """The pure-Python reference exchange shipped with the tests (a source checkout)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tests" / "naive.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("mmgym_naive_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reference_book_stream(book, events, p_market, p_cancel, target):
    """``streams.apply_book_stream`` on the reference ``Book``, event by event."""
    from .core.streams import DRAW_SCALE

    seq = 1
    for draw, side, price, qty, choice in events.tolist():
        live = len(book.live)
        u = draw / DRAW_SCALE
        if u < p_market:
            book.match(side, 1 << 40 if side == 1 else 1, qty // 2 + 1, -1)
        elif live > 0 and u < p_market + p_cancel * live / target:
            levels = book.levels_best_first(side) or book.levels_best_first(-side)
            worst_first = levels[::-1]
            book.remove(worst_first[choice % len(worst_first)].queue[-1])
        elif book.can_rest(side, price):
            book.rest(side, price, qty, 1, seq)
            seq += 1


def _levels(state, slot):
    """(price, lots) of one side of book 0, best first."""
    n = int(state.n_levels[0, 0, slot])  # levels are stored worst first
    prices = state.level_price[0, 0, slot, :n][::-1].tolist()
    return list(zip(prices, state.level_qty[0, 0, slot, :n][::-1].tolist(), strict=True))


def bench_reference(n_events: int, seed: int = 0) -> dict | None:
    """The book stream through the pure-Python reference; checks that both books end
    with the same levels (price and lots) on each side."""
    naive = _reference_module()
    if naive is None:
        return None
    rng = np.random.default_rng(seed)
    warm = book_event_stream(rng, 50_000)
    events = book_event_stream(rng, n_events)
    book = naive.Book(BOOK_CONFIG.book_capacity, BOOK_CONFIG.max_levels)
    _reference_book_stream(book, warm, *BOOK_MIX)
    t0 = time.perf_counter()
    _reference_book_stream(book, events, *BOOK_MIX)
    elapsed = time.perf_counter() - t0
    state = allocate_state(BOOK_CONFIG, 1)
    apply_book_stream(state, 0, 0, warm, *BOOK_MIX)
    apply_book_stream(state, 0, 0, events, *BOOK_MIX)
    agree = all(
        _levels(state, slot) == [(lv.price, lv.qty) for lv in book.levels_best_first(side)]
        for slot, side in ((BID, BUY), (ASK, SELL))
    )
    return {
        "events": n_events,
        "seconds": elapsed,
        "events_per_s": n_events / elapsed,
        "books_agree": agree,
    }


def bench_orders(n_steps: int, repeat: int, seed: int = 0) -> dict:
    """Events per second through the fused exchange step, quoting like market makers.

    Each step, each of 16 accounts cancels by id the orders it rested the step
    before and sends 20 new limit orders and 2 market orders; the time counted
    is that of the ``advance`` calls (band and margin checks, matching,
    settlement, fees, marking, the liquidation scan and statistics).
    """
    rng = np.random.default_rng(seed)
    per_account = 22
    accounts = np.repeat(np.arange(1, 17), per_account)
    stream = book_event_stream(rng, n_steps * accounts.size, reference=1_000_000)
    stream = stream.reshape(n_steps, accounts.size, -1)
    index = np.full((1, 1), 100_000.0)

    def run():
        ex = Exchange(BOOK_CONFIG)
        ex.open([100_000.0])
        for a in range(1, 17):
            ex.deposit(a, 1e9, leverage=10)
        resting = np.zeros((0, ORDER_COLUMNS), np.int64)
        elapsed, events, accepted = 0.0, 0, 0
        for t in range(n_steps):
            new = np.zeros((accounts.size, ORDER_COLUMNS), np.int64)
            is_market = np.arange(accounts.size) % per_account >= per_account - 2
            new[:, 2] = accounts
            new[:, 3] = np.where(is_market, MARKET, LIMIT)
            new[:, 4] = stream[t, :, 1]
            new[:, 5] = np.where(is_market, 0, stream[t, :, 2])
            new[:, 6] = np.where(is_market, stream[t, :, 3] // 2 + 1, stream[t, :, 3])
            batch = np.ascontiguousarray(np.concatenate([resting, new]))
            results = np.zeros((len(batch), RESULT_COLUMNS), np.int64)
            t0 = time.perf_counter()
            advance(ex.params, ex.state, batch, results, index)
            elapsed += time.perf_counter() - t0
            events += len(batch)
            accepted += int((results[:, R_STATUS] == ACCEPTED).sum())
            rested = results[len(resting) :, R_ORDER_ID] > 0
            resting = np.zeros((int(rested.sum()), ORDER_COLUMNS), np.int64)
            resting[:, 2] = new[rested, 2]
            resting[:, 3] = CANCEL
            resting[:, 7] = results[len(batch) - len(new) :, R_ORDER_ID][rested]
        return elapsed, events, accepted

    run()  # compile
    best = min((run() for _ in range(repeat)), key=lambda r: r[0])
    elapsed, events, accepted = best
    return {
        "steps": n_steps,
        "events": events,
        "accepted": accepted,
        "seconds": elapsed,
        "events_per_s": events / elapsed,
    }


def margin_exchange(n_accounts: int, seed: int = 0) -> Exchange:
    """An env with ``n_accounts`` accounts holding random perp and collateral positions."""
    config = ExchangeConfig(
        markets=(
            MarketConfig("BTCUSDT", tick_size=0.1, lot_size=0.001),
            MarketConfig("ALTUSDT", tick_size=0.0001, lot_size=1.0, brackets="small_alt"),
            MarketConfig("USDEUSDT", kind="spot", tick_size=0.0001, lot_size=1.0),
        ),
        n_accounts=n_accounts,
        book_capacity=16,
        max_levels=8,
    )
    ex = Exchange(config)
    ex.open([100_000.0, 1.0, 1.0])
    rng = np.random.default_rng(seed)
    s = ex.state
    s.cash[0, 1:] = rng.uniform(1e3, 1e5, n_accounts)
    s.pos[0, 1:, 0] = rng.integers(-20_000, 20_000, n_accounts)
    s.pos[0, 1:, 1] = rng.integers(-50_000, 50_000, n_accounts)
    s.entry[0, 1:, 0] = rng.uniform(95_000, 105_000, n_accounts)
    s.entry[0, 1:, 1] = rng.uniform(0.9, 1.1, n_accounts)
    unified = rng.random(n_accounts) < 0.2
    s.account_kind[0, 1:] = unified
    s.pos[0, 1:, 2] = np.where(unified, rng.integers(0, 100_000, n_accounts), 0)
    return ex


def bench_margin(n_accounts: int, repeat: int) -> dict:
    """Microseconds to check every account's maintenance margin once."""
    ex = margin_exchange(n_accounts)
    count = count_liquidatable(ex.params, ex.state, 0)  # compile
    inner = 100
    t = _best_of(repeat, lambda: [count_liquidatable(ex.params, ex.state, 0) for _ in range(inner)])
    return {"accounts": n_accounts, "microseconds": t / inner * 1e6, "liquidatable": int(count)}


def bench_scenario(name: str, repeat: int) -> dict:
    """Wall time of a whole scenario run after compilation, with steps and orders per second."""
    from .scenario import run

    run(name, seed=0, steps=10)  # compile
    best = None
    for seed in range(repeat):
        result = run(name, seed=seed)
        if best is None or result.seconds < best.seconds:
            best = result
    scenario = best.scenario
    return {
        "scenario": name,
        "steps": scenario.steps,
        "accounts": scenario.population.leveraged.count,
        "maker_firms": scenario.population.makers.firms,
        "seconds": best.seconds,
        "steps_per_s": scenario.steps / best.seconds,
        "orders": best.orders,
        "orders_per_s": best.orders / best.seconds,
    }


def _steps_per_s(env, action, n_steps: int, repeat: int) -> float:
    """Steps per second after a reset (resets at episode ends count, the first does not)."""
    env.reset(seed=0)

    def run():
        for _ in range(n_steps):
            _, _, terminated, truncated, _ = env.step(action)
            if np.ndim(terminated) == 0 and (terminated or truncated):
                env.reset()  # vector envs reset themselves

    run()  # compile and warm up
    return n_steps / _best_of(repeat, run)


def bench_env(n_steps: int, n_envs: int, repeat: int, overrides=None) -> dict:
    """Steps per second of the single env, of the vector env, and of CartPole-v1.

    ``overrides`` change the default scenario (e.g. ``{"population.makers.firms": 0}``
    to see what a part of the population costs).
    """
    import gymnasium as gym

    import mmgym

    overrides = dict(overrides or {})
    single = gym.make(mmgym.ENV_ID, overrides=overrides)
    quote = np.zeros(single.action_space.shape, np.float32)
    vector = gym.make_vec(
        mmgym.ENV_ID, num_envs=n_envs, vectorization_mode="vector_entry_point", overrides=overrides
    )
    cartpole = gym.make("CartPole-v1")
    single_rate = _steps_per_s(single, quote, n_steps, repeat)
    vector_rate = n_envs * _steps_per_s(
        vector, np.zeros((n_envs,) + quote.shape, np.float32), max(n_steps // n_envs, 20), repeat
    )
    vector.close()
    cartpole_rate = _steps_per_s(cartpole, 0, n_steps, repeat)
    out = {
        "single_steps_per_s": single_rate,
        "vector_envs": n_envs,
        "vector_env_steps_per_s": vector_rate,
        "cartpole_steps_per_s": cartpole_rate,
    }
    threads = os.cpu_count() or 1
    if threads > 1:
        threaded = gym.make_vec(
            mmgym.ENV_ID,
            num_envs=n_envs,
            vectorization_mode="vector_entry_point",
            threads=threads,
            overrides=overrides,
        )
        out["threads"] = threads
        out["threaded_env_steps_per_s"] = n_envs * _steps_per_s(
            threaded,
            np.zeros((n_envs,) + quote.shape, np.float32),
            max(n_steps // n_envs, 20),
            repeat,
        )
        threaded.close()
    return out


def machine() -> str:
    """One line describing this machine."""
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
    )


def main(argv=None) -> None:
    """Command line: run the selected figures and print them."""
    parser = argparse.ArgumentParser(
        prog="python -m mmgym.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--events", type=positive_int, default=2_000_000, help="book events (default 2e6)"
    )
    parser.add_argument("--steps", type=positive_int, default=2_000, help="exchange steps")
    parser.add_argument("--accounts", type=positive_int, default=10_000, help="accounts for margin")
    parser.add_argument(
        "--reference-events",
        type=positive_int,
        default=100_000,
        help="events through the pure-Python reference",
    )
    parser.add_argument(
        "--repeat", type=positive_int, default=3, help="take the best of this many runs"
    )
    parser.add_argument(
        "--env-steps", type=positive_int, default=20_000, help="steps for the env figures"
    )
    parser.add_argument("--vector-envs", type=positive_int, default=256, help="N of the vector env")
    parser.add_argument(
        "--only", choices=["engine", "env"], help="run only the engine or only the env figures"
    )
    add_overrides_argument(parser, "override the env figures' default scenario")
    args = parser.parse_args(argv)
    overrides = dict(args.set)
    if overrides and args.only == "engine":
        parser.error("--set changes the env figures' scenario; --only engine runs none")
    if args.only != "engine":
        _check_overrides(parser, overrides)
    print(f"machine: {machine()}")
    if args.only != "env":
        _engine_figures(args)
    if args.only != "engine":
        env = bench_env(args.env_steps, args.vector_envs, args.repeat, overrides)
        cartpole = env["cartpole_steps_per_s"]
        print(
            f"env:     gymnasium.make {env['single_steps_per_s']:,.0f} steps/s, CartPole-v1 "
            f"{cartpole:,.0f} steps/s (ratio {env['single_steps_per_s'] / cartpole:.2f}); "
            f"vector env N={env['vector_envs']} {env['vector_env_steps_per_s']:,.0f} "
            f"env-steps/s (ratio to CartPole {env['vector_env_steps_per_s'] / cartpole:.2f})"
        )
        if "threads" in env:
            print(
                f"         vector env N={env['vector_envs']} on {env['threads']} threads "
                f"{env['threaded_env_steps_per_s']:,.0f} env-steps/s"
            )


def _check_overrides(parser, overrides: dict) -> None:
    """Build the env once with ``overrides``, so a bad one fails before the runs."""
    import gymnasium as gym

    import mmgym

    try:
        gym.make(mmgym.ENV_ID, overrides=overrides).close()
    except ValueError as exc:
        parser.error(f"--set: {exc}")


def _engine_figures(args) -> None:
    book = bench_book(args.events, args.repeat)
    print(f"book:    {book['events_per_s'] / 1e6:6.2f} M events/s  ({book})")
    reference = bench_reference(args.reference_events)
    if reference is None:
        print("reference: tests/naive.py not found (needs a source checkout)")
    else:
        print(
            f"reference (pure Python, same stream): {reference['events_per_s'] / 1e3:.1f} k "
            f"events/s; jitted / reference = "
            f"{book['events_per_s'] / reference['events_per_s']:.0f}x  ({reference})"
        )
    orders = bench_orders(args.steps, args.repeat)
    print(f"orders:  {orders['events_per_s'] / 1e6:6.2f} M events/s  ({orders})")
    margin = bench_margin(args.accounts, args.repeat)
    print(f"margin:  {margin['microseconds']:6.1f} us for {args.accounts} accounts  ({margin})")
    oct10 = bench_scenario("oct10", args.repeat)
    print(
        f"oct10:   {oct10['seconds']:6.2f} s for {oct10['steps']} steps, "
        f"{oct10['orders_per_s'] / 1e6:.2f} M orders/s  ({oct10})"
    )


if __name__ == "__main__":
    main()
