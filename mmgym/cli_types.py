"""Argument types shared by the command-line tools (argparse ``type=``)."""

from __future__ import annotations

import argparse


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
