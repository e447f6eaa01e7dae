"""``python -m bench [--quick] [names…]``: run the benchmarks, one JSON line each."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "b0": "bench.b0_storage",
    "b1": "bench.b1_counter",
    "b2": "bench.b2_call",
    "b3": "bench.b3_reactive",
    "b3t": "bench.b3_tenants",
    "b4": "bench.b4_charms",
    "b5": "bench.b5_http",
    "b7": "bench.b7_growth",
    "b5ws": "bench.b5_ws",
    "b6": "bench.b6_shell",
    "b8": "bench.b8_scan",
    "b9": "bench.b9_refresh",
    "b10": "bench.b10_nonces",
    "b11": "bench.b11_lease",
    "b12": "bench.b12_sessions",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run, under a minute")
    parser.add_argument(
        "names", nargs="*", help=f"which to run (default: all of {list(BENCHMARKS)})"
    )
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(BENCHMARKS[name])
        module.main(["--quick"] if args.quick else [])


if __name__ == "__main__":
    main()
