#!/usr/bin/env python3
"""What a per-sample step pays to read its taxonomy: the complete NCBI dump vs the compact file.

Writes the compact taxonomy (`hytax taxonomy`) of the shared genomes' taxa and a model's classes,
then loads each form in a fresh interpreter, as every route, merge and report task does, and
prints the wall time of `Taxonomy.load` (median and range of --repeats loads) and the process's
peak resident memory.

    python benchmarks/scale_benchmark.py [--data ../shared/data] [--model assets/models/hytax-mini]
                                         [--repeats 5] [--random-taxa 100000]

`--random-taxa N` adds N taxids drawn at random (seed 0) from the dump, a stand-in for a large
reference such as one genome per bacterial species.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from hytax.taxonomy import COMPACT_NAME, write_compact_taxonomy

REPO = Path(__file__).resolve().parents[1]

# The peak RSS of a child: VmHWM of its own address space (ru_maxrss would carry over the
# parent's peak from before exec, and the parent has loaded the full dump).
_PEAK = """
def peak_rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
"""

# run in a child so each load starts cold (no shared dicts) and its peak RSS is its own
_LOAD = _PEAK + """
import json, sys, time
from hytax.taxonomy import Taxonomy
start = time.perf_counter()
taxonomy = Taxonomy.load(sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rss": peak_rss(), "taxa": len(taxonomy)}))
"""


def load_in_child(path: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _LOAD, str(path)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


def baseline_rss() -> int:
    """Peak RSS of an interpreter that imports hytax.taxonomy and loads nothing."""
    code = _PEAK + "import hytax.taxonomy\nprint(peak_rss())"
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout)


def random_taxids(taxdump: Path, n: int, out: Path) -> Path:
    with gzip.open(taxdump / "nodes.dmp.gz", "rt") as fh:
        taxids = [line.split("\t", 1)[0] for line in fh]
    out.write_text("".join(f"{t}\n" for t in random.Random(0).sample(taxids, n)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", type=Path, default=REPO / "assets" / "models" / "hytax-mini")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--random-taxa", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        taxid_files = [args.data / "seq2taxid.tsv"]
        if args.random_taxa:
            taxid_files.append(random_taxids(args.data / "taxdump", args.random_taxa,
                                             Path(tmp) / "random_taxids.txt"))
        compact = Path(tmp) / COMPACT_NAME
        taxa, merged = write_compact_taxonomy(args.data / "taxdump", taxid_files, [args.model],
                                              compact)
        gz = Path(tmp) / f"{COMPACT_NAME}.gz"
        write_compact_taxonomy(args.data / "taxdump", taxid_files, [args.model], gz)
        extra = f" and {args.random_taxa} random taxids" if args.random_taxa else ""
        print(f"compact taxonomy of {args.data / 'seq2taxid.tsv'}, {args.model}{extra}: "
              f"{taxa} taxa, {merged} merged ids; {compact.stat().st_size / 1024:.0f} KiB plain, "
              f"{gz.stat().st_size / 1024:.0f} KiB gzipped")
        print(f"python + hytax.taxonomy alone: peak RSS {baseline_rss() / 2**20:.0f} MiB")
        for label, path in (("full NCBI dump (.dmp.gz)", args.data / "taxdump"),
                            ("compact, plain", compact), ("compact, gzipped", gz)):
            runs = [load_in_child(path) for _ in range(args.repeats)]
            times = [r["seconds"] for r in runs]
            print(f"{label:<26} {runs[0]['taxa']:>9} taxa  load {statistics.median(times):7.3f} s "
                  f"(range {min(times):.3f}-{max(times):.3f}, {args.repeats} loads)  "
                  f"peak RSS {max(r['rss'] for r in runs) / 2**20:6.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
