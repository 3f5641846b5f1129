"""Taxonomy on the real 2013 NCBI dump and on a hand-written excerpt of the 2025 rank layout."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import DUMP_2025, SHARED_DATA, TAXDUMP_2013, full_taxonomy

from hytax.errors import HytaxError
from hytax.taxonomy import Taxonomy, TaxonomyError, write_subset

SHARED = SHARED_DATA


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return full_taxonomy()


@pytest.fixture(scope="module")
def tax2025() -> Taxonomy:
    return Taxonomy.load(DUMP_2025)


def _genomes() -> list[dict[str, str]]:
    lines = (SHARED / "genomes.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


# --- the real 2013 dump --------------------------------------------------------------------------


def test_full_dump_loads_completely(tax: Taxonomy) -> None:
    with gzip.open(TAXDUMP_2013 / "nodes.dmp.gz", "rt") as fh:
        n_nodes = sum(1 for _ in fh)
    assert len(tax) == n_nodes


def test_ecoli_lineage(tax: Taxonomy) -> None:
    ecoli_k12 = 511145
    names = [tax.name(t) for t in tax.lineage(ecoli_k12)]
    assert names[0] == "root"
    assert names[-1] == "Escherichia coli str. K-12 substr. MG1655"
    assert "Proteobacteria" in names and "Escherichia" in names
    assert tax.lineage(ecoli_k12)[-1] == ecoli_k12
    assert tax.rank(tax.taxid_of("Proteobacteria")) == "phylum"
    assert tax.parent(tax.taxid_of("Escherichia coli")) == tax.taxid_of("Escherichia")


def test_ranks_agree_with_genomes_table(tax: Taxonomy) -> None:
    checked = 0
    for genome in _genomes():
        if genome["phylum_source"] != "ncbi_2013_dump" or "NA" in (genome["genus"],):
            continue
        got = tax.ranks(int(genome["taxid"]))
        assert tax.name(got["superkingdom"]) == genome["superkingdom"], genome["genome_id"]
        assert tax.name(got["phylum"]) == genome["phylum"], genome["genome_id"]
        assert tax.name(got["genus"]) == genome["genus"], genome["genome_id"]
        assert tax.at_rank(int(genome["taxid"]), "phylum") == got["phylum"]
        checked += 1
    assert checked > 40


def test_viruses_have_no_phylum_in_2013(tax: Taxonomy) -> None:
    lambda_phage = 10710
    ranks = tax.ranks(lambda_phage)
    assert tax.name(ranks["superkingdom"]) == "Viruses"
    assert ranks["phylum"] == 0
    assert tax.rank(ranks["genus"]) == "genus"


def test_merged_taxids_resolve(tax: Taxonomy) -> None:
    with gzip.open(TAXDUMP_2013 / "merged.dmp.gz", "rt") as fh:
        old, new = (int(f) for f in fh.readline().split("\t|")[:2])
    assert tax.resolve(old) == new
    assert tax.lineage(old)[-1] == new
    assert tax.name(old) == tax.name(new)


def test_unknown_taxid_and_names(tax: Taxonomy) -> None:
    with pytest.raises(TaxonomyError, match="999999999"):
        tax.resolve(999999999)
    with pytest.raises(TaxonomyError, match="999999999"):
        tax.lineage(999999999)
    with pytest.raises(TaxonomyError, match="ambiguous"):
        tax.taxid_of("Bacillus")  # a bacterial genus and a stick-insect genus
    assert tax.rank(tax.taxid_of("Bacillus <bacterium>")) == "genus"
    with pytest.raises(TaxonomyError, match="no taxon named"):
        tax.taxid_of("Nonexistentia imaginaria")


def test_no_taxon_zero(tax: Taxonomy) -> None:
    assert tax.resolve(0) == 0
    assert tax.lineage(0) == []
    assert tax.ranks(0) == {"superkingdom": 0, "phylum": 0, "genus": 0}
    assert tax.name(0) == "unclassified"


def test_subset_of_real_dump_keeps_lineages(tax: Taxonomy, tmp_path: Path) -> None:
    # write_subset = load + closure + write_dump; the load is tested above, so the real dump
    # goes through closure/write_dump directly instead of a second 8 s load
    wanted = [511145, 10710, 93062]
    tax.write_dump(tax.closure(wanted), tmp_path)
    assert (tmp_path / "nodes.dmp").stat().st_size < 20_000
    sub = Taxonomy.load(tmp_path)
    assert len(sub) == len({n for t in wanted for n in tax.lineage(t)})
    for t in wanted:
        assert sub.lineage(t) == tax.lineage(t)
        assert [sub.name(n) for n in sub.lineage(t)] == [tax.name(n) for n in tax.lineage(t)]
        assert [sub.rank(n) for n in sub.lineage(t)] == [tax.rank(n) for n in tax.lineage(t)]
    with gzip.open(TAXDUMP_2013 / "merged.dmp.gz", "rt") as fh:
        merged = [tuple(int(f) for f in line.split("\t|")[:2]) for line in fh]
    kept = {old: new for old, new in merged if new in sub}
    assert kept and all(sub.resolve(old) == new for old, new in kept.items())


def test_write_subset_feeds_mmseqs(tmp_path: Path) -> None:
    full = Taxonomy.load(DUMP_2025)
    taxids = tmp_path / "taxids.txt"
    taxids.write_text("186538\n\n# the E. coli species, by an old merged id\n12\n")
    subset_dir = tmp_path / "subset"
    write_subset(DUMP_2025, taxids, subset_dir)
    sub = Taxonomy.load(subset_dir)
    assert {*full.lineage(186538), *full.lineage(562)} == set(sub._parents)
    assert "Metazoa" not in {sub.name(t) for t in sub._parents}
    assert sub.resolve(12) == 562
    bad = tmp_path / "bad.txt"
    bad.write_text("562\nE. coli\n")
    with pytest.raises(TaxonomyError, match=r"bad\.txt: line 2"):
        write_subset(DUMP_2025, bad, tmp_path / "x")

    if shutil.which("mmseqs") is None:
        pytest.skip("mmseqs not installed")
    fasta = tmp_path / "one.fa"
    fasta.write_text(">seqA\n" + "ACGTTGCAAGGCTTAACCGGTA" * 20 + "\n")
    mapping = tmp_path / "map.tsv"
    mapping.write_text("seqA\t186538\n")
    db = tmp_path / "db" / "ref"
    db.parent.mkdir()
    run = [["mmseqs", "createdb", str(fasta), str(db), "-v", "1"],
           ["mmseqs", "createtaxdb", str(db), str(tmp_path / "tmp"), "--ncbi-tax-dump",
            str(subset_dir), "--tax-mapping-file", str(mapping), "--tax-db-mode", "0",
            "--threads", "1", "-v", "1"]]
    for cmd in run:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    # the seqTaxDB prefix written by createtaxdb loads as well
    from_db = Taxonomy.load(db)
    assert from_db.lineage(186538) == full.lineage(186538)
    assert from_db.at_rank(186538, "superkingdom") == 10239


# --- the 2025 rank layout ------------------------------------------------------------------------


def test_2025_domain_and_acellular_root_fill_superkingdom(tax2025: Taxonomy) -> None:
    ebola = tax2025.taxid_of("Orthoebolavirus zairense")
    viruses = tax2025.taxid_of("Viruses")
    assert tax2025.rank(viruses) == "acellular root"
    assert tax2025.at_rank(ebola, "superkingdom") == viruses
    assert tax2025.at_rank(ebola, "superkingdom") != tax2025.taxid_of("Riboviria")  # the realm
    assert tax2025.ranks(ebola) == {
        "superkingdom": viruses,
        "phylum": tax2025.taxid_of("Negarnaviricota"),
        "genus": tax2025.taxid_of("Orthoebolavirus"),
    }
    ecoli = tax2025.taxid_of("Escherichia coli")
    assert tax2025.rank(tax2025.at_rank(ecoli, "superkingdom")) == "domain"
    assert tax2025.name(tax2025.at_rank(ecoli, "superkingdom")) == "Bacteria"
    assert tax2025.at_rank(tax2025.taxid_of("Metazoa"), "superkingdom") == tax2025.taxid_of(
        "Eukaryota")
    # a rank below the one asked for never answers for it
    assert tax2025.at_rank(tax2025.taxid_of("Viruses"), "genus") == 0


def test_2025_scientific_names_only(tax2025: Taxonomy) -> None:
    assert tax2025.name(1224) == "Pseudomonadota"
    with pytest.raises(TaxonomyError):
        tax2025.taxid_of("Proteobacteria")  # only a synonym in this dump
    assert tax2025.resolve(12) == 562


def test_gzipped_dump_loads(tmp_path: Path) -> None:
    for name in ("nodes.dmp", "names.dmp", "merged.dmp"):
        with gzip.open(tmp_path / f"{name}.gz", "wb") as out:
            out.write((DUMP_2025 / name).read_bytes())
    assert Taxonomy.load(tmp_path).lineage(562) == Taxonomy.load(DUMP_2025).lineage(562)


# --- bad input -----------------------------------------------------------------------------------


def _copy_dump(tmp_path: Path) -> Path:
    dump = tmp_path / "dump"
    shutil.copytree(DUMP_2025, dump)
    return dump


def test_malformed_nodes_line_names_file_and_line(tmp_path: Path) -> None:
    dump = _copy_dump(tmp_path)
    lines = (dump / "nodes.dmp").read_text().splitlines(keepends=True)
    lines[3] = "1224\t|\tnot-a-number\t|\tphylum\t|\n"
    (dump / "nodes.dmp").write_text("".join(lines))
    with pytest.raises(TaxonomyError, match=r"nodes\.dmp: line 4: .*not-a-number"):
        Taxonomy.load(dump)


def test_truncated_names_line(tmp_path: Path) -> None:
    dump = _copy_dump(tmp_path)
    with open(dump / "names.dmp", "a") as fh:
        fh.write("77\t|\tBroken\tscientific name\t|\n")
    with pytest.raises(TaxonomyError, match=r"names\.dmp: line \d+"):
        Taxonomy.load(dump)


def test_missing_parent_and_missing_files(tmp_path: Path) -> None:
    dump = _copy_dump(tmp_path)
    with open(dump / "nodes.dmp", "a") as fh:
        fh.write("5\t|\t4\t|\tgenus\t|\n")
    with pytest.raises(TaxonomyError, match="parent 4"):
        Taxonomy.load(dump)
    with pytest.raises(TaxonomyError, match="not a taxdump"):
        Taxonomy.load(tmp_path / "nowhere")
    (tmp_path / "db_taxonomy").write_bytes(b"\0")
    with pytest.raises(HytaxError, match="tax-db-mode 0"):
        Taxonomy.load(tmp_path / "db")
