"""An installed (non-editable) package finds its scenario files: wheels carry
``configs/`` as ``mmgym/_configs``."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_and_config_file_goes_into_the_wheel():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for top in ("mmgym", "agents")
        for path in (ROOT / top).rglob("__init__.py")
    }
    configs = {"mmgym._configs", "mmgym._configs.hyperparams"}
    assert set(tool["packages"]) == found | configs
    assert tool["package-dir"] == {"mmgym._configs": "configs"}
    for package in configs:
        folder = ROOT / "configs" / Path(*package.split(".")[2:])
        assert tool["package-data"][package] == ["*.yaml"]
        files = [p.name for p in folder.iterdir() if p.is_file()]
        assert all(name.endswith(".yaml") for name in files), f"the wheel leaves out {files}"


def test_the_installed_layout_loads_scenarios_without_a_checkout(tmp_path):
    """The wheel's layout, copied away from the checkout, on the path first."""
    site = tmp_path / "site"
    ignore = shutil.ignore_patterns("__pycache__")
    for package in ("mmgym", "agents"):
        shutil.copytree(ROOT / package, site / package, ignore=ignore)
    shutil.copytree(ROOT / "configs", site / "mmgym" / "_configs", ignore=ignore)
    code = (
        "import mmgym; from mmgym.scenario import load_scenario;"
        "from mmgym.scenario.config import CONFIG_DIR;"
        "from agents.hyperparams import default_path;"
        "print(mmgym.__file__); print(CONFIG_DIR); print(load_scenario('oct10').name);"
        "print(default_path('ppo').is_file(), default_path('ppo').parent.parent)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert out[0] == str(site / "mmgym" / "__init__.py")
    assert out[1] == str(site / "mmgym" / "_configs")
    assert out[2] == "oct10"
    assert out[3] == f"True {site / 'mmgym' / '_configs'}"  # the hyperparameters' defaults too
