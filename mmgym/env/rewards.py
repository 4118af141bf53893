"""Reward regimes: from "freedom" (no duty to quote) to "obligation" and "liability".

Every regime maps one env step's accounting (``StepAccounting``, arrays with
one entry per agent) to rewards in basis points of the agent's capital. The
obligation monitor runs under every regime, so ``info`` always says whether
the agent met the quoting duties, even when its reward ignores them.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import numpy as np

from ..core.config import ConfigError, check_number

BPS = 1e4


@dataclasses.dataclass
class StepAccounting:
    """One env step, one entry per agent (arrays of equal length).

    ``pnl``: change of mark-to-market equity (USDT; fees and rebates are in
    it), ``fees``: fees paid (negative = rebates earned), ``inventory``:
    absolute notional at mark of what the agent bought or sold in the quoted
    markets since the episode began (a perpetual's position; not the spot
    collateral it started with), ``quoted``: 1 when both
    sides of every quoted market were posted, ``spread_bps`` and
    ``min_notional``: the widest quoted spread and the smallest quoted side,
    ``stressed``: the market stress indicator, ``fund_drawdown`` and
    ``socialised_loss``: what the insurance fund lost and what was written off
    as socialised loss this step, ``compliant``, ``presence`` and ``breach``:
    the obligation monitor's verdict, ``capital``: the agent's starting capital.
    """

    pnl: np.ndarray
    fees: np.ndarray
    inventory: np.ndarray
    quoted: np.ndarray
    spread_bps: np.ndarray
    min_notional: np.ndarray
    stressed: np.ndarray
    fund_drawdown: np.ndarray
    socialised_loss: np.ndarray
    compliant: np.ndarray
    presence: np.ndarray
    breach: np.ndarray
    capital: float


@dataclasses.dataclass(frozen=True)
class Duties:
    """Quoting duties modelled on exchange market-maker programmes.

    A step is compliant when both sides of every quoted market are posted,
    the quoted spread is at most ``max_spread_bps`` (times
    ``stress_multiplier`` while the stress indicator is on) and each side is
    at least ``min_notional`` USDT. Presence is the compliant share of the
    last ``window`` steps, those before the episode's first counted as
    compliant (so it starts at 1); the agent is in breach while it is below
    ``min_presence``.
    """

    max_spread_bps: float = 50.0
    min_notional: float = 10_000.0
    window: int = 300
    min_presence: float = 0.9
    stress_multiplier: float = 3.0

    def __post_init__(self):
        checks = (
            ("max_spread_bps", 0.0, 1e5, {"lo_open": True}),
            ("min_notional", 0.0, 1e13, {}),
            ("window", 1, 10**6, {"integer": True}),
            ("min_presence", 0.0, 1.0, {}),
            ("stress_multiplier", 1.0, 1e3, {}),
        )
        for name, lo, hi, kw in checks:
            value = check_number(f"duties.{name}", getattr(self, name), lo, hi, **kw)
            object.__setattr__(self, name, value)  # as checked: window=300.0 becomes 300


class ObligationMonitor:
    """Rolling presence of ``n`` agents against ``Duties``: the state that
    ``step_record.record_step`` updates every step (its docstring has the rule)."""

    def __init__(self, duties: Duties, n: int):
        self.history = np.zeros((n, duties.window), bool)  # ring of compliant steps
        self.count = np.zeros(n, np.int64)  # steps recorded
        self.met = np.zeros(n, np.int64)  # compliant steps in the window
        # The duties as step_record.record_step reads them (its DUTY_* order).
        d = duties
        self.params = np.array(
            [d.max_spread_bps, d.stress_multiplier, d.min_notional, d.min_presence]
        )

    def reset(self, which) -> None:
        """Forget the presence history of the agents ``which`` (an index or mask)."""
        self.history[which] = False
        self.count[which] = 0
        self.met[which] = 0


class Regime:
    """Base of the built-in regimes: ``parts`` gives the named terms, the reward is their sum.

    Calling a regime gives that sum, so a custom reward can build on a built-in
    one: ``regime=lambda acc: Freedom()(acc) - 1e4 * 0.1 * acc.fund_drawdown / acc.capital``
    (rewards are in bps of capital).
    """

    name = "regime"

    def parts(self, acc: StepAccounting) -> dict[str, np.ndarray]:
        """The reward's named terms for the step's accounting, each float64[n_agents]."""
        raise NotImplementedError

    def __call__(self, acc: StepAccounting) -> np.ndarray:
        return sum(self.parts(acc).values())


class Freedom(Regime):
    """``freedom``: no duty to quote.

    reward = 1e4 * pnl / capital - inventory_penalty * 1e4 * (inventory / capital)^2

    pnl is the step's change of mark-to-market equity, fees and rebates
    included; the quadratic inventory penalty stands for the risk a desk
    charges for holding a position.
    """

    name = "freedom"

    def __init__(self, inventory_penalty: float = 1e-4):
        self.inventory_penalty = check_number("inventory_penalty", inventory_penalty, 0.0, 1e6)

    def parts(self, acc):
        return {
            "pnl": BPS * acc.pnl / acc.capital,
            "inventory": -self.inventory_penalty * BPS * (acc.inventory / acc.capital) ** 2,
        }


class Obligation(Freedom):
    """``obligation``: freedom plus quoting duties (see ``Duties``).

    reward = freedom + rebate * compliant - penalty * breach * (1 - compliant)

    ``compliant`` is 1 on a step that met the duties (the programme's rebate is
    paid only then); ``breach`` is 1 while presence over the rolling window is
    below the minimum. Every step missed while in breach pays the penalty, so
    the tolerance the window allows is free, and each compliant step taken to
    get out of a breach pays off at once rather than only when presence is
    back above the minimum. The default penalty (20 bps of capital per missed
    step) makes the duties bind: at 1 bp, makers that quoted wide through
    the ``oct10`` crash out-earned those that kept the duties.
    """

    name = "obligation"

    def __init__(
        self, inventory_penalty: float = 1e-4, rebate: float = 0.05, penalty: float = 20.0
    ):
        super().__init__(inventory_penalty)
        self.rebate = check_number("rebate", rebate, 0.0, 1e6)
        self.penalty = check_number("penalty", penalty, 0.0, 1e6)

    def parts(self, acc):
        out = super().parts(acc)
        out["rebate"] = self.rebate * acc.compliant
        out["penalty"] = -self.penalty * acc.breach * (1.0 - acc.compliant)
        return out


class Liability(Freedom):
    """``liability``: freedom plus "skin in the game" for the fund's losses.

    reward = freedom - share * 1e4 * (fund_drawdown + socialised_loss) / capital * (1 - quoted)

    A maker that is not quoting both sides when the insurance fund pays out
    or losses are socialised carries ``share`` of them.
    """

    name = "liability"

    def __init__(self, inventory_penalty: float = 1e-4, share: float = 0.1):
        super().__init__(inventory_penalty)
        self.share = check_number("share", share, 0.0, 1.0)

    def parts(self, acc):
        out = super().parts(acc)
        loss = acc.fund_drawdown + acc.socialised_loss
        out["liability"] = -self.share * BPS * loss / acc.capital * (1.0 - acc.quoted)
        return out


class Custom(Regime):
    """A user callable ``fn(acc: StepAccounting) -> rewards`` (array or scalar per agent)."""

    name = "custom"

    def __init__(self, fn: Callable):
        self.fn = fn

    def parts(self, acc):
        returned = self.fn(acc)
        shape = acc.pnl.shape
        wanted = f"a number or an array of shape {shape} (one per agent)"
        reward = np.asarray(returned)
        if isinstance(returned, (bool, np.bool_)) or reward.dtype.kind not in "iuf":
            raise ValueError(f"the custom reward must return {wanted}, got {returned!r}")
        if reward.shape not in ((), shape):
            raise ValueError(f"the custom reward must return {wanted}, got shape {reward.shape}")
        if not np.isfinite(reward).all():
            raise ValueError("the custom reward returned a NaN or infinite value")
        return {"custom": np.broadcast_to(reward, shape).astype(np.float64)}


REGIMES = {"freedom": Freedom, "obligation": Obligation, "liability": Liability}


def make_regime(regime, **kwargs) -> Regime:
    """A regime from its name (with keyword parameters), an instance, or a callable."""
    if not isinstance(regime, str) and kwargs:
        raise ConfigError(
            "regime_kwargs apply to a regime given by name, not to a callable or Regime"
        )
    if isinstance(regime, Regime):
        return regime
    if isinstance(regime, str):
        if regime not in REGIMES:
            raise ConfigError(
                f"regime must be one of {sorted(REGIMES)} or a callable, got {regime!r}"
            )
        cls = REGIMES[regime]
        allowed = sorted(inspect.signature(cls).parameters)
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise ConfigError(f"regime_kwargs {unknown} unknown to {regime!r}; allowed: {allowed}")
        return cls(**kwargs)
    if isinstance(regime, type):
        raise ConfigError(
            f"regime must be a name, a Regime instance or a callable, got the class "
            f"{regime.__name__}: pass {regime.__name__}(...) or its name"
        )
    if callable(regime):
        try:
            inspect.signature(regime).bind(None)
        except TypeError:
            raise ConfigError(
                f"a custom regime is called with one argument (the step's StepAccounting); "
                f"{regime!r} does not take one"
            ) from None
        except ValueError:  # no signature to inspect (some builtins): call it and see
            pass
        return Custom(regime)
    raise ConfigError(f"regime must be one of {sorted(REGIMES)} or a callable, got {regime!r}")
