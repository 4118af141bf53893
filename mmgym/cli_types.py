"""Argument types shared by the command-line tools (argparse ``type=``)."""

from __future__ import annotations

import argparse
import re

import yaml

from .yaml_loader import load


def int_at_least(lowest: int, meaning: str):
    """An argparse type: an integer >= ``lowest``, with ``meaning`` in the error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {meaning}, got {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be {meaning}, got {value}")
        return value

    return parse


positive_int = int_at_least(1, "a positive integer")
seed_int = int_at_least(0, "an integer >= 0")


# A plain decimal number, possibly with an exponent, which YAML 1.1 reads as text
# unless it has a dot and a signed exponent ("2e6").
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def key_value(text: str):
    """An argparse type for ``--set KEY=VALUE``: (key, value read as YAML, "2e6" as a number)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set takes key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        value = load(value)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"--set {key}: {value!r} is not valid YAML") from None
    if isinstance(value, str) and NUMBER.fullmatch(value):
        value = float(value)
    return key, value


def add_overrides_argument(parser: argparse.ArgumentParser, purpose: str) -> None:
    """Add the repeatable ``--set KEY=VALUE`` option (``args.set``: a list of pairs)."""
    parser.add_argument(
        "--set",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"{purpose}: a switch, a top-level key or a dotted path (repeatable)",
    )
