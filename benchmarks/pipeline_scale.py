#!/usr/bin/env python3
"""The real pipeline at scale: per-step wall time and peak memory at N reads, and the per-sample
overhead of many small samples.

Reads are real sequence, no errors added: single-end 150-nt stretches cut at random positions,
either strand, from genomes of the shared data (read with `hytax.seqio`), as much from each
genome as its length (even coverage), seed fixed. Most come from the reference's genomes, a
fraction (`--outside-fraction`) from genera the reference lacks, so that MMseqs2 closes most
reads and BERTax gets the rest.

    # the reference once (--save_reference), then one run per size against it (databases sheet)
    python benchmarks/pipeline_scale.py --outdir ../scale --reads 100000,1000000 [--skip-protein-db]
    # many small samples in one run against the test profile's reference (--full-taxdump: the
    # shared NCBI dump, not the profile's subset); another checkout (its own src/ first on
    # PYTHONPATH) with --pipeline
    python benchmarks/pipeline_scale.py --outdir ../scale --samples 100 --sample-reads 200 \\
        --full-taxdump --skip-protein-db [--pipeline ../scale/before --label before]
    # the tables again, from the traces and run records under --outdir
    python benchmarks/pipeline_scale.py --outdir ../scale --reads 100000 --skip-run

Every run is `nextflow run` (tests/test_pipeline.py's command: 2 CPUs / 6 GB per task) with
`-with-trace`; each run's folder keeps trace.txt and run.json (command, wall time, load average
samples, reads routed to BERTax) and loses its work/ folder unless --keep-work.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import datetime
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hytax.seqio import read_records, reverse_complement

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tools"))
# one way to start Nextflow (the tests' command) and the test profile's genomes
from make_test_data import ABSENT, MAX_REF_BP  # noqa: E402
from make_test_data import REFERENCE as TEST_REFERENCE  # noqa: E402
from test_pipeline import nextflow_command  # noqa: E402

READ_LEN = 150
MAX_N = READ_LEN // 50  # a stretch with more Ns is an assembly gap, not a read
# Distinct genera, the four superkingdoms (57 Mb); each genome whole, as stored
REFERENCE = (
    "Ecoli_K12_MG1655", "Saureus_N315", "Mtuberculosis_H37Rv", "Kpneumoniae_HS11286",
    "Hpylori_G27", "Lkirschneri_H1", "Caulobacter_crescentus_CB15", "Enterococcus_faecalis_T2",
    "Ctrachomatis", "Mycoplasma_genitalium_G37", "Pseudomonas_aeruginosa_PA7",
    "Aquifex_aeolicus_VF5", "Synechococcus_sp_P1_N32", "Borrelia_burgdorferi_B31",
    "Prevotella_sp_KH2C16", "Haemophilus_influenzae_Rd_KW20", "Desulfovibrio_vulgaris_MiyazakiF",
    "Mruminantium_M1", "Methanococcus_maripaludis_S2", "Thermococcus_kodakarensis_KOD1",
    "Archaeoglobus_profundus_DSM5631", "Acidilobus_saccharovorans_345-15",
    "Scerevisiae_chrI", "Cyanidioschyzon_merolae_10D_chr1-2", "Mus_musculus_mm10_slices",
    "Bos_taurus_bosTau8_slices", "Athaliana_chloroplast",
    "Lambda_phage", "SARS_CoV_2_WuhanHu1", "Enterobacteria_phage_T4",
    "Human_herpesvirus_1_strain17", "Monkeypox_virus",
)
# genera absent from REFERENCE (some share a family or order with one in it)
OUTSIDE = (
    "Shewanella_baltica_OS185_500kb", "Wolbachia_sp_wRi", "Nitrosomonas_oligotropha_Nm75",
    "Thermodesulfatator_indicus_DSM15286", "Akkermansia_muciniphila_BAA835_500kb",
    "Methanosarcina_acetivorans_C2A", "Dasypus_novemcinctus_dasNov3_slices",
    "Marburg_virus", "Human_herpesvirus_3_VZV", "Staphylococcus_phage_K",
)
# the per-sample steps, in pipeline order (an older checkout may have others)
STEPS = ("HYTAX_PREPARE", "MMSEQS_TAXONOMY", "HYTAX_CLAIMS", "HYTAX_ROUTE", "HYTAX_PREDICT",
         "HYTAX_MERGE", "HYTAX_REPORT")
TRACE_FIELDS = ("task_id,process,tag,name,status,exit,cpus,memory,realtime,duration,%cpu,"
                "peak_rss,peak_vmem,rchar,wchar")
# raw: milliseconds and bytes, not "1m 2s" / "1.2 GB"
TRACE_CONFIG = f"trace.raw = true\ntrace.fields = '{TRACE_FIELDS}'\n"
LOAD_EVERY_S = 15


# --- reads ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    """Records of some genomes, drawn from by position (so each genome by its length)."""

    genome_of: tuple[str, ...]  # per record
    seqs: tuple[str, ...]
    ends: tuple[int, ...]  # cumulative lengths

    @classmethod
    def load(cls, data: Path, genome_ids: Iterable[str], max_bp: int | None = None) -> Pool:
        genome_of, seqs = [], []
        for gid in genome_ids:
            left = max_bp
            for read in read_records(data / "genomes" / f"{gid}.fa.gz"):
                seq = read.seq if left is None else read.seq[:left]
                if len(seq) >= READ_LEN:
                    genome_of.append(gid)
                    seqs.append(seq)
                if left is not None:
                    left -= len(seq)
                    if left < READ_LEN:
                        break
        ends, total = [], 0
        for seq in seqs:
            total += len(seq)
            ends.append(total)
        return cls(tuple(genome_of), tuple(seqs), tuple(ends))

    def draw(self, rng: random.Random) -> tuple[str, str]:
        """(genome id, read): a stretch within one record, either strand."""
        while True:
            pos = rng.randrange(self.ends[-1])
            i = bisect.bisect_right(self.ends, pos)
            start = pos - (self.ends[i] - len(self.seqs[i]))
            read = self.seqs[i][start : start + READ_LEN]
            if len(read) == READ_LEN and read.count("N") <= MAX_N:
                return self.genome_of[i], read if rng.random() < 0.5 else reverse_complement(read)


def write_sample(path: Path, name: str, n: int, inside: Pool, outside: Pool,
                 outside_fraction: float, rng: random.Random) -> dict[str, int]:
    """N reads as gzipped FASTQ (the source genome in each header's comment); reads per group."""
    counts = {"inside": 0, "outside": 0}
    quality = "I" * READ_LEN
    tmp = path.with_suffix(".part")
    with gzip.open(tmp, "wt", compresslevel=1) as out:
        for i in range(1, n + 1):
            group = "outside" if rng.random() < outside_fraction else "inside"
            genome, seq = (outside if group == "outside" else inside).draw(rng)
            counts[group] += 1
            out.write(f"@{name}_{i} {genome}\n{seq}\n+\n{quality}\n")
    tmp.rename(path)
    return counts


# --- runs ----------------------------------------------------------------------------------------


class LoadSampler:
    """The 1-minute load average every LOAD_EVERY_S seconds while a run goes."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(LOAD_EVERY_S):
                return

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_pipeline(launch: Path, pipeline: Path, args: Sequence[str], keep_work: bool,
                 env_extra: dict[str, str] | None = None) -> dict:
    """`nextflow run PIPELINE ARGS` from LAUNCH with a trace; what run.json records."""
    launch.mkdir(parents=True, exist_ok=True)
    (launch / "trace.config").write_text(TRACE_CONFIG)
    trace = launch / "trace.txt"
    trace.unlink(missing_ok=True)
    cmd, env, _ = nextflow_command(launch, *args, outdir=launch / "results")
    cmd[cmd.index(str(REPO))] = str(pipeline)  # the tests' command, for any checkout
    cmd += ["-c", str(launch / "trace.config"), "-with-trace", str(trace)]
    env.update(env_extra or {})
    print(f"[{now()}] {' '.join(cmd)}", flush=True)
    start = time.monotonic()
    with LoadSampler() as load, open(launch / "nextflow.out", "w") as log:
        proc = subprocess.run(cmd, cwd=launch, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        tail = (launch / "nextflow.out").read_text()[-4000:]
        raise SystemExit(f"nextflow failed ({proc.returncode}) in {launch}:\n{tail}")
    record = {
        "command": cmd, "env": env_extra or {}, "pipeline": str(pipeline),
        "commit": git_commit(pipeline), "date": now(), "wall_s": round(wall, 1),
        "load_avg_1min": load.samples, "routed": routed_reads(launch / "results"),
    }
    (launch / "run.json").write_text(json.dumps(record, indent=1))
    if not keep_work:
        shutil.rmtree(launch / "work", ignore_errors=True)
    return record


def routed_reads(results: Path) -> dict[str, int]:
    """Reads BERTax classified per sample: the rows of its bertax/<sample>.bertax.tsv."""
    counts = {}
    for path in sorted((results / "bertax").glob("*.bertax.tsv")):
        with open(path) as fh:
            rows = sum(1 for line in fh if line.strip() and not line.startswith("#"))
        counts[path.name.removesuffix(".bertax.tsv")] = max(rows - 1, 0)  # less the header
    return counts


def git_commit(path: Path) -> str:
    out = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    return out.stdout.strip()


def now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


# --- tables --------------------------------------------------------------------------------------


def read_trace(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [r for r in rows if r["status"] in ("COMPLETED", "CACHED")]


def number(text: str) -> float:
    text = text.strip().rstrip("%")
    return float(text) if text not in ("", "-") else 0.0


@dataclass
class StepFigures:
    step: str
    tasks: int = 0
    realtime_ms: float = 0.0
    max_realtime_ms: float = 0.0
    peak_rss: float = 0.0
    peak_vmem: float = 0.0
    cpu_ms: float = 0.0  # realtime x %cpu, to average %cpu by time
    rchar: float = 0.0
    wchar: float = 0.0

    def add(self, row: dict[str, str]) -> None:
        realtime = number(row["realtime"])
        self.tasks += 1
        self.realtime_ms += realtime
        self.max_realtime_ms = max(self.max_realtime_ms, realtime)
        self.peak_rss = max(self.peak_rss, number(row["peak_rss"]))
        self.peak_vmem = max(self.peak_vmem, number(row["peak_vmem"]))
        self.cpu_ms += realtime * number(row["%cpu"]) / 100
        self.rchar += number(row["rchar"])
        self.wchar += number(row["wchar"])


def step_name(row: dict[str, str]) -> str:
    return row["process"].rsplit(":", 1)[-1]


def by_step(rows: Iterable[dict[str, str]]) -> list[StepFigures]:
    """Per step, STEPS first (pipeline order), then the rest by first task."""
    steps: dict[str, StepFigures] = {}
    for row in sorted(rows, key=lambda r: int(r["task_id"])):
        steps.setdefault(step_name(row), StepFigures(step_name(row))).add(row)
    order = {name: i for i, name in enumerate(STEPS)}
    return sorted(steps.values(), key=lambda s: order.get(s.step, len(STEPS)))


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def seconds(ms: float) -> str:
    return f"{ms / 1000:,.1f} s"


def step_table(steps: Sequence[StepFigures], per_sample: set[str]) -> str:
    lines = ["| step | tasks | wall (sum of tasks) | longest task | peak RSS | peak vmem | CPU "
             "| read | written |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in steps:
        cpu = f"{100 * s.cpu_ms / s.realtime_ms:.0f} %" if s.realtime_ms else "-"
        mark = "" if s.step in per_sample else " (once per run)"
        lines.append(f"| {s.step}{mark} | {s.tasks} | {seconds(s.realtime_ms)} | "
                     f"{seconds(s.max_realtime_ms)} | {mib(s.peak_rss)} | {mib(s.peak_vmem)} | "
                     f"{cpu} | {mib(s.rchar)} | {mib(s.wchar)} |")
    return "\n".join(lines)


def load_text(samples: Sequence[float]) -> str:
    if not samples:
        return "-"
    return (f"{min(samples):.1f}-{max(samples):.1f} (mean {sum(samples) / len(samples):.1f}, "
            f"{len(samples)} samples)")


def report(launch: Path, title: str, samples: Sequence[str]) -> dict:
    """Print one run's table; returns its figures (also written to figures.json)."""
    if not (launch / "run.json").is_file() or not (launch / "trace.txt").is_file():
        raise SystemExit(f"{launch}: no run.json and trace.txt (no finished run to report)")
    record = json.loads((launch / "run.json").read_text())
    rows = read_trace(launch / "trace.txt")
    steps = by_step(rows)
    # a per-sample task is tagged with its sample's name (MMSEQS_TAXONOMY: sample:database)
    per_sample = [r for r in rows if r["tag"].split(":", 1)[0] in samples]
    per_sample_ms = sum(number(r["realtime"]) for r in per_sample)
    per_sample_steps = {step_name(r) for r in per_sample}
    routed = sum(record["routed"].values())
    over_2g = [s.step for s in steps if s.step in per_sample_steps and s.peak_rss >= 2 * 10**9]
    figures = {
        "title": title, "date": record["date"], "commit": record["commit"],
        "wall_s": record["wall_s"], "samples": len(samples), "routed_to_bertax": routed,
        "per_sample_task_s": round(per_sample_ms / 1000 / max(len(samples), 1), 2),
        "wall_per_sample_s": round(record["wall_s"] / max(len(samples), 1), 2),
        "load_avg_1min": load_text(record["load_avg_1min"]), "steps_at_or_over_2GB": over_2g,
    }
    (launch / "figures.json").write_text(json.dumps(figures, indent=1))
    print(f"\n### {title}\n")
    print(f"finished {record['date']}, commit {record['commit']}: whole run "
          f"{record['wall_s']:,.0f} s wall; load average (1 min) during the run "
          f"{figures['load_avg_1min']}; reads routed to BERTax: {routed:,}")
    if len(samples) > 1:
        print(f"{len(samples)} samples: per-sample tasks {per_sample_ms / 1000:,.0f} s in all, "
              f"{figures['per_sample_task_s']} s per sample; whole run "
              f"{figures['wall_per_sample_s']} s wall per sample")
    print(f"per-sample steps with peak RSS of 2 GB or more: {', '.join(over_2g) or 'none'}\n")
    print(step_table(steps, per_sample_steps), flush=True)
    return figures


# --- the two kinds of benchmark -----------------------------------------------------------------


def ensure_taxdump(data: Path, outdir: Path) -> Path:
    """The shared taxdump, gunzipped (MMseqs2 reads plain .dmp files)."""
    folder = outdir / "taxdump"
    if not (folder / "nodes.dmp").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("nodes", "names", "merged"):
            with gzip.open(data / "taxdump" / f"{name}.dmp.gz", "rb") as src, \
                    open(folder / f"{name}.dmp", "wb") as dst:
                shutil.copyfileobj(src, dst)
    return folder


def write_reference(data: Path, folder: Path) -> tuple[Path, Path]:
    """REFERENCE's genomes as one FASTA (gz members joined) and their seq2taxid rows."""
    fasta, mapping = folder / "reference.fa.gz", folder / "seq2taxid.tsv"
    if fasta.is_file() and mapping.is_file():
        return fasta, mapping
    folder.mkdir(parents=True, exist_ok=True)
    ids: set[str] = set()
    with open(fasta, "wb") as out:
        for gid in REFERENCE:
            path = data / "genomes" / f"{gid}.fa.gz"
            ids.update(read.id for read in read_records(path))
            out.write(path.read_bytes())
    with open(data / "seq2taxid.tsv") as src, open(mapping, "w") as out:
        out.writelines(line for line in src if line.split("\t", 1)[0] in ids)
    return fasta, mapping


def sheet(path: Path, samples: Sequence[tuple[str, Path]]) -> Path:
    with open(path, "w") as fh:
        fh.write("sample,fastq_1,fastq_2\n")
        fh.writelines(f"{name},{fastq},\n" for name, fastq in samples)
    return path


def make_sample(folder: Path, name: str, n: int, pools: tuple[Pool, Pool], fraction: float,
                seed: int) -> Path:
    fastq = folder / f"{name}.fastq.gz"
    if not fastq.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        counts = write_sample(fastq, name, n, *pools, fraction, random.Random(seed))
        print(f"[{now()}] {fastq}: {counts} in {time.monotonic() - start:.0f} s", flush=True)
    return fastq


def saved_tiers(build: Path) -> list[tuple[str, str, Path]]:
    """(db_name, db_type, prefix) of the databases the build run saved, nucleotide first."""
    tiers = []
    for name, db_type in (("reference", "nucleotide"), ("reference_proteins", "protein")):
        prefix = build / "results" / "reference" / name / "mmseqs_db" / name
        if prefix.with_name(f"{name}.dbtype").is_file():
            tiers.append((name, db_type, prefix))
    return tiers


def scale(args: argparse.Namespace) -> None:
    outdir = args.outdir
    tier_label = "nt" if args.skip_protein_db else "nt+aa"
    pools: tuple[Pool, Pool] | None = None
    if not args.skip_run:
        taxdump = ensure_taxdump(args.data, outdir)
        fasta, mapping = write_reference(args.data, outdir / "reference")
        pools = (Pool.load(args.data, REFERENCE), Pool.load(args.data, OUTSIDE))
        build = outdir / "build"
        if not saved_tiers(build):
            fastq = make_sample(outdir / "reads", "build_1k", 1000, pools,
                                args.outside_fraction, args.seed)
            run_pipeline(build, REPO, [
                "--input", str(sheet(outdir / "reads" / "build.csv", [("build_1k", fastq)])),
                "--reference_fasta", str(fasta), "--tax_mapping", str(mapping),
                "--taxdump", str(taxdump), "--mmseqs_kmer_length", str(args.kmer),
                "--save_reference", *(["--skip_protein_db"] if args.skip_protein_db else []),
            ], keep_work=args.keep_work)
        tiers = [t for t in saved_tiers(build) if t[1] == "nucleotide" or not args.skip_protein_db]
        databases = outdir / f"databases_{tier_label}.csv"
        databases.write_text("db_name,db_type,db_path\n"
                             + "".join(f"{n},{t},{p}\n" for n, t, p in tiers))
    if (outdir / "build" / "run.json").is_file():
        report(outdir / "build", "reference build (once; 1,000-read sample)", ["build_1k"])
    for n in args.reads:
        name = f"reads_{n}"
        launch = outdir / f"run_{n}_{tier_label}"
        if not args.skip_run:
            assert pools is not None
            fastq = make_sample(outdir / "reads", name, n, pools, args.outside_fraction,
                                args.seed + n)
            run_pipeline(launch, REPO, [
                "--input", str(sheet(outdir / "reads" / f"{name}.csv", [(name, fastq)])),
                "--databases", str(databases), "--taxdump", str(taxdump),
                "--mmseqs_kmer_length", str(args.kmer),
            ], keep_work=args.keep_work)
        report(launch, f"{n:,} reads, tiers {tier_label}", [name])


def many(args: argparse.Namespace) -> None:
    """K samples of M reads against the test profile's reference (the test genomes' first
    150 kb; the test data's absent genera for the outside fraction); with --full-taxdump the
    shared NCBI dump replaces the profile's 500-taxa subset, as a real run would have it."""
    label = args.label or "this"
    dump = "_fulltax" if args.full_taxdump else ""
    launch = args.outdir / f"many_{label}_{args.samples}x{args.sample_reads}{dump}"
    names = [f"s{i:03d}" for i in range(1, args.samples + 1)]
    if not args.skip_run:
        pools = (Pool.load(args.data, TEST_REFERENCE, MAX_REF_BP), Pool.load(args.data, ABSENT))
        folder = args.outdir / f"reads_many_{args.samples}x{args.sample_reads}"
        samples = [(name, make_sample(folder, name, args.sample_reads, pools,
                                      args.outside_fraction, args.seed + i))
                   for i, name in enumerate(names)]
        pipeline = args.pipeline.resolve()
        # another checkout runs its own hytax (the venv's is this checkout's, installed editable)
        env = {} if pipeline == REPO else {"PYTHONPATH": str(pipeline / "src")}
        run_pipeline(launch, pipeline, [
            "-profile", "test", "--input", str(sheet(folder / "samplesheet.csv", samples)),
            *(["--skip_protein_db"] if args.skip_protein_db else []),
            *(["--taxdump", str(ensure_taxdump(args.data, args.outdir))]
              if args.full_taxdump else []),
        ], keep_work=args.keep_work, env_extra=env)
    report(launch, f"{args.samples} samples x {args.sample_reads} reads, -profile test "
           f"({label}{', full taxdump' if args.full_taxdump else ''})", names)


def read_counts(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--reads", type=read_counts, action="extend", default=[],
                        help="reads per run; repeatable or a list (100000,1000000)")
    parser.add_argument("--samples", type=int, default=0,
                        help="many-sample run: this many samples against -profile test")
    parser.add_argument("--sample-reads", type=int, default=200)
    parser.add_argument("--pipeline", type=Path, default=REPO,
                        help="the checkout to run (many-sample runs)")
    parser.add_argument("--full-taxdump", action="store_true",
                        help="many-sample run: the shared NCBI taxdump, not the profile's")
    parser.add_argument("--label", help="names the many-sample run's folder (e.g. before)")
    parser.add_argument("--outside-fraction", type=float, default=0.06,
                        help="share of reads from genera the reference lacks")
    parser.add_argument("--skip-protein-db", action="store_true",
                        help="nucleotide tier only (build, and the runs' databases sheet)")
    parser.add_argument("--kmer", type=int, default=13, help="--mmseqs_kmer_length")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-run", action="store_true", help="tables from earlier runs")
    parser.add_argument("--keep-work", action="store_true")
    args = parser.parse_args(argv)
    if not args.reads and not args.samples:
        parser.error("give --reads N and/or --samples K")
    args.outdir = args.outdir.resolve()
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.reads:
        scale(args)
    if args.samples:
        many(args)


if __name__ == "__main__":
    main()
