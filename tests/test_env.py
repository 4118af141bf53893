"""The Gymnasium environments: API checkers, determinism, vector vs single, bad input."""

import math
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mmgym
from mmgym.core.brackets import SMALL_ALT_BRACKETS
from mmgym.core.config import ConfigError
from mmgym.env.core import INFO_KEYS
from mmgym.env.market_making import MarketMakingEnv
from mmgym.env.observation import observation_names, observation_table
from mmgym.env.rewards import Obligation
from mmgym.env.vector import MarketMakingVectorEnv
from mmgym.scenario.config import load_raw

SHORT = {"horizon": 40}


def rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out += [obs, np.float64(reward), np.float64(info["equity"])]
        if terminated or truncated:
            out.append(env.reset()[0])
    return out


def random_actions(n, size, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size)).astype(np.float32)


@pytest.mark.parametrize("regime", ["freedom", "obligation", "liability", lambda acc: acc.pnl])
def test_checkers_pass_without_warnings(regime):
    env = gym.make("mmgym/MarketMaking-v0", regime=regime, **SHORT).unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
        sb3_check_env(env, warn=True)
    assert [str(w.message) for w in caught] == []


def test_make_by_id_with_and_without_import():
    env = gym.make("mmgym/MarketMaking-v0", **SHORT)
    assert isinstance(env.unwrapped, MarketMakingEnv)
    code = (
        "import gymnasium as gym, sys; "
        "env = gym.make('mmgym:mmgym/MarketMaking-v0', horizon=5); "
        "print(env.reset(seed=1)[0].shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(env.observation_space.shape)


def test_same_seed_same_trajectory_even_in_alternation():
    actions = random_actions(90, 5)
    reference = rollout(MarketMakingEnv(**SHORT), 7, actions)
    assert len(reference) > 3 * 90  # at least one reset happened inside
    a, b = MarketMakingEnv(**SHORT), MarketMakingEnv(**SHORT)
    out_a, out_b = [a.reset(seed=7)[0]], [b.reset(seed=7)[0]]
    for act in actions:  # step the two envs in alternation
        for env, out in ((a, out_a), (b, out_b)):
            obs, reward, terminated, truncated, info = env.step(act)
            out += [obs, np.float64(reward), np.float64(info["equity"])]
            if terminated or truncated:
                out.append(env.reset()[0])
    for got in (out_a, out_b):
        assert len(got) == len(reference)
        for x, y in zip(got, reference, strict=True):
            np.testing.assert_array_equal(x, y)
    other = rollout(MarketMakingEnv(**SHORT), 8, actions)
    assert not np.array_equal(other[0], reference[0])


def crash_liquidates_kwargs():
    """oct10 with 100x in every alt bracket: a maker quoting tight and large at 10x
    piles up inventory and is liquidated (see below), here within 2,100 steps."""
    raw = load_raw("oct10")
    alt = next(m for m in raw["exchange"]["markets"] if m["name"] == "ALTUSDT")
    alt["brackets"] = [[row.floor, 100.0, row.mmr] for row in SMALL_ALT_BRACKETS]
    return {"scenario": raw, "capital": 1e6, "horizon": 2200}


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_vector_env_equals_single_envs(mode):
    n, steps = 3, 60
    actions = random_actions(steps * n, 5, seed=3).reshape(steps, n, 5)
    assert_vector_equals_singles(mode, SHORT, actions)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_vector_env_equals_single_envs_through_liquidations(mode):
    quote = np.array([-1.0, -1.0, 1.0, 1.0, -1.0], np.float32)  # tightest, largest
    actions = np.tile(quote, (2400, 2, 1))
    terminations = assert_vector_equals_singles(mode, crash_liquidates_kwargs(), actions)
    assert terminations >= 2  # each env liquidated, reset and stepped on


def assert_vector_equals_singles(mode, kwargs, actions):
    """Step a native vector env and N single envs seeded 11, 12, ... with ``actions``
    (steps x N x action): equal observations, rewards, flags and infos, through
    autoresets. Returns the number of terminations."""
    steps, n = actions.shape[:2]
    venv = gym.make_vec(
        "mmgym/MarketMaking-v0",
        num_envs=n,
        vectorization_mode="vector_entry_point",
        autoreset_mode=mode,
        **kwargs,
    )
    obs, _ = venv.reset(seed=11)
    singles = [MarketMakingEnv(**kwargs) for _ in range(n)]
    single_obs = [env.reset(seed=11 + i)[0] for i, env in enumerate(singles)]
    np.testing.assert_array_equal(obs, np.stack(single_obs))
    pending = [False] * n
    terminations = 0
    for t in range(steps):
        obs, reward, terminated, truncated, info = venv.step(actions[t])
        for i, env in enumerate(singles):
            if pending[i]:  # NEXT_STEP: this step only reset env i
                expected, pending[i] = env.reset()[0], False
                assert reward[i] == 0 and not terminated[i] and not truncated[i]
                np.testing.assert_array_equal(obs[i], expected)
                continue
            o, r, te, tr, inf = env.step(actions[t, i])
            assert (reward[i], terminated[i], truncated[i]) == (r, te, tr)
            # SAME_STEP: a finished env's last step is in final_info, its info is the reset's.
            last = info["final_info"] if (te or tr) and mode == AutoresetMode.SAME_STEP else info
            assert all(last[k][i] == inf[k] for k in INFO_KEYS if np.isfinite(inf[k]))
            if te or tr:
                if mode == AutoresetMode.SAME_STEP:
                    np.testing.assert_array_equal(info["final_obs"][i], o)
                    np.testing.assert_array_equal(obs[i], env.reset()[0])
                else:
                    np.testing.assert_array_equal(obs[i], o)
                    pending[i] = True
            else:
                np.testing.assert_array_equal(obs[i], o)
            terminations += bool(te)
    return terminations


def test_info_has_stable_keys_every_step():
    env = MarketMakingEnv(regime="obligation", **SHORT)
    env.reset(seed=0)
    keys = None
    for a in random_actions(10, 5):
        info = env.step(a)[4]
        keys = keys or list(info)
        assert list(info) == keys
    assert set(INFO_KEYS) <= set(keys)
    assert {"reward_pnl", "reward_inventory", "reward_rebate", "reward_penalty"} <= set(keys)


@pytest.mark.parametrize(
    "action, message",
    [
        (np.full(5, np.nan, np.float32), "finite"),
        (np.array([0, 0, 0, np.inf, 0], np.float32), "finite"),
        (np.zeros(4, np.float32), r"shape \(5,\)"),
        (np.zeros((1, 5), np.float32), r"shape \(5,\)"),
        (np.zeros(5, np.int64), "floating-point"),
        (np.zeros(5, bool), "floating-point"),
    ],
)
def test_bad_actions_raise_value_error(action, message):
    env = MarketMakingEnv(**SHORT)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_out_of_range_actions_are_clipped():
    a, b = MarketMakingEnv(**SHORT), MarketMakingEnv(**SHORT)
    a.reset(seed=0)
    b.reset(seed=0)
    big = np.array([5.0, -7.0, 3.0, 2.0, -9.0], np.float32)
    np.testing.assert_array_equal(a.step(big)[0], b.step(np.clip(big, -1, 1))[0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"regime": "anarchy"}, "regime must be one of"),
        ({"market": "DOGEUSDT"}, "market 'DOGEUSDT' is not in scenario"),
        ({"dt": 1.5}, "dt must be a whole multiple"),
        ({"horizon": 0}, r"horizon must be in \[1,"),
        ({"max_offset_bps": -1.0}, "max_offset_bps must be in"),
        ({"scenario": "nowhere"}, "unknown scenario 'nowhere'"),
        ({"render_mode": "human"}, "render_mode must be one of"),
        ({"scenario": "oct10", "dt": 9000}, "dt must leave one env step after the warm-up"),
        ({"scenario": 3}, "scenario must be a name, a path, a mapping"),
        ({"regime": Obligation}, "got the class Obligation"),
        ({"regime": lambda accounting, extra: 0.0}, "custom regime is called with one argument"),
        ({"capitol": 1}, r"unknown env argument\(s\) \['capitol'\]; allowed: \[.*'capital'"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MarketMakingEnv(**kwargs)
    assert issubclass(ConfigError, ValueError)


def test_withdrawal_is_a_legal_action_and_no_quotes_rest():
    env = MarketMakingEnv(**SHORT)
    env.reset(seed=0)
    withdraw = np.array([0, 0, -1, -1, -1], np.float32)
    obs, _, _, _, info = env.step(withdraw)
    assert info["quoted"] == 0 and info["min_quote_notional"] == 0
    batch = env.core.batch
    account = batch.agent_params.account[0]
    assert not (batch.state.order_owner[0][batch.state.order_id[0] > 0] == account).any()


def test_dt_groups_engine_steps():
    env = MarketMakingEnv(dt=5.0, horizon=4)
    env.reset(seed=0)
    step0 = int(env.core.batch.state.step[0])
    env.step(np.zeros(5, np.float32))
    assert env.core.batch.state.step[0] == step0 + 5


def test_the_liquidations_column_sums_every_engine_step_of_an_env_step():
    """oct10 through its crash, the agent not quoting: an env of 5 s steps sees the
    liquidations of all 5 engine steps, as one of 1 s steps does over the same 5."""
    from mmgym.core.codes import S_LIQ_NOTIONAL_LONG, S_LIQ_NOTIONAL_SHORT

    kwargs = {"scenario": "oct10", "warmup": 3050, "terminate_on_liquidation": False}
    coarse, fine = MarketMakingEnv(dt=5.0, **kwargs), MarketMakingEnv(**kwargs)
    coarse.reset(seed=0)
    fine.reset(seed=0)
    batch = fine.core.batch
    k, ref = int(batch.market_index[0]), batch.agent_params.liq_reference[0]
    markets = fine.core.setup.markets
    column = observation_names(markets).index(f"{markets[0]}.liquidations")
    idle = np.array([0.0, 0.0, -1.0, -1.0, -1.0], np.float32)
    seen = 0
    for _ in range(40):
        obs = coarse.step(idle)[0]
        liq = 0.0
        for _ in range(5):
            fine.step(idle)
            stats = batch.state.market_stats[0, k]
            liq += stats[S_LIQ_NOTIONAL_LONG] + stats[S_LIQ_NOTIONAL_SHORT]
        assert obs[column] == np.float32(np.log1p(liq / ref))
        seen += liq > 0
    assert seen > 5  # the window has liquidations to sum


def test_renders():
    env = MarketMakingEnv(render_mode="ansi", **SHORT)
    env.reset(seed=0)
    env.step(np.array([-0.9, -0.9, 0, 0, -1], np.float32))  # 10 bps from mid: near the top
    text = env.render()
    assert "bid" in text and "ask" in text and "<- agent" in text and "insurance fund" in text
    env = MarketMakingEnv(render_mode="rgb_array", **SHORT)
    env.reset(seed=0)
    env.step(np.zeros(5, np.float32))
    image = env.render()
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


def test_observation_table_matches_space():
    env = MarketMakingEnv(**SHORT)
    names = observation_names(env.core.setup.markets)
    assert len(names) == env.observation_space.shape[0]
    assert observation_table().count("\n") == 12 + 10 + 1


def test_multi_market_agent():
    env = MarketMakingEnv(market=["BTCUSDT", "ALTUSDT"], **SHORT)
    obs, _ = env.reset(seed=0)
    assert env.action_space.shape == (10,) and obs.shape == (2 * 12 + 10,)
    env.step(np.zeros(10, np.float32))


def test_vector_env_rejects_bad_input():
    with pytest.raises(ValueError, match="num_envs"):
        MarketMakingVectorEnv(num_envs=0)
    with pytest.raises(ValueError, match="autoreset_mode"):
        MarketMakingVectorEnv(num_envs=2, autoreset_mode="sometimes")
    venv = MarketMakingVectorEnv(num_envs=2, **SHORT)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 5\)"):
        venv.step(np.zeros(5, np.float32))
    bad_values = [np.full((2, 5), np.nan, np.float32), np.full((2, 5), np.inf, np.float32)]
    for action in bad_values:
        with pytest.raises(ValueError, match="finite"):
            venv.step(action)
    for action in (np.zeros((2, 5), np.int64), np.zeros((2, 5), bool)):
        with pytest.raises(ValueError, match="floating-point"):
            venv.step(action)
    for seed in (True, 1.5, [1, 2, 3]):
        with pytest.raises(ValueError, match="seed must be an int, None or 2 seeds"):
            venv.reset(seed=seed)
    with pytest.raises(ValueError, match="seed must be None or an integer >= 0, got -1"):
        venv.reset(seed=-1)
    with pytest.raises(ConfigError, match="max_episode_steps must be in"):
        MarketMakingVectorEnv(num_envs=2, max_episode_steps=0)


def test_vector_seeds_may_be_a_numpy_array_of_integers():
    venv = MarketMakingVectorEnv(num_envs=2, **SHORT)
    from_array = venv.reset(seed=np.array([4, 9]))[0]
    np.testing.assert_array_equal(from_array, venv.reset(seed=[4, 9])[0])
    for seeds in ([4, -1], [4, 2.0], np.array([True, False])):
        with pytest.raises(ValueError, match="each env's seed must be None or an integer >= 0"):
            venv.reset(seed=seeds)


def test_same_step_infos_hold_zeros_where_their_masks_are_false():
    """As Gymnasium's vector envs: an env's entry is 0 wherever its mask is False."""
    venv = MarketMakingVectorEnv(num_envs=2, autoreset_mode=AutoresetMode.SAME_STEP, horizon=5)
    venv.reset(seed=0)
    action = np.zeros((2, 5), np.float32)
    for _ in range(2):
        venv.step(action)
    venv.reset(options={"reset_mask": np.array([False, True])})  # env 1 starts again
    for _ in range(3):
        _, _, terminated, truncated, info = venv.step(action)
    assert truncated.tolist() == [True, False] and not terminated.any()
    final = info["final_info"]
    for key in INFO_KEYS:
        assert info[f"_{key}"].tolist() == [False, True] and info[key][0] == 0, key
        assert final[f"_{key}"].tolist() == [True, False] and final[key][1] == 0, key
    assert final["equity"][0] > 0 and info["equity"][1] > 0


def test_duties_take_whole_numbers_written_as_floats():
    from mmgym.env.rewards import Duties

    duties = Duties(window=30.0)
    assert duties.window == 30 and isinstance(duties.window, int)
    env = MarketMakingEnv(regime="obligation", duties={"window": 30.0}, **SHORT)
    env.reset(seed=0)
    env.step(np.zeros(5, np.float32))
    with pytest.raises(ConfigError, match=r"duties.window must be an integer, got 30.5"):
        Duties(window=30.5)


def test_reset_options_are_checked():
    env = MarketMakingEnv(**SHORT)
    env.reset(seed=0, options={"foo": 1})
    with pytest.raises(ValueError, match="options must be a dict or None"):
        env.reset(options="abc")
    venv = MarketMakingVectorEnv(num_envs=2, **SHORT)
    venv.reset(seed=0, options={"reset_mask": np.array([False, True])})
    for mask in ([0, 1], np.array([np.nan, 0.0]), np.array([True])):
        with pytest.raises(ValueError, match="reset_mask must be a bool array of shape"):
            venv.reset(options={"reset_mask": mask})
    with pytest.raises(ValueError, match="options must be a dict or None"):
        venv.reset(options=[1])


def test_vector_reset_seeds_its_own_generator_as_gymnasium_does():
    a, b = (MarketMakingVectorEnv(num_envs=2, **SHORT) for _ in range(2))
    a.reset(seed=3)
    b.reset(seed=3)
    assert a.np_random_seed == 3
    assert a.np_random.random() == b.np_random.random()


def test_a_book_too_small_raises_in_the_env():
    from mmgym.core import BookFullError

    env = MarketMakingEnv(overrides={"exchange.book_capacity": 2}, **SHORT)
    with pytest.raises(BookFullError, match="book_capacity=2"):
        env.reset(seed=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_quote_notional": 1e-9}, r"max_quote_notional\['ALTUSDT'\] must be in \[2.0,"),
        ({"overrides": [1]}, "overrides must be a dict or None"),
        ({"regime_kwargs": "x"}, "regime_kwargs must be a dict or None"),
        ({"terminate_on_liquidation": "no"}, "terminate_on_liquidation must be True or False"),
    ],
)
def test_more_bad_arguments_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MarketMakingEnv(**kwargs)


@pytest.mark.parametrize(
    "returned, message",
    [
        (np.zeros(3), r"got shape \(3,\)"),
        (np.zeros((1, 1)), r"got shape \(1, 1\)"),
        (None, "must return a number or an array"),
        ("1.5", "must return a number or an array"),
        (True, "must return a number or an array"),
        (np.nan, "NaN or infinite"),
    ],
)
def test_a_custom_reward_must_return_one_number_per_agent(returned, message):
    env = MarketMakingEnv(regime=lambda acc: returned, **SHORT)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(np.zeros(5, np.float32))


def test_a_custom_reward_can_call_a_built_in_regime():
    from mmgym.env.rewards import Freedom

    built_in, custom = (
        MarketMakingEnv(**SHORT),
        MarketMakingEnv(regime=lambda acc: Freedom()(acc), **SHORT),
    )
    built_in.reset(seed=3)
    custom.reset(seed=3)
    action = np.array([-0.5, -0.5, 0.5, 0.5, -1.0], np.float32)
    for _ in range(20):
        assert built_in.step(action)[1] == custom.step(action)[1]


def test_reward_parts_follow_the_documented_formula_from_the_info():
    env = MarketMakingEnv(regime="liability", horizon=60)
    env.reset(seed=4)
    capital = env.core.setup.capital
    quoting = np.array([-0.9, -0.9, 0.5, 0.5, -1.0], np.float32)
    for _ in range(60):
        _, reward, _, _, info = env.step(quoting)
        assert info["reward_pnl"] == pytest.approx(1e4 * info["pnl"] / capital, rel=1e-12)
        inventory = -1e-4 * 1e4 * (info["inventory"] / capital) ** 2
        assert info["reward_inventory"] == pytest.approx(inventory, rel=1e-12, abs=1e-300)
        loss = info["fund_drawdown"] + info["socialised_loss"]
        charge = -0.1 * 1e4 * loss / capital * (1.0 - info["quoted"])
        assert info["reward_liability"] == pytest.approx(charge, rel=1e-12, abs=1e-300)
        parts = info["reward_pnl"] + info["reward_inventory"] + info["reward_liability"]
        assert reward == pytest.approx(parts, rel=1e-12, abs=1e-12)
    assert info["inventory"] > 0.0  # the quotes filled: the inventory term was exercised


def test_max_episode_steps_is_a_time_limit_in_every_make():
    """The same keywords give the same episode, observation for observation."""
    kwargs = {"id": "mmgym/MarketMaking-v0", "max_episode_steps": 7}
    single = gym.make(**kwargs)
    native = gym.make_vec(**kwargs, num_envs=1, vectorization_mode="vector_entry_point")
    obs, _ = single.reset(seed=4)
    vec_obs, _ = native.reset(seed=4)
    action = np.zeros(single.action_space.shape, np.float32)
    for t in range(7):
        np.testing.assert_array_equal(obs, vec_obs[0])
        obs, _, _, truncated, _ = single.step(action)
        vec_obs, _, _, vec_truncated, _ = native.step(action[None])
        assert truncated == vec_truncated[0] == (t == 6)
    assert native.unwrapped.horizon == single.unwrapped.horizon > 7


def test_envs_pickle_and_copy_after_stepping():
    """Checkpointing a running env, or sending it to another process, works."""
    import copy
    import pickle

    import numba

    env = MarketMakingEnv(**SHORT)
    venv = MarketMakingVectorEnv(num_envs=3, threads=2, **SHORT)
    actions = random_actions(10, 5)
    for e, batch in ((env, actions), (venv, np.repeat(actions[:, None], 3, axis=1))):
        e.reset(seed=2)
        e.step(batch[0])
        clones = [pickle.loads(pickle.dumps(e)), copy.deepcopy(e)]
        for clone in clones:  # the same numba types: no second compilation of the step
            state, clone_state = e.unwrapped.core.batch.state, clone.unwrapped.core.batch.state
            assert numba.typeof(clone_state) == numba.typeof(state)
        for a in batch[1:]:
            want = e.step(a)[0]
            for clone in clones:
                np.testing.assert_array_equal(clone.step(a)[0], want)
    venv.close()


def test_sb3_adapter():
    env = mmgym.make_sb3_vec_env(n_envs=2, horizon=5)
    env.seed(3)
    obs = env.reset()
    assert obs.shape == (2, 22)
    assert env.get_attr("horizon") == [5, 5]
    env.set_attr("render_mode", None)
    assert len(env.env_method("__repr__")) == 2
    done_seen = False
    for _ in range(6):
        obs, reward, done, infos = env.step(np.zeros((2, 5), np.float32))
        if done.any():
            done_seen = True
            i = int(np.flatnonzero(done)[0])
            assert infos[i]["TimeLimit.truncated"] is True
            assert infos[i]["terminal_observation"].shape == (22,)
            assert "episode" in infos[i]
    assert done_seen
    env.seed(3)
    expected = MarketMakingVectorEnv(num_envs=2, horizon=5).reset(seed=3)[0]
    assert np.array_equal(env.reset(), expected)


def test_sb3_adapter_rejects_what_it_would_override():
    with pytest.raises(ValueError, match="autoreset_mode: SB3's VecEnv contract fixes it"):
        mmgym.make_sb3_vec_env(n_envs=2, autoreset_mode=AutoresetMode.NEXT_STEP)
    with pytest.raises(ValueError, match="monitor must be True or False"):
        mmgym.make_sb3_vec_env(n_envs=2, monitor="no")


@pytest.fixture(scope="module")
def oct10_episodes():
    """One oct10 episode (seed 0, obligation regime) per scripted policy."""
    from mmgym.env.kernels import N_MARKET_OBS, OB_ASK_LIVE, OB_BID_LIVE, OB_STRESS

    quote = np.array([-0.6, -0.6, 0.0, 0.0, -1.0], np.float32)  # 20 bps, half size
    withdraw = np.array([-0.6, -0.6, -1.0, -1.0, -1.0], np.float32)
    env = MarketMakingEnv(scenario="oct10", regime="obligation")
    out = {}
    for name in ("always_quote", "withdraw_on_stress"):
        obs, _ = env.reset(seed=0)
        steps = []
        while True:
            stressed = obs[N_MARKET_OBS + OB_STRESS] > 0
            action = withdraw if name == "withdraw_on_stress" and stressed else quote
            obs, reward, terminated, truncated, info = env.step(action)
            steps.append({**info, "bid_live": obs[OB_BID_LIVE], "ask_live": obs[OB_ASK_LIVE]})
            if terminated or truncated:
                break
        out[name] = ({k: np.array([s[k] for s in steps]) for k in steps[0]}, terminated)
    return out


def test_always_quoting_through_oct10_loads_inventory_and_margin(oct10_episodes):
    info, terminated = oct10_episodes["always_quote"]
    stressed = info["stressed"] > 0
    calm = info["inventory"][: int(np.argmax(stressed))]
    assert stressed.any() and info["ask_live"][stressed].mean() == 1.0
    # The cascade sells into its bids: inventory many times its calm level, margin
    # ratio a hundred times its calm level. Then the brackets stop it: past 1M USDT
    # of the alt its exposure is margined at 1x, its bids are refused while its
    # asks stay, and it keeps its account, having lost a third of its equity.
    assert info["inventory"].max() > 10 * calm.max()
    assert info["margin_ratio"].max() > 0.3 > 50 * info["margin_ratio"][: len(calm)].max()
    assert info["bid_live"][stressed].mean() < 0.5
    assert not terminated and info["liquidated"].max() == 0
    assert 0.5 * info["equity"][0] < info["equity"][-1] < 0.8 * info["equity"][0]


def test_withdrawing_on_stress_breaches_the_obligation(oct10_episodes):
    info, terminated = oct10_episodes["withdraw_on_stress"]
    stressed = info["stressed"] > 0
    assert not terminated and stressed.sum() > 300
    # At most the step on which stress begins finds its quotes still posted.
    assert info["quoted"][stressed].mean() < 0.05
    assert info["quoted"][~stressed].mean() > 0.95
    assert info["obligation_breach"][stressed].mean() > 0.5
    assert info["obligation_breach"][: int(np.argmax(stressed))].max() == 0
    # The breach costs reward: each step missed while in breach pays the penalty.
    missed = info["obligation_breach"] * (1.0 - info["obligation_compliant"])
    assert missed[stressed].mean() > 0.5
    np.testing.assert_allclose(info["reward_penalty"], -Obligation().penalty * missed)
    assert info["reward_rebate"][stressed].sum() < info["reward_rebate"][~stressed].sum()
    assert info["margin_ratio"].max() < 1.0


def test_liability_charges_each_steps_fund_drawdown_once():
    """``fund_drawdown`` is the fund's fall in the step, not a running total, after a reset too."""
    env = MarketMakingEnv(scenario="oct10", regime="liability")
    away = np.array([0.0, 0.0, -1.0, -1.0, -1.0], np.float32)
    first_steps = []
    for _ in range(2):
        env.reset(seed=0)
        _, reward, _, _, info = env.step(away)
        first_steps.append((reward, info["fund_drawdown"]))
        fund, charged, falls, liability = info["insurance_fund"], [], [], []
        while True:
            _, _, terminated, truncated, info = env.step(away)
            charged.append(info["fund_drawdown"] + info["socialised_loss"])
            falls.append(max(fund - info["insurance_fund"], 0.0) + info["socialised_loss"])
            liability.append(info["reward_liability"])
            fund = info["insurance_fund"]
            if terminated or truncated:
                break
        assert sum(falls) > 1e5  # the cascade draws on the fund
        np.testing.assert_allclose(charged, falls, rtol=1e-12)
        expected = -0.1 * 1e4 * np.array(falls) / env.core.setup.capital
        np.testing.assert_allclose(liability, expected, rtol=1e-12)
    assert first_steps[0] == first_steps[1]


def test_a_liquidated_agent_stays_out_when_the_episode_runs_on():
    # Within the alt's brackets a quoting maker is margined at twice its maintenance
    # and is not liquidated in oct10. With the same maintenance rates but 100x in
    # every bracket its 10x is never capped, and the crash liquidates it.
    kwargs = {**crash_liquidates_kwargs(), "horizon": None}  # the whole scenario
    env = MarketMakingEnv(**kwargs, terminate_on_liquidation=False)
    batch = env.core.batch
    a, k = int(batch.agent_params.account[0]), int(batch.market_index[0])
    env.reset(seed=0)
    quote = np.array([-1.0, -1.0, 1.0, 1.0, -1.0], np.float32)  # tightest, largest
    out, positions = [], []
    while True:
        _, _, terminated, truncated, info = env.step(quote)
        out.append(info["liquidated"])
        state = batch.state
        resting = state.open_buy[0, a, k] + state.open_sell[0, a, k]
        positions.append((state.pos[0, a, k], state.in_liquidation[0, a], resting))
        if truncated:
            break
    assert not terminated
    first = out.index(1.0)
    assert first < len(out) - 100 and min(out[first:]) == 1.0  # the flag stays on
    after = [(pos, resting) for pos, busy, resting in positions[first + 1 :] if not busy]
    assert after and all(resting == 0 for _, resting in after)  # it quotes no more
    assert len({pos for pos, _ in after}) == 1  # nor trades


def test_quote_size_is_usdt_at_the_current_price():
    """Size +1 quotes ``max_quote_notional`` at the fair price, however far the price fell."""
    env = MarketMakingEnv(scenario="oct10", terminate_on_liquidation=False)
    batch = env.core.batch
    ag, k = batch.agent_state, int(batch.market_index[0])
    lot, tick = batch.params.lot_size[k], batch.params.tick_size[k]
    top = env.core.setup.max_quote_notional[0]
    env.reset(seed=0)
    ask_only = np.array([1.0, 1.0, -1.0, 1.0, 1.0], np.float32)
    notionals, mids = [], []
    while True:
        _, _, _, truncated, info = env.step(ask_only)
        if ag.present[0, 0, 0, 1]:
            notionals.append(ag.quote_lots[0, 0, 0, 1] * lot * ag.quote_price[0, 0, 0, 1] * tick)
            mids.append(info["mid"])
        if truncated:
            break
    assert min(mids) < 0.8 * max(mids)  # the alt fell while it quoted
    # The ask sits up to max_offset_bps (1%) above the fair price, a lot rounds down.
    assert top * 0.99 < min(notionals) and max(notionals) < top * 1.02


def test_zero_offsets_quote_a_tick_either_side_of_a_fair_price_on_a_tick():
    """Offsets at -1 (0 bps): both quotes post, the bid below the fair price and the
    ask above, also on steps whose fair price falls on a tick."""
    from mmgym.env.kernels import quote_reference

    env = MarketMakingEnv()
    batch = env.core.batch
    ag, k = batch.agent_state, int(batch.market_index[0])
    tick = batch.params.tick_size[k]
    env.reset(seed=1)
    on_tick = 0
    for _ in range(60):
        # The fair price the step's quotes are placed around, read before the step.
        fair = quote_reference(batch.params, batch.state, ag, 0, 0, 0, k) / tick
        _, _, _, _, info = env.step(np.array([-1.0, -1.0, 1.0, 1.0, -1.0], np.float32))
        bid, ask = ag.quote_price[0, 0, 0]
        assert info["quoted"] == 1.0 and bid < fair < ask
        assert (bid, ask) == (math.ceil(fair) - 1, math.floor(fair) + 1)  # the next ticks
        on_tick += fair == round(fair)
    assert on_tick > 0  # the case that put both quotes on one tick


def test_readme_env_section_is_generated_from_the_docstring():
    from pathlib import Path

    from mmgym.env.docs import replace_section

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert replace_section(readme) == readme, "run: python -m mmgym.env.docs --write README.md"


def test_warmup_range_is_drawn_per_reset_and_the_clock_follows():
    from mmgym.env.kernels import N_MARKET_OBS, OB_TIME_COS, OB_TIME_SIN

    env = MarketMakingEnv(warmup=(60, 600), horizon=5)
    starts = set()
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        step = int(env.core.batch.state.step[0])
        starts.add(step)
        clock = 20 * 3600 + step  # calm starts at 20:00, one second a step
        angle = 2 * np.pi * clock / 86400
        np.testing.assert_allclose(obs[N_MARKET_OBS + OB_TIME_SIN], np.sin(angle), atol=1e-6)
        np.testing.assert_allclose(obs[N_MARKET_OBS + OB_TIME_COS], np.cos(angle), atol=1e-6)
        assert 60 <= step <= 600
    assert len(starts) > 3
    env.reset(seed=2)
    first = int(env.core.batch.state.step[0])
    env.reset(seed=2)
    assert env.core.batch.state.step[0] == first
    with pytest.raises(ValueError, match=r"warmup\[1\] must be in"):
        MarketMakingEnv(warmup=(600, 60))


def test_presence_column_is_the_obligation_monitors():
    env = MarketMakingEnv(regime="obligation", **SHORT)
    obs, _ = env.reset(seed=4)
    assert obs[-1] == 1.0
    rng = np.random.default_rng(4)
    for _ in range(40):
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, _, terminated, truncated, info = env.step(action)
        assert obs[-1] == np.float32(info["obligation_presence"])
        if terminated or truncated:
            break


def test_threads_do_not_change_the_trajectory():
    rollouts = []
    for threads in (1, 3):
        env = MarketMakingVectorEnv(
            num_envs=5, scenario="oct10", horizon=60, warmup=3400, threads=threads
        )
        obs, _ = env.reset(seed=11)
        rng = np.random.default_rng(0)
        out = [obs]
        for _ in range(60):
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            obs, reward, terminated, truncated, info = env.step(action)
            out += [obs, reward, info["liq_count"], info["equity"]]
        env.close()
        rollouts.append(out)
    assert sum(liq.sum() for liq in rollouts[0][3::4]) > 0  # inside the cascade
    for a, b in zip(*rollouts, strict=True):
        np.testing.assert_array_equal(a, b)


def test_threads_must_be_a_positive_integer():
    with pytest.raises(ConfigError, match="threads"):
        MarketMakingVectorEnv(num_envs=2, threads=0)


def test_step_arrays_is_for_same_step_vector_envs_only():
    env = MarketMakingVectorEnv(2, horizon=20)
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="SAME_STEP"):
        env.step_arrays(np.zeros((2, env.single_action_space.shape[0]), np.float32))


SPOT = {"market": "USDEUSDT", "horizon": 40}  # the collateral coin's spot book
BID_ONLY = np.array([-1.0, 1.0, 1.0, -1.0, -1.0], np.float32)  # tightest, largest bid
ASK_ONLY = np.array([1.0, -1.0, -1.0, 1.0, -1.0], np.float32)
FLATTEN = np.array([0.0, 0.0, -1.0, -1.0, 1.0], np.float32)  # no quotes, flatten it all


def test_spot_inventory_is_the_holding_bought_or_sold_since_the_start():
    """The starting holding is collateral, not inventory: only what the agent traded counts."""
    from mmgym.env.kernels import OB_INVENTORY

    env = MarketMakingEnv(**SPOT)
    batch = env.core.batch
    a, k = int(batch.agent_params.account[0]), int(batch.market_index[0])
    obs, _ = env.reset(seed=0)
    start = int(batch.state.pos[0, a, k])
    assert start > 0 and obs[OB_INVENTORY] == 0.0
    obs, _, _, _, info = env.step(np.array([0.0, 0.0, -1.0, -1.0, -1.0], np.float32))
    assert obs[OB_INVENTORY] == 0.0 and info["inventory"] == 0.0
    assert info["reward_inventory"] == 0.0
    for _ in range(25):
        obs, _, _, _, info = env.step(BID_ONLY)
    bought = (int(batch.state.pos[0, a, k]) - start) * batch.params.lot_size[k]
    notional = bought * batch.state.mark_price[0, k]
    assert bought > 0
    np.testing.assert_allclose(info["inventory"], notional, rtol=1e-12)
    np.testing.assert_allclose(obs[OB_INVENTORY], notional / env.core.setup.capital, rtol=1e-6)
    penalty = -1e-4 * 1e4 * (notional / env.core.setup.capital) ** 2
    np.testing.assert_allclose(info["reward_inventory"], penalty, rtol=1e-12)


@pytest.mark.parametrize("quote", [BID_ONLY, ASK_ONLY], ids=["bought", "sold"])
def test_flatten_on_spot_trades_back_to_the_starting_holding(quote):
    env = MarketMakingEnv(**SPOT)
    batch = env.core.batch
    a, k = int(batch.agent_params.account[0]), int(batch.market_index[0])
    env.reset(seed=0)
    start = int(batch.state.pos[0, a, k])
    for _ in range(25):
        env.step(quote)
    traded = int(batch.state.pos[0, a, k]) - start
    assert traded > 0 if quote is BID_ONLY else traded < 0
    _, _, _, _, info = env.step(FLATTEN)
    assert batch.state.pos[0, a, k] == start and info["inventory"] == 0.0
    # Sent at the fair price of a coin worth about 1 USDT.
    np.testing.assert_allclose(info["flattened"], abs(traded) * batch.params.lot_size[k], rtol=0.01)


def test_vector_env_metadata_matches_the_single_env():
    """Gymnasium's vector video wrappers read ``render_fps`` (30 if it is missing)."""
    venv = gym.make_vec(
        "mmgym/MarketMaking-v0", num_envs=2, vectorization_mode="vector_entry_point", horizon=5
    )
    for key in ("render_modes", "render_fps"):
        assert venv.metadata[key] == MarketMakingEnv.metadata[key]
    assert MarketMakingEnv.metadata["render_fps"] == 4


def _assert_conserved(exchange, t):
    inv = exchange.invariants()
    assert inv["position_imbalance"] == 0 and inv["holdings_drift"] == 0, t
    assert inv["cash_drift"] < 1e-3, t


@pytest.mark.parametrize("scenario", ["calm", "oct10"])
def test_env_steps_conserve_positions_cash_and_holdings(scenario):
    """The agent's quotes, flattens and liquidation go through the same books: after
    every step of single and vector envs (through their resets), perpetual positions
    sum to zero, spot holdings and cash (with fees and socialised losses) to what
    was deposited."""
    kwargs = {"scenario": scenario, "market": ["BTCUSDT", "ALTUSDT"], "horizon": 60}
    if scenario == "oct10":
        kwargs["warmup"] = (2900, 2900)  # the shock's first minute
    actions = random_actions(2 * 120, 10, seed=5)
    env = MarketMakingEnv(**kwargs)
    env.reset(seed=3)
    for t in range(120):
        _, _, terminated, truncated, _ = env.step(actions[t])
        _assert_conserved(env.core.batch.exchange, t)
        if terminated or truncated:
            env.reset()
    venv = MarketMakingVectorEnv(num_envs=2, **kwargs)
    venv.reset(seed=3)
    for t in range(120):
        venv.step(actions[2 * t : 2 * t + 2])
        _assert_conserved(venv.core.batch.exchange, t)
