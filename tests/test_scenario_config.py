"""Validation of numbers, exchange configs and scenario files: errors name the field."""

import dataclasses
import math

import numpy as np
import pytest
import yaml

from mmgym.core.config import ConfigError, ExchangeConfig, check_number
from mmgym.scenario import load_scenario, run
from mmgym.scenario.config import CONFIG_DIR, load_raw


def test_infinity_only_where_a_caller_allows_it():
    with pytest.raises(ConfigError, match="x must be finite, got inf"):
        check_number("x", math.inf)
    with pytest.raises(ConfigError, match="x must be finite, got nan"):
        check_number("x", math.nan, allow_inf=True)
    assert check_number("x", math.inf, 0.0, allow_inf=True) == math.inf
    with pytest.raises(ConfigError, match=r"x must be in \[0.0, 1.0\], got inf"):
        check_number("x", math.inf, 0.0, 1.0, allow_inf=True)
    with pytest.raises(ConfigError, match="x must be an integer, got inf"):
        check_number("x", math.inf, integer=True, allow_inf=True)


@pytest.mark.parametrize(
    ("value", "integer", "expected"),
    [
        (np.int64(3), True, 3),
        (np.int32(3), False, 3.0),
        (np.float32(0.5), False, 0.5),
        (np.float64(2.0), True, 2),
        (2**70, True, 2**70),
    ],
)
def test_numpy_scalars_are_numbers_and_come_back_plain(value, integer, expected):
    got = check_number("x", value, integer=integer)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("value", [True, np.bool_(False), "3", None, [1]])
def test_booleans_and_non_numbers_are_rejected(value):
    with pytest.raises(ConfigError, match="x must be a number"):
        check_number("x", value)


def test_a_number_yaml_read_as_text_gets_a_hint():
    with pytest.raises(ConfigError, match=r"got '2e6' \(YAML reads '2e6' as text: write 2000000.0"):
        check_number("x", "2e6")
    with pytest.raises(ConfigError, match=r"write 1.0e-07"):
        check_number("x", "1e-7")


def test_exchange_caps_may_be_infinite_but_the_fund_may_not():
    market = {"name": "X", "liquidation_cap": math.inf, "fund_unwind_cap": math.inf}
    config = ExchangeConfig.from_dict({"markets": [{**market, "position_limit": math.inf}]})
    assert config.markets[0].position_limit == math.inf
    with pytest.raises(ConfigError, match="insurance_fund must be finite"):
        ExchangeConfig.from_dict({"markets": [market], "insurance_fund": math.inf})
    with pytest.raises(ConfigError, match="markets must be a list of markets, got None"):
        ExchangeConfig.from_dict({"markets": None})


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_every_bundled_scenario_loads(name):
    assert load_scenario(name).name == name


def calm(**changes):
    return load_scenario("calm", **changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"start_clock": math.nan}, r"start_clock must be in \[0, 86400\) seconds, got nan"),
        ({"start_clock": math.inf}, r"start_clock must be in \[0, 86400\)"),
        ({"start_clock": -1}, r"start_clock must be in \[0, 86400\)"),
        ({"start_clock": 86400}, r"start_clock must be in \[0, 86400\)"),
        ({"name": 5}, "name must be a string, got 5"),
        ({"description": None}, "description must be a string, got None"),
        ({"exchange.markets": None}, "exchange.markets must be a list, got None"),
        ({"exchange.markets": {"name": "X"}}, "exchange.markets must be a list"),
        ({"exchange.adl_formula": "bitmex"}, "use switches.adl_formula"),
        (
            {"population.obligations.enabled": True},
            "population.obligations.enabled is set by a switch: use switches.mm_obligations",
        ),
        (
            {"population.leveraged.weights": {"BTCUSDT": 0.0, "ALTUSDT": 0}},
            "population.leveraged.weights must have a positive sum when count > 0",
        ),
        (
            {"population.makers.base_volatility": {"ETHUSDT": 0.001}},
            r"population.makers.base_volatility.ETHUSDT must name one of \['BTCUSDT'",
        ),
        ({"population.index.BTCUSDT.volatility": math.inf}, "volatility must be finite"),
        ({"steps": "2e6"}, r"steps must be an integer, got '2e6' \(YAML reads"),
    ],
)
def test_bad_scenario_fields_are_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        calm(**changes)


@pytest.mark.parametrize(
    ("market", "switch"),
    [
        ({"collateral_pricing": "conversion"}, "collateral_pricing"),
        ({"circuit_breaker": 0.1}, "circuit_breaker"),
        ({"position_limit": 1e6}, "position_limits"),
    ],
)
def test_switched_market_fields_are_only_set_by_the_switch(market, switch):
    raw = load_raw("calm")
    raw["exchange"]["markets"][2].update(market)
    key = next(iter(market))
    with pytest.raises(ConfigError, match=rf"markets\[2\]\.{key} .* use switches\.{switch}"):
        load_scenario(raw)


def test_obligations_follow_the_switch_alone():
    assert not calm().population.obligations.enabled
    assert calm(mm_obligations=True).population.obligations.enabled


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("tick_size", 1e-12, r"markets\[0\]\.tick_size must be in \[1.35e-11, 6.1e\+03\]"),
        ("tick_size", 7000.0, r"markets\[0\]\.tick_size must be in \[1.35e-11, 6.1e\+03\]"),
        ("lot_size", 1e-10, r"markets\[0\]\.lot_size must be in \[8.2e-10, 8.2\]"),
        ("lot_size", 10.0, r"markets\[0\]\.lot_size must be in \[8.2e-10, 8.2\]"),
    ],
)
def test_tick_and_lot_sizes_fit_the_start_price(key, value, message):
    raw = load_raw("calm")
    raw["exchange"]["markets"][0][key] = value  # BTCUSDT, start price 122,000
    with pytest.raises(ConfigError, match=message):
        load_scenario(raw)


def test_no_firms_need_no_collateral_market():
    raw = load_raw("calm")
    raw["population"]["makers"] = {"firms": 0}
    assert load_scenario(raw).population.makers.firms == 0


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nsteps: [1\n")
    with pytest.raises(ConfigError, match=f"{path}: not valid YAML"):
        load_scenario(str(path))


@pytest.mark.parametrize("seed", [None, True, -1, 1.5, "0"])
def test_run_needs_a_seed(seed):
    with pytest.raises(ConfigError, match="seed must be"):
        run("calm", seed)


def test_infinity_written_as_text_gets_a_hint():
    with pytest.raises(ConfigError, match=r"got 'inf' \(YAML writes infinity as \.inf\)"):
        check_number("x", "inf", allow_inf=True)


def test_sections_built_in_python_are_still_checked():
    from mmgym.population.config import Makers
    from mmgym.scenario.config import parse_scenario

    raw = load_raw("calm")
    raw["population"]["makers"] = Makers(firms=-3)
    with pytest.raises(ConfigError, match="population.makers.firms must be in"):
        parse_scenario(raw)


def test_nested_sections_built_in_python_are_checked_too():
    from mmgym.population.config import Population, Quoting, from_mapping
    from mmgym.scenario.config import parse_scenario

    raw = load_raw("calm")
    population = from_mapping(Population, raw["population"], "population")
    quoting = {**population.makers.quoting, "ALTUSDT": Quoting(levels=0)}
    makers = dataclasses.replace(population.makers, quoting=quoting)
    raw["population"] = dataclasses.replace(population, makers=makers)
    with pytest.raises(ConfigError, match="population.makers.quoting.ALTUSDT.levels must be in"):
        parse_scenario(raw)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # Loopers at 4x start at a uniMMR of 4; from 6.9x they would start liquidated.
        ({"population.loopers.loop": 7.0}, r"population.loopers.loop must be below 6.9"),
        # 5,000 traders holding 100 s would turn over 50 a step; a step carries out 32.
        (
            {"population.leveraged.holding_period": 100.0},
            r"population.leveraged.holding_period must be at least 625 s",
        ),
        # A BTC lot (0.001) is worth 122 USDT at the start: no trader could open one.
        (
            {"switches.position_limits": 100.0},
            r"switches.position_limits must be at least one lot of BTCUSDT .* 122 USDT",
        ),
    ],
)
def test_a_population_a_step_cannot_carry_is_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        load_scenario("oct10", **changes)
    assert load_scenario("oct10", **{"population.loopers.loop": 6.8})


def test_an_override_may_fill_a_section_the_file_leaves_out():
    raw = load_raw("calm")
    del raw["population"]["obligations"]
    scenario = load_scenario(raw, **{"population.obligations.min_notional": 5.0})
    assert scenario.population.obligations.min_notional == 5.0
    with pytest.raises(ConfigError, match="obligatons"):
        load_scenario(raw, **{"population.obligatons.min_notional": 5.0})


def test_a_scenario_may_be_any_mapping():
    """A read-only or a config library's mapping loads like the dict it holds."""
    from types import MappingProxyType

    raw = load_raw("calm")
    frozen = MappingProxyType({**raw, "population": MappingProxyType(raw["population"])})
    assert load_scenario(frozen, steps=50) == load_scenario(raw, steps=50)
    with pytest.raises(ConfigError, match="scenario must be a name, a path, a mapping"):
        load_scenario(["calm"])


def test_an_unquoted_clock_is_a_clock_not_base_60(tmp_path):
    """YAML 1.1 reads 20:00 as the integer 1200; configs read it as 20:00."""
    from mmgym.cli_types import key_value

    path = tmp_path / "clock.yaml"
    path.write_text(yaml.safe_dump({**load_raw("calm"), "start_clock": "X"}).replace("X", "20:00"))
    assert "start_clock: 20:00\n" in path.read_text()
    assert load_scenario(str(path)).start_clock == 20 * 3600.0
    assert key_value("start_clock=20:00") == ("start_clock", "20:00")
    assert load_scenario("calm", start_clock=key_value("start_clock=9:30")[1]).start_clock == 34200


def test_a_key_given_twice_is_an_error(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("name: calm\nsteps: 10\nname: other\n")
    with pytest.raises(ConfigError, match="key 'name' is given twice"):
        load_scenario(str(path))


def test_unreadable_scenario_files_are_config_errors(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_scenario(str(binary))
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="is not a file"):
        load_scenario(str(folder))


@pytest.mark.parametrize("key, value", [("exchange.book_capacity", 2), ("exchange.max_levels", 1)])
def test_a_book_too_small_for_the_population_raises(key, value):
    """The population's orders are refused inside one compiled call; the run says so."""
    from mmgym.core import BookFullError

    with pytest.raises(BookFullError, match=f"{key.split('.')[1]}={value}"):
        run("calm", steps=100, **{key: value})


def test_a_short_run_summarises_without_warnings():
    """Figures a run is too short for are NaN, silently; one step is not a run."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = run("calm", steps=5).summary
    assert math.isnan(summary["excess_kurtosis"]) and math.isfinite(summary["major_drop"])
    with pytest.raises(ConfigError, match=r"steps must be in \[2,"):
        run("calm", steps=1)
