"""The install pins agree with the package's declared lower bounds."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parent.parent


def _lower_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    bounds = {}
    for requirement in requirements:
        if requirement.startswith(f"{project['name']}["):
            continue  # the package's own extras
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)(,<[0-9.]+)?", requirement)
        assert match, f"{requirement!r} has no lower bound this test reads"
        bounds[match[1].lower()] = match[2]
    return bounds


def _pins(name):
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            package, version = line.split("==")
            pins[package.lower()] = version
    return pins


def _release(version):
    return tuple(int(part) for part in version.split("."))


def test_minimum_pins_are_the_declared_lower_bounds():
    bounds = _lower_bounds()
    pins = _pins("constraints-min.txt")
    # torch has one CPU build here (constraints.txt); its bound comes from Stable-Baselines3.
    assert pins.pop("torch") == _pins("constraints.txt")["torch"]
    assert set(pins) == set(bounds) - {"torch"}, "every bounded dependency is pinned"
    for package, version in pins.items():
        bound = _release(bounds[package])
        assert _release(version)[: len(bound)] == bound, (package, version, bounds[package])
