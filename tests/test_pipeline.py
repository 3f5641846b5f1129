"""The Nextflow pipeline end to end: real Nextflow, MMseqs2, hytax and MultiQC on the bundled
test data (assets/test/, made by tools/make_test_data.py).

One module-scoped run of `-profile test` (with --save_reference, so later runs reuse its
database through --mmseqs_db) feeds most tests; then a `-resume` run, a `-stub` run and a few
runs with bad input. Nextflow is `<repo>/nextflow` (tools/nextflow/install.sh); processes find
`hytax` and `multiqc` in this interpreter's bin folder. Deselect with `-m "not pipeline"`.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from hytax.taxonomy import RANKS

pytestmark = pytest.mark.pipeline

REPO = Path(__file__).resolve().parents[1]
NEXTFLOW = REPO / "nextflow"
TEST_DATA = REPO / "assets" / "test"
MODEL = REPO / "assets" / "models" / "hytax-mini"
BIN = Path(sys.executable).parent
TIMEOUT_S = int(os.environ.get("HYTAX_NXF_TIMEOUT", "1200"))
# the tiers the test profile builds: the reference's DNA, then its proteins
NUCLEOTIDE_TIER = "mmseqs2:reference"
PROTEIN_TIER = "mmseqs2:reference_proteins"
# the sections our MultiQC files declare (hytax multiqc-tables, and the pipeline's own)
SECTION_IDS = (
    "hytax_sources",
    "hytax_composition_superkingdom",
    "hytax_composition_genus",
    "hytax_bertax_confidence",
    "hytax-hytax-summary",
    "hytax-hytax-methods-description",
)


@dataclass
class Run:
    launch: Path
    outdir: Path
    returncode: int
    log: str


def _skip_without_tools() -> None:
    if not NEXTFLOW.is_file():
        pytest.skip(f"{NEXTFLOW} missing: run tools/nextflow/install.sh")
    if shutil.which("mmseqs") is None:
        pytest.skip("mmseqs (MMseqs2) is not on PATH")
    if not (BIN / "hytax").is_file():
        pytest.skip(f"hytax is not installed in {BIN}")
    if not (BIN / "multiqc").is_file() and shutil.which("multiqc") is None:
        pytest.skip("multiqc is not installed (pip install multiqc)")
    if not (MODEL / "config.json").is_file():
        pytest.skip(f"the bundled model {MODEL} is not there")


def nextflow_command(launch: Path, *args: str, outdir: Path | None = None,
                     resource_limits: bool = True) -> tuple[list[str], dict[str, str], Path]:
    """(command, environment, outdir) of `nextflow run <repo> ARGS` from `launch`; for tests
    that start Nextflow themselves (tests/test_faults.py kills it half-way)."""
    launch.mkdir(parents=True, exist_ok=True)
    outdir = outdir or launch / "results"
    limits = launch / "limits.config"
    limits.write_text("process.resourceLimits = [cpus: 2, memory: 6.GB, time: 1.h]\n"
                      if resource_limits else "")
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["NXF_OFFLINE"] = "true"
    env["NXF_ANSI_LOG"] = "false"
    cmd = [str(NEXTFLOW), "run", str(REPO), "-ansi-log", "false", "-c", str(limits),
           "-work-dir", str(launch / "work"), "--outdir", str(outdir), *args]
    return cmd, env, outdir


def nextflow(launch: Path, *args: str, outdir: Path | None = None,
              resource_limits: bool = True) -> Run:
    """`nextflow run <repo> ARGS` from `launch` (its .nextflow/ cache and work/ stay there).
    Requests are capped to 2 CPUs / 6 GB as in the test profile, for runs without it, unless
    `resource_limits` is False (then only the pipeline's own cap on the local executor)."""
    cmd, env, outdir = nextflow_command(launch, *args, outdir=outdir,
                                        resource_limits=resource_limits)
    try:
        proc = subprocess.run(cmd, cwd=launch, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"nextflow timed out after {TIMEOUT_S} s: {' '.join(cmd)}\n{exc.output}")
    (launch / "nextflow.out").write_text(proc.stdout)
    return Run(launch, outdir, proc.returncode, proc.stdout)


def ok(run: Run) -> Run:
    assert run.returncode == 0, f"nextflow failed ({run.returncode}):\n{run.log[-6000:]}"
    return run


def read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def count_fastq_records(path: Path) -> int:
    """Records of a FASTQ file, counted here without hytax: 4 lines each."""
    with gzip.open(path, "rt") as fh:
        lines = sum(1 for line in fh if line.strip())
    assert lines % 4 == 0, f"{path}: {lines} lines, not whole FASTQ records"
    return lines // 4


def latest_trace(outdir: Path) -> list[dict[str, str]]:
    traces = sorted((outdir / "pipeline_info").glob("execution_trace_*.txt"))
    assert traces, f"no execution trace in {outdir}/pipeline_info"
    return read_tsv(traces[-1])


def build_args() -> list[str]:
    """Build the database from the bundled reference (as the test profile does)."""
    return ["--reference_fasta", str(TEST_DATA / "reference.fasta.gz"),
            "--taxdump", str(TEST_DATA / "taxdump"),
            "--tax_mapping", str(TEST_DATA / "seq2taxid.tsv"), "--mmseqs_kmer_length", "13"]


def reference_args(db_outdir: Path, taxdump: bool = True) -> list[str]:
    """Reuse the database the test run built (and published with --save_reference); without
    --taxdump, taxa are named from the .dmp copies inside the database."""
    args = ["--mmseqs_db", str(db_outdir / "reference" / "reference" / "mmseqs_db" / "reference"),
            "--mmseqs_kmer_length", "13"]
    return [*args, "--taxdump", str(TEST_DATA / "taxdump")] if taxdump else args


def databases_sheet(folder: Path, db_outdir: Path, rows: list[str] | None = None) -> Path:
    """A databases sheet of the two tiers the test run built (nt, then aa), or of `rows`."""
    built = db_outdir / "reference"
    rows = rows if rows is not None else [
        f"nt,nucleotide,{built / 'reference' / 'mmseqs_db' / 'reference'},--min_aln_fraction 0.5",
        f"aa,protein,{built / 'reference_proteins' / 'mmseqs_db' / 'reference_proteins'},"
        "--min_identity genus=1.0;phylum=0.5",
    ]
    sheet = folder / "databases.csv"
    sheet.write_text("db_name,db_type,db_path,db_params\n" + "".join(f"{r}\n" for r in rows))
    return sheet


def write_fastq(path: Path, records: list[tuple[str, str, str]]) -> Path:
    with gzip.open(path, "wt") as fh:
        for name, seq, qual in records:
            fh.write(f"@{name}\n{seq}\n+\n{qual}\n")
    return path


# --- the test-profile run ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def test_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    _skip_without_tools()
    return ok(nextflow(tmp_path_factory.mktemp("test_profile"), "-profile", "test",
                       "--save_reference"))


@pytest.fixture(scope="module")
def truth() -> dict[str, list[dict[str, str]]]:
    by_sample: dict[str, list[dict[str, str]]] = {}
    for row in read_tsv(TEST_DATA / "truth.tsv"):
        by_sample.setdefault(row["sample"], []).append(row)
    return by_sample


@pytest.fixture(scope="module")
def merged(test_run: Run) -> dict[str, dict[str, dict[str, str]]]:
    """sample -> read id -> merged row."""
    out = {}
    for sample in ("sample1", "sample2"):
        rows = read_tsv(test_run.outdir / "hytax" / f"{sample}.hytax.tsv")
        out[sample] = {row["read_id"]: row for row in rows}
        assert len(out[sample]) == len(rows), f"{sample}: a read id appears twice"
    return out


def test_merged_rows_equal_input_reads(test_run: Run) -> None:
    with open(TEST_DATA / "samplesheet.csv", newline="") as fh:
        sheet = list(csv.DictReader(fh))
    assert [row["sample"] for row in sheet] == ["sample1", "sample2"]
    for row in sheet:
        n1 = count_fastq_records(TEST_DATA / row["fastq_1"])
        if row["fastq_2"]:  # a pair is one unit
            assert count_fastq_records(TEST_DATA / row["fastq_2"]) == n1
        rows = read_tsv(test_run.outdir / "hytax" / f"{row['sample']}.hytax.tsv")
        assert len(rows) == n1, f"{row['sample']}: {len(rows)} merged rows for {n1} reads"


def test_reference_reads_keep_mmseqs2_taxon(merged, truth) -> None:
    for sample, rows in truth.items():
        reference = [t for t in rows if t["kind"] == "reference"]
        assert len(reference) > 50
        by_mmseqs = [t for t in reference
                     if merged[sample][t["read_id"]]["genus_source"] == NUCLEOTIDE_TIER]
        right = [t for t in by_mmseqs
                 if merged[sample][t["read_id"]]["genus_taxid"] == t["genus_taxid"]]
        assert len(right) >= 0.9 * len(reference), (
            f"{sample}: {len(by_mmseqs)}/{len(reference)} reference reads with an MMseqs2 genus, "
            f"{len(right)} the true genus")
        # the superkingdom of every read MMseqs2 placed comes from MMseqs2, never BERTax
        for t in by_mmseqs:
            assert merged[sample][t["read_id"]]["superkingdom_source"] == NUCLEOTIDE_TIER


def test_absent_genera_get_bertax_answers(merged, truth) -> None:
    for sample, rows in truth.items():
        absent = [t for t in rows if t["kind"] == "absent"]
        assert len(absent) > 10
        got = [merged[sample][t["read_id"]] for t in absent]
        assert not [r for r in got if r["genus_source"].startswith("mmseqs2")], (
            f"{sample}: MMseqs2 claims a genus for reads of genera absent from the reference")
        placed = [r for r in got if r["superkingdom_source"] in ("bertax", PROTEIN_TIER)]
        assert len(placed) > 0.5 * len(absent), (
            f"{sample}: only {len(placed)}/{len(absent)} reads of absent genera got a "
            "superkingdom from BERTax or the protein tier")


def test_tiers_claims_tables_and_precedence(test_run: Run, merged) -> None:
    for sample in ("sample1", "sample2"):
        units = list(merged[sample])
        tiers = {}
        for tier in ("reference", "reference_proteins"):
            rows = read_tsv(test_run.outdir / "claims" / f"{sample}.{tier}.claims.tsv")
            assert [r["read_id"] for r in rows] == units  # every read, in order, each tier
            assert {r["source"] for r in rows} == {f"mmseqs2:{tier}"}
            tiers[tier] = {r["read_id"]: r for r in rows}
        for read_id, row in merged[sample].items():
            nucleotide = tiers["reference"][read_id]
            protein = tiers["reference_proteins"][read_id]
            if nucleotide["superkingdom_taxid"] != "0":
                # the nucleotide tier closed the read: never re-claimed by the protein tier
                assert row["superkingdom_source"] == NUCLEOTIDE_TIER
                assert row["superkingdom_taxid"] == nucleotide["superkingdom_taxid"]
            elif protein["superkingdom_taxid"] != "0":
                assert row["superkingdom_source"] == PROTEIN_TIER
            else:
                assert row["superkingdom_source"] in ("bertax", "none")


def test_reads_without_a_3mer_stay_unclassified(merged, truth) -> None:
    for sample, rows in truth.items():
        junk = [t for t in rows if t["kind"] in ("only_n", "short")]
        assert junk
        for t in junk:
            row = merged[sample][t["read_id"]]
            assert row["rank"] == "unclassified", row
            assert {row[f"{rank}_source"] for rank in RANKS} == {"none"}, row


def test_reports_per_sample(test_run: Run) -> None:
    for sample in ("sample1", "sample2"):
        reports = test_run.outdir / "reports"
        kraken = (reports / f"{sample}.kraken2.report.txt").read_text().splitlines()
        assert kraken[0].split("\t")[5].strip() == "unclassified"
        assert kraken[1].split("\t")[5].strip() == "root"
        for suffix in ("profile.tsv", "krona.txt"):
            assert (reports / f"{sample}.{suffix}").stat().st_size > 0
        summary = json.loads((reports / f"{sample}.summary.json").read_text())
        assert summary["reads"] == 150


def test_multiqc_reads_kraken_reports_and_our_sections(test_run: Run) -> None:
    multiqc = test_run.outdir / "multiqc"
    data = multiqc / "multiqc_data"
    kraken = [p for p in data.iterdir() if "kraken" in p.name.lower()]
    assert kraken, f"no kraken table from MultiQC: {sorted(p.name for p in data.iterdir())}"
    text = "\n".join(p.read_text() for p in kraken if p.suffix in (".txt", ".tsv"))
    for sample in ("sample1", "sample2"):
        assert sample in text, f"{sample} missing from MultiQC's kraken tables"
    assert "sample1.kraken2" not in text, "sample names keep the .kraken2 suffix"
    html = (multiqc / "multiqc_report.html").read_text()
    missing = [section for section in SECTION_IDS if section not in html]
    assert not missing, f"MultiQC report lacks sections {missing}"
    # the methods text states the routing actually used (test profile: the default 0.3)
    assert "hits covering less than 0.3 of the read" in html
    versions = data / "multiqc_software_versions.txt"
    if versions.is_file():
        assert "mmseqs" in versions.read_text().lower()


def test_pipeline_info(test_run: Run) -> None:
    info = test_run.outdir / "pipeline_info"
    for pattern in ("execution_report_*.html", "execution_timeline_*.html",
                    "execution_trace_*.txt", "pipeline_dag_*.html"):
        assert list(info.glob(pattern)), f"pipeline_info/{pattern} missing"
    versions = (info / "hytax_software_mqc_versions.yml").read_text()
    for tool in ("HYTAX_PREDICT", "MMSEQS_TAXONOMY", "hytax:", "mmseqs:", "torch:", "Nextflow:"):
        assert tool in versions, f"{tool} missing from the software versions"
    # the database was built once for both samples
    trace = latest_trace(test_run.outdir)
    built = [row for row in trace if row["process"].endswith("MMSEQS_CREATEINDEX")]
    assert len(built) == 2  # the nucleotide and the protein database
    assert len([row for row in trace if row["process"].endswith("MMSEQS_TAXONOMY")]) == 4


def test_resume_runs_no_task(test_run: Run) -> None:
    tasks = len(latest_trace(test_run.outdir))
    resumed = ok(nextflow(test_run.launch, "-profile", "test", "--save_reference", "-resume"))
    trace = latest_trace(resumed.outdir)
    assert len(trace) == tasks
    rerun = [f"{row['name']}: {row['status']}" for row in trace if row["status"] != "CACHED"]
    assert not rerun, "tasks re-executed on -resume:\n" + "\n".join(rerun)


# --- stub ----------------------------------------------------------------------------------------


def test_stub_run(tmp_path: Path) -> None:
    _skip_without_tools()
    run = ok(nextflow(tmp_path, "-profile", "test", "-stub"))
    assert (run.outdir / "multiqc" / "multiqc_report.html").is_file()
    assert (run.outdir / "hytax" / "sample1.hytax.tsv").is_file()


# --- bad input -----------------------------------------------------------------------------------


def test_missing_reads_glob_is_a_clear_error(tmp_path: Path) -> None:
    _skip_without_tools()
    pattern = str(tmp_path / "nothing_here_*_R{1,2}.fastq.gz")
    run = nextflow(tmp_path / "launch", "--reads", pattern, *build_args())
    assert run.returncode != 0
    assert f"--reads '{pattern}': no files match" in run.log, run.log[-3000:]


def test_samplesheet_errors_name_file_and_line(tmp_path: Path) -> None:
    _skip_without_tools()
    sheet = tmp_path / "sheet.csv"
    r1 = TEST_DATA / "sample2.fastq.gz"
    sheet.write_text(f"sample,fastq_1,fastq_2\nA,{r1},\nA,{r1},\nB,missing.fastq.gz,\n")
    run = nextflow(tmp_path / "launch", "--input", str(sheet), *build_args())
    assert run.returncode != 0
    assert f"Samplesheet {sheet}, line 3: sample 'A' already on line 2" in run.log, run.log[-3000:]
    assert f"Samplesheet {sheet}, line 4: fastq_1 'missing.fastq.gz': no such file" in run.log

    sheet.write_text(f"name,reads\nA,{r1}\n")
    run = nextflow(tmp_path / "launch", "--input", str(sheet), *build_args())
    assert run.returncode != 0
    expected = f"Samplesheet {sheet}, line 1: header 'name,reads' is not valid"
    assert expected in run.log, run.log[-3000:]


def test_malformed_fastq_fails_naming_the_file(tmp_path: Path) -> None:
    _skip_without_tools()
    good = ("r1/1", "ACGTACGTAC", "IIIIIIIIII")
    bad = ("r2/1", "ACGTACGTAC", "IIII")  # quality shorter than the sequence
    r1 = write_fastq(tmp_path / "broken_R1.fastq.gz", [good, bad])
    r2 = write_fastq(tmp_path / "broken_R2.fastq.gz", [("r1/2", "ACGTACGTAC", "IIIIIIIIII"),
                                                       ("r2/2", "ACGTACGTAC", "IIIIIIIIII")])
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(f"sample,fastq_1,fastq_2\nbroken,{r1.name},{r2.name}\n")
    run = nextflow(tmp_path / "launch", "--input", str(sheet), *build_args())
    assert run.returncode != 0
    assert "HYTAX_PREPARE (broken)" in run.log, run.log[-3000:]
    assert "hytax prepare: error: broken_R1.fastq.gz" in run.log, run.log[-3000:]


def test_empty_sample_reports_zero_reads(tmp_path: Path, test_run: Run) -> None:
    empty = write_fastq(tmp_path / "empty.fastq.gz", [])
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(f"sample,fastq_1,fastq_2\nempty,{empty},\n")
    run = ok(nextflow(tmp_path / "launch", "--input", str(sheet),
                      *reference_args(test_run.outdir, taxdump=False)))
    assert read_tsv(run.outdir / "hytax" / "empty.hytax.tsv") == []
    summary = json.loads((run.outdir / "reports" / "empty.summary.json").read_text())
    assert summary["reads"] == 0
    kraken = (run.outdir / "reports" / "empty.kraken2.report.txt").read_text().splitlines()
    assert kraken and kraken[0].split("\t")[1] == "0"
    assert (run.outdir / "multiqc" / "multiqc_report.html").is_file()


def test_odd_read_ids_and_a_long_contig_round_trip(tmp_path: Path, test_run: Run) -> None:
    """Ids MMseqs2 would shorten (`sp|P12345|r3` -> `P12345`, two reads colliding) keep their
    answers; a 140-kb contig, which MMseqs2 aligns in 10-kb pieces, is claimed by it."""
    from hytax.seqio import read_records

    ecoli = next(r for r in read_records(TEST_DATA / "reference.fasta.gz")
                 if r.id.startswith("Ecoli")).seq
    records = [("sp|P12345|r3", ecoli[1_000:1_150]), ("sp|P12345|r4", ecoli[50_000:50_150]),
               ("gi|49175990|ref|NC_000913.2|", ecoli[90_000:90_300]),
               ("tr|Q0|weird:id;with=chars", ecoli[120_000:120_150]),
               ("ecoli_contig_140kb", ecoli[5_000:145_000])]
    fasta = tmp_path / "odd.fasta"
    fasta.write_text("".join(f">{name} some description\n{seq}\n" for name, seq in records))
    # both tiers the test run built, from a databases sheet
    run = ok(nextflow(tmp_path / "launch", "--reads", str(fasta), "--databases",
                      str(databases_sheet(tmp_path, test_run.outdir)),
                      "--taxdump", str(TEST_DATA / "taxdump"), "--mmseqs_kmer_length", "13"))
    rows = read_tsv(run.outdir / "hytax" / "odd.hytax.tsv")
    assert [r["read_id"] for r in rows] == [name for name, _ in records]
    for tier in ("nt", "aa"):
        claims = read_tsv(run.outdir / "claims" / f"odd.{tier}.claims.tsv")
        assert [r["read_id"] for r in claims] == [name for name, _ in records]
    for row in rows:
        assert row["genus_source"] == "mmseqs2:nt", row
        assert row["genus_name"] == "Escherichia", row
    assert rows[-1]["length"] == "140000"


def test_databases_sheet_errors_before_any_task(tmp_path: Path, test_run: Run) -> None:
    built = test_run.outdir / "reference"
    nt = built / "reference" / "mmseqs_db" / "reference"
    aa = built / "reference_proteins" / "mmseqs_db" / "reference_proteins"
    sheet = databases_sheet(tmp_path, test_run.outdir, [
        f"nt,protein,{nt},",  # a nucleotide database said to be protein
        f"aa,nucleotide,{aa},",  # and the reverse
        f"nt,nucleotide,{nt},",  # a name twice
        f"gone,nucleotide,{tmp_path / 'missing' / 'db'},",
        f"odd,kraken9,{nt},",
        f"bad,nucleotide,{nt},--min_aln_fraction 2",
    ])
    run = nextflow(tmp_path / "launch", "--reads", str(TEST_DATA / "sample2.fastq.gz"),
                   "--databases", str(sheet), "--taxdump", str(TEST_DATA / "taxdump"))
    assert run.returncode != 0
    where = f"Databases sheet {sheet}, line"
    for line, message in [
        (2, f"db_path {nt}: a nucleotide database, but db_type says protein"),
        (3, f"db_path {aa}: a protein database, but db_type says nucleotide"),
        (4, "db_name 'nt' already on line 2"),
        (5, "no db.dbtype, not an MMseqs2 database prefix"),
        (6, "db_type 'kraken9': expected one of nucleotide, protein"),
        (7, "db_params: --min_aln_fraction '2': expected a number in 0-1"),
    ]:
        assert f"{where} {line}: " in run.log and message in run.log, (message, run.log[-3000:])
    assert "Submitted process" not in run.log
