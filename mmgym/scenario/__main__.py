"""``python -m mmgym.scenario NAME``: run a scenario, print its summary, chart and report.

For a scenario with a shock the same seed is also run with conversion-ratio
collateral pricing and with market-maker obligations, so that the
counterfactual criteria can be checked.
"""

from __future__ import annotations

import argparse
import sys

from ..core.config import ConfigError
from .criteria import calm_criteria, oct10_criteria
from .report import markdown, plot
from .runner import run
from .withdrawals import signal_counts, withdrawals


def _override(text: str):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set takes key=value, got {text!r}")
    import yaml

    key, value = text.split("=", 1)
    return key, yaml.safe_load(value)


def criteria_for(result, seed: int, overrides: dict):
    """Calibration rows for a run (runs the counterfactuals a shocked scenario needs)."""
    name = result.scenario.name
    if result.scenario.population.shocks:
        conversion = run(name, seed, **{**overrides, "collateral_pricing": "conversion"})
        obliged = run(name, seed, **{**overrides, "mm_obligations": True})
        return oct10_criteria(result.summary, conversion.summary, obliged.summary)
    return calm_criteria(result.summary)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmgym.scenario", description=__doc__)
    parser.add_argument("scenario", help="a name in configs/ (calm, oct10) or a YAML path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", metavar="PNG", help="write a chart here")
    parser.add_argument("--report", metavar="MD", help="write a markdown report here")
    parser.add_argument(
        "--set",
        type=_override,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a switch, a top-level key or a dotted path",
    )
    args = parser.parse_args(argv)
    overrides = dict(args.set)
    try:
        result = run(args.scenario, args.seed, **overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{result.scenario.name}, seed {args.seed}: {result.scenario.steps} steps "
        f"in {result.seconds:.2f} s"
    )
    for key, value in result.summary.items():
        print(f"  {key:28s} {value:.6g}")
    print(f"  invariants: {result.invariants}")
    left = withdrawals(result.timeline, result.scenario.dt)
    counts = ", ".join(f"{signal} {n}" for signal, n in signal_counts(left).items())
    print(f"  firm withdrawals: {len(left)}" + (f" ({counts})" if counts else ""))
    rows = criteria_for(result, args.seed, overrides)
    for row in rows:
        print(
            f"  [{'ok' if row.holds else 'NO'}] {row.name}: {row.simulated} "
            f"(published: {row.published})"
        )
    if args.plot:
        plot(result, args.plot)
    if args.report:
        with open(args.report, "w") as fh:
            fh.write(markdown(result, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
