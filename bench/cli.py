"""The command line every benchmark shares: ``--quick``, ``-n``, ``--rounds``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def parser(
    module: str, doc: str | None, unit: str, quick: tuple[int, int]
) -> argparse.ArgumentParser:
    """The shared options; ``quick`` is the (n, rounds) of a ``--quick`` smoke run."""
    p = argparse.ArgumentParser(prog=f"python -m {module}", description=doc)
    p.add_argument("--quick", action="store_true", help=f"{quick[0]:,} {unit}, {quick[1]} rounds")
    p.add_argument("-n", type=int, default=None, help=f"{unit} per round")
    p.add_argument("--rounds", type=int, default=None)
    return p


def run_and_print(
    args: argparse.Namespace,
    run: Callable[[int, int], dict[str, Any]],
    *,
    full: tuple[int, int],
    quick: tuple[int, int],
) -> None:
    """Run with the sizes the options chose and print the figures as one JSON line."""
    n_default, rounds_default = quick if args.quick else full
    print(json.dumps(run(args.n or n_default, args.rounds or rounds_default)), flush=True)
