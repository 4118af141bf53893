"""Scenarios: the scripted population on the exchange, from calm markets to the oct10 cascade."""

from .config import Scenario, Switches, load_raw, parse_scenario
from .runner import ScenarioResult, build, load_scenario, run

__all__ = [
    "Scenario",
    "ScenarioResult",
    "Switches",
    "build",
    "load_raw",
    "load_scenario",
    "parse_scenario",
    "run",
]
