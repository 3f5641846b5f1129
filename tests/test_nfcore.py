"""The pipeline as an nf-core pipeline: nf-core/tools' own lint (offline), the metadata of every
module (what nf-core's module lint would check, which needs the network), nf-core/taxprofiler's
samplesheet layout end to end, a sheet saved with a byte-order mark, and the resource labels'
requests on the local executor without `process.resourceLimits`.

The Nextflow runs reuse tests/test_pipeline.py's helpers. One run with the labels' own requests
builds the test database (--save_reference); the samplesheet run searches that database.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from test_pipeline import (
    REPO,
    TEST_DATA,
    Run,
    _skip_without_tools,
    build_args,
    latest_trace,
    nextflow,
    ok,
    read_tsv,
    reference_args,
)

NFCORE = Path(os.environ.get("HYTAX_NFCORE", REPO / ".venv-nfcore" / "bin" / "nf-core"))
MODULES = sorted(p.parent for p in (REPO / "modules" / "local").glob("*/main.nf"))
# the test profile's parameters, without its process.resourceLimits
TEST_PARAMS = ["--input", str(TEST_DATA / "samplesheet.csv"), *build_args(),
               "--min_confidence", "0.25"]


# --- nf-core/tools' pipeline lint ----------------------------------------------------------------


@pytest.mark.pipeline
def test_nfcore_pipeline_lint_passes_offline(tmp_path: Path) -> None:
    if not NFCORE.is_file():
        pytest.fail(f"{NFCORE} missing: run `make nfcore-tools` (nf-core/tools in its own venv)")
    env = dict(os.environ)
    env["PATH"] = f"{REPO}{os.pathsep}{env.get('PATH', '')}"  # `nextflow config` runs ./nextflow
    env.update(NXF_OFFLINE="true", NFCORE_NO_VERSION_CHECK="1", HIDE_PROGRESS="1")
    # any request the lint makes fails at once instead of reaching a network
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[proxy] = "http://127.0.0.1:9"
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    report = tmp_path / "lint.json"
    proc = subprocess.run([str(NFCORE), "pipelines", "lint", "--dir", str(REPO), "--plain-text",
                           "--json", str(report)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    assert report.is_file(), f"nf-core lint wrote no report:\n{proc.stdout[-6000:]}"
    result = json.loads(report.read_text())
    failed = [f"{test}: {message}" for test, message in result["tests_failed"]]
    assert not failed, "nf-core lint failures:\n" + "\n".join(failed)
    assert proc.returncode == 0, proc.stdout[-6000:]
    passed = {test for test, _ in result["tests_pass"]}
    # the checks that matter most ran (and passed) rather than being switched off
    for test in ("files_exist", "nextflow_config", "schema_lint", "schema_params",
                 "base_config", "modules_config", "multiqc_config", "local_component_structure"):
        assert test in passed, f"nf-core lint did not pass {test}"


# --- module metadata -----------------------------------------------------------------------------


def _section(text: str, name: str, following: tuple[str, ...]) -> str:
    """The lines of a process block between `name:` and the next of `following`."""
    pattern = rf"^\s*{name}:\s*$(.*?)^\s*(?:{'|'.join(following)}):\s*$"
    match = re.search(pattern, text, re.S | re.M)
    assert match, f"no {name}: block"
    return re.sub(r"//.*", "", match.group(1))


def _input_names(main_nf: str) -> list[str]:
    block = _section(main_nf, "input", ("output",))
    names = []
    for line in block.splitlines():
        names += re.findall(r"\b(?:val|path|env)\(\s*([A-Za-z_]\w*)", line)
        bare = re.match(r"^\s*(?:val|path)\s+([A-Za-z_]\w*)", line)
        if bare:
            names.append(bare.group(1))
    return names


def _meta_input_names(meta: dict) -> list[str]:
    """A channel is a list of elements (a tuple) or one element (a mapping)."""
    channels = [channel if isinstance(channel, list) else [channel] for channel in meta["input"]]
    return [name for channel in channels for element in channel for name in element]


@pytest.mark.parametrize("module", MODULES, ids=[m.name for m in MODULES])
def test_module_has_nfcore_metadata(module: Path) -> None:
    main_nf = (module / "main.nf").read_text()
    process = re.search(r"^process\s+(\w+)", main_nf, re.M)
    assert process and process.group(1).lower() == module.name
    assert (module / "meta.yml").is_file(), f"{module.name}: no meta.yml"
    assert (module / "environment.yml").is_file(), f"{module.name}: no environment.yml"
    meta = yaml.safe_load((module / "meta.yml").read_text())
    assert meta["name"] == module.name
    for key in ("description", "keywords", "tools", "authors"):
        assert meta.get(key), f"{module.name}/meta.yml: no {key}"
    assert _meta_input_names(meta) == _input_names(main_nf), (
        f"{module.name}: meta.yml inputs differ from main.nf")
    emits = re.findall(r"emit:\s*(\w+)", _section(main_nf, "output", ("when", "script", "exec")))
    assert list(meta["output"]) == emits, f"{module.name}: meta.yml outputs differ from main.nf"
    # the conda profile and the per-process container
    assert 'conda "${moduleDir}/environment.yml"' in main_nf
    assert re.search(r'^\s*container\s+"hytax:\$\{workflow\.manifest\.version\}"', main_nf, re.M)
    assert "params." not in main_nf, f"{module.name}: a module reads params"


@pytest.mark.parametrize("module", MODULES, ids=[m.name for m in MODULES])
def test_module_environment_is_pinned(module: Path) -> None:
    env = yaml.safe_load((module / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge", "bioconda"]
    for dependency in env["dependencies"]:
        if isinstance(dependency, dict):  # pip: hytax itself, from PyPI
            assert list(dependency) == ["pip"]
            assert all(re.fullmatch(r"[\w.-]+==[\w.]+", spec) for spec in dependency["pip"])
        else:
            assert re.fullmatch(r"(conda-forge|bioconda)::[\w.-]+=[\w.]+", dependency), dependency


# --- the labels' requests on the local executor --------------------------------------------------


def _machine_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _trace_bytes(value: str) -> float:
    number, unit = value.split()
    return float(number) * 1024 ** ["B", "KB", "MB", "GB", "TB"].index(unit)


@pytest.fixture(scope="module")
def default_resources_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The test profile's data and parameters with the labels' own requests: no resourceLimits
    from the test profile or from the test helper."""
    _skip_without_tools()
    return nextflow(tmp_path_factory.mktemp("default_resources"), *TEST_PARAMS,
                    "--save_reference", resource_limits=False)


@pytest.mark.pipeline
def test_labels_defaults_complete_on_the_local_executor(default_resources_run: Run) -> None:
    run = ok(default_resources_run)
    assert "exceeds available" not in run.log
    trace = latest_trace(run.outdir)
    cpus = len(os.sched_getaffinity(0))
    # process_medium asks 6 CPUs and 36 GB, process_gpu 4 CPUs (conf/base.config)
    for process, asked in (("MMSEQS_TAXONOMY", 6), ("MMSEQS_CREATEINDEX", 6), ("HYTAX_PREDICT", 4)):
        rows = [row for row in trace if row["process"].endswith(process)]
        assert rows, f"{process} did not run"
        for row in rows:
            assert int(row["cpus"]) == min(asked, cpus), row
            assert _trace_bytes(row["memory"]) <= _machine_memory_bytes() * 1.01, row
    merged = read_tsv(run.outdir / "hytax" / "sample2.hytax.tsv")
    assert len(merged) == 150


@pytest.mark.pipeline
def test_multiqc_reports_its_own_version(default_resources_run: Run) -> None:
    data = ok(default_resources_run).outdir / "multiqc" / "multiqc_data"
    versions = (data / "multiqc_software_versions.txt").read_text()
    # the processes run the multiqc installed beside this interpreter (test_pipeline.BIN)
    expected = re.escape(version("multiqc"))
    assert re.search(rf"(?im)^.*\bmultiqc\b.*\b{expected}\b", versions), versions
    assert "mmseqs" in versions.lower()


# --- samplesheets --------------------------------------------------------------------------------


def _fastq_records(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt") as fh:
        lines = [line.rstrip("\n") for line in fh if line.strip()]
    return [lines[i:i + 4] for i in range(0, len(lines), 4)]


def _write_fastq(path: Path, records: list[list[str]]) -> Path:
    with gzip.open(path, "wt") as fh:
        fh.writelines(f"{line}\n" for record in records for line in record)
    return path


def _base_id(header: str) -> str:
    """A read's id as the merged table names it: first word, no /1 /2 mate suffix."""
    word = header[1:].split()[0]
    return word[:-2] if re.search(r"/[12]$", word) else word


def _fasta_records(path: Path) -> list[tuple[str, str]]:
    records, name, seq = [], None, []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            if line.startswith(">"):
                if name:
                    records.append((name, "".join(seq)))
                name, seq = line[1:].split()[0], []
            else:
                seq.append(line.strip())
    if name:
        records.append((name, "".join(seq)))
    return records


def _taxprofiler_sheet(folder: Path) -> tuple[Path, dict[str, set[str]]]:
    """Two paired runs of one sample, a FASTA row and an Oxford Nanopore row; with the read ids
    each sample must report."""
    r1 = _fastq_records(TEST_DATA / "sample1_R1.fastq.gz")
    r2 = _fastq_records(TEST_DATA / "sample1_R2.fastq.gz")
    half = len(r1) // 2
    runs = {
        "run1": (_write_fastq(folder / "run1_R1.fastq.gz", r1[:half]),
                 _write_fastq(folder / "run1_R2.fastq.gz", r2[:half])),
        "run2": (_write_fastq(folder / "run2_R1.fastq.gz", r1[half:]),
                 _write_fastq(folder / "run2_R2.fastq.gz", r2[half:])),
    }
    single = _fastq_records(TEST_DATA / "sample2.fastq.gz")[:40]
    fasta = folder / "contigs.fasta.gz"
    with gzip.open(fasta, "wt") as fh:
        fh.writelines(f">{record[0][1:]}\n{record[1]}\n" for record in single)
    # long reads: 4-5.5 kb stretches of the reference genomes (BERTax reads 1.5 kb windows)
    genomes = [(name, seq) for name, seq in _fasta_records(TEST_DATA / "reference.fasta.gz")
               if len(seq) > 20_000][:3]
    long_reads = []
    for i, (name, seq) in enumerate(genomes):
        for j in range(2):
            start, length = 1000 + 7000 * j, 4000 + 1500 * j
            long_reads.append([f"@ont{i}{j}_{name}", seq[start:start + length], "+",
                               "5" * length])
    ont = _write_fastq(folder / "ont.fastq.gz", long_reads)
    sheet = folder / "taxprofiler.csv"
    sheet.write_text(
        "sample,run_accession,instrument_platform,fastq_1,fastq_2,fasta\n"
        f"pairs,run1,ILLUMINA,{runs['run1'][0].name},{runs['run1'][1].name},\n"
        f"contigs,asm1,ILLUMINA,,,{fasta.name}\n"
        f"pairs,run2,ILLUMINA,{runs['run2'][0].name},{runs['run2'][1].name},\n"
        f"ont,ont1,OXFORD_NANOPORE,{ont.name},,\n")
    expected = {
        "pairs": {_base_id(record[0]) for record in r1},
        "contigs": {_base_id(record[0]) for record in single},
        "ont": {_base_id(record[0]) for record in long_reads},
    }
    assert len(expected["pairs"]) == len(r1) and len(expected["ont"]) == len(long_reads)
    return sheet, expected


@pytest.mark.pipeline
def test_taxprofiler_samplesheet_runs_end_to_end(tmp_path: Path,
                                                 default_resources_run: Run) -> None:
    db = ok(default_resources_run).outdir
    sheet, expected = _taxprofiler_sheet(tmp_path)
    run = ok(nextflow(tmp_path / "launch", "--input", str(sheet), *reference_args(db),
                      "--min_confidence", "0.25"))
    tables = sorted(p.name for p in (run.outdir / "hytax").glob("*.hytax.tsv"))
    assert tables == sorted(f"{sample}.hytax.tsv" for sample in expected)
    for sample, ids in expected.items():
        rows = read_tsv(run.outdir / "hytax" / f"{sample}.hytax.tsv")
        got = [row["read_id"] for row in rows]
        assert len(got) == len(set(got)), f"{sample}: a read twice in the merged table"
        assert set(got) == ids, (
            f"{sample}: {len(set(got) - ids)} reads of other samples, "
            f"{len(ids - set(got))} of its own missing")
    # both runs of a sample are one task per step and one report
    trace = latest_trace(run.outdir)
    prepared = [row["tag"] for row in trace if row["process"].endswith("HYTAX_PREPARE")]
    assert sorted(prepared) == sorted(expected)
    summary = json.loads((run.outdir / "reports" / "pairs.summary.json").read_text())
    assert summary["reads"] == len(expected["pairs"])


@pytest.mark.pipeline
def test_samplesheet_with_byte_order_mark(tmp_path: Path) -> None:
    """What a spreadsheet's "CSV UTF-8" export writes: a byte-order mark and CRLF line ends."""
    _skip_without_tools()
    sheet = tmp_path / "sheet.csv"
    sheet.write_bytes("\ufeffsample,fastq_1,fastq_2\r\nsample2,{},\r\n".format(
        TEST_DATA / "sample2.fastq.gz").encode("utf-8"))
    run = ok(nextflow(tmp_path / "launch", "--input", str(sheet), *build_args(), "-stub"))
    assert "unknown column" not in run.log
    assert (run.outdir / "hytax" / "sample2.hytax.tsv").is_file()


@pytest.mark.pipeline
def test_samplesheet_run_errors_name_sheet_and_lines(tmp_path: Path) -> None:
    _skip_without_tools()
    r1, r2 = TEST_DATA / "sample1_R1.fastq.gz", TEST_DATA / "sample1_R2.fastq.gz"
    single = TEST_DATA / "sample2.fastq.gz"
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "sample,run_accession,instrument_platform,fastq_1,fastq_2,fasta\n"
        f"A,run1,ILLUMINA,{r1},{r2},\n"
        f"A,run2,ILLUMINA,{single},,\n"
        f"B,run1,OXFORD_NANOPORE,{TEST_DATA / 'reference.fasta.gz'},,\n"
        f"B,run1,PACBIO_SMRT,,,{TEST_DATA / 'reference.fasta.gz'}\n"
        f"C,run1,NANOPORE,{single},,{TEST_DATA / 'reference.fasta.gz'}\n")
    run = nextflow(tmp_path / "launch", "--input", str(sheet), *build_args())
    assert run.returncode != 0
    where = f"Samplesheet {sheet}"
    for message in (
        f"{where}, lines 2, 3: sample 'A' mixes single-end (line 3) and paired-end (line 2) runs",
        f"{where}, line 5: sample 'B', run_accession 'run1' already on line 4",
        f"{where}, line 6: instrument_platform 'NANOPORE'",
        f"{where}, line 6: both fastq_1 and fasta are filled",
    ):
        assert message in run.log, f"missing: {message}\n{run.log[-4000:]}"
