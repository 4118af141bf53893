"""``python -m mmgym.scenario NAME``: run a scenario, print its summary, chart and report.

For a scenario with a shock the same seed is also run with conversion-ratio
collateral pricing and with market-maker obligations, so that the
counterfactual criteria can be checked. They compare those runs with a
reference run with neither (``REFERENCE``): the main run, unless it was given
either switch, in which case the reference is run too and the output says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli_types import add_overrides_argument, seed_int
from ..core.config import ConfigError
from ..core.exchange import BookFullError
from .criteria import calm_criteria, oct10_criteria, oct10_figures
from .report import markdown, plot
from .runner import run
from .summary import first_shock
from .withdrawals import signal_counts, withdrawals

# Switches of the run the counterfactual criteria compare with.
REFERENCE = {"collateral_pricing": "internal_book", "mm_obligations": False}
REFERENCE_NOTE = (
    "criteria read a reference run with collateral_pricing=internal_book and "
    "mm_obligations=false, not the run above"
)


def criteria_for(result, scenario, seed: int, overrides: dict):
    """Calibration rows for a run, and the run they read.

    ``scenario`` is what ``result`` was run from (a name or path: a copied file
    keeps its edits). The rows of a scenario with a shock within its steps compare
    a reference run (switches ``REFERENCE``; ``result`` itself when it has them)
    with counterfactual runs of the same seed, one with conversion pricing and one
    with obligations; a run that ends before any shock is judged as a calm one.
    """
    if first_shock(result.scenario) is None:
        return calm_criteria(result.summary), result
    switches = result.scenario.switches
    reference = result
    if (switches.collateral_pricing, switches.mm_obligations) != tuple(REFERENCE.values()):
        reference = run(scenario, seed, **{**overrides, **REFERENCE})
    conversion = run(
        scenario, seed, **{**overrides, **REFERENCE, "collateral_pricing": "conversion"}
    )
    obliged = run(scenario, seed, **{**overrides, **REFERENCE, "mm_obligations": True})
    return oct10_criteria(reference.summary, conversion.summary, obliged.summary), reference


def _check_output(parser, flag, path) -> None:
    """Fail before the runs, not after them, if the file cannot be written there."""
    folder = Path(path).parent
    if not folder.is_dir():
        parser.error(f"{flag}: directory {str(folder)!r} does not exist")
    if Path(path).is_dir():
        parser.error(f"{flag}: {str(path)!r} is a directory; give a file name")


def main(argv=None) -> int:
    """Command line: run a scenario, print its summary; exit status 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m mmgym.scenario", description=__doc__)
    parser.add_argument("scenario", help="a name in configs/ (calm, oct10) or a YAML path")
    parser.add_argument("--seed", type=seed_int, default=0, help="a seed >= 0 (0)")
    parser.add_argument("--plot", metavar="PNG", help="write a chart here")
    parser.add_argument("--report", metavar="MD", help="write a markdown report here")
    add_overrides_argument(parser, "override")
    args = parser.parse_args(argv)
    # Fail before the runs, not after them.
    if args.plot:
        _check_output(parser, "--plot", args.plot)
    if args.report:
        _check_output(parser, "--report", args.report)
    overrides = dict(args.set)
    try:
        result = run(args.scenario, args.seed, **overrides)
        rows, reference = criteria_for(result, args.scenario, args.seed, overrides)
    except (ConfigError, BookFullError) as exc:  # a full book: the config's sizes are too small
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
    if reference is not result:
        print(f"  {REFERENCE_NOTE}")
    for row in rows:
        print(f"  [{row.verdict}] {row.name}: {row.simulated} (published: {row.published})")
    figures = oct10_figures(reference.summary) if first_shock(result.scenario) is not None else []
    for fig in figures:
        print(f"  [--] {fig.name}: {fig.simulated} (published: {fig.published})")
    if args.plot:
        plot(result, args.plot)
    if args.report:
        note = f"The {REFERENCE_NOTE}." if reference is not result else ""
        with open(args.report, "w") as fh:
            fh.write(markdown(result, rows, note, figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
