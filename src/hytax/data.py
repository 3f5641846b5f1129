"""Labelled training fragments from genome FASTAs (`hytax fragments`).

Sampling follows BERTax (paper, 2.2): fragments are drawn evenly over taxonomic groups (here
genera) so that no genome with many strains or a huge chromosome dominates, fragments with too
many ambiguous bases are discarded and replaced, and labels come from the taxdump lineage of the
genome's taxid. Splits are the paper's "similar" (random per class) and "non-similar" (whole
genera held out for the test set).

Genomes are read one at a time and sampled by position, so memory holds one genome plus the
fragments drawn so far.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hytax.errors import HytaxError
from hytax.seqio import read_records, reverse_complement
from hytax.taxonomy import RANKS

LABEL_COLUMNS = ("read_id", *(f"{r}_taxid" for r in RANKS), "genome_id")
SPLITS = ("train", "val", "test")
AMBIGUOUS_TABLE = bytes(0 if chr(b) in "ACGT" else 1 for b in range(256))


class FragmentError(HytaxError):
    """Bad genomes table, missing genome file or impossible sampling request."""


# --- inputs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LengthSpec:
    """A fragment length, fixed (`1500`) or drawn uniformly from a range (`150:300`)."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> LengthSpec:
        low, _, high = text.partition(":")
        try:
            spec = cls(int(low), int(high or low))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected N or MIN:MAX, got '{text}'") from None
        if not 3 <= spec.low <= spec.high:
            raise argparse.ArgumentTypeError(f"bad fragment length '{text}'")
        return spec

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}:{self.high}"


@dataclass
class Genome:
    genome_id: str
    taxid: int
    path: Path
    length: int | None
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def group(self) -> int:
        """Balancing unit: the genus, or the genome's own taxon where no genus is known."""
        return self.labels["genus"] or self.taxid


def read_genomes(table: Path, genome_dir: Path) -> list[Genome]:
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or not {"genome_id", "taxid"} <= set(rows[0]):
        raise FragmentError(f"{table}: needs tab-separated columns genome_id and taxid")
    genomes = []
    for row in rows:
        path = genome_dir / f"{row['genome_id']}.fa.gz"
        if not path.is_file():
            raise FragmentError(f"{table}: genome file {path} not found")
        length = row.get("acgt_bases") or row.get("length")
        genomes.append(
            Genome(row["genome_id"], int(row["taxid"]), path, int(length) if length else None)
        )
    return genomes


def label_genomes(genomes: list[Genome], taxdump: Path) -> None:
    """Superkingdom/phylum/genus taxids from the taxdump lineage (0 where the lineage has none)."""
    from hytax.taxonomy import Taxonomy

    taxonomy = Taxonomy.load(taxdump)
    for genome in genomes:
        genome.labels = {r: int(t) for r, t in taxonomy.ranks(genome.taxid, RANKS).items()}


# --- allocation ----------------------------------------------------------------------------------


def allocate(total: int, capacities: Sequence[int]) -> list[int]:
    """Spread `total` as evenly as possible over bins with capacities (water filling).

    Bins that cannot take their even share give the rest to the others, so small genomes and
    genera are used up before large ones are oversampled.
    """
    counts = [0] * len(capacities)
    remaining = min(total, sum(capacities))
    open_bins = [i for i, c in enumerate(capacities) if c > 0]
    while remaining > 0 and open_bins:
        share, extra = divmod(remaining, len(open_bins))
        still_open = []
        for rank, i in enumerate(open_bins):
            give = min(share + (rank < extra), capacities[i] - counts[i])
            counts[i] += give
            remaining -= give
            if counts[i] < capacities[i]:
                still_open.append(i)
        if len(still_open) == len(open_bins) and share == 0 and extra == 0:
            break
        open_bins = still_open
    return counts


def genome_capacity(genome: Genome, spec: LengthSpec, max_coverage: float) -> int:
    """Most fragments a genome gives: `max_coverage` times its length in fragments (at least 1)."""
    if genome.length is None or genome.length < spec.low:
        return 0
    return max(1, int(max_coverage * genome.length / spec.mean))


def plan_quotas(
    genomes: list[Genome],
    specs: list[LengthSpec],
    per_superkingdom: int,
    per_genus: int,
    max_coverage: float,
    weights: list[float] | None = None,
) -> dict[tuple[str, LengthSpec], int]:
    """Fragments to draw per (genome, length spec): even over genera, then over genomes.

    Each length spec gets its `weights` share of the superkingdom target and of the genus cap.
    """
    weights = weights or [1.0] * len(specs)
    if len(weights) != len(specs):
        raise FragmentError("--length-weights needs one weight per --length")
    shares = [w / sum(weights) for w in weights]
    quotas: dict[tuple[str, LengthSpec], int] = {}
    by_sk: dict[int, dict[int, list[Genome]]] = defaultdict(lambda: defaultdict(list))
    for genome in genomes:
        by_sk[genome.labels["superkingdom"]][genome.group].append(genome)
    for groups in by_sk.values():
        for spec, share in zip(specs, shares, strict=True):
            target = round(per_superkingdom * share)
            members = list(groups.values())
            caps = [
                min(round(per_genus * share),
                    sum(genome_capacity(g, spec, max_coverage) for g in m))
                for m in members
            ]
            for m, n in zip(members, allocate(target, caps), strict=True):
                caps_g = [genome_capacity(g, spec, max_coverage) for g in m]
                for g, k in zip(m, allocate(n, caps_g), strict=True):
                    quotas[(g.genome_id, spec)] = k
    return quotas


# --- sampling ------------------------------------------------------------------------------------


@dataclass
class Fragment:
    read_id: str
    description: str
    seq: str
    genome: Genome


def genome_seed(seed: int, genome_id: str) -> np.random.Generator:
    """One generator per genome, so a genome's fragments do not depend on the table's order."""
    return np.random.default_rng([seed, zlib.crc32(genome_id.encode())])


def ambiguous_fraction(seq: str) -> float:
    return sum(seq.encode("ascii", "replace").translate(AMBIGUOUS_TABLE)) / max(1, len(seq))


def sample_genome(
    genome: Genome,
    wants: list[tuple[LengthSpec, int]],
    max_ambiguous: float,
    rng: np.random.Generator,
    max_tries: int = 20,
) -> tuple[list[Fragment], int]:
    """Draw fragments at random positions of one genome; return them and the ambiguous skips.

    A fragment over the ambiguity limit is counted and replaced by a new draw, up to
    `max_tries` draws per wanted fragment (a genome of mostly N stops early).
    """
    records = [(r.id, r.seq) for r in read_records(genome.path)]
    fragments: list[Fragment] = []
    skipped = 0
    for spec, want in wants:
        lengths = rng.integers(spec.low, spec.high + 1, size=want * max_tries)
        tries = 0
        got = 0
        while got < want and tries < len(lengths):
            length = int(lengths[tries])
            tries += 1
            usable = np.array([max(0, len(s) - length + 1) for _, s in records], dtype=float)
            if usable.sum() == 0:
                break
            which = int(rng.choice(len(records), p=usable / usable.sum()))
            start = int(rng.integers(0, usable[which]))
            rec_id, rec_seq = records[which]
            seq = rec_seq[start : start + length]
            if ambiguous_fraction(seq) > max_ambiguous:
                skipped += 1
                continue
            strand = "-" if rng.random() < 0.5 else "+"
            if strand == "-":
                seq = reverse_complement(seq)
            read_id = f"{genome.genome_id}_{len(fragments):06d}"
            where = f"{rec_id}:{start + 1}-{start + length}({strand})"
            fragments.append(Fragment(read_id, where, seq, genome))
            got += 1
    return fragments, skipped


# --- splits --------------------------------------------------------------------------------------


def split_similar(
    fragments: list[Fragment], test_fraction: float, val_fraction: float, rng: np.random.Generator
) -> dict[str, list[Fragment]]:
    """Random split within each genus group (paper: "similar" selection)."""
    out: dict[str, list[Fragment]] = {s: [] for s in SPLITS}
    for members in _by_group(fragments).values():
        order = rng.permutation(len(members))
        n_test = round(test_fraction * len(members))
        n_val = round(val_fraction * (len(members) - n_test))
        for rank, i in enumerate(order):
            split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            out[split].append(members[i])
    return out


def choose_heldout_genera(
    fragments: list[Fragment], test_fraction: float, rng: np.random.Generator
) -> set[int]:
    """Per phylum, whole genera whose fragment count is closest to `test_fraction` of it.

    A phylum with a single known genus keeps it for training: holding it out would leave the
    phylum without training data. Fragments without a genus are never held out.
    """
    per_phylum: dict[tuple[int, int], Counter[int]] = defaultdict(Counter)
    for f in fragments:
        genus = f.genome.labels["genus"]
        if genus:
            per_phylum[(f.genome.labels["superkingdom"], f.genome.labels["phylum"])][genus] += 1
    heldout: set[int] = set()
    for key in sorted(per_phylum):
        counts = per_phylum[key]
        if len(counts) < 2:
            continue
        target = test_fraction * sum(counts.values())
        genera = sorted(counts)
        chosen: list[int] = []
        total = 0
        for genus in (genera[i] for i in rng.permutation(len(genera))):
            if len(chosen) == len(genera) - 1:
                break
            if abs(total + counts[genus] - target) < abs(total - target):
                chosen.append(genus)
                total += counts[genus]
        heldout.update(chosen)
    return heldout


def split_nonsimilar(
    fragments: list[Fragment],
    heldout: set[int],
    val_fraction: float,
    rng: np.random.Generator,
) -> dict[str, list[Fragment]]:
    out: dict[str, list[Fragment]] = {s: [] for s in SPLITS}
    rest = []
    for f in fragments:
        (out["test"] if f.genome.labels["genus"] in heldout else rest).append(f)
    for members in _by_group(rest).values():
        order = rng.permutation(len(members))
        n_val = round(val_fraction * len(members))
        for rank, i in enumerate(order):
            out["val" if rank < n_val else "train"].append(members[i])
    return out


def _by_group(fragments: Iterable[Fragment]) -> dict[int, list[Fragment]]:
    groups: dict[int, list[Fragment]] = defaultdict(list)
    for f in fragments:
        groups[f.genome.group].append(f)
    return dict(sorted(groups.items()))


# --- outputs -------------------------------------------------------------------------------------


def write_split(fragments: list[Fragment], fasta: Path, labels: Path) -> None:
    with open(fasta, "w") as fa, open(labels, "w") as tsv:
        tsv.write("\t".join(LABEL_COLUMNS) + "\n")
        for f in fragments:
            fa.write(f">{f.read_id} {f.description}\n{f.seq}\n")
            ranks = [str(f.genome.labels[r]) for r in RANKS]
            tsv.write("\t".join([f.read_id, *ranks, f.genome.genome_id]) + "\n")


def read_labels(path: str | Path) -> dict[str, dict[str, int]]:
    """Labels TSV -> {read_id: {rank: taxid}} (also used as the truth file of `hytax evaluate`)."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        missing = {"read_id", *(f"{r}_taxid" for r in RANKS)} - set(reader.fieldnames or [])
        if missing:
            raise FragmentError(f"{path}: missing columns {', '.join(sorted(missing))}")
        return {
            row["read_id"]: {r: int(row[f"{r}_taxid"] or 0) for r in RANKS} for row in reader
        }


def write_heldout(path: Path, heldout: set[int], fragments: list[Fragment]) -> None:
    counts = Counter(f.genome.labels["genus"] for f in fragments)
    lineage = {f.genome.labels["genus"]: f.genome.labels for f in fragments}
    with open(path, "w") as fh:
        fh.write("genus_taxid\tphylum_taxid\tsuperkingdom_taxid\tfragments\tgenomes\n")
        for genus in sorted(heldout):
            genomes = sorted(
                {f.genome.genome_id for f in fragments if f.genome.labels["genus"] == genus}
            )
            fh.write(
                f"{genus}\t{lineage[genus]['phylum']}\t{lineage[genus]['superkingdom']}\t"
                f"{counts[genus]}\t{','.join(genomes)}\n"
            )


# --- command -------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--genomes", required=True, type=Path,
                        help="genomes table (TSV with genome_id, taxid[, length])")
    parser.add_argument("--genome-dir", type=Path,
                        help="folder of <genome_id>.fa.gz (default: genomes/ beside the table)")
    parser.add_argument("--taxdump", type=Path,
                        help="NCBI taxdump folder (default: taxdump/ beside the table)")
    parser.add_argument("--outdir", "-o", required=True, type=Path)
    parser.add_argument("--length", type=LengthSpec.parse, nargs="+",
                        default=[LengthSpec(1500, 1500)],
                        help="fragment lengths, N or MIN:MAX (uniform in the range)")
    parser.add_argument("--length-weights", type=float, nargs="+",
                        help="share of each --length (default: equal shares)")
    parser.add_argument("--per-superkingdom", type=int, default=2000,
                        help="target fragments per superkingdom (all lengths together)")
    parser.add_argument("--per-genus", type=int, default=1000,
                        help="cap on fragments per genus (all lengths together)")
    parser.add_argument("--max-coverage", type=float, default=2.0,
                        help="at most this many times a genome's length in fragments")
    parser.add_argument("--max-ambiguous", type=float, default=0.0008,
                        help="skip fragments with a larger fraction of non-ACGT bases "
                             "(paper: 0.08 %%)")
    parser.add_argument("--split", choices=["similar", "nonsimilar"], default="similar")
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--val-fraction", type=float, default=0.05,
                        help="share of the non-test fragments used for validation")
    parser.add_argument(
        "--holdout-genus",
        type=int,
        nargs="+",
        default=[],
        metavar="TAXID",
        help="non-similar: also hold out these genera (e.g. to put an archaeon in the test set)",
    )
    parser.add_argument("--seed", type=int, default=1)


def make_fragments(args: argparse.Namespace) -> dict:
    """Sample, label, split and write fragments; returns (and writes) a summary."""
    table: Path = args.genomes
    genome_dir = args.genome_dir or table.parent / "genomes"
    taxdump = args.taxdump or table.parent / "taxdump"
    genomes = read_genomes(table, genome_dir)
    label_genomes(genomes, taxdump)
    if len(set(args.length)) != len(args.length):
        raise FragmentError("--length: give each length once (use --length-weights for shares)")
    quotas = plan_quotas(genomes, args.length, args.per_superkingdom, args.per_genus,
                         args.max_coverage, args.length_weights)
    fragments: list[Fragment] = []
    skipped: Counter[str] = Counter()
    for genome in genomes:
        wants = [(spec, quotas[(genome.genome_id, spec)]) for spec in args.length]
        wants = [(s, n) for s, n in wants if n > 0]
        if not wants:
            continue
        got, n_skip = sample_genome(genome, wants, args.max_ambiguous,
                                    genome_seed(args.seed, genome.genome_id))
        fragments.extend(got)
        skipped[genome.genome_id] += n_skip

    rng = np.random.default_rng(args.seed)
    args.outdir.mkdir(parents=True, exist_ok=True)
    heldout_path = None
    if args.split == "nonsimilar":
        heldout = choose_heldout_genera(fragments, args.test_fraction, rng)
        heldout |= _taxids_present(args.holdout_genus, fragments)
        splits = split_nonsimilar(fragments, heldout, args.val_fraction, rng)
        heldout_path = args.outdir / "heldout_genera.tsv"
        write_heldout(heldout_path, heldout, fragments)
    else:
        splits = split_similar(fragments, args.test_fraction, args.val_fraction, rng)
    for name, members in splits.items():
        write_split(members, args.outdir / f"{name}.fa", args.outdir / f"{name}.labels.tsv")

    summary = {
        "genomes": str(table),
        "taxdump": str(taxdump),
        "lengths": [str(s) for s in args.length],
        "length_weights": args.length_weights,
        "split": args.split,
        "seed": args.seed,
        "fragments": {s: len(m) for s, m in splits.items()},
        "per_superkingdom": _count_by(fragments, "superkingdom"),
        "skipped_ambiguous": sum(skipped.values()),
        "skipped_ambiguous_by_genome": {k: v for k, v in skipped.items() if v},
        "max_ambiguous": args.max_ambiguous,
        "heldout_genera_file": str(heldout_path) if heldout_path else None,
    }
    (args.outdir / "fragments.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"{len(fragments)} fragments ({', '.join(f'{s} {len(m)}' for s, m in splits.items())}); "
        f"{summary['skipped_ambiguous']} skipped for > {args.max_ambiguous:.4%} ambiguous bases",
        file=sys.stderr,
    )
    return summary


def _taxids_present(genera: list[int], fragments: list[Fragment]) -> set[int]:
    present = {f.genome.labels["genus"] for f in fragments}
    missing = sorted(set(genera) - present)
    if missing:
        raise FragmentError(f"--holdout-genus: no sampled genome in genus {missing}")
    return set(genera)


def _count_by(fragments: list[Fragment], rank: str) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(f.genome.labels[rank] for f in fragments).items())}

