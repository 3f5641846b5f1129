"""`hytax combine`: taxpasta-style wide tables of a run, per MMseqs2 tier, and Krona text.

taxpasta itself (its own venv, `make taxpasta`: it needs numpy<2 and pandas<2) checks that our
tables are what `taxpasta merge` writes; Krona's `ktImportText` (Debian `radiant`) reads the
Krona files.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import REPO, full_taxonomy
from test_reports import READS, _merged_table

from hytax.combine import CombineOptions, TaxonColumns, combine
from hytax.errors import HytaxError
from hytax.reports import write_reports

TAXPASTA = Path(os.environ.get("HYTAX_TAXPASTA", REPO / ".venv-taxpasta" / "bin" / "taxpasta"))
ALL_COLUMNS = TaxonColumns(name=True, rank=True, lineage=True, id_lineage=True,
                           rank_lineage=True)
SAMPLE_B = READS[2:5]

# the seam's standard claims table, written out by hand (not by hytax.tables)
CLAIMS_HEADER = ("read_id\tsource\tlca_taxid\tlca_rank\tidentity\taln_fraction\tevalue\tbits\t"
                 "superkingdom_taxid\tphylum_taxid\tgenus_taxid")


def _claims_row(n: int, tier: str, lca: int, rank: str, sk: int, ph: int, ge: int) -> str:
    hit = lca != 0
    return "\t".join((f"read{n}", f"mmseqs2:{tier}", str(lca), rank if hit else "no rank",
                      "0.97" if hit else "0", "0.9" if hit else "0", "1e-30" if hit else "inf",
                      "95" if hit else "0", str(sk), str(ph), str(ge)))


# (tier, sample, lca taxid, lca rank, superkingdom, phylum, genus): E. coli species, Escherichia,
# Proteobacteria, Bacteria, and reads without a hit
CLAIMS = {
    ("nt", "sampleA"): [(562, "species", 2, 1224, 561)] * 4 + [(561, "genus", 2, 1224, 561)] * 2
    + [(0, "", 0, 0, 0)] * 3,
    ("nt", "sampleB"): [(1224, "phylum", 2, 1224, 0)] * 2 + [(0, "", 0, 0, 0)] * 5,
    ("prot", "sampleA"): [(2, "superkingdom", 2, 0, 0)] * 6 + [(0, "", 0, 0, 0)] * 3,
}


def _write_claims(folder: Path) -> list[Path]:
    paths = []
    for (tier, sample), rows in CLAIMS.items():
        lines = [CLAIMS_HEADER] + [_claims_row(n, tier, *row) for n, row in enumerate(rows, 1)]
        path = folder / f"{sample}.{tier}.claims.tsv"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def taxdump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lineages of the test taxa (and E. coli), cut from the real 2013 dump."""
    tax = full_taxonomy()
    out = tmp_path_factory.mktemp("taxdump")
    tax.write_dump(tax.closure([562, *(t for r in READS for t in r[0] if t)]), out)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two samples' merged tables (sampleA: every read kind, sampleB: some) and claims."""
    folder = tmp_path_factory.mktemp("run")
    tax = full_taxonomy()
    _merged_table(folder / "sampleA.hytax.tsv", tax)
    _merged_table(folder / "sampleB.hytax.tsv", tax, SAMPLE_B)
    _write_claims(folder)
    return folder


def _merged(run: Path) -> list[Path]:
    return [run / "sampleA.hytax.tsv", run / "sampleB.hytax.tsv"]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _lowest(reads: list) -> Counter[int]:
    """Reads per lowest taxid, worked out from the test's own read list."""
    counts: Counter[int] = Counter()
    for taxids, _, _, count in reads:
        counts[next((t for t in reversed(taxids) if t), 0)] += count
    return counts


# --- the tables ------------------------------------------------------------------------------


def test_merged_wide_table(run: Path, tmp_path: Path) -> None:
    combine(_merged(run), tmp_path)
    lines = (tmp_path / "hytax_merged.tsv").read_text().splitlines()
    assert lines[0] == "taxonomy_id\tsampleA\tsampleB"
    taxids = [int(line.split("\t")[0]) for line in lines[1:]]
    assert taxids == sorted(taxids) and taxids[0] == 0  # unclassified first, as taxid 0
    expected_a, expected_b = _lowest(READS), _lowest(SAMPLE_B)
    assert set(taxids) == set(expected_a) | set(expected_b)
    for row in _rows(tmp_path / "hytax_merged.tsv"):
        taxid = int(row["taxonomy_id"])
        assert int(row["sampleA"]) == expected_a[taxid]
        assert int(row["sampleB"]) == expected_b[taxid]  # 0 where sampleB has none
    assert not list(tmp_path.glob("mmseqs2_*.tsv"))  # no claims given, no tier tables


def test_taxon_columns(run: Path, taxdump: Path, tmp_path: Path) -> None:
    combine(_merged(run), tmp_path, options=CombineOptions(ALL_COLUMNS, taxdump))
    rows = {int(r["taxonomy_id"]): r for r in _rows(tmp_path / "hytax_merged.tsv")}
    header = (tmp_path / "hytax_merged.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["taxonomy_id", "name", "rank", "lineage", "id_lineage", "rank_lineage",
                      "sampleA", "sampleB"]
    assert set(rows[0].values()) == {"0", "", "3"}  # unclassified: no name, rank or lineage
    escherichia = rows[561]
    assert escherichia["name"] == "Escherichia" and escherichia["rank"] == "genus"
    assert escherichia["lineage"] == ("cellular organisms;Bacteria;Proteobacteria;"
                                      "Gammaproteobacteria;Enterobacteriales;"
                                      "Enterobacteriaceae;Escherichia")
    assert escherichia["id_lineage"] == "131567;2;1224;1236;91347;543;561"
    assert escherichia["rank_lineage"].split(";")[-2:] == ["family", "genus"]
    # the lambda phage genus has no phylum in 2013: lineage as the taxonomy has it
    assert rows[186765]["lineage"].startswith("Viruses;")


def test_tier_tables(run: Path, tmp_path: Path) -> None:
    claims = sorted(run.glob("*.claims.tsv"))
    written = combine(_merged(run), tmp_path, claims)
    assert {p.name for p in written if p.name.startswith("mmseqs2_")} == {"mmseqs2_nt.tsv",
                                                                         "mmseqs2_prot.tsv"}
    nt = {int(r["taxonomy_id"]): r for r in _rows(tmp_path / "mmseqs2_nt.tsv")}
    assert (tmp_path / "mmseqs2_nt.tsv").read_text().startswith("taxonomy_id\tsampleA\tsampleB\n")
    # counts at the LCA as MMseqs2 gave it (species included), not at the claimed ranks
    assert nt[562]["sampleA"] == "4" and nt[0]["sampleB"] == "5"
    expected: dict[int, dict[str, int]] = {}
    for (tier, sample), rows in CLAIMS.items():
        if tier == "nt":
            for lca, *_ in rows:
                expected.setdefault(lca, {"sampleA": 0, "sampleB": 0})[sample] += 1
    assert {t: {s: int(r[s]) for s in ("sampleA", "sampleB")} for t, r in nt.items()} == expected
    prot = (tmp_path / "mmseqs2_prot.tsv").read_text().splitlines()
    assert prot == ["taxonomy_id\tsampleA", "0\t3", "2\t6"]  # sampleB had no protein tier


def test_empty_tier_table_named_by_file(run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "in" / "sample.B.nt.claims.tsv"  # a sample name with a dot
    empty.parent.mkdir()
    empty.write_text(CLAIMS_HEADER + "\n")
    combine(_merged(run), tmp_path / "out", [run / "sampleA.nt.claims.tsv", empty])
    assert (tmp_path / "out" / "mmseqs2_nt.tsv").read_text().splitlines()[:2] == [
        "taxonomy_id\tsampleA\tsample.B", "0\t3\t0"]


def test_bad_inputs(run: Path, taxdump: Path, tmp_path: Path) -> None:
    merged = _merged(run)
    kept = tmp_path / "sampleA.kept.claims.tsv"
    kept.write_text("\n".join((CLAIMS_HEADER, _claims_row(1, "nt", 561, "genus", 2, 1224, 561),
                               _claims_row(2, "nt", 0, "", 0, 0, 0).replace("mmseqs2:nt",
                                                                            "none"))) + "\n")
    with pytest.raises(HytaxError, match=r"kept\.claims\.tsv: line 3: source 'none'"):
        combine(merged, tmp_path / "out", [kept])
    mixed = tmp_path / "sampleA.nt.claims.tsv"
    mixed.write_text(kept.read_text().replace("\tnone\t", "\tmmseqs2:prot\t"))
    with pytest.raises(HytaxError, match=r"nt\.claims\.tsv: line 3: .*one table per tier"):
        combine(merged, tmp_path / "out", [mixed])
    misnamed = tmp_path / "sampleA.prot.claims.tsv"
    misnamed.write_text((run / "sampleA.nt.claims.tsv").read_text())
    with pytest.raises(HytaxError, match=r"prot\.claims\.tsv: .*'mmseqs2:nt'"):
        combine(merged, tmp_path / "out", [misnamed])
    with pytest.raises(HytaxError, match=r"sampleA\.hytax\.tsv: sample 'sampleA'.* also"):
        combine([merged[0], merged[0]], tmp_path / "out")
    odd = tmp_path / "sampleA.tsv"
    shutil.copy(merged[0], odd)
    with pytest.raises(HytaxError, match=r"sampleA\.tsv: expected a file named <sample>\.hytax"):
        combine([odd], tmp_path / "out")
    reserved = tmp_path / "rank.hytax.tsv"
    shutil.copy(merged[0], reserved)
    with pytest.raises(HytaxError, match=r"rank\.hytax\.tsv: sample name 'rank'"):
        combine([reserved], tmp_path / "out")
    with pytest.raises(HytaxError, match=r"need a taxonomy \(--taxdump\)"):
        combine(merged, tmp_path / "out", options=CombineOptions(TaxonColumns(name=True)))
    assert not (tmp_path / "out" / "hytax_merged.tsv").exists()  # nothing half-written


def test_cli(run: Path, taxdump: Path, tmp_path: Path) -> None:
    hytax = Path(sys.executable).parent / "hytax"
    out = tmp_path / "out"
    proc = subprocess.run([str(hytax), "combine", *map(str, _merged(run)), "--claims",
                           *map(str, sorted(run.glob("*.claims.tsv"))), "--taxdump", str(taxdump),
                           "--add-name", "--add-rank", "--outdir", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2 samples" in proc.stderr
    for name in ("hytax_merged.tsv", "mmseqs2_nt.tsv", "mmseqs2_prot.tsv"):
        assert (out / name).read_text().split("\n", 1)[0].startswith("taxonomy_id\tname\trank\t")
    proc = subprocess.run([str(hytax), "combine", str(tmp_path / "x.tsv"), "--outdir", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert re.search(r"^hytax combine: error: .*x\.tsv", proc.stderr, re.M)
    assert "Traceback" not in proc.stderr


# --- Krona -----------------------------------------------------------------------------------


def test_krona_files(run: Path, taxdump: Path, tmp_path: Path) -> None:
    combine(_merged(run), tmp_path)
    for sample in ("sampleA", "sampleB"):
        write_reports(run / f"{sample}.hytax.tsv", taxdump, sample, tmp_path / "reports")
        # the same Krona text as the sample's report
        assert ((tmp_path / "krona" / f"{sample}.txt").read_text()
                == (tmp_path / "reports" / f"{sample}.krona.txt").read_text())
    lines = [line.split("\t") for line in (tmp_path / "hytax.krona.txt").read_text().splitlines()]
    per_sample: Counter[str] = Counter()
    for count, sample, *_ in lines:
        per_sample[sample] += int(count)
    assert per_sample == {"sampleA": sum(r[-1] for r in READS),
                          "sampleB": sum(r[-1] for r in SAMPLE_B)}
    assert ["7", "sampleA", "Bacteria", "Proteobacteria", "Escherichia"] in lines
    assert ["3", "sampleA"] in lines  # unclassified reads: the sample's own wedge


# within one node's own elements (Krona writes them in no fixed order)
NOT_A_NODE = r"(?:(?!<node).)*?"


def test_krona_charts(run: Path, tmp_path: Path) -> None:
    """ktImportText makes one chart with a dataset per sample, and one of the whole run."""
    kt = shutil.which("ktImportText")
    if kt is None:
        pytest.skip("ktImportText (Debian package radiant) not installed: make report-tools")
    combine(_merged(run), tmp_path)
    krona = tmp_path / "krona"
    subprocess.run([kt, *(str(p) for p in sorted(krona.glob("*.txt"))), "-o",
                    str(tmp_path / "samples.html")], check=True, capture_output=True, timeout=120)
    html = (tmp_path / "samples.html").read_text()
    assert re.findall(r"<dataset>([^<]*)</dataset>", html) == ["sampleA", "sampleB"]

    def values(taxon: str) -> list[str]:
        node = re.search(rf'<node name="{taxon}">{NOT_A_NODE}<magnitude>(.*?)</magnitude>', html,
                         re.S)
        assert node is not None, taxon
        return re.findall(r"<val>(\d*)</val>", node.group(1))

    assert values("Staphylococcus") == ["3", "3"]  # in both samples
    assert values("Escherichia") == ["7"]  # sampleA only (Krona drops trailing empty values)

    subprocess.run([kt, str(tmp_path / "hytax.krona.txt"), "-o", str(tmp_path / "run.html")],
                   check=True, capture_output=True, timeout=120)
    run_html = (tmp_path / "run.html").read_text()
    for sample, reads in (("sampleA", READS), ("sampleB", SAMPLE_B)):
        node = re.search(rf'<node name="{sample}">{NOT_A_NODE}<magnitude><val>(\d+)</val>',
                         run_html, re.S)
        assert node is not None and int(node.group(1)) == sum(r[-1] for r in reads)


# --- taxpasta itself -------------------------------------------------------------------------


def _taxpasta() -> Path:
    if not TAXPASTA.is_file():
        pytest.skip(f"taxpasta not installed at {TAXPASTA}: make taxpasta")
    return TAXPASTA


def test_taxpasta_merge_agrees(run: Path, taxdump: Path, tmp_path: Path) -> None:
    """`taxpasta merge` of our Kraken2 reports gives our wide table, taxon columns included."""
    taxpasta = _taxpasta()
    sheet = ["sample\tprofile"]
    for sample in ("sampleA", "sampleB"):
        write_reports(run / f"{sample}.hytax.tsv", taxdump, sample, tmp_path)
        sheet.append(f"{sample}\t{tmp_path / f'{sample}.kraken2.report.txt'}")
    (tmp_path / "sheet.tsv").write_text("\n".join(sheet) + "\n")
    subprocess.run([str(taxpasta), "merge", "--profiler", "kraken2", "--samplesheet",
                    str(tmp_path / "sheet.tsv"), "--output", str(tmp_path / "taxpasta.tsv"),
                    "--taxonomy", str(taxdump), "--add-name", "--add-rank", "--add-lineage",
                    "--add-id-lineage", "--add-rank-lineage"],
                   check=True, capture_output=True, timeout=300)
    combine(_merged(run), tmp_path / "ours", options=CombineOptions(ALL_COLUMNS, taxdump))

    theirs = (tmp_path / "taxpasta.tsv").read_text().splitlines()
    ours = (tmp_path / "ours" / "hytax_merged.tsv").read_text().splitlines()
    assert ours[0] == theirs[0]
    # a Kraken2 report also lists every ancestor with 0 direct reads: taxpasta keeps those rows
    with_reads = [line for line in theirs[1:] if line.split("\t")[-2:] != ["0", "0"]]
    assert sorted(with_reads, key=lambda s: int(s.split("\t")[0])) == ours[1:]


def test_taxpasta_schema_reads_our_tables(run: Path, tmp_path: Path) -> None:
    """taxpasta's own pandera schemas accept our wide tables (merged and per tier)."""
    taxpasta = _taxpasta()
    combine(_merged(run), tmp_path, sorted(run.glob("*.claims.tsv")))
    script = (
        "import sys\n"
        "import pandas as pd\n"
        "from taxpasta.domain.model import WideObservationTable\n"
        "for path in sys.argv[1:]:\n"
        "    table = WideObservationTable.validate(pd.read_csv(path, sep='\\t'))\n"
        "    print(path, len(table), int(table.iloc[:, 1:].to_numpy().sum()))\n"
    )
    tables = sorted(tmp_path.glob("*.tsv"))
    assert [p.name for p in tables] == ["hytax_merged.tsv", "mmseqs2_nt.tsv", "mmseqs2_prot.tsv"]
    proc = subprocess.run([str(taxpasta.parent / "python"), "-c", script, *map(str, tables)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    totals = {Path(line.split()[0]).name: int(line.split()[2])
              for line in proc.stdout.splitlines()}
    reads = sum(r[-1] for r in READS) + sum(r[-1] for r in SAMPLE_B)
    assert totals == {"hytax_merged.tsv": reads,
                      "mmseqs2_nt.tsv": len(CLAIMS["nt", "sampleA"]) + len(CLAIMS["nt", "sampleB"]),
                      "mmseqs2_prot.tsv": len(CLAIMS["prot", "sampleA"])}


# --- in Nextflow -----------------------------------------------------------------------------

# REPORT_RESULTS as the pipeline calls it; the taxon columns asked for as a user would
NF_TEST = """
include { REPORT_RESULTS } from '{repo}/subworkflows/local/report_results'

workflow {
    ch_merged = channel.fromPath(params.merged).map { f -> [[id: f.name - '.hytax.tsv'], f] }
    ch_claims = channel.fromPath(params.claims).map { f -> [[id: f.name.tokenize('.')[0]], f] }
    REPORT_RESULTS(ch_merged, ch_claims,
                   channel.value([[id: 'taxdump', prefix: null], file(params.taxdump)]))
}
"""
NF_TEST_CONFIG = """
process {
    withName: 'HYTAX_COMBINE' {
        ext.args = '--add-name --add-rank'
    }
}
"""


@pytest.mark.pipeline
@pytest.mark.parametrize("stub", [False, True], ids=["run", "stub"])
def test_nextflow_report_results(run: Path, taxdump: Path, tmp_path: Path, stub: bool) -> None:
    from test_pipeline import BIN, NEXTFLOW, TIMEOUT_S, _skip_without_tools

    _skip_without_tools()
    (tmp_path / "main.nf").write_text(NF_TEST.replace("{repo}", str(REPO)))
    (tmp_path / "test.config").write_text(NF_TEST_CONFIG)
    outdir = tmp_path / "results"
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               NXF_OFFLINE="true", NXF_ANSI_LOG="false")
    cmd = [str(NEXTFLOW), "run", str(tmp_path / "main.nf"), "-ansi-log", "false",
           "-c", str(REPO / "nextflow.config"), "-c", str(tmp_path / "test.config"),
           "-work-dir", str(tmp_path / "work"), "--outdir", str(outdir),
           "--merged", str(run / "*.hytax.tsv"), "--claims", str(run / "*.claims.tsv"),
           "--taxdump", str(taxdump), *(["-stub"] if stub else [])]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-6000:]

    combined = outdir / "combined"
    published = sorted(str(p.relative_to(combined)) for p in combined.rglob("*"))
    if stub:
        assert published == ["hytax.krona.txt", "hytax_merged.tsv", "krona"]
        return
    assert published == ["hytax.krona.txt", "hytax_merged.tsv", "krona", "krona/sampleA.txt",
                         "krona/sampleB.txt", "mmseqs2_nt.tsv", "mmseqs2_prot.tsv"]
    # what the library writes from the same files
    combine(_merged(run), tmp_path / "here", sorted(run.glob("*.claims.tsv")),
            CombineOptions(TaxonColumns(name=True, rank=True), taxdump))
    for name in published:
        if name != "krona":
            assert (combined / name).read_text() == (tmp_path / "here" / name).read_text(), name
    assert (combined / "mmseqs2_nt.tsv").read_text().splitlines()[:2] == [
        "taxonomy_id\tname\trank\tsampleA\tsampleB", "0\t\t\t3\t5"]
    assert (outdir / "reports" / "sampleB.kraken2.report.txt").is_file()
    assert (outdir / "multiqc" / "tables" / "hytax_sources_mqc.tsv").is_file()


# --- docs/usage.md: hytax beside nf-core/taxprofiler -----------------------------------------

# taxprofiler's taxpasta/kraken2_db1.tsv as `taxpasta merge --add-name` writes it from Kraken2
# reports (every ancestor listed, 0 where no read stops there), written here by hand
TAXPROFILER_KRAKEN2 = """\
taxonomy_id\tname\tsampleA\tsampleB
0\t\t412\t380
1\troot\t3\t2
131567\tcellular organisms\t0\t0
2\tBacteria\t25\t12
1224\tProteobacteria\t4\t1
1236\tGammaproteobacteria\t0\t0
91347\tEnterobacteriales\t0\t0
543\tEnterobacteriaceae\t2\t0
561\tEscherichia\t40\t0
562\tEscherichia coli\t310\t0
1239\tFirmicutes\t0\t3
91061\tBacilli\t0\t0
1385\tBacillales\t0\t0
90964\tStaphylococcaceae\t0\t0
1279\tStaphylococcus\t6\t20
1280\tStaphylococcus aureus\t0\t95
"""


def _doc_snippets(language: str) -> list[str]:
    text = (REPO / "docs" / "usage.md").read_text()
    section = text[text.index("## hytax beside nf-core/taxprofiler"):]
    end = section.find("\n## ", 1)
    section = section if end < 0 else section[:end]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def _joined(path: Path) -> dict[int, dict[str, int]]:
    rows = {}
    for row in _rows(path):
        taxid = int(row.pop("taxonomy_id"))
        rows[taxid] = {k: int(v) for k, v in row.items() if k != "name"}
    return rows


@pytest.fixture
def two_runs(run: Path, tmp_path: Path) -> Path:
    """A taxprofiler run's taxpasta table and a hytax run's combined/ as the docs name them."""
    (tmp_path / "taxprofiler" / "taxpasta").mkdir(parents=True)
    (tmp_path / "taxprofiler" / "taxpasta" / "kraken2_db1.tsv").write_text(TAXPROFILER_KRAKEN2)
    combine(_merged(run), tmp_path / "hytax" / "combined")
    return tmp_path


def _expected_join(folder: Path) -> dict[int, dict[str, int]]:
    kraken2 = {int(r["taxonomy_id"]): r
               for r in _rows(folder / "taxprofiler" / "taxpasta" / "kraken2_db1.tsv")}
    hytax = {int(r["taxonomy_id"]): r
             for r in _rows(folder / "hytax" / "combined" / "hytax_merged.tsv")}
    return {taxid: {f"{s}_{tool}": int(table[taxid][s]) if taxid in table else 0
                    for tool, table in (("kraken2", kraken2), ("hytax", hytax))
                    for s in ("sampleA", "sampleB")}
            for taxid in kraken2.keys() | hytax.keys()}


def test_docs_join_with_pandas(two_runs: Path) -> None:
    python = _taxpasta().parent / "python"  # taxpasta's venv has pandas; ours does not
    (snippet,) = _doc_snippets("python")
    subprocess.run([str(python), "-c", snippet], cwd=two_runs, check=True, timeout=120)
    joined = _joined(two_runs / "kraken2_db1_vs_hytax.tsv")
    assert joined == _expected_join(two_runs)
    assert joined[561] == {"sampleA_kraken2": 40, "sampleB_kraken2": 0, "sampleA_hytax": 7,
                           "sampleB_hytax": 0}
    assert list(joined) == sorted(joined)


def test_docs_join_with_coreutils(two_runs: Path) -> None:
    (snippet,) = _doc_snippets("bash")
    # the doc's join keeps the name column: drop it as the docs say (tables without it)
    kraken2 = two_runs / "taxprofiler" / "taxpasta" / "kraken2_db1.tsv"
    kraken2.write_text("".join(f"{line.split(chr(9), 2)[0]}\t{line.split(chr(9), 2)[2]}"
                               for line in TAXPROFILER_KRAKEN2.splitlines(keepends=True)))
    subprocess.run(["bash", "-c", snippet], cwd=two_runs, check=True, timeout=60)
    lines = (two_runs / "kraken2_db1_vs_hytax.tsv").read_text().splitlines()
    assert lines[0] == "taxonomy_id\tsampleA\tsampleB\tsampleA\tsampleB"
    columns = ("sampleA_kraken2", "sampleB_kraken2", "sampleA_hytax", "sampleB_hytax")
    joined = {int(line.split("\t")[0]): dict(zip(columns, map(int, line.split("\t")[1:]),
                                                 strict=True))
              for line in lines[1:]}
    assert joined == _expected_join(two_runs)
