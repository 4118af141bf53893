"""Baseline market makers, evaluation and training helpers for the mmgym environments."""

from .baselines import (
    BASELINES,
    AlwaysQuote,
    AvellanedaStoikov,
    RandomPolicy,
    WithdrawOnStress,
    agent_setup_of,
    make_baseline,
)
from .evaluation import Evaluation, compare, evaluate

__all__ = [
    "BASELINES",
    "AlwaysQuote",
    "AvellanedaStoikov",
    "Evaluation",
    "RandomPolicy",
    "WithdrawOnStress",
    "agent_setup_of",
    "compare",
    "evaluate",
    "make_baseline",
]
