"""SB3 adapters: the VecEnv contract (per-env attributes, indices, images, options)."""

import numpy as np
import pytest

import mmgym
from mmgym.env.core import INFO_KEYS
from mmgym.env.market_making import MarketMakingEnv
from mmgym.env.parallel import parallel_env
from mmgym.env.vector import MarketMakingVectorEnv

SHORT = {"horizon": 5}


def sb3_env(**kwargs):
    return mmgym.make_sb3_vec_env(n_envs=3, monitor=False, **SHORT, **kwargs)


def shared_env(**kwargs):
    return mmgym.make_shared_sb3_vec_env(n_envs=2, n_agents=2, monitor=False, **SHORT, **kwargs)


@pytest.mark.parametrize("make", [sb3_env, shared_env])
def test_get_attr_gives_each_envs_own_spaces_and_checks_indices(make):
    env = make()
    single = MarketMakingEnv(**SHORT)
    assert env.get_attr("observation_space") == [single.observation_space] * env.num_envs
    assert env.get_attr("action_space", indices=[1]) == [single.action_space]
    assert env.get_attr("horizon", indices=np.int64(0)) == [5]
    with pytest.raises(IndexError, match=f"env index 99 out of range for num_envs={env.num_envs}"):
        env.get_attr("horizon", indices=[99])
    with pytest.raises(IndexError, match="env index -1"):
        env.env_is_wrapped(object, indices=[-1])
    with pytest.raises(ValueError, match="indices must be integers"):
        env.get_attr("horizon", indices=[0.5])


def test_env_method_acts_once_on_the_whole_batch_and_needs_every_index():
    env = sb3_env()
    env.seed(0)
    env.reset()
    elapsed = env.venv.core.batch.agent_state.elapsed
    env.step(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"env_method\('reset'\) needs all indices"):
        env.env_method("reset", indices=[1])
    assert elapsed.tolist() == [1, 1, 1]  # nothing was reset
    with pytest.raises(IndexError, match="env index 3"):
        env.env_method("reset", indices=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="all indices"):
        env.env_method("reset", indices=[0, 0, 1])
    assert len(env.env_method("reset")) == 3
    # One reset, not one per index: the second draw of each env's stream.
    ref = MarketMakingVectorEnv(num_envs=3, **SHORT)
    ref.reset(seed=0)
    np.testing.assert_array_equal(env.venv._obs, ref.reset()[0])


def test_shared_env_method_resets_once():
    env = shared_env()
    env.seed(1)
    env.reset()
    with pytest.raises(ValueError, match="all indices"):
        env.env_method("reset", indices=[0])
    env.env_method("reset")
    ref = parallel_env(n_agents=2, **SHORT)
    ref.reset(seed=2)
    np.testing.assert_array_equal(env._obs[1, 0], ref.reset()[0]["maker_0"])


def test_sb3_infos_carry_reward_parts_like_the_other_envs():
    env = sb3_env()
    env.reset()
    _, reward, _, infos = env.step(np.zeros((3, 5), np.float32))
    parts = {f"reward_{p}" for p in env.venv.core.last_parts}
    assert parts and all(set(info) == set(INFO_KEYS) | parts for info in infos)
    assert [info["reward"] for info in infos] == pytest.approx(reward.tolist())


def test_get_images_gives_one_frame_per_env():
    env = sb3_env(render_mode="rgb_array")
    env.reset()
    env.step(np.zeros((3, 5), np.float32))
    images = env.get_images()
    assert isinstance(images, list) and len(images) == 3
    assert all(image.ndim == 3 and image.dtype == np.uint8 for image in images)
    plain = sb3_env()
    plain.reset()
    with pytest.warns(UserWarning, match="rgb_array"):
        assert plain.get_images() == [None, None, None]


@pytest.mark.parametrize("make", [sb3_env, shared_env])
def test_set_attr_render_mode_keeps_the_adapter_in_step(make):
    env = make()
    env.set_attr("render_mode", "rgb_array")
    assert env.render_mode == env.config_owner().render_mode == "rgb_array"
    with pytest.raises(ValueError, match="render_mode must be one of"):
        env.set_attr("render_mode", "human")
    assert env.render_mode == "rgb_array"


@pytest.mark.parametrize("make", [sb3_env, shared_env])
def test_set_attr_refuses_the_spaces(make):
    env = make()
    for name in ("observation_space", "action_space"):
        with pytest.raises(ValueError, match=f"set_attr: {name} is fixed"):
            env.set_attr(name, None)


@pytest.mark.parametrize("make", [sb3_env, shared_env])
def test_reset_options_are_rejected_not_dropped(make):
    env = make()
    with pytest.raises(ValueError, match="options: these envs take no reset options"):
        env.set_options({"reset_mask": [False, True, False]})
    env.set_options(None)
    env.set_options([{}] * env.num_envs)
    assert env.reset().shape[0] == env.num_envs


@pytest.mark.parametrize("n_envs", [0, 2.5])
def test_make_sb3_vec_env_names_n_envs(n_envs):
    with pytest.raises(ValueError, match=r"n_envs must be"):
        mmgym.make_sb3_vec_env(n_envs=n_envs)


def test_top_level_parallel_env_takes_positionals():
    assert mmgym.parallel_env(3, **SHORT).possible_agents == ["maker_0", "maker_1", "maker_2"]
