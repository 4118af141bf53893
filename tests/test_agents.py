"""Baselines on hand-built observations; evaluation runs."""

import math

import numpy as np
import pytest

import mmgym
from agents import (
    BASELINES,
    AlwaysQuote,
    AvellanedaStoikov,
    RandomPolicy,
    WithdrawOnStress,
    agent_setup_of,
    evaluate,
)
from agents.actions import (
    NO_QUOTE,
    action_space,
    observation_size,
    offset_action,
    offset_bps,
    size_action,
    size_notional,
)
from agents.baselines import make_baseline
from agents.evaluation import METRICS, RECORDED, episode_metrics, interval
from mmgym.env.batch import agent_setup
from mmgym.env.kernels import (
    A_ASK_OFFSET,
    A_ASK_SIZE,
    A_BID_OFFSET,
    A_BID_SIZE,
    A_FLATTEN,
    N_MARKET_OBS,
    OB_DEPTH,
    OB_INVENTORY,
    OB_LIQUIDATIONS,
    OB_MARGIN,
    OB_STRESS,
    OB_VOLATILITY,
)
from mmgym.env.market_making import MarketMakingEnv
from mmgym.env.vector import MarketMakingVectorEnv
from mmgym.scenario.runner import load_scenario

SETUP = agent_setup(load_scenario("calm"))
MAX = SETUP.max_quote_notional[0]
ACCOUNT = N_MARKET_OBS * len(SETUP.markets)


def calm_obs(changes=None):
    """One observation of a calm market (usual volatility, full depth, flat, margin 0),
    with ``changes`` {column: value} applied (market 0's ``OB_*``, ``ACCOUNT + OB_*``)."""
    obs = np.zeros(observation_size(SETUP), np.float32)
    obs[OB_VOLATILITY] = 1.0
    obs[OB_DEPTH] = 1.0
    for column, value in (changes or {}).items():
        obs[column] = value
    return obs


def test_action_conversions_round_trip():
    for bps in (0.0, 12.5, 100.0):
        assert offset_bps(offset_action(bps, SETUP), SETUP) == pytest.approx(bps)
    for notional in (0.1 * MAX, MAX):
        assert size_notional(size_action(notional, SETUP, 0), SETUP, 0) == pytest.approx(notional)
    assert size_notional(NO_QUOTE, SETUP, 0) == 0.0
    assert size_notional(size_action(0.5 * SETUP.min_size * MAX, SETUP, 0), SETUP, 0) == 0.0


def test_always_quote_maps_back_to_its_spread_and_size():
    policy = AlwaysQuote(SETUP, spread_bps=30.0, size=20_000.0)
    action, state = policy.predict(calm_obs())
    assert action.shape == action_space(SETUP).shape and action.dtype == np.float32
    assert state is None
    assert offset_bps(action[A_BID_OFFSET], SETUP) == pytest.approx(15.0, abs=1e-4)
    assert offset_bps(action[A_ASK_OFFSET], SETUP) == pytest.approx(15.0, abs=1e-4)
    for column in (A_BID_SIZE, A_ASK_SIZE):
        assert size_notional(action[column], SETUP, 0) == pytest.approx(20_000.0, rel=1e-6)
    assert action[A_FLATTEN] <= 0.0  # never flattens
    batch, _ = policy.predict(np.stack([calm_obs()] * 3))
    assert batch.shape == (3, action.size) and np.array_equal(batch[1], action)


def test_always_quote_rejects_unquotable_settings():
    with pytest.raises(ValueError, match="spread_bps"):
        AlwaysQuote(SETUP, spread_bps=500.0)
    with pytest.raises(ValueError, match="size"):
        AlwaysQuote(SETUP, size=10 * MAX)


def test_predict_rejects_a_wrong_observation_shape():
    with pytest.raises(ValueError, match="observation must have shape"):
        AlwaysQuote(SETUP).predict(np.zeros(5))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: WithdrawOnStress(SETUP, volatility=math.nan), "volatility must be finite"),
        (lambda: WithdrawOnStress(SETUP, depth=-1), "depth must be in"),
        (lambda: WithdrawOnStress(SETUP, margin=-5), "margin must be in"),
        (lambda: WithdrawOnStress(SETUP, liquidations="0.5"), "liquidations must be a number"),
        (lambda: WithdrawOnStress(SETUP, calm_steps=1.5), "calm_steps must be an integer"),
        (lambda: AvellanedaStoikov(SETUP, risk_bps=math.inf), "risk_bps must be finite"),
        (lambda: AlwaysQuote(SETUP, spread_bps="20"), "spread_bps must be a number"),
        (lambda: AlwaysQuote(SETUP, size=[1000.0, 2000.0]), "one per market"),
    ],
)
def test_baseline_parameters_are_checked(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_predict_checks_the_state_and_episode_start_it_is_given():
    obs = np.stack([calm_obs()] * 2)
    with pytest.raises(ValueError, match="state must be the calm-step counts"):
        WithdrawOnStress(SETUP).predict(obs, state=[1, 2, 3])
    with pytest.raises(ValueError, match="episode_start must hold one flag per observation"):
        AlwaysQuote(SETUP).predict(obs, episode_start=[True, False, True])


def quotes(action):
    """(bid offset bps, ask offset bps, bid USDT, ask USDT) of market 0."""
    return (
        float(offset_bps(action[A_BID_OFFSET], SETUP)),
        float(offset_bps(action[A_ASK_OFFSET], SETUP)),
        float(size_notional(action[A_BID_SIZE], SETUP, 0)),
        float(size_notional(action[A_ASK_SIZE], SETUP, 0)),
    )


def test_avellaneda_stoikov_skews_against_inventory_and_widens_with_volatility():
    policy = AvellanedaStoikov(SETUP, risk_bps=10.0, base_half_spread_bps=10.0)
    unit = MAX / SETUP.capital  # inventory column of one maximal quote
    flat = quotes(policy.predict(calm_obs())[0])
    long = quotes(policy.predict(calm_obs({OB_INVENTORY: unit}))[0])
    short = quotes(policy.predict(calm_obs({OB_INVENTORY: -unit}))[0])
    assert flat[0] == pytest.approx(flat[1], abs=1e-3) == pytest.approx(15.0, abs=1e-3)
    # long: reservation price 10 bps lower, so the bid moves away and the ask closer
    assert long[0] == pytest.approx(25.0, abs=1e-3) and long[1] == pytest.approx(5.0, abs=1e-3)
    assert short[0] < short[1]
    assert long[2] == long[3] > 0  # still quotes both sides
    wild = quotes(policy.predict(calm_obs({OB_VOLATILITY: 2.0}))[0])
    assert wild[0] + wild[1] > flat[0] + flat[1]


@pytest.mark.parametrize(
    "column, value",
    [
        (ACCOUNT + OB_STRESS, 1.0),
        (ACCOUNT + OB_MARGIN, 0.8),
        (OB_VOLATILITY, 4.0),
        (OB_LIQUIDATIONS, 2.0),
        (OB_DEPTH, 0.2),
    ],
)
def test_withdraw_on_stress_quotes_nothing_when_triggered(column, value):
    policy = WithdrawOnStress(SETUP)
    bid, ask, bid_size, ask_size = quotes(policy.predict(calm_obs())[0])
    assert bid_size > 0 and ask_size > 0
    action, _ = policy.predict(calm_obs({column: value}))
    assert quotes(action)[2:] == (0.0, 0.0)
    assert action[A_FLATTEN] <= 0.0  # flatten share 0 by default


def test_withdraw_on_stress_returns_after_calm_and_flattens_if_asked():
    policy = WithdrawOnStress(SETUP, calm_steps=3, flatten=0.5)
    stressed = calm_obs({ACCOUNT + OB_STRESS: 1.0})
    obs = np.stack([stressed, calm_obs()])
    action, state = policy.predict(obs)
    assert action[0, A_FLATTEN] == pytest.approx(0.5) and action[1, A_FLATTEN] == -1.0
    sizes = []
    for _ in range(4):
        action, state = policy.predict(np.stack([calm_obs()] * 2), state=state)
        sizes.append(quotes(action[0])[2])
    assert sizes[:2] == [0.0, 0.0] and sizes[2] > 0  # back after 3 calm steps
    # a new episode starts calm
    action, _ = policy.predict(stressed, state=np.array([0]), episode_start=np.array([True]))
    assert quotes(action)[2] == 0.0
    action, _ = policy.predict(calm_obs(), state=np.array([0]), episode_start=np.array([True]))
    assert quotes(action)[2] > 0


def test_random_policy_is_bounded_and_reproducible():
    space = action_space(SETUP)
    a, _ = RandomPolicy(space, seed=3).predict(np.stack([calm_obs()] * 4))
    b, _ = RandomPolicy(space, seed=3).predict(np.stack([calm_obs()] * 4))
    assert a.shape == (4, space.shape[0]) and a.dtype == np.float32
    assert np.array_equal(a, b) and np.all(np.abs(a) <= 1.0)
    assert RandomPolicy(space, seed=3).predict(calm_obs())[0].shape == space.shape


def test_make_baseline_reads_the_setup_of_any_env():
    envs = [
        MarketMakingEnv(horizon=5),
        MarketMakingVectorEnv(num_envs=2, horizon=5),
        mmgym.make_sb3_vec_env(2, horizon=5),
    ]
    for env in envs:
        assert agent_setup_of(env).markets == SETUP.markets
        for name in BASELINES:
            policy = make_baseline(name, env)
            assert policy.predict(calm_obs())[0].shape == action_space(SETUP).shape
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("nope", SETUP)
    with pytest.raises(TypeError):
        agent_setup_of(object())


@pytest.mark.parametrize("seeds", [(1.7, 2.9), "12", 1000, (-1,), ()])
def test_evaluate_takes_integer_seeds_only(seeds):
    with pytest.raises(ValueError, match="seeds must"):
        evaluate(AlwaysQuote(SETUP), scenario="calm", horizon=3, seeds=seeds)


def test_interval_is_a_t_interval():
    got = interval([1.0, 2.0, 3.0, math.nan])
    assert got.mean == 2.0 and got.n == 3
    assert got.high - got.mean == pytest.approx(4.303 / math.sqrt(3))
    assert math.isnan(interval([math.nan]).mean) and math.isnan(interval([1.0]).low)


def test_evaluate_is_finite_and_deterministic():
    kwargs = {"scenario": "calm", "horizon": 50, "seeds": (7, 8)}
    first = evaluate(WithdrawOnStress(SETUP), **kwargs)
    again = evaluate(WithdrawOnStress(SETUP), **kwargs)
    assert [list(r.values()) for r in first.rows] == [list(r.values()) for r in again.rows]
    for row in first.rows:
        assert set(row) == set(METRICS)
        assert all(math.isfinite(v) for k, v in row.items() if k != "presence_stress")
        assert row["steps"] == 50 and row["presence"] == 1.0
    assert {k: len(v) for k, v in first.series.items()} == {
        "mid": 50,
        "depth_1pct": 50,
        "quoted": 50,
        "stressed": 50,
    }
    summary = first.summary()
    assert summary["steps"].mean == 50
    assert "| mm_pnl |" in first.to_markdown()


def test_episode_metrics_by_hand():
    steps = {
        "equity": np.array([1010.0, 990.0, 1030.0]),
        "pnl": np.array([10.0, -20.0, 40.0]),
        "reward": np.array([1.0, -2.0, 4.0]),
        "quoted": np.array([1.0, 0.0, 1.0]),
        "stressed": np.array([0.0, 1.0, 1.0]),
        "obligation_compliant": np.array([1.0, 0.0, 0.0]),
        "obligation_breach": np.array([0.0, 0.0, 1.0]),
        "inventory": np.array([5.0, 50.0, 20.0]),
        "liquidated": np.array([0.0, 0.0, 0.0]),
        "mid": np.array([100.0, 80.0, 90.0]),
        "depth_1pct": np.array([1e6, 2.5e5, 5e5]),
        "liq_notional_long": np.array([0.0, 3e5, 1e5]),
        "liq_notional_short": np.array([1e3, 0.0, 0.0]),
        "adl_count": np.array([0.0, 2.0, 1.0]),
        "adl_notional": np.array([0.0, 7e3, 3e3]),
        "insurance_fund": np.array([2e6, 1.5e6, 1.6e6]),
    }
    assert episode_metrics(steps) == pytest.approx(
        {
            "mm_pnl": 30.0,  # 1030 - (1010 - 10): the equity before the first step was 1000
            "reward": 3.0,
            "presence": 2 / 3,
            "presence_stress": 0.5,
            "compliance": 1 / 3,
            "duties_met": 2 / 3,
            "inventory_max": 50.0,
            "liquidated": 0.0,
            "depth_trough": -0.75,
            "price_trough": -0.2,
            "liq_notional_long": 4e5,
            "liq_notional_short": 1e3,
            "adl_count": 3.0,
            "adl_notional": 1e4,
            "fund_drawdown": 0.25,
            "steps": 3.0,
        }
    )


def test_evaluate_rows_recount_a_replayed_episode():
    """Each row is the episode the same seed gives a single env, summed up."""
    evaluation = evaluate(AlwaysQuote(SETUP), scenario="calm", horizon=80, seeds=(7,))
    env = MarketMakingEnv(scenario="calm", horizon=80)
    obs, _ = env.reset(seed=7)
    policy, infos = AlwaysQuote(SETUP), []
    for _ in range(80):
        obs, _, _, _, info = env.step(policy.predict(obs)[0])
        infos.append(info)
    steps = {key: np.array([info[key] for info in infos]) for key in RECORDED}
    assert evaluation.rows[0] == episode_metrics(steps)
    assert evaluation.rows[0]["mm_pnl"] == pytest.approx(steps["pnl"].sum(), abs=1e-6)


class Recorder:
    """Quotes like AlwaysQuote and records the state and episode_start it was given."""

    def __init__(self):
        self.inner = AlwaysQuote(SETUP)
        self.calls = []

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        self.calls.append((state, np.array(episode_start)))
        actions, _ = self.inner.predict(observation)
        return actions, len(self.calls)


def test_evaluate_passes_state_and_episode_start_back():
    recorder = Recorder()
    evaluation = evaluate(recorder, scenario="calm", horizon=5, seeds=(1,))
    assert evaluation.rows[0]["steps"] == 5
    assert [c[0] for c in recorder.calls] == [None, 1, 2, 3, 4]
    assert recorder.calls[0][1].tolist() == [True] and recorder.calls[1][1].tolist() == [False]
