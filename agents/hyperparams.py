"""Hyperparameter files in rl-zoo3's layout, validated key by key.

A file maps sections to settings: ``default`` and the env id
(``mmgym/MarketMaking-v0``); the env id's keys replace the default's. Keys:
``n_timesteps``, ``n_envs``, ``policy``, ``normalize`` (true/false or a
mapping of ``VecNormalize`` options), ``policy_kwargs`` (a mapping;
``activation_fn`` by name from ``ACTIVATIONS``) and the algorithm's keyword
arguments listed in ``ALGO_KWARGS``. Nothing is evaluated as code: every
key is looked up in these tables and checked for type and range, and an
error names the file and the key.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import yaml
from torch import nn

from mmgym import ENV_ID, yaml_loader
from mmgym.core.config import ConfigError, check_choice, check_number
from mmgym.scenario.config import CONFIG_DIR as SCENARIO_DIR

CONFIG_DIR = SCENARIO_DIR / "hyperparams"  # beside the scenarios, in a checkout or a wheel
SECTIONS = ("default", ENV_ID)
ALGOS = ("ppo", "sac", "recurrent_ppo")
OFF_POLICY = ("sac",)  # algorithms that learn from a replay buffer
MAX_ENVS = 4096  # parallel envs of one training run
SAC_LEARNING_STARTS = 100  # SB3's default
POLICIES = {"ppo": ("MlpPolicy",), "sac": ("MlpPolicy",), "recurrent_ppo": ("MlpLstmPolicy",)}
ACTIVATIONS = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


# Checkers: (qualified name, value) -> validated value, or ConfigError naming the key.
def real(lo=-math.inf, hi=math.inf, lo_open=False):
    return lambda name, v: check_number(name, v, lo, hi, lo_open=lo_open)


def integer(lo=-(2**62), hi=2**62):
    return lambda name, v: check_number(name, v, lo, hi, integer=True)


def flag(name, v):
    if not isinstance(v, bool):
        raise ConfigError(f"{name} must be true or false, got {v!r}")
    return v


def optional(check):
    return lambda name, v: None if v is None else check(name, v)


def auto_or(check, initial=False):
    """``auto`` (SB3's automatic entropy settings) or ``check``; with ``initial`` also
    ``auto_<x>``: learned from the initial value x > 0 (SAC's ``ent_coef``)."""

    def checked(name, v):
        if not isinstance(v, str):
            return check(name, v)
        if v == "auto":
            return v
        if initial and v.startswith("auto_"):
            try:
                x = float(v[len("auto_") :])
            except ValueError:
                x = math.nan
            if 0.0 < x < math.inf:  # SB3 asserts x > 0
                return v
        allowed = "'auto', 'auto_<x>' with x > 0" if initial else "'auto'"
        raise ConfigError(f"{name} must be a number, {allowed}, got {v!r}")

    return checked


def gradient_steps(name, v):
    """SAC's ``gradient_steps``: -1 (one per env step collected) or an integer >= 1."""
    v = check_number(name, v, integer=True)
    if v != -1 and not 1 <= v <= 2**62:
        raise ConfigError(f"{name} must be -1 or in [1, {2**62}], got {v!r}")
    return v


def layers(name, v):
    if not isinstance(v, list) or not v:
        raise ConfigError(f"{name} must be a list of layer widths, got {v!r}")
    return [check_number(f"{name}[{i}]", w, 1, 1 << 16, integer=True) for i, w in enumerate(v)]


def net_arch(heads):
    """Layer widths shared by every head, or a mapping with one list per head."""

    def check(name, v):
        if isinstance(v, dict):
            return {head: layers(f"{name}.{head}", w) for head, w in _keys(name, v, heads).items()}
        return layers(name, v)

    return check


def activation(name, v):
    if v not in ACTIVATIONS:
        raise ConfigError(f"{name} must be one of {sorted(ACTIVATIONS)}, got {v!r}")
    return v


def mapping(schema):
    return lambda name, v: validate(v, schema, f"{name}.")


def normalize(name, v):
    """VecNormalize options: a mapping of ``NORMALIZE`` keys, true (defaults) or false."""
    if isinstance(v, dict):
        return validate(v, NORMALIZE, f"{name}.")
    return {} if flag(name, v) else None


_ON_POLICY = {
    "learning_rate": real(0.0, 1.0, lo_open=True),
    "n_steps": integer(1),
    "batch_size": integer(2),  # SB3 asserts > 1 (advantages are normalised per batch)
    "n_epochs": integer(1),
    "gamma": real(0.0, 1.0),
    "gae_lambda": real(0.0, 1.0),
    "clip_range": real(0.0, lo_open=True),
    "clip_range_vf": optional(real(0.0, lo_open=True)),
    "normalize_advantage": flag,
    "ent_coef": real(0.0),
    "vf_coef": real(0.0),
    "max_grad_norm": real(0.0, lo_open=True),
    "use_sde": flag,
    "sde_sample_freq": integer(-1),
    "target_kl": optional(real(0.0, lo_open=True)),
    "stats_window_size": integer(1),
}
ALGO_KWARGS = {
    "ppo": _ON_POLICY,
    "recurrent_ppo": _ON_POLICY,
    "sac": {
        "learning_rate": real(0.0, 1.0, lo_open=True),
        "buffer_size": integer(1),
        "learning_starts": integer(0),
        "batch_size": integer(1),
        "tau": real(0.0, 1.0, lo_open=True),  # 0 would freeze the target networks
        "gamma": real(0.0, 1.0),
        "train_freq": integer(1),
        "gradient_steps": gradient_steps,
        "ent_coef": auto_or(real(0.0), initial=True),
        "target_update_interval": integer(1),
        "target_entropy": auto_or(real()),  # SB3 reads no auto_<x> here
        "use_sde": flag,
        "sde_sample_freq": integer(-1),
        "use_sde_at_warmup": flag,
        "stats_window_size": integer(1),
    },
}
_POLICY_COMMON = {
    "activation_fn": activation,
    "log_std_init": real(),
    "share_features_extractor": flag,
}
POLICY_KWARGS = {
    "ppo": {**_POLICY_COMMON, "net_arch": net_arch(("pi", "vf")), "ortho_init": flag},
    "recurrent_ppo": {
        **_POLICY_COMMON,
        "net_arch": net_arch(("pi", "vf")),
        "ortho_init": flag,
        "lstm_hidden_size": integer(1),
        "n_lstm_layers": integer(1),
        "shared_lstm": flag,
        "enable_critic_lstm": flag,
    },
    "sac": {**_POLICY_COMMON, "net_arch": net_arch(("pi", "qf")), "n_critics": integer(1)},
}
NORMALIZE = {
    "norm_obs": flag,
    "norm_reward": flag,
    "clip_obs": real(0.0, lo_open=True),
    "clip_reward": real(0.0, lo_open=True),
}


def _keys(name, raw, allowed=None):
    """``raw`` if it is a mapping whose keys are all in ``allowed`` (None: any key)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{name} must be a mapping, got {raw!r}")
    for key in raw:
        if allowed is not None and key not in allowed:
            raise ConfigError(f"{name}: unknown key {key!r}; known: {sorted(allowed)}")
    return raw


def validate(raw, schema: dict, prefix: str = "") -> dict:
    """``raw`` mapping checked against ``schema`` (key -> checker); errors name
    ``prefix + key``."""
    name = prefix.rstrip(".") or "hyperparameters"
    checked = _keys(name, raw, schema)
    return {key: schema[key](f"{prefix}{key}", v) for key, v in checked.items()}


@dataclasses.dataclass(frozen=True)
class Hyperparams:
    """Resolved settings of one training run (see the module docstring)."""

    algo: str
    n_timesteps: int
    n_envs: int
    policy: str
    normalize: dict | None  # VecNormalize keyword arguments; None: no normalisation
    algo_kwargs: dict
    policy_kwargs: dict  # as in the file (activation by name)

    def model_policy_kwargs(self) -> dict:
        """``policy_kwargs`` for the SB3 algorithm (activation name -> torch class)."""
        out = dict(self.policy_kwargs)
        if "activation_fn" in out:
            out["activation_fn"] = ACTIVATIONS[out["activation_fn"]]
        return out

    def to_file(self) -> dict:
        """The rl-zoo3 layout of these settings (loadable by ``load_hyperparams``)."""
        normalize = self.normalize
        if not normalize:  # {}: VecNormalize's defaults (true); None: no normalisation (false)
            normalize = normalize is not None
        section = {
            "n_timesteps": self.n_timesteps,
            "n_envs": self.n_envs,
            "policy": self.policy,
            "normalize": normalize,
            **self.algo_kwargs,
        }
        if self.policy_kwargs:
            section["policy_kwargs"] = self.policy_kwargs
        return {ENV_ID: section}


def default_path(algo: str) -> Path:
    return CONFIG_DIR / f"{algo}.yaml"


def read_file(path) -> dict:
    """The settings of a hyperparameter file, its sections merged (env id over default)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config: no hyperparameter file {str(path)!r}")
    try:
        raw = yaml_loader.load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config: {path} is not valid YAML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config: {path} is not a UTF-8 text file") from None
    merged = {}
    for section in _keys(f"{path}: sections", raw, SECTIONS):
        merged.update(_keys(f"{path}: {section}", raw[section] or {}))
    return merged


def resolve(algo: str, raw: dict, trained: int = 0, **overrides) -> Hyperparams:
    """Validate merged settings ``raw`` for ``algo``; ``overrides`` (not None) replace keys.

    ``trained`` is the number of steps a resumed model has already trained:
    they count towards SAC's ``learning_starts``.
    """
    check_choice("algo", algo, ALGOS)
    raw = {**raw, **{k: v for k, v in overrides.items() if v is not None}}
    kwargs_schema = ALGO_KWARGS[algo]
    schema = {
        "n_timesteps": integer(1),
        "n_envs": integer(1, MAX_ENVS),
        "policy": lambda name, v: check_choice(name, v, POLICIES[algo]),
        "normalize": normalize,
        "policy_kwargs": mapping(POLICY_KWARGS[algo]),
        **kwargs_schema,
    }
    if "n_timesteps" not in raw:
        raise ConfigError("n_timesteps is missing (set it or pass --total-timesteps)")
    if isinstance(raw["n_timesteps"], str):
        raise ConfigError(
            f"n_timesteps must be an integer, got {raw['n_timesteps']!r} "
            "(YAML reads 1e5 as text: write !!float 1e5)"
        )
    checked = validate(raw, schema)
    if kwargs_schema is _ON_POLICY and checked.get("normalize_advantage", True):
        # SB3 normalises advantages over each rollout, which needs two samples.
        n_steps, n_envs = checked.get("n_steps", 2048), checked.get("n_envs", 1)
        if n_steps * n_envs < 2:
            raise ConfigError(
                f"n_steps * n_envs must be at least 2 with normalize_advantage, "
                f"got {n_steps} * {n_envs}"
            )
    if algo == "recurrent_ppo":
        _check_lstm(checked.get("policy_kwargs", {}))
    if algo == "sac":
        # SB3 trains only once more than learning_starts steps are done.
        starts = checked.get("learning_starts", SAC_LEARNING_STARTS)
        n = checked["n_timesteps"]
        if starts >= trained + n:
            below = f"n_timesteps {n}"
            if trained:
                below = f"{trained} steps already trained + {below}"
            default = "" if "learning_starts" in checked else " (SB3's default)"
            raise ConfigError(
                f"learning_starts must be in [0, {trained + n - 1}] (below {below}) or SAC "
                f"never trains, got {starts}{default}"
            )
    return Hyperparams(
        algo=algo,
        n_timesteps=checked["n_timesteps"],
        n_envs=checked.get("n_envs", 1),
        policy=checked.get("policy", POLICIES[algo][0]),
        normalize=checked.get("normalize"),
        algo_kwargs={k: v for k, v in checked.items() if k in kwargs_schema},
        policy_kwargs=checked.get("policy_kwargs", {}),
    )


def _check_lstm(policy_kwargs: dict) -> None:
    """sb3-contrib's rules for a shared LSTM: the critic reads the actor's LSTM, so it has
    none of its own, and both read the same features."""
    if not policy_kwargs.get("shared_lstm", False):
        return
    if policy_kwargs.get("enable_critic_lstm", True):
        raise ConfigError(
            "policy_kwargs.enable_critic_lstm must be false with shared_lstm: true "
            "(it defaults to true)"
        )
    if not policy_kwargs.get("share_features_extractor", True):
        raise ConfigError(
            "policy_kwargs.share_features_extractor must be true with shared_lstm: true, got false"
        )


def load_hyperparams(algo: str, path=None, trained: int = 0, **overrides) -> Hyperparams:
    """Read, merge and validate ``path`` (default ``configs/hyperparams/<algo>.yaml``);
    errors name the file and the key. ``trained``: as in ``resolve``."""
    check_choice("algo", algo, ALGOS)
    path = default_path(algo) if path is None else Path(path)
    raw = read_file(path)
    try:
        return resolve(algo, raw, trained, **overrides)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
