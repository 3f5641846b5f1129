"""`hytax fragments` on real genomes: a few small ones from shared/data (a genomes table and
folder), and the pipeline's bundled test reference (one FASTA + seq2taxid, split by genus)."""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, full_taxonomy
from conftest import SHARED_DATA as DATA

from hytax.data import (
    FragmentError,
    FragmentOptions,
    GenomeTable,
    LengthSpec,
    ReferenceFasta,
    allocate,
    ambiguous_fraction,
    make_fragments,
    read_labels,
)
from hytax.seqio import read_records, reverse_complement
from hytax.taxonomy import Taxonomy

TEST_ASSETS = REPO / "assets" / "test"

GENOMES = [
    "Shewanella_baltica_OS185_500kb",  # Proteobacteria
    "Acinetobacter_baumannii_Kloci_x10",  # Proteobacteria
    "Ypestis_pPCP1",  # Proteobacteria, one 9.6 kb plasmid
    "Mycoplasma_genitalium_G37",  # Tenericutes
    "Scerevisiae_chrI",  # Eukaryota
    "Lambda_phage",  # Viruses (no phylum in the 2013 dump)
]
SYNTHETIC = "Nrich_synthetic"  # an E. coli taxid on a sequence that is mostly N


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A genomes table of small real genomes plus an N-rich one, and a taxdump subset."""

    root = tmp_path_factory.mktemp("inputs")
    genome_dir = root / "genomes"
    genome_dir.mkdir()
    with open(DATA / "genomes.tsv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["genome_id"] in GENOMES]
    for row in rows:
        (genome_dir / f"{row['genome_id']}.fa.gz").symlink_to(
            DATA / "genomes" / f"{row['genome_id']}.fa.gz"
        )
    rng = np.random.default_rng(0)
    bases = np.array(list("ACGT"))
    # 600-nt blocks of sequence between 400-nt runs of N: most 300-nt draws hit an N run.
    seq = "".join("".join(rng.choice(bases, 600)) + "N" * 400 for _ in range(30))
    with gzip.open(genome_dir / f"{SYNTHETIC}.fa.gz", "wt") as fh:
        fh.write(f">synthetic1\n{seq}\n")
    rows.append({"genome_id": SYNTHETIC, "taxid": "562", "length": str(len(seq))})
    table = root / "genomes.tsv"
    with open(table, "w") as fh:
        fh.write("genome_id\ttaxid\tlength\n")
        for row in rows:
            fh.write(f"{row['genome_id']}\t{row['taxid']}\t{row['length']}\n")
    taxonomy = full_taxonomy()
    taxids = [int(r["taxid"]) for r in rows]
    taxonomy.write_dump(taxonomy.closure(taxids), root / "taxdump")
    lineage = {r["genome_id"]: taxonomy.ranks(int(r["taxid"])) for r in rows}
    return {"table": table, "genome_dir": genome_dir, "taxdump": root / "taxdump",
            "lineage": lineage}


def run(inputs: dict, outdir: Path, *lengths: str, **options: object) -> dict:
    settings = FragmentOptions(lengths=[LengthSpec.parse(n) for n in lengths],
                               per_superkingdom=120, per_genus=120, seed=5)
    return make_fragments(GenomeTable(inputs["table"], inputs["genome_dir"]), inputs["taxdump"],
                          outdir, replace(settings, **options))


@pytest.fixture(scope="module")
def similar(inputs: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("similar")
    return out, run(inputs, out, "300", "150:200", split="similar")


def all_records(outdir: Path) -> dict[str, tuple[str, str]]:
    out = {}
    for split in ("train", "val", "test"):
        with open(outdir / f"{split}.fa") as fh:
            lines = fh.read().split("\n")
        for header, seq in zip(lines[0::2], lines[1::2], strict=False):
            rid, where = header[1:].split(" ", 1)
            out[rid] = (where, seq)
    return out


def test_fragments_have_the_requested_lengths(similar: tuple[Path, dict]) -> None:
    outdir, _ = similar
    lengths = [len(seq) for _, seq in all_records(outdir).values()]
    assert lengths
    assert all(n == 300 or 150 <= n <= 200 for n in lengths)
    assert sum(n == 300 for n in lengths) > 0
    assert sum(n != 300 for n in lengths) > 0
    assert len({n for n in lengths if n != 300}) > 5  # a range really draws varied lengths


def test_fragments_come_from_the_genome_at_their_coordinates(
    similar: tuple[Path, dict], inputs: dict
) -> None:
    outdir, _ = similar
    genomes = {g: {r.id: r.seq for r in read_records(inputs["genome_dir"] / f"{g}.fa.gz")}
               for g in GENOMES}
    strands = set()
    for rid, (where, seq) in all_records(outdir).items():
        genome = rid.rsplit("_", 1)[0]
        if genome == SYNTHETIC:
            continue
        record, span = where.rsplit(":", 1)
        coords, strand = span[:-3], span[-2]
        start, end = (int(x) for x in coords.split("-"))
        original = genomes[genome][record][start - 1 : end]
        assert (original if strand == "+" else reverse_complement(original)) == seq
        strands.add(strand)
    assert strands == {"+", "-"}


def test_labels_follow_the_taxdump_lineage(similar: tuple[Path, dict], inputs: dict) -> None:
    outdir, _ = similar
    labels = {}
    for split in ("train", "val", "test"):
        labels.update(read_labels(outdir / f"{split}.labels.tsv"))
    assert set(labels) == set(all_records(outdir))
    with open(outdir / "train.labels.tsv") as fh:
        genome_of = {r["read_id"]: r["genome_id"] for r in csv.DictReader(fh, delimiter="\t")}
    for rid, lab in labels.items():
        genome = rid.rsplit("_", 1)[0]
        assert lab == inputs["lineage"][genome]
        if rid in genome_of:
            assert genome_of[rid] == genome
    # Spot checks against NCBI: Shewanella (Proteobacteria, Bacteria); lambda has no phylum
    # in the 2013 dump (the curated column's Uroviricota must not leak in).
    assert inputs["lineage"]["Shewanella_baltica_OS185_500kb"] == {
        "superkingdom": 2, "phylum": 1224, "genus": 22}
    assert inputs["lineage"]["Lambda_phage"]["phylum"] == 0
    assert inputs["lineage"]["Scerevisiae_chrI"]["superkingdom"] == 2759


def test_ambiguous_fragments_are_skipped_and_counted(similar: tuple[Path, dict]) -> None:
    outdir, summary = similar
    assert summary["skipped_ambiguous_by_genome"].get(SYNTHETIC, 0) > 10
    assert json.loads((outdir / "fragments.json").read_text())["skipped_ambiguous"] >= 10
    kept = [seq for rid, (_, seq) in all_records(outdir).items() if rid.startswith(SYNTHETIC)]
    assert kept, "replacement draws should still find N-free windows"
    assert all(ambiguous_fraction(seq) <= 0.0008 for seq in kept)


def test_balanced_per_superkingdom_and_split_sizes(similar: tuple[Path, dict]) -> None:
    _, summary = similar
    assert summary["per_superkingdom"]["2759"] == 120  # one genome fills its superkingdom
    assert summary["per_superkingdom"]["10239"] == 120
    counts = summary["fragments"]
    assert counts["test"] > 0 and counts["val"] > 0 and counts["train"] > counts["test"]


def test_same_seed_same_fragments(similar: tuple[Path, dict], inputs: dict,
                                  tmp_path: Path) -> None:
    outdir, _ = similar
    run(inputs, tmp_path, "300", "150:200", split="similar")
    for name in ("train.fa", "test.labels.tsv"):
        assert (tmp_path / name).read_text() == (outdir / name).read_text()


def test_nonsimilar_split_holds_out_whole_genera(inputs: dict, tmp_path: Path) -> None:
    summary = run(inputs, tmp_path, "200", split="nonsimilar", test_fraction=0.3)
    genera = {s: {lab["genus"] for lab in read_labels(tmp_path / f"{s}.labels.tsv").values()}
              for s in ("train", "val", "test")}
    assert genera["test"], "some genus must be held out"
    assert not genera["test"] & genera["train"]
    assert not genera["test"] & genera["val"]
    with open(tmp_path / "heldout_genera.tsv") as fh:
        listed = {int(r["genus_taxid"]) for r in csv.DictReader(fh, delimiter="\t")}
    assert listed == genera["test"]
    assert summary["heldout_genera_file"] == str(tmp_path / "heldout_genera.tsv")


def test_holdout_genus_adds_a_genus_the_split_would_keep(inputs: dict, tmp_path: Path) -> None:
    # Mycoplasma is its phylum's only genus here, so the automatic choice never holds it out
    mycoplasma = inputs["lineage"]["Mycoplasma_genitalium_G37"]["genus"]
    run(inputs, tmp_path / "auto", "200", split="nonsimilar")
    auto = read_labels(tmp_path / "auto" / "test.labels.tsv").values()
    assert mycoplasma not in {lab["genus"] for lab in auto}
    run(inputs, tmp_path / "forced", "200", split="nonsimilar", holdout_genera=[mycoplasma])
    splits = {s: {lab["genus"] for lab in read_labels(tmp_path / "forced" / f"{s}.labels.tsv")
                  .values()} for s in ("train", "val", "test")}
    assert mycoplasma in splits["test"]
    assert mycoplasma not in splits["train"] | splits["val"]
    with pytest.raises(FragmentError, match="--holdout-genus: no sampled genome in genus"):
        run(inputs, tmp_path / "bad", "200", split="nonsimilar",
            holdout_genera=[1386])  # Bacillus: not among these genomes


def test_allocate_spreads_evenly_within_capacities() -> None:
    assert allocate(10, [100, 100]) == [5, 5]
    assert allocate(10, [2, 100, 100]) == [2, 4, 4]
    assert allocate(10, [1, 1]) == [1, 1]
    assert allocate(7, [0, 10]) == [0, 7]


def test_length_spec_parsing() -> None:
    assert LengthSpec.parse("1500") == LengthSpec(1500, 1500)
    assert LengthSpec.parse("150:300") == LengthSpec(150, 300)
    with pytest.raises(ValueError, match="bad fragment length '300:150'"):
        LengthSpec.parse("300:150")
    with pytest.raises(ValueError, match="expected N or MIN:MAX"):
        LengthSpec.parse("long")


# --- one reference FASTA + seq2taxid, split by genus (the pipeline's training entry) -------------

REFERENCE = ReferenceFasta(TEST_ASSETS / "reference.fasta.gz", TEST_ASSETS / "seq2taxid.tsv")
GENUS_SPLIT = FragmentOptions(lengths=[LengthSpec(150, 300), LengthSpec(1500, 1500)],
                              length_weights=[3, 1], per_superkingdom=None, per_genus=100,
                              max_coverage=8, split="genus", seed=3)
BACTERIA, ARCHAEA, EUKARYOTA, VIRUSES = 2, 2157, 2759, 10239
REFERENCE_IDS = [line.split("\t")[0] for line in REFERENCE.mapping.read_text().splitlines()]


@pytest.fixture(scope="module")
def by_genus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("by_genus")
    return out, make_fragments(REFERENCE, TEST_ASSETS / "taxdump", out, GENUS_SPLIT)


def reference_subset(tmp_path: Path, keep: set[str], mapping: dict[str, int] | None = None,
                     extra: tuple[str, str] | None = None) -> ReferenceFasta:
    """Some sequences of the bundled reference (plus an `extra` one), with their mapping."""
    taxid_of = {line.split("\t")[0]: int(line.split("\t")[1])
                for line in REFERENCE.mapping.read_text().splitlines()}
    taxid_of.update(mapping or {})
    records = [(r.id, r.seq) for r in read_records(REFERENCE.fasta) if r.id in keep]
    if extra:
        records.append(extra)
    fasta, tsv = tmp_path / "ref.fa", tmp_path / "seq2taxid.tsv"
    fasta.write_text("".join(f">{rid}\n{seq}\n" for rid, seq in records))
    tsv.write_text("".join(f"{rid}\t{taxid_of[rid]}\n" for rid, _ in records if rid in taxid_of))
    return ReferenceFasta(fasta, tsv)


def test_genus_split_holds_out_whole_genera_per_superkingdom(by_genus: tuple[Path, dict]) -> None:
    outdir, summary = by_genus
    labels = {s: read_labels(outdir / f"{s}.labels.tsv") for s in ("train", "val", "test")}
    genera = {s: {lab["genus"] for lab in v.values()} for s, v in labels.items()}
    kingdoms = {s: {lab["superkingdom"] for lab in v.values()} for s, v in labels.items()}
    # 7 genera: 3 bacterial (one each for train, val, test), the other superkingdoms have
    # fewer than 3 and train only
    assert len(genera["val"]) == len(genera["test"]) == 1
    assert not genera["train"] & (genera["val"] | genera["test"])
    assert not genera["val"] & genera["test"]
    assert kingdoms["val"] == kingdoms["test"] == {BACTERIA}
    assert kingdoms["train"] == {BACTERIA, ARCHAEA, EUKARYOTA, VIRUSES}
    assert summary["superkingdoms_not_held_out"] == ["Archaea", "Eukaryota", "Viruses"]
    assert summary["genera"] == {"train": 5, "val": 1, "test": 1}
    # evenly per genus: each of the 7 genera gives its 100 fragments, 3/4 of them short
    per_genus = Counter(lab["genus"] for v in labels.values() for lab in v.values())
    assert sorted(per_genus.values()) == [100] * 7
    with open(outdir / "genera.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert {int(r["genus_taxid"]): r["split"] for r in rows} == {
        g: s for s, members in genera.items() for g in members}
    assert {r["genus"] for r in rows} >= {"Escherichia", "Saccharomyces", "Methanobrevibacter"}
    # the fragments' lineages, for fine-tuning and evaluation without the full taxdump
    subset = Taxonomy.load(outdir / "taxdump")
    assert {subset.name(int(r["genus_taxid"])) for r in rows} == {r["genus"] for r in rows}
    assert subset.ranks(511145) == {"superkingdom": BACTERIA, "phylum": 1224, "genus": 561}


def test_reference_fragments_come_from_their_sequence(by_genus: tuple[Path, dict]) -> None:
    outdir, _ = by_genus
    reference = {r.id: r.seq for r in read_records(REFERENCE.fasta)}
    taxid_of = {line.split("\t")[0]: line.split("\t")[1]
                for line in REFERENCE.mapping.read_text().splitlines()}
    lengths = []
    for rid, (where, seq) in all_records(outdir).items():
        record, span = where.rsplit(":", 1)
        coords, strand = span[:-3], span[-2]
        start, end = (int(x) for x in coords.split("-"))
        original = reference[record][start - 1 : end]
        assert (original if strand == "+" else reverse_complement(original)) == seq
        assert rid.startswith(f"taxid{taxid_of[record]}_")  # a genome is a taxid's sequences
        lengths.append(len(seq))
    assert sum(n == 1500 for n in lengths) == 7 * 25
    assert all(150 <= n <= 300 for n in lengths if n != 1500)


def test_train_genera_are_never_held_out(tmp_path: Path) -> None:
    """--train-genus: Escherichia, held out for testing with seed 1, stays in training; the two
    other bacterial genera then give validation and test."""
    options = replace(GENUS_SPLIT, per_genus=20, seed=1)
    held = {}
    for name, train_genera in (("free", []), ("kept", [561])):
        make_fragments(REFERENCE, TEST_ASSETS / "taxdump", tmp_path / name,
                       replace(options, train_genera=train_genera))
        held[name] = {split: {lab["genus"] for lab in
                              read_labels(tmp_path / name / f"{split}.labels.tsv").values()}
                      for split in ("train", "val", "test")}
    assert 561 in held["free"]["test"]
    assert 561 in held["kept"]["train"]
    assert held["kept"]["val"] | held["kept"]["test"] == {1279, 1763}
    with pytest.raises(FragmentError, match=r"--holdout-genus and --train-genus both name .*561"):
        make_fragments(REFERENCE, TEST_ASSETS / "taxdump", tmp_path / "both",
                       replace(options, train_genera=[561], holdout_genera=[561]))


def test_too_few_genera_to_split_is_an_error(tmp_path: Path) -> None:
    two = reference_subset(tmp_path, {"Ecoli_K12_MG1655__K-12-MG1655", "NC_002745.2"})
    with pytest.raises(FragmentError, match=r"too few genera to split by genus: a superkingdom "
                       r"needs at least 3 genera .* the reference has Bacteria 2$"):
        make_fragments(two, TEST_ASSETS / "taxdump", tmp_path / "out", GENUS_SPLIT)
    assert not (tmp_path / "out").exists(), "nothing is written before the checks pass"


def test_taxids_without_a_genus_are_an_error_or_dropped(tmp_path: Path) -> None:
    # the lambda phage mapped to "Bacteria": a taxid whose lineage has no genus
    ref = reference_subset(tmp_path, set(REFERENCE_IDS), mapping={"NC_001416.1": BACTERIA})
    with pytest.raises(FragmentError, match=r"1 taxid\(s\) have no genus .*: 2 Bacteria "
                       r"\(sequence 'NC_001416.1', record 6 of ref.fa\)"):
        make_fragments(ref, TEST_ASSETS / "taxdump", tmp_path / "out", GENUS_SPLIT)
    assert not (tmp_path / "out").exists()
    summary = make_fragments(ref, TEST_ASSETS / "taxdump", tmp_path / "out",
                             replace(GENUS_SPLIT, drop_without_genus=True))
    assert summary["taxa_without_genus_dropped"] == 1
    assert sum(summary["fragments"].values()) == 6 * 100


def test_a_genus_shorter_than_a_fragment_is_an_error(tmp_path: Path) -> None:
    ids = set(REFERENCE_IDS) - {"NC_001416.1"}
    ref = reference_subset(tmp_path, ids, mapping={"lambda_piece": 10710},
                           extra=("lambda_piece", "ACGT" * 30))
    with pytest.raises(FragmentError, match=r"1 genus/genera have no sequence as long as the "
                       r"shortest fragment \(150 nt\): Lambdalikevirus \(longest 120 nt: "
                       r"sequence 'lambda_piece', record 7 of ref.fa\)"):
        make_fragments(ref, TEST_ASSETS / "taxdump", tmp_path / "out", GENUS_SPLIT)


def test_unmapped_and_unknown_taxids_name_the_sequence(tmp_path: Path) -> None:
    ref = reference_subset(tmp_path, set(REFERENCE_IDS), extra=("stray", "ACGT" * 100))
    with pytest.raises(FragmentError, match=r"ref.fa: 1 sequence\(s\) have no taxid in "
                       r".*seq2taxid.tsv: 'stray' \(record 8\)"):
        make_fragments(ref, TEST_ASSETS / "taxdump", tmp_path / "out", GENUS_SPLIT)
    ref = reference_subset(tmp_path, set(REFERENCE_IDS), mapping={"NC_045512.2": 999999999})
    with pytest.raises(FragmentError, match=r"1 taxid\(s\) are not in the taxdump .*: "
                       r"999999999 \(sequence 'NC_045512.2', record 7 of ref.fa\)"):
        make_fragments(ref, TEST_ASSETS / "taxdump", tmp_path / "out", GENUS_SPLIT)
