#!/usr/bin/env python3
"""Re-score a hybrid benchmark's test sets, optionally without some genera.

Prints the average precision per rank of every configuration the benchmark ran (its
results.json names them), from the tables `benchmarks/hybrid_benchmark.py` left in OUTDIR, on
all test fragments and on those whose genus is not in --exclude-genus. It asks how much of a gap
one genus causes.

    python benchmarks/rescore.py benchmark-out/full --exclude-genus 186765   # Lambdalikevirus
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hytax.data import RANKS, read_labels
from hytax.evaluate import Call, read_predictions, score_rank


def average_precisions(
    calls: dict[str, dict[str, Call]], reads: list[str], truth: dict
) -> list[float]:
    """AP per rank of one method's calls over `reads`."""
    return [
        score_rank(rank, {r: truth[r][rank] for r in reads}, calls, None)
        .metrics["average_precision"]
        for rank in RANKS
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="a hybrid_benchmark.py --outdir")
    parser.add_argument("--split", default="nonsimilar")
    parser.add_argument("--exclude-genus", type=int, nargs="*", default=[],
                        help="genus taxids to leave out of the second line")
    args = parser.parse_args()
    methods = json.loads((args.outdir / "results.json").read_text())["methods"]
    excluded = set(args.exclude_genus)
    print("length  fragments  " + "  ".join(f"{m} AP {'/'.join(RANKS)} (%)" for m in methods))
    for folder in sorted((args.outdir / args.split).glob("test_*")):
        truth = read_labels(folder / "test.labels.tsv")
        calls = {m: read_predictions(folder / f"{m}.tsv", list(RANKS))[1] for m in methods}
        kept = [r for r in truth if truth[r]["genus"] not in excluded]
        for label, reads in (("all", list(truth)), ("kept", kept)):
            cells = ["/".join(f"{100 * a:.1f}" for a in average_precisions(calls[m], reads, truth))
                     for m in methods]
            print(f"{folder.name.removeprefix('test_'):>6}  {label:>4} {len(reads):>5}  "
                  + "  ".join(cells))


if __name__ == "__main__":
    main()
