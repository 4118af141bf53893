"""A batch of exchanges, each with its scripted population and G learning market makers.

``MarketBatch`` is the engine behind the single, vector and multi-agent
environments: it builds and resets envs one at a time (each from its own
``np.random.Generator``, so env ``i`` of a batch equals a single env given the
same generator) and steps all of them with one kernel call.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from gymnasium import spaces

from ..core.codes import CROSS, ORDER_COLUMNS, RESULT_COLUMNS, UNIFIED
from ..core.config import ConfigError, check_flag, check_number
from ..core.exchange import check_book_room
from ..core.state import forget_cushions
from ..population.build import build_params, layout_of, make_exchange, populate
from ..scenario.config import Scenario
from .kernels import (
    N_ACCOUNTING,
    N_ENV_ACCOUNTING,
    AgentParams,
    AgentState,
    env_step,
    env_warmup,
)
from .observation import observation_size, observation_space


@dataclasses.dataclass(frozen=True)
class AgentSetup:
    """How the learning market makers are placed in a scenario (validated).

    ``markets``: names of the markets each agent quotes. ``dt``: seconds per
    env step (a whole number of engine steps). ``horizon``: env steps per
    episode. ``warmup``: engine steps the population runs alone before the
    episode starts, so the book is full: a number, or a range ``(lo, hi)``
    drawn uniformly at each reset (so an event at a fixed clock time does not
    fall at a fixed step of the episode). ``capital``: USDT each agent brings;
    like the scripted firms, a share ``collateral_share`` of it is held in the
    scenario's collateral coin when the firms use unified accounts.
    ``leverage``: the account's initial-margin leverage; where its exposure
    reaches a bracket with a lower maximum, the engine margins it at that
    maximum (so bids past what the margin carries are refused).
    Quote offsets span ``min_offset_bps..max_offset_bps`` of the fair price and
    sizes ``0..max_quote_notional`` per side; a size below ``min_size`` of the
    maximum is no quote. ``flatten`` adds a flatten-intensity action per
    market (it trades toward the holding the episode began with). Stress is
    on when index volatility reaches ``stress_volatility`` times its usual
    level or liquidation flow ``stress_liquidations`` times the usual quoted
    notional.
    """

    markets: tuple[str, ...]
    dt: float
    horizon: int
    warmup: tuple[int, int]  # lowest and highest, inclusive
    capital: float
    leverage: float
    max_quote_notional: tuple[float, ...]
    min_offset_bps: float
    max_offset_bps: float
    min_size: float
    flatten: bool
    stress_volatility: float
    stress_liquidations: float
    stress_move_bps: float
    stress_halflife: float


def default_market(scenario: Scenario) -> str:
    """The thinnest perpetual the scripted firms quote (least notional a level), else the
    first perpetual: where liquidity is scarce, a maker's choices matter most."""
    perps = [m.name for m in scenario.exchange.markets if m.kind == "perp"]
    if not perps:
        raise ConfigError(f"market: scenario {scenario.name!r} has no perpetual market")
    quoting = scenario.population.makers.quoting
    quoted = [n for n in perps if n in quoting]
    if quoted:
        return min(quoted, key=lambda n: quoting[n].level_notional)
    return perps[0]


def agent_setup(
    scenario: Scenario,
    market=None,
    dt=None,
    horizon=None,
    warmup=60,
    capital=None,
    leverage: float = 10.0,
    max_quote_notional=None,
    min_offset_bps: float = 0.0,
    max_offset_bps: float = 100.0,
    min_size: float = 0.05,
    flatten: bool = True,
    stress_volatility: float = 3.0,
    stress_liquidations: float = 0.3,
    stress_move_bps: float = 100.0,
    stress_halflife: float = 60.0,
) -> AgentSetup:
    """Validate the environment's keyword arguments against ``scenario``; defaults filled."""
    exchange = scenario.exchange
    names = [m.name for m in exchange.markets]
    makers = scenario.population.makers
    if market is None:
        market = default_market(scenario)
    if isinstance(market, str):
        markets = (market,)
    elif isinstance(market, (list, tuple)) and all(isinstance(n, str) for n in market):
        markets = tuple(market)
    else:
        raise ConfigError(f"market must be a name or a list of names of {names}, got {market!r}")
    if not markets or len(set(markets)) != len(markets):
        raise ConfigError(f"market must name distinct markets of {names}, got {market!r}")
    for name in markets:
        if name not in names:
            raise ConfigError(f"market {name!r} is not in scenario {scenario.name!r}: {names}")
    dt = scenario.dt if dt is None else check_number("dt", dt, 0.0, 86400.0, lo_open=True)
    substeps = dt / scenario.dt
    if abs(substeps - round(substeps)) > 1e-9 or round(substeps) < 1:
        raise ConfigError(
            f"dt must be a whole multiple of the scenario's dt {scenario.dt}, got {dt}"
        )
    last = max(scenario.steps - 1, 1)
    if isinstance(warmup, (tuple, list)):
        if len(warmup) != 2:
            raise ConfigError(f"warmup must be a number of steps or (lo, hi), got {warmup!r}")
        lo = check_number("warmup[0]", warmup[0], 1, last, integer=True)
        warmup = (lo, check_number("warmup[1]", warmup[1], lo, last, integer=True))
    else:
        warmup = (check_number("warmup", warmup, 1, last, integer=True),) * 2
    longest = (scenario.steps - warmup[1]) // round(substeps)
    if longest < 1:
        most = (scenario.steps - warmup[1]) * scenario.dt
        raise ConfigError(
            f"dt must leave one env step after the warm-up: at most {most:g} s in scenario "
            f"{scenario.name!r} (warm-up up to step {warmup[1]}), got {dt}"
        )
    if horizon is None:
        horizon = longest
    horizon = check_number("horizon", horizon, 1, longest, integer=True)
    capital = makers.capital if capital is None else capital
    check_number("capital", capital, 0.0, 1e13, lo_open=True)
    check_number("leverage", leverage, 1.0, 125.0)
    if max_quote_notional is None:
        max_quote_notional = []
        for name in markets:
            q = makers.quoting.get(name)
            max_quote_notional.append(q.levels * q.level_notional if q else 0.1 * capital)
    elif np.ndim(max_quote_notional) == 0:
        max_quote_notional = [max_quote_notional] * len(markets)
    if len(max_quote_notional) != len(markets):
        raise ConfigError(
            f"max_quote_notional needs one value per market ({len(markets)}), "
            f"got {max_quote_notional!r}"
        )
    for name, v in zip(markets, max_quote_notional, strict=True):
        # Less than one lot at the start price could never be quoted.
        lot_value = exchange.markets[names.index(name)].lot_size
        lot_value *= scenario.population.index[name].start
        check_number(f"max_quote_notional[{name!r}]", v, lot_value, 1e13)
    check_number("min_offset_bps", min_offset_bps, 0.0, 5000.0)
    check_number("max_offset_bps", max_offset_bps, min_offset_bps, 5000.0, lo_open=True)
    check_number("min_size", min_size, 0.0, 1.0)
    check_flag("flatten", flatten)
    check_number("stress_volatility", stress_volatility, 0.0, 1e6, lo_open=True)
    check_number("stress_liquidations", stress_liquidations, 0.0, 1e6, lo_open=True)
    check_number("stress_move_bps", stress_move_bps, 0.0, 1e5, lo_open=True)
    check_number("stress_halflife", stress_halflife, 0.0, 1e6, lo_open=True)
    return AgentSetup(
        markets,
        float(dt),
        int(horizon),
        warmup,
        float(capital),
        float(leverage),
        tuple(float(v) for v in max_quote_notional),
        float(min_offset_bps),
        float(max_offset_bps),
        float(min_size),
        bool(flatten),
        float(stress_volatility),
        float(stress_liquidations),
        float(stress_move_bps),
        float(stress_halflife),
    )


def compiled_entry(dispatcher, args):
    """The machine-code entry of ``dispatcher`` for the types of ``args`` (already compiled).

    Calling it skips numba's per-call typing of every argument: for the ~200
    arrays of the state tuples that costs about 20 us, more than a whole env
    step. Only valid while later calls pass arguments of exactly these types,
    which the callers guarantee (``MarketBatch.step``: fixed state, contiguous
    float64 actions, contiguous bool mask; ``EpisodeCore.step``: fixed state
    and a fresh table of one shape). With the JIT disabled there is nothing
    to skip and the plain function is returned.
    """
    if not hasattr(dispatcher, "overloads"):
        return dispatcher
    return dispatcher.overloads[tuple(numba.typeof(a) for a in args)].entry_point


class MarketBatch:
    """``n_envs`` exchanges of ``scenario`` with ``n_agents`` learning makers in each."""

    def __init__(
        self,
        scenario: Scenario,
        setup: AgentSetup,
        n_envs: int,
        n_agents: int = 1,
        threads: int = 1,
    ):
        self.scenario = scenario
        self.setup = setup
        self.n_envs = int(n_envs)
        self.n_agents = int(n_agents)
        self.layout = layout_of(scenario, self.n_agents)
        self.names = [m.name for m in scenario.exchange.markets]
        self.market_index = np.array([self.names.index(n) for n in setup.markets], np.int64)
        self.substeps = round(setup.dt / scenario.dt)
        self.exchange = make_exchange(scenario, self.n_envs, self.n_agents)
        self.pop_params = build_params(scenario)
        self.params = self.exchange.params
        self.state = self.exchange.state
        self.pop_state = None  # allocated by the first reset (shapes come from populate)
        self.agent_params = self._agent_params()
        self.agent_state = self._agent_state()
        self.index = np.zeros(len(self.names))
        self._built = np.zeros(self.n_envs, bool)
        self._all_built = False
        self._env_step = None  # env_step compiled for this batch's argument types
        # Threads step contiguous blocks of envs, each with its own index scratch: envs
        # share no state, so the result does not depend on the split.
        n = min(check_number("threads", threads, 1, 256, integer=True), self.n_envs)
        edges = np.linspace(0, self.n_envs, n + 1).round().astype(int)
        self._blocks = list(zip(edges[:-1], edges[1:], strict=True))
        self._scratch = [np.zeros(len(self.names)) for _ in self._blocks]
        self._pool = ThreadPoolExecutor(n - 1, "mmgym-step") if n > 1 else None

    def __getstate__(self):
        # The compiled entry and the thread pool cannot be pickled; both are
        # rebuilt on demand (the entry at the next step), so a batch that has
        # stepped pickles and copies like a fresh one.
        return dict(self.__dict__, _env_step=None, _pool=None)

    def __setstate__(self, state):
        self.__dict__.update(state)
        if len(self._blocks) > 1:
            self._pool = ThreadPoolExecutor(len(self._blocks) - 1, "mmgym-step")

    @property
    def n_markets(self) -> int:
        """Markets each agent quotes."""
        return len(self.setup.markets)

    @property
    def action_size(self) -> int:
        """Action values per agent."""
        return self.n_markets * (5 if self.setup.flatten else 4)

    @property
    def obs_size(self) -> int:
        """Observation columns per agent."""
        return observation_size(self.n_markets)

    def action_space(self) -> spaces.Box:
        """A new action space of one agent: Box(-1, 1, (action_size,), float32)."""
        return spaces.Box(-1.0, 1.0, (self.action_size,), np.float32)

    def observation_space(self) -> spaces.Box:
        """A new observation space of one agent (see ``observation.py``)."""
        return observation_space(self.n_markets)

    def _agent_params(self) -> AgentParams:
        s, sc = self.setup, self.scenario
        pp = self.pop_params
        k = self.market_index
        return AgentParams(
            account=np.arange(self.n_agents, dtype=np.int64) + self.layout.agent_start,
            market=k,
            min_offset=s.min_offset_bps * 1e-4,
            max_offset=s.max_offset_bps * 1e-4,
            max_notional=np.array(s.max_quote_notional, np.float64),
            min_size=s.min_size,
            flatten=s.flatten,
            sigma=pp.base_volatility[k].copy(),
            liq_reference=pp.liquidation_reference[k].copy(),
            capital=s.capital,
            fund_reference=max(sc.exchange.insurance_fund, 1.0),
            stress_volatility=s.stress_volatility,
            stress_liquidations=s.stress_liquidations,
            stress_move=s.stress_move_bps * 1e-4,
            average_alpha=1.0 - 0.5 ** (s.dt / s.stress_halflife),
            substeps=self.substeps,
            horizon=s.horizon,
            trend_alpha=1.0 - 0.5 ** (1.0 / 10.0),
            start_clock=sc.start_clock,
            engine_dt=sc.dt,
        )

    def _agent_state(self) -> AgentState:
        e, g, m = self.n_envs, self.n_agents, self.n_markets
        rows = g * m * 5
        orders = np.zeros((e, rows, ORDER_COLUMNS), np.int64)
        orders[:, :, 0] = -1
        return AgentState(
            quote_id=np.zeros((e, g, m, 2), np.int64),
            quote_lots=np.zeros((e, g, m, 2), np.int64),
            quote_price=np.zeros((e, g, m, 2), np.int64),
            present=np.zeros((e, g, m, 2), np.int64),
            prev_mid=np.ones((e, m)),
            average_mid=np.ones((e, m)),
            last_return=np.zeros((e, m)),
            trend=np.zeros((e, m)),
            volatility=np.ones((e, m)),
            depth_reference=np.ones((e, m)),
            start_pos=np.zeros((e, g, m), np.int64),
            start_equity=np.zeros((e, g)),
            last_equity=np.zeros((e, g)),
            last_fees=np.zeros((e, g)),
            collateral_reference=np.zeros((e, g)),
            last_fund=np.zeros(e),
            last_socialised=np.zeros(e),
            elapsed=np.zeros(e, np.int64),
            out=np.zeros((e, g), np.int64),
            orders=orders,
            results=np.zeros((e, rows, RESULT_COLUMNS), np.int64),
            obs=np.zeros((e, g, self.obs_size), np.float32),
            accounting=np.zeros((e, g, N_ACCOUNTING)),
            env_accounting=np.zeros((e, N_ENV_ACCOUNTING)),
            liq_flow=np.zeros((e, self.params.market_kind.shape[0])),
        )

    def reset_env(self, e: int, rng: np.random.Generator) -> None:
        """Rebuild env ``e`` from ``rng`` (population, agents' accounts) and run the warm-up."""
        single = make_exchange(self.scenario, 1, self.n_agents)
        pop_state = populate(single, self.scenario, [rng])
        lo, hi = self.setup.warmup
        warmup = lo if lo == hi else int(rng.integers(lo, hi + 1))
        self._fund_agents(single)
        if self.pop_state is None:
            self.pop_state = type(pop_state)(
                *[np.zeros((self.n_envs,) + a.shape[1:], a.dtype) for a in pop_state]
            )
        for dst, src in zip(self.state, single.state, strict=True):
            dst[e] = src[0]
        for dst, src in zip(self.pop_state, pop_state, strict=True):
            dst[e] = src[0]
        self.exchange.deposited_cash[e] = single.deposited_cash[0]
        self.exchange.deposited_holdings[e] = single.deposited_holdings[0]
        env_warmup(
            self.params,
            self.state,
            self.pop_params,
            self.pop_state,
            self.agent_params,
            self.agent_state,
            e,
            warmup,
            self.index,
        )
        check_book_room(self.pop_state.book_full, self.exchange.config)
        self._built[e] = True
        self._all_built = bool(self._built.all())

    def _fund_agents(self, ex) -> None:
        """Deposit each agent's capital, part of it in collateral like the scripted firms."""
        makers = self.scenario.population.makers
        s = ex.state
        markets = self.scenario.exchange.markets
        held = np.zeros(len(markets), np.int64)
        if makers.unified and makers.collateral_share > 0 and makers.collateral_market:
            k = self.names.index(makers.collateral_market)
            start = self.scenario.population.index[makers.collateral_market].start
            lot_value = start * markets[k].lot_size
            held[k] = int(self.setup.capital * makers.collateral_share / lot_value)
        start = np.array([self.scenario.population.index[m.name].start for m in markets])
        lot = np.array([m.lot_size for m in markets])
        held_value = float((held * lot * start).sum())
        for a in self.agent_params.account:
            s.cash[0, a] += self.setup.capital - held_value
            s.pos[0, a] += held
            s.account_kind[0, a] = UNIFIED if held.any() else CROSS
            s.leverage[0, a] = self.setup.leverage
            ex.deposited_cash[0] += self.setup.capital - held_value
            ex.deposited_holdings[0] += held
        forget_cushions(s)

    def step(self, actions: np.ndarray, active: np.ndarray) -> None:
        """Apply ``actions`` (float64[E, G, A] in [-1, 1]) in the envs where ``active``."""
        shape = (self.n_envs, self.n_agents, self.action_size)
        if np.shape(actions) != shape:
            raise ValueError(f"actions must have shape {shape}, got {np.shape(actions)}")
        if np.shape(active) != (self.n_envs,):
            raise ValueError(f"active must have shape ({self.n_envs},)")
        if not self._all_built and not self._built[active].all():
            raise RuntimeError("reset an env before stepping it")
        fixed = (
            self.params,
            self.state,
            self.pop_params,
            self.pop_state,
            self.agent_params,
            self.agent_state,
            np.ascontiguousarray(actions, np.float64),
        )
        active = np.ascontiguousarray(active, np.bool_)
        if self._env_step is None:
            env_step(*fixed, active, self.index)
            self._env_step = compiled_entry(env_step, (*fixed, active, self.index))
        elif self._pool is None:
            self._env_step(*fixed, active, self.index)
        else:
            masks = []
            for lo, hi in self._blocks:
                mask = np.zeros_like(active)
                mask[lo:hi] = active[lo:hi]
                masks.append(mask)
            pending = [
                self._pool.submit(self._env_step, *fixed, mask, scratch)
                for mask, scratch in zip(masks[1:], self._scratch[1:], strict=True)
            ]
            self._env_step(*fixed, masks[0], self._scratch[0])
            for future in pending:
                future.result()
        check_book_room(self.pop_state.book_full, self.exchange.config)

    def close(self) -> None:
        """Stop the stepping threads (if any)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
