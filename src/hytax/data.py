"""Labelled training fragments from genomes (`hytax fragments`).

Sampling follows BERTax (paper, 2.2): fragments are drawn evenly over taxonomic groups (here
genera) so that no genome with many strains or a huge chromosome dominates, fragments with too
many ambiguous bases are discarded and replaced, and labels come from the taxdump lineage of the
genome's taxid. Splits are the paper's "similar" (random per class) and "non-similar" (whole
genera held out for the test set), and "genus": whole genera for training, validation and test
in every superkingdom that has enough of them (what the pipeline's training entry uses, so that
calibration and evaluation see genera the model never saw, as BERTax does in the pipeline).

The output folder holds train/val/test FASTA and labels, fragments.json (what was done),
genera.tsv (genus split) and taxdump/ (the fragments' lineages: names for fine-tuning and
evaluation without the full NCBI dump).

Genomes come from a table and a folder of FASTA files, or from one reference FASTA with a
sequence -> taxid mapping (the inputs of the pipeline's MMseqs2 database; a "genome" is then the
sequences of one taxid). Either way genomes are read one at a time and sampled by position, so
memory holds one genome plus the fragments drawn so far.
"""

from __future__ import annotations

import csv
import json
import sys
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hytax.errors import HytaxError
from hytax.seqio import read_records, reverse_complement
from hytax.tables import read_seq2taxid
from hytax.taxonomy import RANKS, Taxonomy

LABEL_COLUMNS = ("read_id", *(f"{r}_taxid" for r in RANKS), "genome_id")
SPLITS = ("train", "val", "test")
SPLIT_KINDS = ("similar", "nonsimilar", "genus")
AMBIGUOUS_TABLE = bytes(0 if chr(b) in "ACGT" else 1 for b in range(256))
# Genus split: a superkingdom needs one genus for each of training, validation and test.
MIN_GENERA_TO_SPLIT = 3
TAXDUMP_DIR = "taxdump"  # in the output folder: the fragments' lineages


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
        """`N` or `MIN:MAX`; a ValueError names what is wrong."""
        low, _, high = text.partition(":")
        try:
            spec = cls(int(low), int(high or low))
        except ValueError:
            raise ValueError(f"expected N or MIN:MAX, got '{text}'") from None
        if not 3 <= spec.low <= spec.high:
            raise ValueError(f"bad fragment length '{text}' (3 <= MIN <= MAX)")
        return spec

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}:{self.high}"


@dataclass
class FragmentOptions:
    """What to sample and how to split it (see `hytax fragments --help`)."""

    lengths: list[LengthSpec] = field(default_factory=lambda: [LengthSpec(1500, 1500)])
    length_weights: list[float] | None = None  # share of each length; None: equal shares
    per_superkingdom: int | None = 2000  # target per superkingdom; None: every genus per_genus
    per_genus: int = 1000  # cap per genus (all lengths together)
    max_coverage: float = 2.0  # at most this many times a genome's length in fragments
    max_ambiguous: float = 0.0008  # paper: 0.08 % non-ACGT bases at most
    split: str = "similar"  # similar | nonsimilar | genus
    test_fraction: float = 0.1  # genus split: share of each superkingdom's genera
    val_fraction: float = 0.05  # genus split: share of each superkingdom's genera
    holdout_genera: list[int] = field(default_factory=list)  # always in the test set
    # genus split: never held out (e.g. another model's training genera, so that both are tested
    # on genera neither saw)
    train_genera: list[int] = field(default_factory=list)
    drop_without_genus: bool = False  # genus split: drop taxa without a genus (else an error)
    seed: int = 1


@dataclass(frozen=True)
class GenomeTable:
    """Genomes as a table (genome_id, taxid[, length]) and a folder of <genome_id>.fa.gz."""

    table: Path
    genome_dir: Path | None = None  # default: genomes/ beside the table

    @property
    def folder(self) -> Path:
        return self.genome_dir or self.table.parent / "genomes"


@dataclass(frozen=True)
class ReferenceFasta:
    """One FASTA of reference sequences and its sequence id -> taxid TSV (seq2taxid)."""

    fasta: Path
    mapping: Path


@dataclass
class Genome:
    genome_id: str
    taxid: int
    path: Path
    length: int | None
    labels: dict[str, int] = field(default_factory=dict)
    # Reference FASTA input: (record number, id) of this taxid's sequences, and the longest.
    records: list[tuple[int, str]] = field(default_factory=list)
    longest: int = 0

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


def index_reference(reference: ReferenceFasta, min_length: int) -> tuple[list[Genome], int]:
    """One genome per taxid from a reference FASTA (read once, sequences not kept); also the
    number of sequences shorter than `min_length` (they can give no fragment).

    Every sequence needs a taxid: one the mapping lacks is an error naming it.
    """
    tax_of = read_seq2taxid(reference.mapping)
    genomes: dict[int, Genome] = {}
    unmapped: list[str] = []
    short = 0
    for number, record in enumerate(read_records(reference.fasta), start=1):
        taxid = tax_of.get(record.id)
        if taxid is None:
            unmapped.append(f"'{record.id}' (record {number})")
            continue
        genome = genomes.get(taxid)
        if genome is None:
            genome = genomes[taxid] = Genome(f"taxid{taxid}", taxid, reference.fasta, 0)
        genome.records.append((number, record.id))
        genome.longest = max(genome.longest, len(record.seq))
        if len(record.seq) >= min_length:
            genome.length = (genome.length or 0) + len(record.seq)
        else:
            short += 1
    if unmapped:
        raise FragmentError(
            f"{reference.fasta}: {len(unmapped)} sequence(s) have no taxid in "
            f"{reference.mapping}: {_some(unmapped)}"
        )
    if not genomes:
        raise FragmentError(f"{reference.fasta}: no sequences")
    return list(genomes.values()), short


def label_genomes(genomes: list[Genome], taxdump: Path | Taxonomy) -> None:
    """Superkingdom/phylum/genus taxids from the taxdump lineage (0 where the lineage has none)."""
    taxonomy = taxdump if isinstance(taxdump, Taxonomy) else Taxonomy.load(taxdump)
    unknown = [g for g in genomes if g.taxid not in taxonomy]
    if unknown:
        raise FragmentError(
            f"{len(unknown)} taxid(s) are not in the taxdump {taxonomy.source}: "
            + _some([f"{g.taxid} ({_where(g)})" for g in unknown])
        )
    for genome in genomes:
        genome.labels = {r: int(t) for r, t in taxonomy.ranks(genome.taxid, RANKS).items()}


def _where(genome: Genome) -> str:
    """How to find a genome in the input: its first sequence, or its genome id."""
    if genome.records:
        number, rec_id = genome.records[0]
        return f"sequence '{rec_id}', record {number} of {genome.path.name}"
    return f"genome {genome.genome_id}"


def _some(items: Sequence[str], shown: int = 5) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


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
    per_superkingdom: int | None,
    per_genus: int,
    max_coverage: float,
    weights: list[float] | None = None,
) -> dict[tuple[str, LengthSpec], int]:
    """Fragments to draw per (genome, length spec): even over genera, then over genomes.

    Each length spec gets its `weights` share of the superkingdom target and of the genus cap.
    Without a superkingdom target every genus gets the cap (as far as its genomes allow).
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
            members = list(groups.values())
            caps = [
                min(round(per_genus * share),
                    sum(genome_capacity(g, spec, max_coverage) for g in m))
                for m in members
            ]
            target = sum(caps) if per_superkingdom is None else round(per_superkingdom * share)
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
    records: list[tuple[str, str]] | None = None,
) -> tuple[list[Fragment], int]:
    """Draw fragments at random positions of one genome; return them and the ambiguous skips.

    `records` are the genome's (id, sequence) pairs; by default its file is read.
    A fragment over the ambiguity limit is counted and replaced by a new draw, up to
    `max_tries` draws per wanted fragment (a genome of mostly N stops early).
    """
    if records is None:
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


# --- the genus split ---------------------------------------------------------------------------


def check_genus_split(
    genomes: list[Genome], options: FragmentOptions, taxonomy: Taxonomy
) -> list[Genome]:
    """The genomes a genus split can use; every problem the input has, in one message.

    Taxa without a genus cannot be split by genus: an error, or dropped with
    `drop_without_genus`. A genus none of whose sequences is as long as the shortest fragment
    can give no fragment: an error.
    """
    problems: list[str] = []
    without = [g for g in genomes if not g.labels["genus"]]
    if without and not options.drop_without_genus:
        problems.append(
            f"{len(without)} taxid(s) have no genus in the taxdump, so they cannot be split by "
            "genus (remove them, map them to a taxon with a genus, or drop them: hytax fragments "
            "--drop-without-genus, pipeline --train_drop_no_genus): "
            + _some([f"{g.taxid} {taxonomy.name(g.taxid)} ({_where(g)})" for g in without])
        )
    kept = [g for g in genomes if g.labels["genus"]]
    shortest = min(spec.low for spec in options.lengths)
    longest: dict[int, Genome] = {}
    for g in kept:
        best = longest.get(g.labels["genus"])
        if best is None or g.longest > best.longest:
            longest[g.labels["genus"]] = g
    too_short = [g for g in longest.values() if g.records and g.longest < shortest]
    if too_short:
        problems.append(
            f"{len(too_short)} genus/genera have no sequence as long as the shortest fragment "
            f"({shortest} nt): "
            + _some([f"{taxonomy.name(g.labels['genus'])} (longest {g.longest} nt: {_where(g)})"
                     for g in too_short])
        )
    if problems:
        raise FragmentError("; ".join(problems))
    genera: dict[int, set[int]] = defaultdict(set)
    for g in kept:
        genera[g.labels["superkingdom"]].add(g.labels["genus"])
    if not any(len(v) >= MIN_GENERA_TO_SPLIT for v in genera.values()):
        counts = ", ".join(f"{taxonomy.name(sk) if sk else 'no superkingdom'} {len(v)}"
                           for sk, v in sorted(genera.items()))
        raise FragmentError(
            f"too few genera to split by genus: a superkingdom needs at least "
            f"{MIN_GENERA_TO_SPLIT} genera (one each for training, validation and test); "
            f"the reference has {counts}"
        )
    return kept


def choose_genus_splits(
    genomes: list[Genome], options: FragmentOptions, rng: np.random.Generator
) -> dict[int, str]:
    """genus -> train/val/test, whole genera, chosen per superkingdom.

    A superkingdom with at least MIN_GENERA_TO_SPLIT genera gives `val_fraction` and
    `test_fraction` of them (at least one each, at least one left for training) to validation
    and test; a smaller one trains only. Held-out genera are drawn at random, first among those
    whose phylum keeps another genus for training, so that their phylum stays a class.
    `holdout_genera` always go to the test set, `train_genera` always to training.
    """
    phylum_of = {g.labels["genus"]: g.labels["phylum"] for g in genomes}
    sk_of = {g.labels["genus"]: g.labels["superkingdom"] for g in genomes}
    by_sk: dict[int, list[int]] = defaultdict(list)
    for genus in sorted(phylum_of):
        by_sk[sk_of[genus]].append(genus)
    forced = set(options.holdout_genera)
    missing = sorted(forced - set(phylum_of))
    if missing:
        raise FragmentError(f"--holdout-genus: no sampled genome in genus {missing}")
    kept = set(options.train_genera)
    both = sorted(forced & kept)
    if both:
        raise FragmentError(f"--holdout-genus and --train-genus both name genus {both}")
    split_of = dict.fromkeys(phylum_of, "train")
    for sk in sorted(by_sk):
        genera = by_sk[sk]
        pinned = [g for g in genera if g in forced]
        if len(genera) < MIN_GENERA_TO_SPLIT:
            split_of.update(dict.fromkeys(pinned, "test"))
            continue
        n_test = max(1, round(options.test_fraction * len(genera)), len(pinned))
        n_val = max(1, round(options.val_fraction * len(genera)))
        free = min(len(genera) - 1, len([g for g in genera if g not in kept]))
        while n_test + n_val > free and n_val > 1:
            n_val -= 1
        while n_test + n_val > free and n_test > max(1, len(pinned)):
            n_test -= 1
        if n_test + n_val > free:
            raise FragmentError(
                f"--holdout-genus/--train-genus: superkingdom {sk} has too few genera left for "
                "training, validation and test"
            )
        drawn = [genera[i] for i in rng.permutation(len(genera))]
        order = pinned + [g for g in drawn if g not in forced and g not in kept]
        in_training = Counter(phylum_of[g] for g in genera)
        for split, count in (("test", n_test), ("val", n_val)):
            taken = 0
            for keep_phyla in (True, False):
                for genus in order:
                    if taken == count:
                        break
                    phylum = phylum_of[genus]
                    if split_of[genus] != "train" or (
                        keep_phyla and phylum and in_training[phylum] < 2 and genus not in forced
                    ):
                        continue
                    split_of[genus] = split
                    in_training[phylum] -= 1
                    taken += 1
    return split_of


def split_by_genus(
    fragments: list[Fragment], split_of: dict[int, str]
) -> dict[str, list[Fragment]]:
    out: dict[str, list[Fragment]] = {s: [] for s in SPLITS}
    for f in fragments:
        out[split_of[f.genome.labels["genus"]]].append(f)
    return out


def write_genera(
    path: Path, split_of: dict[int, str], fragments: list[Fragment], taxonomy: Taxonomy
) -> None:
    """One row per genus: its lineage, its split, its fragments and taxa (for the model card)."""
    counts = Counter(f.genome.labels["genus"] for f in fragments)
    labels = {f.genome.labels["genus"]: f.genome.labels for f in fragments}
    taxa: dict[int, set[int]] = defaultdict(set)
    for f in fragments:
        taxa[f.genome.labels["genus"]].add(f.genome.taxid)
    with open(path, "w") as fh:
        fh.write("genus_taxid\tgenus\tphylum_taxid\tphylum\tsuperkingdom_taxid\tsuperkingdom"
                 "\tsplit\tfragments\ttaxa\n")
        for genus in sorted(split_of, key=lambda g: (SPLITS.index(split_of[g]), g)):
            lab = labels.get(genus)
            if lab is None:
                continue
            fh.write("\t".join([
                str(genus), taxonomy.name(genus), str(lab["phylum"]),
                taxonomy.name(lab["phylum"]) if lab["phylum"] else "",
                str(lab["superkingdom"]), taxonomy.name(lab["superkingdom"]),
                split_of[genus], str(counts[genus]),
                ",".join(str(t) for t in sorted(taxa[genus])),
            ]) + "\n")


# --- command -------------------------------------------------------------------------------------


def make_fragments(
    source: GenomeTable | ReferenceFasta, taxdump: Path, outdir: Path, options: FragmentOptions
) -> dict:
    """Sample, label, split and write fragments; returns (and writes) a summary.

    Every check of the input runs before any fragment is drawn.
    """
    if len(set(options.lengths)) != len(options.lengths):
        raise FragmentError("--length: give each length once (use --length-weights for shares)")
    if options.split not in SPLIT_KINDS:
        raise FragmentError(f"unknown split '{options.split}' ({', '.join(SPLIT_KINDS)})")
    shortest = min(spec.low for spec in options.lengths)
    short_sequences = 0
    if isinstance(source, ReferenceFasta):
        genomes, short_sequences = index_reference(source, shortest)
    else:
        genomes = read_genomes(source.table, source.folder)
    taxonomy = Taxonomy.load(taxdump)
    label_genomes(genomes, taxonomy)
    dropped = 0
    if options.split == "genus":
        kept = check_genus_split(genomes, options, taxonomy)
        dropped, genomes = len(genomes) - len(kept), kept
    quotas = plan_quotas(genomes, options.lengths, options.per_superkingdom, options.per_genus,
                         options.max_coverage, options.length_weights)
    split_of = (choose_genus_splits(genomes, options, np.random.default_rng([options.seed, 2]))
                if options.split == "genus" else {})

    fragments: list[Fragment] = []
    skipped: Counter[str] = Counter()
    for genome, records in _genome_records(source, genomes, quotas, options.lengths):
        wants = [(spec, quotas[(genome.genome_id, spec)]) for spec in options.lengths]
        got, n_skip = sample_genome(genome, [(s, n) for s, n in wants if n > 0],
                                    options.max_ambiguous,
                                    genome_seed(options.seed, genome.genome_id), records=records)
        fragments.extend(got)
        skipped[genome.genome_id] += n_skip

    rng = np.random.default_rng(options.seed)
    outdir.mkdir(parents=True, exist_ok=True)
    heldout_path = None
    if options.split == "genus":
        splits = split_by_genus(fragments, split_of)
        heldout = {g for g, s in split_of.items() if s == "test"}
        write_genera(outdir / "genera.tsv", split_of, fragments, taxonomy)
    elif options.split == "nonsimilar":
        heldout = choose_heldout_genera(fragments, options.test_fraction, rng)
        heldout |= _taxids_present(options.holdout_genera, fragments)
        splits = split_nonsimilar(fragments, heldout, options.val_fraction, rng)
    else:
        heldout = set()
        splits = split_similar(fragments, options.test_fraction, options.val_fraction, rng)
    if heldout:
        heldout_path = outdir / "heldout_genera.tsv"
        write_heldout(heldout_path, heldout, fragments)
    for name, members in splits.items():
        write_split(members, outdir / f"{name}.fa", outdir / f"{name}.labels.tsv")
    # the lineages of these fragments: what training needs of the taxonomy, without loading a
    # full NCBI dump (gigabytes) again
    taxonomy.write_dump(taxonomy.closure({f.genome.taxid for f in fragments}),
                        outdir / TAXDUMP_DIR)

    summary = {
        **_source_info(source),
        "taxdump": str(taxdump),
        "lengths": [str(s) for s in options.lengths],
        "length_weights": options.length_weights,
        "target_per_superkingdom": options.per_superkingdom,
        "cap_per_genus": options.per_genus,
        "split": options.split,
        "seed": options.seed,
        "fragments": {s: len(m) for s, m in splits.items()},
        "genera": {s: len({f.genome.labels["genus"] for f in m}) for s, m in splits.items()},
        "per_superkingdom": _count_by(fragments, "superkingdom"),
        "skipped_ambiguous": sum(skipped.values()),
        "skipped_ambiguous_by_genome": {k: v for k, v in skipped.items() if v},
        "max_ambiguous": options.max_ambiguous,
        "short_sequences": short_sequences,
        "taxa_without_genus_dropped": dropped,
        "heldout_genera_file": str(heldout_path) if heldout_path else None,
        "taxdump_subset": str(outdir / TAXDUMP_DIR),
    }
    if options.split == "genus":
        summary["genera_file"] = str(outdir / "genera.tsv")
        summary["superkingdoms_not_held_out"] = _train_only_superkingdoms(splits, taxonomy)
    (outdir / "fragments.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"{len(fragments)} fragments ({', '.join(f'{s} {len(m)}' for s, m in splits.items())}); "
        f"{summary['skipped_ambiguous']} skipped for > {options.max_ambiguous:.4%} ambiguous bases"
        + (f"; {short_sequences} sequences shorter than {shortest} nt unused"
           if short_sequences else ""),
        file=sys.stderr,
    )
    return summary


def _genome_records(
    source: GenomeTable | ReferenceFasta,
    genomes: list[Genome],
    quotas: dict[tuple[str, LengthSpec], int],
    specs: list[LengthSpec],
) -> Iterator[tuple[Genome, list[tuple[str, str]] | None]]:
    """Each genome with fragments to draw, with its sequences (None: sample_genome reads its
    file). A reference FASTA is read once: a genome is handed on at its last sequence."""
    wanted = [g for g in genomes if any(quotas.get((g.genome_id, s), 0) for s in specs)]
    if isinstance(source, GenomeTable):
        for genome in wanted:
            yield genome, None
        return
    owner = {number: g for g in wanted for number, _ in g.records}
    pending: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for number, record in enumerate(read_records(source.fasta), start=1):
        genome = owner.get(number)
        if genome is None:
            continue
        pending[genome.genome_id].append((record.id, record.seq))
        if number == genome.records[-1][0]:
            yield genome, pending.pop(genome.genome_id)


def _source_info(source: GenomeTable | ReferenceFasta) -> dict:
    if isinstance(source, ReferenceFasta):
        return {"reference": str(source.fasta), "tax_mapping": str(source.mapping)}
    return {"genomes": str(source.table), "genome_dir": str(source.folder)}


def _train_only_superkingdoms(splits: dict[str, list[Fragment]], taxonomy: Taxonomy) -> list[str]:
    """Superkingdoms with too few genera to hold any out: not validated nor tested."""
    held = {f.genome.labels["superkingdom"] for s in ("val", "test") for f in splits[s]}
    trained = {f.genome.labels["superkingdom"] for f in splits["train"]}
    return [taxonomy.name(sk) for sk in sorted(trained - held)]


def _taxids_present(genera: list[int], fragments: list[Fragment]) -> set[int]:
    present = {f.genome.labels["genus"] for f in fragments}
    missing = sorted(set(genera) - present)
    if missing:
        raise FragmentError(f"--holdout-genus: no sampled genome in genus {missing}")
    return set(genera)


def _count_by(fragments: list[Fragment], rank: str) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(f.genome.labels[rank] for f in fragments).items())}
