"""Run directories: what a training run writes, and loading a trained model back.

A run directory holds ``model.zip`` (final model), ``vecnormalize.pkl``
(observation/reward statistics, when normalised), ``replay_buffer.pkl`` (an
off-policy model's, for resuming), ``config.yaml`` (resolved
hyperparameters, loadable with ``--config``), ``args.json``, ``command.txt``,
``versions.json``, ``checkpoints/``, ``tb/`` (TensorBoard), and after the run
``throughput.json`` and ``evaluation.md``.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import platform
import shlex
import time
from importlib import metadata
from pathlib import Path

import yaml

from mmgym.core.config import ConfigError

from .algorithms import algorithm_class
from .hyperparams import Hyperparams, load_hyperparams

MODEL = "model.zip"
VECNORMALIZE = "vecnormalize.pkl"
REPLAY_BUFFER = "replay_buffer.pkl"
CONFIG = "config.yaml"
ARGS = "args.json"
COMMAND = "command.txt"
VERSIONS = "versions.json"
THROUGHPUT = "throughput.json"
EVALUATION = "evaluation.md"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tb"

PACKAGES = ("numpy", "numba", "gymnasium", "stable_baselines3", "torch", "mmgym", "sb3_contrib")


def default_run_dir(scenario: str, regime: str, algo: str, seed: int) -> Path:
    """``runs/<scenario>-<regime>-<algo>-<seed>-<timestamp>``."""
    return Path("runs") / f"{scenario}-{regime}-{algo}-{seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_new_run_dir(path) -> Path:
    """``path`` if it does not exist yet or is empty, else ConfigError."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"run_dir {str(path)!r} exists and is not empty; choose another")
    return path


def versions() -> dict[str, str]:
    """Python's and the installed packages' versions (those that are installed)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return out


def write_json(run_dir: Path, name: str, data) -> None:
    (run_dir / name).write_text(json.dumps(data, indent=2) + "\n")


def write_run_info(run_dir: Path, hp: Hyperparams, args: dict, argv: list[str]) -> None:
    """The files that say how the run was made, written before training starts."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG).write_text(yaml.safe_dump(hp.to_file(), sort_keys=False))
    write_json(run_dir, ARGS, args)
    (run_dir / COMMAND).write_text(shlex.join(argv) + "\n")
    write_json(run_dir, VERSIONS, versions())


class NormalizedPolicy:
    """A model that expects ``VecNormalize``'d observations, fed raw ones (SB3 ``predict``)."""

    def __init__(self, model, vec_normalize):
        self.model = model
        self.vec_normalize = vec_normalize

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        """SB3's ``predict`` on observations normalised as in training."""
        obs = self.vec_normalize.normalize_obs(observation)
        return self.model.predict(
            obs, state=state, episode_start=episode_start, deterministic=deterministic
        )


@dataclasses.dataclass
class LoadedRun:
    """A trained run: its model, VecNormalize statistics (or None), settings and args."""

    model: object
    vec_normalize: object | None
    hyperparams: Hyperparams
    args: dict

    @property
    def policy(self):
        """The model as a policy over raw observations (for ``agents.evaluate``)."""
        if self.vec_normalize is None:
            return self.model
        return NormalizedPolicy(self.model, self.vec_normalize)


def load_run(run_dir) -> LoadedRun:
    """Load ``run_dir``'s final model (on CPU) and its VecNormalize statistics."""
    run_dir = Path(run_dir)
    if not (run_dir / MODEL).is_file() or not (run_dir / ARGS).is_file():
        raise ConfigError(f"run_dir {str(run_dir)!r} has no {MODEL} and {ARGS}: not a finished run")
    args = json.loads((run_dir / ARGS).read_text())
    model = algorithm_class(args["algo"]).load(run_dir / MODEL, device="cpu")
    # A resumed segment's config.yaml holds its own steps only: its learning_starts
    # is checked against every step the model has trained.
    hp = load_hyperparams(args["algo"], run_dir / CONFIG, trained=model.num_timesteps)
    vec_normalize = None
    if (run_dir / VECNORMALIZE).is_file():
        # Only the statistics are needed (normalize_obs), so no venv is attached.
        with open(run_dir / VECNORMALIZE, "rb") as f:
            vec_normalize = pickle.load(f)
        vec_normalize.training = False
    return LoadedRun(model, vec_normalize, hp, args)
