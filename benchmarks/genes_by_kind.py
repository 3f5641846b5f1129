"""What the protein tier's gene finder (hytax.genes, pyrodigal) gives for each kind of genome.

Per superkingdom, a random sample of genomes of the data folder (each capped, so that one large
eukaryotic chromosome does not stand for its kind): genes per Mb, the share of bases in genes,
how many sequences were long enough to train a gene model on themselves, and the time taken.

    benchmarks/genes_by_kind.py --data ../shared/data [--per-kind 8] [--cap-mb 2]
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from hytax.genes import GeneStats, proteins
from hytax.seqio import read_records


def capped_fasta(genome: Path, cap: int, out: Path) -> dict[str, int]:
    """The genome's first `cap` nt as FASTA; sequence id -> a placeholder taxid."""
    mapping, n = {}, 0
    with out.open("w") as fh:
        for record in read_records(genome):
            if n >= cap:
                break
            seq = record.seq[: cap - n]
            n += len(seq)
            fh.write(f">{record.id}\n{seq}\n")
            mapping[record.id] = 1
    return mapping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--per-kind", type=int, default=8)
    parser.add_argument("--cap-mb", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with open(args.data / "genomes.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    by_kind: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_kind[row["superkingdom"]].append(row)
    rng = random.Random(args.seed)
    print("superkingdom\tgenomes\tMb\tgenes\tgenes_per_Mb\tcoding_share\tself_trained\tseconds")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, genomes in sorted(by_kind.items()):
            stats, residues, start = GeneStats(), 0, time.perf_counter()
            for row in rng.sample(genomes, min(args.per_kind, len(genomes))):
                fasta = Path(tmp) / f"{row['genome_id']}.fa"
                mapping = capped_fasta(args.data / "genomes" / f"{row['genome_id']}.fa.gz",
                                       int(args.cap_mb * 1e6), fasta)
                residues += sum(len(aa) for _, aa, _ in proteins(fasta, mapping, stats))
            mb = stats.bases / 1e6
            print(f"{kind}\t{min(args.per_kind, len(genomes))}\t{mb:.1f}\t{stats.genes}\t"
                  f"{stats.genes / mb:.0f}\t{3 * residues / stats.bases:.0%}\t"
                  f"{stats.single_mode}/{stats.sequences}\t{time.perf_counter() - start:.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
