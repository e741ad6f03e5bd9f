"""``python -m bench [--quick]``: measure, print the table, write ``bench/results.json``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .figures import table
from .sizes import FULL, QUICK
from .suite import SUITES, run_all

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON path")
    parser.add_argument("--tmp", type=Path, default=None, help="scratch folder (local disk)")
    parser.add_argument("--only", choices=SUITES, action="append", help="run only this suite")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.WARNING)
    for noisy in ("absl", "tensorflow"):  # retracing notes: each baseline builds new models
        logging.getLogger(noisy).setLevel(logging.ERROR)
    sizes = QUICK if args.quick else FULL
    out = args.out or (
        DEFAULT_RESULTS.with_name("results-quick.json") if args.quick else DEFAULT_RESULTS
    )
    figures, doc = run_all(sizes, out, args.tmp, tuple(args.only or SUITES))
    m = doc["machine"]
    print(
        f"\n{m['cpu']}, {m['cores']} cores, load {m['load_average_start']} -> "
        f"{m['load_average_end']}; {doc['seconds']} s\n"
    )
    print(table(figures))
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
