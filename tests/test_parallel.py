"""Multi-agent envs: the PettingZoo ParallelEnv and the parameter-sharing SB3 adapter."""

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from pettingzoo.test import parallel_api_test, parallel_seed_test

import mmgym
from mmgym.env.core import INFO_KEYS
from mmgym.env.parallel import MarketMakingParallelEnv, parallel_env
from mmgym.env.sb3_shared import make_shared_sb3_vec_env

SHORT = {"horizon": 20}
HOLD = np.array([0, 0, 0, 0, -1], np.float32)  # quote both sides mid-range, never flatten
TIGHT = np.array([-1, -1, 0, 0, -1], np.float32)  # quote at the fair price, rounded to ticks


def ruin(core, e: int, g: int) -> None:
    """Flip agent g's cash in env e: its equity goes negative and it is liquidated next step."""
    account = core.batch.agent_params.account[g]
    core.batch.state.cash[e, account] *= -1.0


def resting_orders(core, e: int, g: int) -> int:
    """Orders agent g has resting in env e's books."""
    s = core.batch.state
    account = core.batch.agent_params.account[g]
    return int(((s.order_id[e] > 0) & (s.order_owner[e] == account)).sum())


def test_pettingzoo_api_and_seed_tests_pass_without_warnings():
    env = mmgym.parallel_env(n_agents=3, **SHORT)
    assert isinstance(env, MarketMakingParallelEnv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=SHORT["horizon"] + 5)
        parallel_seed_test(lambda: parallel_env(**SHORT))
    assert [str(w.message) for w in caught] == []
    assert env.agents == []  # every agent truncated at the horizon
    assert env.possible_agents == ["maker_0", "maker_1", "maker_2"]


def rollout(env, seed):
    """Seeded episode with seeded random actions, then one unseeded reset."""
    obs, _ = env.reset(seed=seed)
    out = [obs]
    rng = np.random.default_rng(0)
    for _ in range(SHORT["horizon"]):  # bounded: an env that never ends fails, not hangs
        actions = {a: rng.uniform(-1, 1, 5).astype(np.float32) for a in env.agents}
        out += list(env.step(actions))
    assert env.agents == []
    out.append(env.reset()[0])
    return out


def test_same_seed_same_episode_and_reset_continues_the_generator():
    a, b = rollout(parallel_env(**SHORT), 7), rollout(parallel_env(**SHORT), 7)
    assert len(a) == 1 + 5 * SHORT["horizon"] + 1
    assert data_equivalence(a, b)
    first, second = a[0]["maker_0"], a[-1]["maker_0"]
    assert not np.array_equal(first, second)  # reset() drew a new exchange...
    env = parallel_env(**SHORT)
    env.reset(seed=7)
    np.testing.assert_array_equal(env.reset()[0]["maker_0"], second)  # ...from the same stream
    assert not np.array_equal(parallel_env(**SHORT).reset(seed=8)[0]["maker_0"], first)


def test_spaces_infos_and_rewards_per_agent():
    env = parallel_env(n_agents=2, **SHORT)
    agent = "maker_1"
    assert env.action_space(agent) is env.action_space(agent)
    assert env.observation_space(agent) is env.observation_space(agent)
    assert env.action_space(agent) is not env.action_space("maker_0")
    assert env.action_space(agent).shape == (5,)
    env.reset(seed=0)
    # maker_0 quotes, maker_1 stays out: only maker_0 can show both sides.
    obs, rewards, _, _, infos = env.step({"maker_0": HOLD, "maker_1": -np.ones(5, np.float32)})
    parts = {f"reward_{p}" for p in env.core.last_parts}
    for a in env.possible_agents:
        assert obs[a] in env.observation_space(a)
        assert set(infos[a]) == set(INFO_KEYS) | parts
        assert infos[a]["reward"] == rewards[a]
    assert infos["maker_0"]["quoted"] == 1 and infos["maker_1"]["quoted"] == 0
    assert resting_orders(env.core, 0, 1) == 0 and resting_orders(env.core, 0, 0) > 0


def test_liquidated_agent_leaves_and_stops_quoting():
    env = parallel_env(n_agents=3, **SHORT)
    env.reset(seed=1)
    hold = dict.fromkeys(env.agents, HOLD)
    env.step(hold)
    assert resting_orders(env.core, 0, 1) > 0
    ruin(env.core, 0, 1)
    _, _, terminated, truncated, infos = env.step(hold)
    assert terminated == {"maker_0": False, "maker_1": True, "maker_2": False}
    assert not any(truncated.values())
    assert env.agents == ["maker_0", "maker_2"]
    with pytest.raises(ValueError, match="maker_1"):
        env.step(hold)  # the liquidated agent may not act any more
    hold = dict.fromkeys(env.agents, HOLD)
    fed = []
    step = env.core.step
    env.core.step = lambda actions, active: (fed.append(actions.copy()), step(actions, active))[1]
    obs, *_ = env.step(hold)
    assert set(obs) == {"maker_0", "maker_2"}
    assert (fed[0][0, 1] == -1).all() and (fed[0][0, 2] == HOLD).all()  # no quotes, no flatten
    assert resting_orders(env.core, 0, 1) == 0
    for _ in range(3, SHORT["horizon"]):
        _, _, terminated, truncated, _ = env.step(hold)
    assert env.agents == [] and all(truncated.values()) and set(truncated) == set(hold)
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})


@pytest.mark.parametrize(
    "actions, message",
    [
        ({"maker_0": HOLD}, r"missing \['maker_1'\]"),
        ({"maker_0": HOLD, "maker_1": HOLD, "maker_7": HOLD}, r"unknown \['maker_7'\]"),
        ([HOLD, HOLD], "dict"),
        (
            {"maker_0": HOLD, "maker_1": np.zeros(4, np.float32)},
            r"actions\['maker_1'\]: action must have shape \(5,\), got \(4,\)",
        ),
        ({"maker_0": HOLD, "maker_1": np.full(5, np.nan, np.float32)}, r"'maker_1'\]: .*finite"),
    ],
)
def test_bad_action_dicts_raise_value_error(actions, message):
    env = parallel_env(**SHORT)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(actions)


def test_bad_arguments_and_step_before_reset():
    with pytest.raises(ValueError, match="n_agents"):
        parallel_env(n_agents=0)
    with pytest.raises(ValueError, match="render_mode"):
        parallel_env(render_mode="human")
    with pytest.raises(RuntimeError, match="reset"):
        parallel_env(**SHORT).step({})
    with pytest.raises(ValueError, match=r"n_agents must be in \[1, 1000\]"):
        parallel_env(n_agents=10**12)
    with pytest.raises(ValueError, match="max_episode_steps must be in"):
        parallel_env(max_episode_steps=0)
    with pytest.raises(ValueError, match="options must be a dict or None"):
        parallel_env(**SHORT).reset(options="abc")
    for seed in (-1, 1.5, True):
        with pytest.raises(ValueError, match="seed must be None or an integer >= 0"):
            parallel_env(**SHORT).reset(seed=seed)
    with pytest.raises(ValueError, match="monitor must be True or False"):
        make_shared_sb3_vec_env(monitor="no", **SHORT)


def test_max_episode_steps_truncates_before_the_horizon():
    env = parallel_env(max_episode_steps=3, **SHORT)
    env.reset(seed=0)
    quiet = {agent: np.zeros(5, np.float32) for agent in env.agents}
    truncations = [env.step(quiet)[3]["maker_0"] for _ in range(3)]
    assert truncations == [False, False, True]


@pytest.mark.parametrize("mode", ["ansi", "rgb_array"])
def test_renders(mode):
    env = parallel_env(render_mode=mode, **SHORT)
    env.reset(seed=0)
    env.step(dict.fromkeys(env.agents, TIGHT))
    out = env.render()
    if mode == "ansi":
        assert "<- agent" in out and "insurance fund" in out and "liquidations" in out
    else:
        assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8


def test_shared_adapter_matches_parallel_env_and_resets_whole_exchanges():
    venv = make_shared_sb3_vec_env(n_envs=2, n_agents=2, **SHORT)
    assert venv.num_envs == 4 and venv.action_space.shape == (5,)
    assert venv.seed(3) == [3, 3, 4, 4]
    obs = venv.reset()
    for e in range(2):
        ref = parallel_env(**SHORT).reset(seed=3 + e)[0]
        np.testing.assert_array_equal(obs[2 * e], ref["maker_0"])
        np.testing.assert_array_equal(obs[2 * e + 1], ref["maker_1"])
    assert venv.get_attr("horizon") == [SHORT["horizon"]] * 4
    venv.set_attr("render_mode", None)
    assert len(venv.env_method("__repr__")) == 4
    with pytest.raises(ValueError, match="all indices"):
        venv.set_attr("render_mode", None, indices=[0])

    core = venv.unwrapped.core
    ruin(core, 1, 0)
    obs, reward, done, infos = venv.step(np.zeros((4, 5), np.float32))
    assert done.tolist() == [False, False, True, True]
    assert reward.shape == (4,) and reward[2] < reward[3]
    assert [infos[i]["TimeLimit.truncated"] for i in (2, 3)] == [False, True]
    assert all("episode" in infos[i] and "terminal_observation" in infos[i] for i in (2, 3))
    # Exchange 1 restarted from its generator: the second episode of seed 4.
    ref = parallel_env(**SHORT)
    ref.reset(seed=4)
    np.testing.assert_array_equal(obs[2:], np.stack(list(ref.reset()[0].values())))
    assert core.batch.agent_state.elapsed.tolist() == [1, 0]

    for step in range(2, SHORT["horizon"] + 1):
        obs, _, done, infos = venv.step(np.zeros((4, 5), np.float32))
        assert done.tolist() == [step == SHORT["horizon"]] * 2 + [False, False]
    assert infos[0]["TimeLimit.truncated"] and infos[1]["TimeLimit.truncated"]


def test_shared_adapter_trains_ppo():
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import Logger

    venv = make_shared_sb3_vec_env(n_envs=2, n_agents=2, **SHORT)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=32, seed=0)
    model.set_logger(Logger(None, []))  # no empty log folder in the temp dir
    model.learn(64)
    assert model.num_timesteps == 64
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (4, 5)
