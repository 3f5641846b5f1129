"""Taxonomy on the real 2013 NCBI dump and on a hand-written excerpt of the 2025 rank layout."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import DUMP_2025, SHARED_DATA, TAXDUMP_2013, full_taxonomy

from hytax.cli import main
from hytax.errors import HytaxError
from hytax.taxonomy import (
    COMPACT_NAME,
    RANKS,
    Taxonomy,
    TaxonomyError,
    lineage_closure,
    read_model_taxids,
    read_taxid_file,
    write_compact_taxonomy,
    write_subset,
)

SHARED = SHARED_DATA
REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "assets" / "models" / "hytax-mini"


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


# --- the compact taxonomy ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compact_2013(tax: Taxonomy, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The compact taxonomy of the shared genomes' taxa and the bundled model's classes, written
    from the already loaded full 2013 dump (what `hytax taxonomy` does after loading it)."""
    wanted = {**read_taxid_file(SHARED / "seq2taxid.tsv"), **read_model_taxids(MODEL)}
    path = tmp_path_factory.mktemp("compact") / COMPACT_NAME
    tax.write_compact(lineage_closure(tax, wanted), path)
    return wanted, path


def test_compact_holds_the_full_dumps_lineages(tax: Taxonomy, compact_2013) -> None:
    wanted, path = compact_2013
    compact = Taxonomy.load(path)
    expected = {node for t in wanted if t for node in tax.lineage(t)}
    assert len(compact) == len(expected) < len(tax) // 100
    for node in expected:
        assert node in compact
        assert compact.parent(node) == tax.parent(node)
        assert compact.rank(node) == tax.rank(node)
        assert compact.name(node) == tax.name(node)
    for taxid in wanted:
        assert compact.lineage(taxid) == tax.lineage(taxid)
        assert compact.ranks(taxid) == tax.ranks(taxid)
    outside = next(t for t in range(2, 100_000) if t in tax and tax.resolve(t) not in expected)
    with pytest.raises(TaxonomyError, match=f"{outside} is not in the taxonomy .*compact"):
        compact.lineage(outside)


def test_compact_resolves_merged_ids_into_its_taxa(tax: Taxonomy, compact_2013) -> None:
    _, path = compact_2013
    compact = Taxonomy.load(path)
    with gzip.open(TAXDUMP_2013 / "merged.dmp.gz", "rt") as fh:
        merged = [int(line.split("\t|")[0]) for line in fh]
    kept = 0
    for old in merged:
        if tax.resolve(old) in compact:
            assert compact.resolve(old) == tax.resolve(old)
            kept += 1
        else:
            assert old not in compact
    assert kept > 50


def test_compact_forms_gz_folder_and_staged_name(tmp_path: Path) -> None:
    full = Taxonomy.load(DUMP_2025)
    ebola, ecoli = full.taxid_of("Orthoebolavirus zairense"), full.taxid_of("Escherichia coli")
    keep = lineage_closure(full, {ebola: "test", ecoli: "test"})
    folder = tmp_path / "folder"
    full.write_compact(keep, folder / f"{COMPACT_NAME}.gz")
    staged = tmp_path / "taxonomy"  # how a Nextflow task stages it: no suffix, still gzipped
    staged.write_bytes((folder / f"{COMPACT_NAME}.gz").read_bytes())
    for form in (folder, folder / f"{COMPACT_NAME}.gz", staged):
        compact = Taxonomy.load(form)
        assert len(compact) == len(keep)
        for taxid in (ebola, ecoli):
            assert compact.lineage(taxid) == full.lineage(taxid)
            assert compact.ranks(taxid, RANKS) == full.ranks(taxid, RANKS)
        # the 2025 ranks fill hytax's superkingdom slot from the compact file as well
        assert compact.rank(compact.at_rank(ebola, "superkingdom")) == "acellular root"
        assert compact.rank(compact.at_rank(ecoli, "superkingdom")) == "domain"
        assert compact.resolve(12) == ecoli  # merged.dmp: 12 -> 562
        assert compact.taxid_of("Negarnaviricota") == full.taxid_of("Negarnaviricota")
        assert "Metazoa" not in {compact.name(t) for t in keep}
    # the same taxa give the same bytes (no time stamp in the gzip header)
    full.write_compact(keep, tmp_path / "again.gz")
    assert (tmp_path / "again.gz").read_bytes() == staged.read_bytes()


def test_folder_with_a_complete_dump_reads_the_dump(tmp_path: Path) -> None:
    dump = _copy_dump(tmp_path)
    full = Taxonomy.load(dump)
    full.write_compact(lineage_closure(full, {562: "test"}), dump / COMPACT_NAME)
    assert len(Taxonomy.load(dump)) == len(full) > len(Taxonomy.load(dump / COMPACT_NAME))


def _model_config(folder: Path, classes: dict[str, list[tuple[str, int]]]) -> Path:
    folder.mkdir()
    config = {"classes": {rank: [{"name": n, "taxid": t, "parent": 0} for n, t in members]
                          for rank, members in classes.items()}}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_hytax_taxonomy_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    full = Taxonomy.load(DUMP_2025)
    ebola = full.taxid_of("Orthoebolavirus zairense")
    # an MMseqs2 <db>_mapping (key, taxid) and a seq2taxid TSV naming E. coli by its old id 12
    mapping = tmp_path / "ref_mapping"
    mapping.write_text(f"0\t{ebola}\n1\t{ebola}\n")
    seq2taxid = tmp_path / "seq2taxid.tsv.gz"
    with gzip.open(seq2taxid, "wt") as fh:
        fh.write("NC_000913.3\t12\nunplaced\t0\n")
    model = _model_config(tmp_path / "model", {"superkingdom": [("Bacteria", 2), ("unknown", 0)],
                                                "genus": [("Escherichia", 561)]})
    out = tmp_path / "out" / COMPACT_NAME
    argv = ["taxonomy", "--taxdump", str(DUMP_2025), "--taxids", str(mapping),
            "--taxids", str(seq2taxid), "--model", str(model), "--output", str(out)]
    assert main(argv) == 0
    assert f"written to {out}" in capsys.readouterr().err
    compact = Taxonomy.load(out)
    expected = {n for t in (ebola, 562, 2, 561) for n in full.lineage(t)}
    assert len(compact) == len(expected)
    assert compact.lineage(12) == full.lineage(562)
    assert compact.name(compact.at_rank(ebola, "superkingdom")) == "Viruses"


def test_hytax_taxonomy_unknown_taxids_name_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / COMPACT_NAME)
    mapping = tmp_path / "ref_mapping"
    mapping.write_text("0\t562\n\n1\t999999\n2\t999999\n")
    assert main(["taxonomy", "--taxdump", str(DUMP_2025), "--taxids", str(mapping),
                 "--output", out]) == 2
    err = capsys.readouterr().err
    assert "ref_mapping: line 3: taxid 999999 is in neither" in err
    assert "Traceback" not in err
    mapping.write_text("seqA\tE.coli\n")
    with pytest.raises(TaxonomyError, match=r"ref_mapping: line 1: taxid 'E.coli'"):
        write_compact_taxonomy(DUMP_2025, [mapping], [], out)
    model = _model_config(tmp_path / "model", {"genus": [("Escherichia", 561), ("Nova", 4242)]})
    with pytest.raises(TaxonomyError, match=r"config\.json: genus class 'Nova': taxid 4242"):
        write_compact_taxonomy(DUMP_2025, [], [model], out)
    (model / "config.json").write_text('{"classes": {"genus": [{"name": "x"}]}}')
    with pytest.raises(TaxonomyError, match=r"config\.json: no readable 'classes'"):
        write_compact_taxonomy(DUMP_2025, [], [model], out)
    assert not Path(out).exists()


def test_damaged_compact_files_name_the_line(tmp_path: Path) -> None:
    full = Taxonomy.load(DUMP_2025)
    good = tmp_path / "good.tsv"
    full.write_compact(lineage_closure(full, {562: "test"}), good)
    lines = good.read_text().splitlines(keepends=True)
    n_taxa = len(lineage_closure(full, {562: "test"}))

    def variant(name: str, edit) -> Path:
        path = tmp_path / name
        path.write_text("".join(edit(list(lines))))
        return path

    cases = [
        (variant("truncated", lambda ls: ls[:-1]), r"truncated: .*truncated or edited"),
        (variant("v2", lambda ls: [ls[0].replace("\t1\t", "\t2\t", 1), *ls[1:]]),
         r"v2: line 1: .*format version 2"),
        (variant("badint", lambda ls: [*ls[:4], "561\tx\tgenus\tEscherichia\t\n", *ls[5:]]),
         r"badint: line 5: parent taxid 'x' is not an integer"),
        (variant("fields", lambda ls: [*ls[:3], "2\t131567\n", *ls[4:]]),
         r"fields: line 4: expected 5 tab-separated fields"),
        # the root row gone (and counted out): every other row loses its top ancestor
        (variant("noroot", lambda ls: [ls[0].replace(f"taxa={n_taxa}", f"taxa={n_taxa - 1}"),
                                       ls[1], *ls[3:]]), r"noroot: no root node"),
    ]
    for path, message in cases:
        with pytest.raises(TaxonomyError, match=message):
            Taxonomy.load(path)
    bad = tmp_path / "notes.txt"
    bad.write_text("taxid\tparent\n")
    with pytest.raises(TaxonomyError, match="nor an MMseqs2 database"):
        Taxonomy.load(bad)


_MODULE_WORKFLOW = """
include { HYTAX_TAXONOMY } from '%s/modules/local/hytax_taxonomy'
workflow {
    HYTAX_TAXONOMY(
        channel.value([[id: 'taxdump', prefix: null], file(params.taxdump)]),
        channel.fromPath(params.taxids.tokenize(',')).collect(),
        file(params.model)
    )
}
"""


@pytest.mark.pipeline
def test_nextflow_module_writes_the_compact_taxonomy(tmp_path: Path) -> None:
    """HYTAX_TAXONOMY on the bundled test reference: two mapping files of the same name (one
    MMseqs2-style) and the bundled model give what the library writes here; -stub gives a
    compact file that loads."""
    from test_pipeline import BIN, NEXTFLOW, TEST_DATA, _skip_without_tools

    _skip_without_tools()
    second = tmp_path / "second" / "seq2taxid.tsv"
    second.parent.mkdir()
    second.write_text("0\t10710\n")  # lambda phage, not in the first mapping's lineages
    taxids = [TEST_DATA / "seq2taxid.tsv", second]
    expected = tmp_path / COMPACT_NAME
    write_compact_taxonomy(TEST_DATA / "taxdump", taxids, [MODEL], expected)
    script = tmp_path / "main.nf"
    script.write_text(_MODULE_WORKFLOW % REPO)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "NXF_OFFLINE": "true", "NXF_ANSI_LOG": "false"}
    for mode, extra in (("real", []), ("stub", ["-stub"])):
        launch = tmp_path / mode
        launch.mkdir()
        proc = subprocess.run(
            [str(NEXTFLOW), "run", str(script), "-ansi-log", "false", *extra,
             "--taxdump", str(TEST_DATA / "taxdump"), "--taxids", ",".join(map(str, taxids)),
             "--model", str(MODEL)],
            cwd=launch, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        (written,) = launch.glob(f"work/*/*/{COMPACT_NAME}")
        (versions,) = launch.glob("work/*/*/versions.yml")
        assert "HYTAX_TAXONOMY" in versions.read_text()
        if mode == "real":
            assert written.read_bytes() == expected.read_bytes()
            assert 10710 in Taxonomy.load(written)
        else:
            assert len(Taxonomy.load(written)) == 1


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


def test_a_database_named_by_another_taxonomy_is_refused(tmp_path: Path) -> None:
    """A seqTaxDB keeps its taxonomy's names beside its mapping; GTDB-built ones use taxids
    that NCBI uses for other taxa, so the names are what tells them apart."""
    from hytax.taxonomy import check_database_names

    dump = Path(__file__).resolve().parents[1] / "assets" / "test" / "taxdump"
    taxonomy = Taxonomy.load(dump)
    taxids = [t for t in (511145, 158879, 83332, 10710, 2697049) if t in taxonomy]
    assert len(taxids) >= 4
    mapping = tmp_path / "ref_mapping"
    mapping.write_text("".join(f"{key}\t{taxid}\n" for key, taxid in enumerate(taxids)))
    names = tmp_path / "ref_names.dmp"
    names.write_text((dump / "names.dmp").read_text())
    check_database_names(taxonomy, mapping)  # built on this taxdump: accepted

    # the same taxids named as a GTDB-based database names its own taxa
    names.write_text("".join(f"{t}\t|\ts__Genus{i} species\t|\t\t|\tscientific name\t|\n"
                             for i, t in enumerate(taxids)))
    with pytest.raises(HytaxError, match=r"ref_mapping: \d+ of \d+ taxa .* another taxonomy"):
        check_database_names(taxonomy, mapping)
    # through the command that every run's taxonomy step is
    with pytest.raises(HytaxError, match="another taxonomy"):
        write_compact_taxonomy(dump, [mapping], [], tmp_path / "t.hytax.tsv")
