#!/usr/bin/env python3
"""Hybrid benchmark: MMseqs2 nucleotide and protein tiers, BERTax, and their hybrid.

For the BERTax paper's two splits, "similar" (random fragments per genus; the references hold
every genome) and "non-similar" (whole genera held out of the references and of the model's
training), at each fragment length:

1. samples labelled fragments with `hytax fragments`' library functions (one sample, split
   twice), at most `--max-test` test fragments per length;
2. builds two MMseqs2 references from the split's training genomes only: nucleotide
   (`createdb`, `createtaxdb --tax-db-mode 0` on a taxdump subset, `createindex --search-type 3
   -k K`) and protein (the genes `hytax genes` finds in the same genomes, `createdb`,
   `createtaxdb`, `createindex`); searches the fragments the way the pipeline's MMSEQS_TAXONOMY
   step does (reads renamed to their number, `mmseqs taxonomy --tax-lineage 1
   --tax-output-mode 2`, with `--search-type 3` against the nucleotide reference and a
   translated search against the protein one, `createtsv`, `convertalis`, both tables sorted by
   read number) and turns the tables into claims (`hytax.mmseqs2.claims`);
3. chooses each tier's claim minimums (`hytax.routing.ClaimRule`) on validation sets, never on
   the test sets: the non-similar split's *validation genera* (picked among the training genera
   like the test genera, searched against references built without them) bound each tier's
   wrong claims, the similar split's validation fragments (from reference genomes) the genus
   recall of the tiers so far; then the hybrid's route mode and BERTax minimum confidence by
   mean AP on both;
4. scores five configurations per split and length with `hytax evaluate`'s functions: the
   nucleotide tier alone, nucleotide then protein tier, BERTax alone, the previous hybrid
   (nucleotide tier + BERTax, with the settings behind the previous figures) and the full hybrid
   (nucleotide -> protein -> BERTax): accuracy, precision of answered reads, average precision
   and share classified per rank; PR curves;
5. writes results.json, a Markdown report and PNGs into --outdir and prints the chosen minimums,
   the headline comparison and the protein tier's costs.

    python benchmarks/hybrid_benchmark.py --data ../shared/data --outdir benchmark-out [--mini]

References, gene predictions, searches and BERTax predictions are reused by a later run when
their inputs are the same (keyed by content). Deterministic for a given --seed and --threads.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hytax import mmseqs2
from hytax.data import (
    RANKS,
    Fragment,
    Genome,
    LengthSpec,
    choose_heldout_genera,
    genome_seed,
    label_genomes,
    plan_quotas,
    read_genomes,
    read_labels,
    sample_genome,
    split_nonsimilar,
    split_similar,
    write_heldout,
    write_split,
)
from hytax.errors import HytaxError
from hytax.evaluate import RankResult, read_probabilities, score_rank
from hytax.evaluate import read_predictions as read_calls
from hytax.genes import write_proteins
from hytax.merge import merge
from hytax.predict import PredictOptions, predict_file
from hytax.routing import ClaimRule, route, write_tier_claims
from hytax.seqio import read_records
from hytax.tables import read_claims, write_claims
from hytax.taxonomy import Taxonomy, write_subset

REPO = Path(__file__).resolve().parents[1]
SPLITS = ("nonsimilar", "similar")
TIERS = ("nt", "aa")  # in routing order
DB_TYPES = {"nt": "nucleotide", "aa": "protein"}
TIER_LABELS = {"nt": "nucleotide", "aa": "protein"}
METHODS = ("nt", "nt_aa", "bertax", "previous", "hybrid")
METHOD_LABELS = {
    "nt": "MMseqs2 nucleotide",
    "nt_aa": "MMseqs2 nucleotide + protein",
    "bertax": "BERTax alone",
    "previous": "previous hybrid (nucleotide + BERTax)",
    "hybrid": "full hybrid (nucleotide + protein + BERTax)",
}
MAX_AMBIGUOUS = 0.0008  # hytax fragments' default (paper: 0.08 %)
MAX_COVERAGE = 2.0
TIME = Path("/usr/bin/time")  # GNU time: peak memory of each MMseqs2 step, where installed

# --mini: small genomes of all four superkingdoms, several phyla with two or more genera (so whole
# genera can be held out), including genera hytax-mini held out of its training.
MINI_GENOMES = (
    "Shewanella_baltica_OS185_500kb", "Zinderia_insecticola_CARI",
    "Acinetobacter_baumannii_Kloci_x10", "Banthracis_slice", "Anoxybacillus_amylolyticus_section",
    "Lactococcus_lactis_nisin", "Akkermansia_muciniphila_BAA835_500kb",
    "Methanohalophilus_mahii_region", "Mancarchaeum_acidiphilum_Mia14",
    "Scerevisiae_chrI", "Fusarium_equiseti_Z18755", "Gallus_gallus_chr1_170kb",
    "Cryptosporidium_hominis_AAEL01000195", "Athaliana_chloroplast", "Anopheles_gambiae_BN000066",
    "Mumps_virus", "Measles_virus", "Hepatitis_A_virus", "Enterovirus_D68_Fermon",
    "Lambda_phage", "Porcine_parvovirus", "Chikungunya_virus",
)


@dataclass(frozen=True)
class HybridSetting:
    """How the tiers' kept claims and BERTax are combined."""

    route: str  # hytax route --route
    min_confidence: float  # hytax merge --min-confidence
    lca_mode: int = 3  # mmseqs taxonomy --lca-mode of the nucleotide search


# The previous hybrid, as the figures before the protein tier were made: the setting its tuning
# chose per split (the non-similar one searched with --lca-mode 1).
PREVIOUS: dict[str, tuple[ClaimRule, HybridSetting]] = {
    "nonsimilar": (ClaimRule({"genus": 0.95}, 0.5), HybridSetting("below_rank", 0.2, 1)),
    "similar": (ClaimRule({}, 0.0), HybridSetting("below_rank", 0.2, 3)),
}


# --- small helpers -------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def identity_text(min_identity: dict[str, float]) -> str:
    """As `--min-identity` takes it: 'genus=0.85,phylum=0.7' (ranks top down), or 'none'."""
    return ",".join(f"{r}={min_identity[r]:g}" for r in RANKS if r in min_identity) or "none"


def rule_text(rule: dict) -> str:
    """A rule as rule_json gives it, in the pipeline's parameter names."""
    return (f"min_identity {identity_text(rule['min_identity'])}, "
            f"min_aln_fraction {rule['min_aln_fraction']:g}")


def fingerprint(*parts: object) -> str:
    """A key for reusing an output: the bytes of files, the text of anything else."""
    digest = hashlib.sha1()
    for part in parts:
        digest.update(part.read_bytes() if isinstance(part, Path) and part.is_file()
                      else str(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def reusable(stamp: Path, key: str) -> dict | None:
    """The stamp's record when it was written for the same key."""
    if stamp.is_file():
        record = json.loads(stamp.read_text())
        if record.get("key") == key:
            return record
    return None


def stamp_write(stamp: Path, key: str, **record: object) -> dict:
    data = {"key": key, **record}
    stamp.write_text(json.dumps(data, indent=1) + "\n")
    return data


@dataclass
class Step:
    seconds: float
    max_rss_mib: float | None


@dataclass
class Mmseqs:
    """Runs `mmseqs` subcommands with a shared log; fails with the log's tail."""

    threads: int
    kmer: int
    log_path: Path

    def __call__(self, *args: str | Path | int) -> Step:
        cmd = ["mmseqs", *map(str, args)]
        rss = self.log_path.with_suffix(".rss")
        wrapped = [str(TIME), "-f", "%M", "-o", str(rss), *cmd] if TIME.is_file() else cmd
        started = time.monotonic()
        with open(self.log_path, "a") as fh:
            fh.write("\n$ " + " ".join(cmd) + "\n")
            fh.flush()
            done = subprocess.run(wrapped, stdout=fh, stderr=subprocess.STDOUT, check=False)
        seconds = time.monotonic() - started
        if done.returncode:
            tail = self.log_path.read_text().splitlines()[-20:]
            raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n" + "\n".join(tail))
        max_rss = None
        if rss.is_file():
            max_rss = int(rss.read_text().split()[-1]) / 1024
            rss.unlink()
        return Step(round(seconds, 2), None if max_rss is None else round(max_rss, 1))


def cap(fragments: list[Fragment], n: int, rng: np.random.Generator) -> list[Fragment]:
    """At most n fragments, chosen at random, kept in their original order."""
    if len(fragments) <= n:
        return fragments
    keep = np.sort(rng.choice(len(fragments), size=n, replace=False))
    return [fragments[i] for i in keep]


def by_length(fragments: Iterable[Fragment], length: int) -> list[Fragment]:
    return [f for f in fragments if len(f.seq) == length]


def folder_bytes(folder: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in folder.glob(pattern) if p.is_file())


# --- data ----------------------------------------------------------------------------------------


def select_genomes(
    data: Path, wanted: Sequence[str] | None, outdir: Path, max_mb: float | None = None
) -> Path:
    """Write the genomes table restricted to `wanted` (all when None) and to genomes of at most
    `max_mb` Mb; return its path."""
    with open(data / "genomes.tsv", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        fields = list(reader.fieldnames or [])
        rows = [r for r in reader if wanted is None or r["genome_id"] in wanted]
    if max_mb is not None:
        rows = [r for r in rows if int(r["length"]) <= max_mb * 1e6]
    if wanted is not None:
        missing = set(wanted) - {r["genome_id"] for r in rows}
        if missing:
            raise SystemExit(f"genomes not in {data / 'genomes.tsv'}: {', '.join(sorted(missing))}")
    table = outdir / "genomes.tsv"
    with open(table, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return table


def model_config(model: Path) -> dict:
    return json.loads((model / "config.json").read_text())


def make_taxdump(data: Path, table: Path, model: Path, outdir: Path) -> Path:
    """A taxdump subset with the lineages of every genome and model class (fast createtaxdb)."""
    taxdump = outdir / "taxdump"
    taxids = outdir / "taxids.txt"
    with open(table, newline="") as fh:
        ids = {int(r["taxid"]) for r in csv.DictReader(fh, delimiter="\t")}
    for classes in model_config(model)["classes"].values():
        ids |= {int(c["taxid"]) for c in classes if int(c["taxid"])}
    text = "".join(f"{t}\n" for t in sorted(ids))
    if not (taxdump / "nodes.dmp").is_file() or not taxids.is_file() or taxids.read_text() != text:
        taxids.write_text(text)
        write_subset(data / "taxdump", taxids, taxdump)
    return taxdump


def sample_fragments(
    table: Path, genome_dir: Path, taxdump: Path, lengths: list[int], per_superkingdom: int,
    per_genus: int, seed: int,
) -> tuple[list[Genome], list[Fragment]]:
    """`hytax fragments`' sampling: even over genera per superkingdom, then over genomes."""
    genomes = read_genomes(table, genome_dir)
    label_genomes(genomes, taxdump)
    specs = [LengthSpec(n, n) for n in lengths]
    quotas = plan_quotas(genomes, specs, per_superkingdom, per_genus, MAX_COVERAGE)
    fragments: list[Fragment] = []
    for genome in genomes:
        wants = [(s, quotas[(genome.genome_id, s)]) for s in specs]
        wants = [(s, n) for s, n in wants if n > 0]
        if wants:
            got, _ = sample_genome(genome, wants, MAX_AMBIGUOUS,
                                   genome_seed(seed, genome.genome_id))
            fragments.extend(got)
    return genomes, fragments


def read_heldout_file(path: Path) -> set[int]:
    with open(path, newline="") as fh:
        return {int(r["genus_taxid"]) for r in csv.DictReader(fh, delimiter="\t")}


def model_heldout(model: Path) -> Path | None:
    """The held-out genera file the model's training names, where it exists here."""
    name = model_config(model).get("training", {}).get("heldout_genera_file")
    if not name:
        return None
    for path in (Path(name), REPO / name, model / name):
        if path.is_file():
            return path
    return None


@dataclass
class SplitData:
    name: str
    test: dict[int, list[Fragment]]
    val: list[Fragment]
    reference: list[Genome]
    val_reference: list[Genome]
    heldout: set[int]
    val_heldout: set[int]


def make_splits(
    genomes: list[Genome], fragments: list[Fragment], args: argparse.Namespace,
    heldout_file: Path | None,
) -> list[SplitData]:
    out = []
    for split in SPLITS:
        rng = np.random.default_rng([args.seed, SPLITS.index(split)])
        if split == "similar":
            parts = split_similar(fragments, args.test_fraction, args.val_fraction, rng)
            heldout: set[int] = set()
            val_heldout: set[int] = set()
            val = parts["val"]
            reference = list(genomes)
            val_reference = reference
        else:
            present = {g.labels["genus"] for g in genomes}
            if heldout_file is not None:
                heldout = read_heldout_file(heldout_file) & present
            else:
                heldout = choose_heldout_genera(fragments, args.test_fraction, rng)
            parts = split_nonsimilar(fragments, heldout, args.val_fraction, rng)
            rest = parts["train"] + parts["val"]
            # validation genera: picked among the training genera like the test genera were
            val_heldout = choose_heldout_genera(rest, args.val_genus_fraction, rng)
            val = [f for f in rest if f.genome.labels["genus"] in val_heldout]
            reference = [g for g in genomes if g.labels["genus"] not in heldout]
            val_reference = [g for g in reference if g.labels["genus"] not in val_heldout]
        test = {n: cap(by_length(parts["test"], n), args.max_test, rng) for n in args.lengths}
        val = [f for n in args.lengths for f in cap(by_length(val, n), args.max_val, rng)]
        out.append(SplitData(split, test, val, reference, val_reference, heldout, val_heldout))
    return out


# --- MMseqs2 references --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    db: Path
    tier: str
    key: str  # changes whenever the database would
    build: dict  # steps' seconds and peak memory, sizes


def reference_folder(outdir: Path, tier: str, genomes: list[Genome], kmer: int
                     ) -> tuple[Path, dict, str]:
    manifest = {"tier": tier, "genomes": sorted(g.genome_id for g in genomes)}
    if tier == "nt":
        manifest["kmer"] = kmer
    key = hashlib.sha1(json.dumps(manifest).encode()).hexdigest()[:10]
    return outdir / "refs" / f"{tier}-{key}", manifest, key  # one build per set: splits share


def genome_proteins(genome: Genome, data: Path, outdir: Path) -> dict:
    """`hytax genes` for one genome, kept for every reference that holds the genome."""
    folder = outdir / "genes"
    folder.mkdir(exist_ok=True)
    faa, tsv = folder / f"{genome.genome_id}.faa", folder / f"{genome.genome_id}.tsv"
    stamp = folder / f"{genome.genome_id}.json"
    key = fingerprint(genome.path.stat().st_size, genome.path.stat().st_mtime_ns)
    if (done := reusable(stamp, key)) is not None:
        return done
    started = time.monotonic()
    try:
        genes = write_proteins(fasta=genome.path, mapping=data / "seq2taxid.tsv",
                               proteins_out=faa, mapping_out=tsv).genes
    except HytaxError as exc:  # no gene in it: the genome adds no protein
        log(f"genes: {exc}")
        faa.write_text("")
        tsv.write_text("")
        genes = 0
    return stamp_write(stamp, key, genes=genes, seconds=round(time.monotonic() - started, 2))


def build_reference(
    mm: Mmseqs, tier: str, name: str, genomes: list[Genome], data: Path, taxdump: Path,
    outdir: Path,
) -> Reference:
    """The tier's database of `genomes` (createdb + createtaxdb --tax-db-mode 0 + createindex);
    reused when the same genomes (and k) were built before."""
    folder, manifest, key = reference_folder(outdir, tier, genomes, mm.kmer)
    db = folder / "ref"
    done = folder / "manifest.json"
    if done.is_file() and json.loads(done.read_text()) == manifest:
        log(f"{TIER_LABELS[tier]} reference {name}: reused {folder.name} ({len(genomes)} genomes)")
        return Reference(db, tier, key, json.loads((folder / "build.json").read_text()))
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    tmp = folder / "tmp"
    log(f"{TIER_LABELS[tier]} reference {name}: {len(genomes)} genomes")
    build: dict = {"genomes": len(genomes), "bases": sum(g.length or 0 for g in genomes)}
    if tier == "nt":
        build["createdb"] = mm("createdb", *[g.path for g in genomes], db, "--dbtype", "2")
        mapping = data / "seq2taxid.tsv"
        index_args: list[str | int] = ["--search-type", "3", "-k", mm.kmer]
    else:
        genes = [genome_proteins(g, data, outdir) for g in genomes]
        build["genes"] = {"seconds": round(sum(g["seconds"] for g in genes), 1),
                          "proteins": sum(g["genes"] for g in genes),
                          "genomes_without_genes": sum(1 for g in genes if not g["genes"])}
        faa, mapping = folder / "proteins.faa", folder / "proteins.tsv"
        for suffix, out in ((".faa", faa), (".tsv", mapping)):
            with open(out, "wb") as dst:
                for g in genomes:
                    with open(outdir / "genes" / f"{g.genome_id}{suffix}", "rb") as src:
                        shutil.copyfileobj(src, dst)
        build["createdb"] = mm("createdb", faa, db, "--dbtype", "1")
        index_args = []
    build["createtaxdb"] = mm("createtaxdb", db, tmp, "--ncbi-tax-dump", taxdump,
                              "--tax-mapping-file", mapping, "--tax-db-mode", "0",
                              "--threads", mm.threads)
    build["createindex"] = mm("createindex", db, tmp, *index_args, "--threads", mm.threads)
    shutil.rmtree(tmp, ignore_errors=True)
    if tier == "aa":
        (folder / "proteins.faa").unlink()  # the database holds them; genes/ keeps each genome's
    build = {k: asdict(v) if isinstance(v, Step) else v for k, v in build.items()}
    build["db_bytes"] = folder_bytes(folder, "ref*")
    build["index_bytes"] = folder_bytes(folder, "ref.idx*")
    (folder / "build.json").write_text(json.dumps(build, indent=1) + "\n")
    done.write_text(json.dumps(manifest, indent=1) + "\n")
    return Reference(db, tier, key, build)


def sort_by_query(raw: Path, out: Path) -> None:
    """`sort -k1,1n -s`: rows by read number, a read's rows in MMseqs2's order."""
    lines = [line for line in raw.read_text().splitlines() if line]
    lines.sort(key=lambda line: int(line.split("\t", 1)[0]))
    out.write_text("".join(f"{line}\n" for line in lines))


def search(mm: Mmseqs, reads: Path, ref: Reference, work: Path, lca_mode: int = 3
           ) -> tuple[Path, Path, float]:
    """What the pipeline's MMSEQS_TAXONOMY step does: reads renamed to their number in `reads`,
    `mmseqs taxonomy`, createtsv, convertalis, both tables sorted by read number. Returns (LCA
    TSV, alignment TSV, seconds the search took when it ran)."""
    work.mkdir(parents=True, exist_ok=True)
    lca, aln, stamp = work / "lca.tsv", work / "aln.tsv", work / "search.json"
    key = fingerprint(reads, ref.key, lca_mode, mm.kmer, mmseqs2.ALN_COLUMNS)
    if lca.is_file() and aln.is_file() and (done := reusable(stamp, key)) is not None:
        return lca, aln, done["seconds"]
    if not any(True for _ in read_records(reads)):  # MMseqs2 fails on a query without reads
        lca.write_text("")
        aln.write_text("")
        return lca, aln, 0.0
    numbered, qdb, res, tmp = work / "query.fa", work / "qdb", work / "res", work / "tmp"
    with numbered.open("w") as out:
        for n, read in enumerate(read_records(reads), start=1):
            out.write(f">{n}\n{read.seq}\n")
    for path in [*work.glob("qdb*"), *work.glob("res*")]:
        path.unlink()
    if ref.tier == "nt":
        search_args: list[str | int] = ["--search-type", "3", "-k", mm.kmer]
        convert_args: list[str | int] = ["--search-type", "3"]
    else:
        # translated search; MMseqs2 14's ORF pre-filter aborts on an indexed protein database
        # (free(): invalid pointer), so it is off: the indexed search is also much faster
        search_args, convert_args = ["--orf-filter", "0"], []
    started = time.monotonic()
    mm("createdb", numbered, qdb, "--dbtype", "2")
    mm("taxonomy", qdb, ref.db, res, tmp, "--tax-lineage", "1", "--tax-output-mode", "2",
       "--lca-mode", lca_mode, "--threads", mm.threads, *search_args)
    mm("createtsv", qdb, res, work / "lca.raw", "--threads", mm.threads)
    mm("convertalis", qdb, ref.db, f"{res}_aln", work / "aln.raw", "--format-output",
       mmseqs2.ALN_COLUMNS, "--threads", mm.threads, *convert_args)
    seconds = round(time.monotonic() - started, 2)
    for name, out_path in (("lca", lca), ("aln", aln)):
        sort_by_query(work / f"{name}.raw", out_path)
        (work / f"{name}.raw").unlink()
    shutil.rmtree(tmp, ignore_errors=True)
    for path in [*work.glob("qdb*"), *work.glob("res*"), numbered]:
        path.unlink()
    stamp_write(stamp, key, seconds=seconds)
    return lca, aln, seconds


def tier_claims(
    mm: Mmseqs, reads: Path, ref: Reference, taxonomy: Taxonomy, work: Path, lca_mode: int = 3,
) -> tuple[Path, float]:
    """The tier's claims on `reads` before any minimum (hytax claims without --min-*), and the
    search's seconds."""
    name = f"{ref.tier}_lca{lca_mode}"
    lca, aln, seconds = search(mm, reads, ref, work / f"mmseqs_{name}", lca_mode)
    raw = work / f"{name}.claims.tsv"
    write_claims(raw, mmseqs2.claims(units=reads, raw=[lca, aln], taxonomy=taxonomy,
                                     db_type=DB_TYPES[ref.tier], source=f"mmseqs2:{ref.tier}"))
    return raw, seconds


# --- methods -------------------------------------------------------------------------------------


def predict(model: Path, fasta: Path, out: Path, threads: int, probabilities: Path | None = None
            ) -> None:
    """`hytax predict` on CPU; reused when the reads and the model are the same."""
    stamp = out.with_name(out.name + ".json")
    weights = model / "model.safetensors"
    key = fingerprint(fasta, model / "config.json",
                      weights.stat().st_size if weights.is_file() else 0,
                      weights.stat().st_mtime_ns if weights.is_file() else 0,
                      f"probabilities: {probabilities is not None}")
    if out.is_file() and reusable(stamp, key) is not None:
        return
    options = PredictOptions(device="cpu", threads=threads, progress="off")
    if not any(True for _ in read_records(fasta)):
        out.write_text("")  # nothing routed: merge treats an empty table as no predictions
    else:
        predict_file(model, fasta, None, out, probabilities, options)
    stamp_write(stamp, key)


def subset_predictions(source: Path, fasta: Path, out: Path) -> None:
    """Rows of a predictions TSV for the reads of `fasta` (the routed reads)."""
    wanted = {r.id for r in read_records(fasta)}
    with open(source) as src, open(out, "w") as dst:
        dst.write(src.readline())
        for line in src:
            if line.split("\t", 1)[0] in wanted:
                dst.write(line)


def combine(
    units: Path, raw: dict[str, Path], rules: dict[str, ClaimRule], setting: HybridSetting,
    bertax: Path | None, taxonomy: Taxonomy, out: Path,
) -> int:
    """hytax claims (each tier cut by its rule) -> route (tiers in the order of `raw`) ->
    merge with BERTax's rows for the routed reads (none when `bertax` is None). Returns the
    number of reads routed on."""
    cut = []
    for tier, path in raw.items():
        tier_out = out.with_suffix(f".{tier}.claims.tsv")
        write_tier_claims((claim for _, claim in read_claims(path)), rules[tier], tier_out)
        cut.append(tier_out)
    kept, routed, predicted = (out.with_suffix(s) for s in (".kept.tsv", ".routed.fa",
                                                            ".routed.bertax.tsv"))
    _, n_routed = route(units=units, tiers=cut, mode=setting.route, route_rank="genus",
                        kept_out=kept, routed_out=routed)
    if bertax is None:
        predicted.write_text("")
    else:
        subset_predictions(bertax, routed, predicted)
    merge(units=units, claims=kept, bertax=predicted, taxonomy=taxonomy,
          min_confidence=setting.min_confidence, output=out)
    for path in (*cut, routed, predicted):
        path.unlink()
    return n_routed


# --- scoring -------------------------------------------------------------------------------------


def score(
    predictions: Path, labels: Path, probabilities: Path | None = None, model: Path | None = None
) -> tuple[dict, dict[str, RankResult]]:
    """hytax evaluate's metrics per rank against the truth labels (raw taxids, no model mapping:
    a method is right only with the true taxon), plus the row bookkeeping."""
    ranks = list(RANKS)
    _, calls, _ = read_calls(predictions, ranks)  # raises on a read listed twice
    truth_all = read_labels(labels)
    probs = None
    if probabilities is not None and model is not None:
        name_to_taxid = {r: {"unknown": 0} for r in ranks}
        for rank, classes in model_config(model)["classes"].items():
            if rank in name_to_taxid:
                name_to_taxid[rank].update({c["name"]: int(c["taxid"]) for c in classes})
        probs = read_probabilities(probabilities, ranks, name_to_taxid)
    with open(predictions) as fh:
        rows = sum(1 for _ in fh) - 1
    summary: dict = {
        "rows": rows,
        "reads": len(truth_all),
        "missing": sum(1 for r in truth_all if r not in calls),
        "extra": sum(1 for r in calls if r not in truth_all),
        "ranks": {},
    }
    results = {}
    for rank in ranks:
        truth = {r: lab[rank] for r, lab in truth_all.items()}
        result = score_rank(rank, truth, calls, None)
        m = result.metrics
        entry = {k: m[k] for k in ("reads", "classified", "accuracy", "precision",
                                   "mean_class_accuracy", "average_precision")}
        entry["right"] = round(m["accuracy"] * m["reads"])
        if probs is not None:
            entry["average_precision_all_classes"] = score_rank(
                rank, truth, calls, probs).metrics["average_precision"]
        summary["ranks"][rank] = entry
        results[rank] = result
    return summary, results


def plot_pr(path: Path, title: str, curves: dict[str, RankResult]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"nt": (":", 2.4), "nt_aa": ("-.", 2.0), "bertax": ("--", 1.4),
              "previous": ((0, (1, 1)), 1.4), "hybrid": ("-", 1.4)}
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    for method, result in curves.items():
        p, r = result.curve_top1
        ap = result.metrics["average_precision_top1"]
        ls, lw = styles[method]
        ax.step(np.r_[0.0, r], np.r_[p[:1] if len(p) else [1.0], p], where="post", ls=ls,
                lw=lw, label=f"{METHOD_LABELS[method]} (AP {ap:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=title)
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- choosing each tier's claim minimums ---------------------------------------------------------


@dataclass
class Evidence:
    """One tier's claims (before any minimum) on one validation set, one row per read in the
    reads' order."""

    lengths: np.ndarray
    identity: np.ndarray
    aln_fraction: np.ndarray
    taxids: np.ndarray  # reads x RANKS
    truth: np.ndarray  # reads x RANKS

    @classmethod
    def load(cls, claims: Path, reads: Path, labels: Path) -> Evidence:
        truth = read_labels(labels)
        lengths = {r.id: len(r.seq) for r in read_records(reads)}
        rows = [c for _, c in read_claims(claims)]
        return cls(
            lengths=np.array([lengths[c.read_id] for c in rows], dtype=int),
            identity=np.array([c.identity for c in rows]),
            aln_fraction=np.array([c.aln_fraction for c in rows]),
            taxids=np.array([c.taxids for c in rows], dtype=np.int64).reshape(-1, len(RANKS)),
            truth=np.array([[truth[c.read_id][r] for r in RANKS] for c in rows],
                           dtype=np.int64).reshape(-1, len(RANKS)),
        )

    def kept(self, rule: ClaimRule) -> np.ndarray:
        """The taxids `hytax.routing.keep` leaves (reads x RANKS)."""
        needs = np.array(effective(rule.min_identity))
        ok = ((self.aln_fraction >= rule.min_aln_fraction)[:, None]
              & (self.identity[:, None] >= needs[None, :]))
        return np.where(ok, self.taxids, 0)


def effective(minimums: dict[str, float]) -> list[float]:
    """Per rank, the identity a claim needs there: a rank's minimum also holds below it."""
    out, floor = [], 0.0
    for rank in RANKS:
        floor = max(floor, minimums.get(rank, 0.0))
        out.append(floor)
    return out


def cascade(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    """What `hytax route --route below_rank --route-rank genus` keeps of two tiers' kept taxids:
    the first tier that closes the read (claims a genus), else the first partial claim."""
    g = RANKS.index("genus")
    take_first = (first[:, g] != 0) | ((then[:, g] == 0) & (first != 0).any(axis=1))
    return np.where(take_first[:, None], first, then)


@dataclass
class Criterion:
    max_wrong: dict[str, float]  # per rank, share of validation-genus reads
    min_genus_recall: float  # share of the known-genus reads given their genus


def assess(rule: ClaimRule, unknown: Evidence, known: Evidence, lengths: Sequence[int],
           before: dict[str, np.ndarray] | None = None) -> dict:
    """Per length, the tier on its own: wrong claims per rank on validation genera (share of
    their reads), right claims per rank on both validation sets, genus recall on known genera;
    and the tiers so far (`before`: the earlier tiers' kept taxids, routed below_rank): their
    genus recall on known genera, wrong claims per rank and right claims on validation genera."""
    own = {"unknown": unknown.kept(rule), "known": known.kept(rule)}
    tiers = {k: v if before is None else cascade(before[k], v) for k, v in own.items()}
    out: dict = {}
    g = RANKS.index("genus")
    for length in lengths:
        u = unknown.lengths == length
        k = (known.lengths == length) & (known.truth[:, g] != 0)
        right = {name: (taxids == ev.truth) & (taxids != 0) for name, taxids, ev in (
            ("own_u", own["unknown"], unknown), ("own_k", own["known"], known),
            ("tiers_u", tiers["unknown"], unknown), ("tiers_k", tiers["known"], known))}
        wrong_own = (own["unknown"] != 0) & ~right["own_u"]
        wrong_tiers = (tiers["unknown"] != 0) & ~right["tiers_u"]
        n_u = max(1, int(u.sum()))
        out[str(length)] = {
            "unknown_reads": int(u.sum()), "known_genus_reads": int(k.sum()),
            "wrong": {r: round(float(wrong_own[u, i].sum() / n_u), 6)
                      for i, r in enumerate(RANKS)},
            "right_unknown": {r: int(right["own_u"][u, i].sum()) for i, r in enumerate(RANKS)},
            "right_known": {r: int(right["own_k"][k, i].sum()) for i, r in enumerate(RANKS)},
            "genus_recall": round(float(right["own_k"][k, g].mean()), 6) if k.any() else 0.0,
            "tiers_genus_recall": round(float(right["tiers_k"][k, g].mean()), 6) if k.any()
            else 0.0,
            "tiers_wrong": {r: round(float(wrong_tiers[u, i].sum() / n_u), 6)
                            for i, r in enumerate(RANKS)},
            "tiers_right_unknown": {r: int(right["tiers_u"][u, i].sum())
                                    for i, r in enumerate(RANKS)},
        }
    return out


def meets(assessment: dict, criterion: Criterion) -> bool:
    return all(
        all(row["wrong"][r] <= criterion.max_wrong[r] for r in RANKS)
        and row["tiers_genus_recall"] >= criterion.min_genus_recall
        for row in assessment.values()
    )


def placed(assessment: dict, key: str) -> int:
    return sum(sum(row[key].values()) for row in assessment.values())


def choose_rule(
    unknown: Evidence, known: Evidence, lengths: Sequence[int], identity_grid: Sequence[float],
    aln_grid: Sequence[float], criterion: Criterion, before: dict[str, np.ndarray] | None = None,
) -> dict:
    """A tier's minimums. For each alignment-fraction minimum on the grid: per rank from the
    top, the lowest identity minimum on the grid (at least the rank above's) whose wrong claims
    on validation genera stay within the bound at every length (the grid's top where none
    does). Of these candidates, those that meet the criterion (the wrong-claim bounds and, for
    the tiers so far, the genus recall on known genera); of those, the one whose tiers place
    the most reads of validation genera right (summed over ranks), then the most right claims
    on known genera. Where none meets it, the fewest wrong genus claims, then the same order."""
    candidates = []
    for min_aln in aln_grid:
        minimums: dict[str, float] = {}
        for i, rank in enumerate(RANKS):
            floor = max(minimums.values(), default=0.0)
            for value in (v for v in identity_grid if v >= floor):
                minimums[rank] = value
                kept = unknown.kept(ClaimRule({rank: value}, min_aln))[:, i]
                wrong = (kept != 0) & (kept != unknown.truth[:, i])
                if all(wrong[unknown.lengths == n].mean() <= criterion.max_wrong[rank]
                       for n in lengths if (unknown.lengths == n).any()):
                    break
        rule = ClaimRule({r: v for r, v in minimums.items() if v > 0}, min_aln)
        result = assess(rule, unknown, known, lengths, before)
        candidates.append({
            "rule": rule, "assessment": result, "meets": meets(result, criterion),
            "placed": (placed(result, "tiers_right_unknown"), placed(result, "right_known")),
            "worst_wrong_genus": max(r["wrong"]["genus"] for r in result.values()),
        })
    met = [c for c in candidates if c["meets"]]
    if met:
        best = max(met, key=lambda c: c["placed"])  # first (lowest minimum) of ties
    else:
        best = min(candidates, key=lambda c: (c["worst_wrong_genus"],
                                              tuple(-x for x in c["placed"])))
    return {"chosen": best, "candidates": candidates}


def rule_json(rule: ClaimRule) -> dict:
    return {"min_identity": {r: rule.min_identity[r] for r in RANKS if r in rule.min_identity},
            "min_aln_fraction": rule.min_aln_fraction}


# --- the benchmark -------------------------------------------------------------------------------


@dataclass
class Validation:
    """One split's validation set with each tier's claims and BERTax's predictions."""

    split: str
    fasta: Path
    labels: Path
    raw: dict[str, Path] = field(default_factory=dict)
    bertax: Path | None = None


def validate(split: SplitData, mm: Mmseqs, taxonomy: Taxonomy, taxdump: Path, data: Path,
             args: argparse.Namespace) -> Validation | None:
    work = args.outdir / split.name / "val"
    work.mkdir(parents=True, exist_ok=True)
    val = Validation(split.name, work / "val.fa", work / "val.labels.tsv")
    write_split(split.val, val.fasta, val.labels)
    if not split.val:
        return None
    for tier in TIERS:
        ref = build_reference(mm, tier, f"{split.name}-val", split.val_reference, data, taxdump,
                              args.outdir)
        val.raw[tier], _ = tier_claims(mm, val.fasta, ref, taxonomy, work)
    val.bertax = work / "val.bertax.tsv"
    predict(args.model, val.fasta, val.bertax, args.threads)
    return val


def tune_hybrid(
    vals: list[Validation], rules: dict[str, ClaimRule], taxonomy: Taxonomy,
    args: argparse.Namespace,
) -> list[dict]:
    """The full hybrid's mean AP over the ranks on each validation set, per route mode and
    BERTax minimum confidence."""
    rows = []
    for mode in args.tune_route:
        for conf in args.tune_min_confidence:
            setting = HybridSetting(mode, conf)
            row: dict = {"route": mode, "min_confidence": conf, "splits": {}}
            for val in vals:
                out = val.fasta.with_name(f"hybrid_{mode}_conf{conf:g}.tsv")
                n_routed = combine(val.fasta, val.raw, rules, setting, val.bertax, taxonomy, out)
                summary, _ = score(out, val.labels)
                ap = {r: summary["ranks"][r]["average_precision"] for r in RANKS}
                row["splits"][val.split] = {"routed": n_routed, "reads": summary["reads"],
                                            "average_precision": ap,
                                            "mean_average_precision": float(np.mean(list(
                                                ap.values())))}
            row["mean_average_precision"] = round(float(np.mean(
                [s["mean_average_precision"] for s in row["splits"].values()])), 6)
            log(f"tune hybrid: {mode}, min confidence {conf:g}: mean AP "
                f"{row['mean_average_precision']:.3f}")
            rows.append(row)
    return rows


def evaluate_split(
    split: SplitData, mm: Mmseqs, taxonomy: Taxonomy, taxdump: Path, data: Path,
    args: argparse.Namespace, rules: dict[str, ClaimRule], setting: HybridSetting, plots: Path,
) -> dict:
    work = args.outdir / split.name
    refs = {tier: build_reference(mm, tier, split.name, split.reference, data, taxdump,
                                  args.outdir) for tier in TIERS}
    previous_rule, previous = PREVIOUS[split.name]
    results: dict = {"references": {t: r.build for t, r in refs.items()}, "lengths": {}}
    for length, fragments in split.test.items():
        d = work / f"test_{length}"
        d.mkdir(parents=True, exist_ok=True)
        fasta, labels = d / "test.fa", d / "test.labels.tsv"
        write_split(fragments, fasta, labels)
        log(f"{split.name} {length} nt: {len(fragments)} test fragments")
        raw, seconds = {}, {}
        for tier in TIERS:
            raw[tier], seconds[tier] = tier_claims(mm, fasta, refs[tier], taxonomy, d)
        previous_raw = raw["nt"]
        if previous.lca_mode != 3:
            previous_raw, _ = tier_claims(mm, fasta, refs["nt"], taxonomy, d, previous.lca_mode)
        bertax = d / "bertax.tsv"
        predict(args.model, fasta, bertax, args.threads, d / "bertax.probs.jsonl")
        database_only = HybridSetting(setting.route, 1.0)
        routed = {
            "nt": combine(fasta, {"nt": raw["nt"]}, rules, database_only, None, taxonomy,
                          d / "nt.tsv"),
            "nt_aa": combine(fasta, raw, rules, database_only, None, taxonomy, d / "nt_aa.tsv"),
            "previous": combine(fasta, {"nt": previous_raw}, {"nt": previous_rule}, previous,
                                bertax, taxonomy, d / "previous.tsv"),
            "hybrid": combine(fasta, raw, rules, setting, bertax, taxonomy, d / "hybrid.tsv"),
        }
        per_method: dict = {}
        curves: dict[str, dict[str, RankResult]] = {r: {} for r in RANKS}
        for method in METHODS:
            probs = d / "bertax.probs.jsonl" if method == "bertax" else None
            summary, rank_results = score(d / f"{method}.tsv", labels, probs, args.model)
            summary["routed"] = routed.get(method)
            per_method[method] = summary
            for rank in RANKS:
                curves[rank][method] = rank_results[rank]
        for rank in RANKS:
            plot_pr(plots / f"pr_{split.name}_{length}_{rank}.png",
                    f"{split.name}, {length} nt: {rank}", curves[rank])
        results["lengths"][str(length)] = {
            "fragments": len(fragments), "methods": per_method,
            "search_seconds": {t: seconds[t] for t in TIERS},
        }
    return results


def genus_names(taxonomy: Taxonomy, taxids: Iterable[int]) -> dict[str, str]:
    return {str(t): taxonomy.name(t) for t in sorted(taxids)}


def candidate_json(candidate: dict) -> dict:
    return {**rule_json(candidate["rule"]), "meets": candidate["meets"],
            "placed_unknown": candidate["placed"][0], "right_known": candidate["placed"][1],
            "assessment": candidate["assessment"]}


def choose_rules(vals: dict[str, Validation], lengths: list[int], args: argparse.Namespace
                 ) -> tuple[dict[str, ClaimRule], dict]:
    """Each tier's minimums, in routing order, from the validation sets (wrong claims:
    non-similar; genus recall: similar)."""
    criterion = Criterion(
        max_wrong={r: args.max_wrong_genus if r == "genus" else args.max_wrong_above
                   for r in RANKS},
        min_genus_recall=args.min_genus_recall)
    rules: dict[str, ClaimRule] = {}
    report = {}
    before: dict[str, np.ndarray] | None = None
    for tier in TIERS:
        unknown, known = (Evidence.load(vals[s].raw[tier], vals[s].fasta, vals[s].labels)
                          for s in ("nonsimilar", "similar"))
        choice = choose_rule(unknown, known, lengths, args.identity_grid, args.aln_grid,
                             criterion, before)
        chosen = choice["chosen"]
        rules[tier] = chosen["rule"]
        report[tier] = {"chosen": candidate_json(chosen),
                        "candidates": [candidate_json(c) for c in choice["candidates"]]}
        own = {"unknown": unknown.kept(rules[tier]), "known": known.kept(rules[tier])}
        before = own if before is None else {k: cascade(before[k], v) for k, v in own.items()}
        log(f"{TIER_LABELS[tier]} tier: {rule_text(rule_json(chosen['rule']))} "
            f"({'meets' if chosen['meets'] else 'does NOT meet'} the criterion)")
    return rules, {"criterion": asdict(criterion), "tiers": report}


def headline(report: dict) -> list[dict]:
    """Non-similar split, superkingdom: the full hybrid against the previous hybrid."""
    rows = []
    split = report["splits"].get("nonsimilar")
    if split is None:
        return rows
    for length, r in split["results"]["lengths"].items():
        new, old = (r["methods"][m]["ranks"]["superkingdom"] for m in ("hybrid", "previous"))
        rows.append({
            "length": int(length), "fragments": r["fragments"],
            "right": {"hybrid": new["right"], "previous": old["right"]},
            "precision": {"hybrid": new["precision"], "previous": old["precision"]},
            "classified": {"hybrid": new["classified"], "previous": old["classified"]},
            "more_right": new["right"] > old["right"],
            "precision_not_lower": new["precision"] >= old["precision"],
        })
    return rows


def protein_costs(report: dict) -> dict:
    """The protein tier's database builds and translated searches in this run."""
    builds, searches = {}, []
    for name, s in report["splits"].items():
        builds[name] = s["results"]["references"]["aa"]
        if s.get("validation_references"):
            builds[f"{name}-val"] = s["validation_references"]["aa"]
        for length, r in s["results"]["lengths"].items():
            searches.append({"split": name, "length": int(length), "reads": r["fragments"],
                             "seconds": r["search_seconds"]["aa"],
                             "nucleotide_seconds": r["search_seconds"]["nt"]})
    return {"builds": builds, "searches": searches}


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def markdown(report: dict) -> str:
    cfg = report["config"]
    crit = report["rules"]["criterion"]
    lines = [
        "# Hybrid benchmark: MMseqs2 nucleotide and protein tiers, BERTax, hybrid", "",
        f"Command: `{cfg['command']}`", "",
        f"Model `{cfg['model']}`; lengths {', '.join(map(str, cfg['lengths']))} nt; "
        f"seed {cfg['seed']}; nucleotide search `-k {cfg['kmer']}`. AP is the average "
        "precision of the top class over confidence (database tiers: best-hit identity, "
        "amino-acid identity for the protein tier; BERTax: class probability); precision is of "
        "the answered reads; every test fragment counts.", "",
        "## Data", "",
        "| split | genomes | held-out genera | reference genomes | reference Mb "
        "| proteins | test fragments per length | validation fragments | validation genera |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for split, s in report["splits"].items():
        refs = s["results"]["references"]
        per_len = ", ".join(f"{n} nt: {v['fragments']}" for n, v in s["results"]["lengths"].items())
        lines.append(
            f"| {split} | {report['data']['genomes']} | {len(s['heldout_genera'])} "
            f"| {refs['nt']['genomes']} | {refs['nt']['bases'] / 1e6:.1f} "
            f"| {refs['aa']['genes']['proteins']} | {per_len} "
            f"| {s['validation']['fragments']} | {len(s['validation']['genera'])} |")
    for split, s in report["splits"].items():
        if s["heldout_genera"]:
            lines += ["", f"Held-out genera ({split}): {', '.join(s['heldout_genera'].values())}."]
        if s["validation"]["genera"]:
            lines += ["", f"Validation genera ({split}): "
                      f"{', '.join(s['validation']['genera'].values())}."]
    lines += [
        "", "## Claim minimums chosen on validation", "",
        f"Criterion, at every length: a tier's wrong genus claims (a genus given to a read of a "
        f"validation genus, which no validation reference holds) at most "
        f"{pct(crit['max_wrong']['genus'])} of those reads, its wrong phylum and superkingdom "
        f"claims at most {pct(crit['max_wrong']['phylum'])}; the genus recall on known genera "
        f"(similar validation, reads with a genus) of the tiers so far, routed below_rank, at "
        f"least {pct(crit['min_genus_recall'])}. Of the rules that meet it, the one whose tiers "
        "place the most validation-genus reads right.", "",
        "| tier | min identity | min aln fraction | meets | length | wrong sk / phylum / genus "
        "| genus recall, tier / tiers so far | tiers so far: wrong sk / phylum / genus "
        "| tiers so far: right sk / phylum, validation genera |",
        "|---|---|---:|---|---:|---|---|---|---|",
    ]
    for tier, t in report["rules"]["tiers"].items():
        c = t["chosen"]
        ids = identity_text(c["min_identity"])
        for length, a in c["assessment"].items():
            wrong, tiers_wrong = (" / ".join(pct(a[key][r]) for r in RANKS)
                                  for key in ("wrong", "tiers_wrong"))
            right = " / ".join(str(a["tiers_right_unknown"][r]) for r in RANKS[:-1])
            lines.append(
                f"| {TIER_LABELS[tier]} | {ids} | {c['min_aln_fraction']:g} "
                f"| {'yes' if c['meets'] else '**no**'} | {length} ({a['unknown_reads']} / "
                f"{a['known_genus_reads']} reads) | {wrong} | {pct(a['genus_recall'])} / "
                f"{pct(a['tiers_genus_recall'])} | {tiers_wrong} | {right} |")
    lines += ["", "Candidates (one per alignment-fraction minimum, each with the lowest identity "
              "minimums that bound its wrong claims):", "",
              "| tier | min identity | min aln fraction | meets | placed right, validation "
              "genera | right on known genera | worst wrong genus | lowest genus recall, tiers "
              "so far |", "|---|---|---:|---|---:|---:|---:|---:|"]
    for tier, t in report["rules"]["tiers"].items():
        for c in t["candidates"]:
            ids = identity_text(c["min_identity"])
            a = c["assessment"].values()
            lines.append(
                f"| {TIER_LABELS[tier]} | {ids} | {c['min_aln_fraction']:g} "
                f"| {'yes' if c['meets'] else 'no'} | {c['placed_unknown']} | {c['right_known']} "
                f"| {pct(max(x['wrong']['genus'] for x in a))} "
                f"| {pct(min(x['tiers_genus_recall'] for x in a))} |")
    chosen = report["hybrid_setting"]
    lines += ["", "## Hybrid setting tuned on validation", "",
              "| route | min confidence | " + " | ".join(
                  f"{s} mean AP" for s in report["splits"]) + " | mean | chosen |",
              "|---|---:|" + "---:|" * len(report["splits"]) + "---:|---|"]
    for row in report["hybrid_tuning"]:
        mark = "**yes**" if (row["route"], row["min_confidence"]) == (
            chosen["route"], chosen["min_confidence"]) else ""
        cells = " | ".join(pct(row["splits"][s]["mean_average_precision"])
                           for s in report["splits"] if s in row["splits"])
        lines.append(f"| {row['route']} | {row['min_confidence']:g} | {cells} "
                     f"| {pct(row['mean_average_precision'])} | {mark} |")
    lines += ["", "## Headline: non-similar superkingdom, full hybrid vs previous hybrid", "",
              "| length | fragments | right (full / previous) | precision (full / previous) "
              "| classified (full / previous) |", "|---:|---:|---|---|---|"]
    for h in report["headline"]:
        lines.append(
            f"| {h['length']} | {h['fragments']} | {h['right']['hybrid']} / "
            f"{h['right']['previous']} | {pct(h['precision']['hybrid'])} / "
            f"{pct(h['precision']['previous'])} | {pct(h['classified']['hybrid'])} / "
            f"{pct(h['classified']['previous'])} |")
    lines += ["", "## Results (test)", ""]
    for split, s in report["splits"].items():
        for length, r in s["results"]["lengths"].items():
            routed = r["methods"]["hybrid"]["routed"]
            lines += [
                f"### {split}, {length} nt ({r['fragments']} fragments; full hybrid routes "
                f"{routed} to BERTax)", "",
                "| rank | method | AP | accuracy | precision | classified | mean class accuracy |",
                "|---|---|---:|---:|---:|---:|---:|",
            ]
            for rank in RANKS:
                for method in METHODS:
                    m = r["methods"][method]["ranks"][rank]
                    lines.append(
                        f"| {rank} | {METHOD_LABELS[method]} | {pct(m['average_precision'])} "
                        f"| {pct(m['accuracy'])} | {pct(m['precision'])} | {pct(m['classified'])} "
                        f"| {pct(m['mean_class_accuracy'])} |")
            lines.append("")
    costs = report["protein_costs"]
    lines += ["## Protein tier costs in this run", "",
              "| reference | genomes | proteins | genes s | createdb s | createtaxdb s "
              "| createindex s | peak MiB (createindex) | size MB (index) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, b in costs["builds"].items():
        lines.append(
            f"| {name} | {b['genomes']} | {b['genes']['proteins']} | {b['genes']['seconds']:.0f} "
            f"| {b['createdb']['seconds']:.0f} | {b['createtaxdb']['seconds']:.0f} "
            f"| {b['createindex']['seconds']:.0f} | {b['createindex']['max_rss_mib'] or 0:.0f} "
            f"| {b['db_bytes'] / 1e6:.0f} ({b['index_bytes'] / 1e6:.0f}) |")
    lines += ["", "| split | length | reads | translated search s | nucleotide search s |",
              "|---|---:|---:|---:|---:|"]
    for q in costs["searches"]:
        lines.append(f"| {q['split']} | {q['length']} | {q['reads']} | {q['seconds']:.1f} "
                     f"| {q['nucleotide_seconds']:.1f} |")
    lines += ["", f"Wall time: {report['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def summary_text(report: dict) -> str:
    """What the run prints: the chosen minimums, the headline, the protein tier's costs."""
    out = ["chosen claim minimums (validation):"]
    for tier, t in report["rules"]["tiers"].items():
        c = t["chosen"]
        out.append(f"  {TIER_LABELS[tier]} tier: {rule_text(c)}"
                   + ("" if c["meets"] else "  (criterion NOT met)"))
    h = report["hybrid_setting"]
    out.append(f"  hybrid: route {h['route']}, min confidence {h['min_confidence']:g}")
    out.append("non-similar superkingdom, full hybrid vs previous hybrid:")
    for row in report["headline"]:
        out.append(f"  {row['length']} nt: right {row['right']['hybrid']} vs "
                   f"{row['right']['previous']} of {row['fragments']}, precision "
                   f"{pct(row['precision']['hybrid'])} vs {pct(row['precision']['previous'])}")
    out.append("protein searches (s): " + ", ".join(
        f"{q['split']} {q['length']} nt {q['seconds']:.1f}"
        for q in report["protein_costs"]["searches"]))
    return "\n".join(out)


def parse_grid(text: str) -> list[float]:
    return sorted(float(x) for x in text.split(","))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                   help="folder with genomes.tsv, genomes/, seq2taxid.tsv, taxdump/")
    p.add_argument("--outdir", type=Path, default=REPO / "benchmark-out")
    p.add_argument("--out-md", type=Path, help="Markdown report (default: OUTDIR/benchmark.md)")
    p.add_argument("--model", type=Path, default=REPO / "assets" / "models" / "hytax-mini")
    p.add_argument("--mini", action="store_true",
                   help="22 small genomes, few fragments: a ~2-minute run")
    p.add_argument("--genomes", nargs="+", help="genome ids to use (default: all; --mini: 22)")
    p.add_argument("--lengths", type=int, nargs="+", default=[150, 1500])
    p.add_argument("--per-superkingdom", type=int, help="fragments per superkingdom sampled "
                   "(all lengths and splits together; default 3000, --mini 240)")
    p.add_argument("--per-genus", type=int, help="cap per genus (default 200, --mini 40)")
    p.add_argument("--max-test", type=int, help="test fragments per split and length "
                   "(default 500, --mini 50)")
    p.add_argument("--max-val", type=int, help="validation fragments per split and length "
                   "(default 250, --mini 30)")
    p.add_argument("--test-fraction", type=float, default=0.15,
                   help="similar: test share per genus; non-similar: genus share held out "
                        "(when not taken from the model)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--val-genus-fraction", type=float, default=0.3,
                   help="non-similar: share of each phylum's training fragments whose genera "
                        "become validation genera (left out of the validation references)")
    p.add_argument("--heldout-genera", default="auto",
                   help="non-similar test genera: a heldout_genera.tsv, 'auto' (the model's own "
                        "held-out genera where its file exists, else chosen) or 'choose'")
    p.add_argument("--max-wrong-genus", type=float, default=0.02,
                   help="criterion: most wrong genus claims, share of validation-genus reads")
    p.add_argument("--max-wrong-above", type=float, default=0.02,
                   help="criterion: most wrong phylum and superkingdom claims, same share")
    p.add_argument("--min-genus-recall", type=float, default=0.95,
                   help="criterion: least genus recall of the tiers so far on the similar "
                        "validation set's reads with a genus")
    p.add_argument("--identity-grid", type=parse_grid,
                   default=parse_grid("0,0.2,0.3,0.4,0.5,0.6,0.7,0.75,0.8,0.85,0.9,0.92,0.94,"
                                      "0.95,0.96,0.97,0.98,0.99,1"),
                   help="identity minimums tried per rank (comma-separated)")
    p.add_argument("--aln-grid", type=parse_grid,
                   default=parse_grid("0,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"),
                   help="alignment-fraction minimums tried (comma-separated)")
    p.add_argument("--tune-route", nargs="+", choices=["unclassified", "below_rank"],
                   default=["below_rank", "unclassified"],
                   help="hytax route --route modes tried (below_rank: --route-rank genus)")
    p.add_argument("--tune-min-confidence", type=float, nargs="+", default=[0.2, 0.5],
                   help="hytax merge --min-confidence values tried on validation")
    p.add_argument("--max-genome-mb", type=float,
                   help="leave out genomes longer than this (keeps the reference index small)")
    p.add_argument("--kmer", type=int, default=13, help="nucleotide search -k (15 needs ~8 GB)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--nice", type=int, default=10, help="os.nice increment (0: none)")
    args = p.parse_args(argv)
    defaults = {"per_superkingdom": (3000, 240), "per_genus": (200, 40), "max_test": (500, 50),
                "max_val": (250, 30)}
    for key, (full, mini) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, mini if args.mini else full)
    if args.mini and not args.genomes:
        args.genomes = list(MINI_GENOMES)
    args.outdir = args.outdir.resolve()
    args.model = args.model.resolve()
    args.out_md = args.out_md or args.outdir / "benchmark.md"
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    started = time.time()
    if shutil.which("mmseqs") is None:
        raise SystemExit("mmseqs (MMseqs2) is not on PATH")
    if not (args.model / "config.json").is_file():
        raise SystemExit(f"{args.model}: no model (config.json)")
    args.outdir.mkdir(parents=True, exist_ok=True)
    plots = args.outdir / "plots"
    plots.mkdir(exist_ok=True)
    data = args.data.resolve()
    mm = Mmseqs(args.threads, args.kmer, args.outdir / "mmseqs.log")
    mm.log_path.write_text("")

    table = select_genomes(data, args.genomes, args.outdir, args.max_genome_mb)
    taxdump = make_taxdump(data, table, args.model, args.outdir)
    taxonomy = Taxonomy.load(taxdump)
    log("sampling fragments")
    genomes, fragments = sample_fragments(table, data / "genomes", taxdump, args.lengths,
                                          args.per_superkingdom, args.per_genus, args.seed)
    log(f"{len(fragments)} fragments from {len(genomes)} genomes")
    heldout_file = (None if args.heldout_genera == "choose"
                    else model_heldout(args.model) if args.heldout_genera == "auto"
                    else Path(args.heldout_genera))
    splits = make_splits(genomes, fragments, args, heldout_file)
    if heldout_file is not None and not splits[0].heldout:
        log(f"{heldout_file}: none of its genera among these genomes; choosing held-out genera")
        splits = make_splits(genomes, fragments, args, None)

    report: dict = {
        "config": {"command": " ".join(["python", "benchmarks/hybrid_benchmark.py",
                                        *(argv if argv is not None else sys.argv[1:])]),
                   "model": str(args.model), "lengths": args.lengths, "seed": args.seed,
                   "kmer": args.kmer, "threads": args.threads,
                   "mini": args.mini, "max_genome_mb": args.max_genome_mb,
                   "per_superkingdom": args.per_superkingdom, "per_genus": args.per_genus,
                   "max_test": args.max_test, "max_val": args.max_val,
                   "heldout_genera_source": str(heldout_file) if heldout_file else "chosen"},
        "methods": list(METHODS),
        "data": {"genomes": len(genomes), "fragments_sampled": len(fragments),
                 "bases": sum(g.length or 0 for g in genomes)},
        "splits": {},
    }
    vals: dict[str, Validation] = {}
    for split in splits:
        work = args.outdir / split.name
        work.mkdir(parents=True, exist_ok=True)
        if split.heldout:
            write_heldout(work / "heldout_genera.tsv", split.heldout,
                          [f for f in fragments if f.genome.labels["genus"] in split.heldout])
        (work / "reference_genomes.txt").write_text(
            "".join(f"{g.genome_id}\t{g.taxid}\t{g.labels['genus']}\n" for g in split.reference))
        log(f"{split.name}: {len(split.val)} validation fragments")
        val = validate(split, mm, taxonomy, taxdump, data, args)
        if val is None:
            raise SystemExit(f"{split.name}: no validation fragments; sample more")
        vals[split.name] = val

    rules, report["rules"] = choose_rules(vals, args.lengths, args)
    tuning = tune_hybrid(list(vals.values()), rules, taxonomy, args)
    best = max(tuning, key=lambda t: t["mean_average_precision"])  # first of ties
    setting = HybridSetting(best["route"], best["min_confidence"])
    report["hybrid_tuning"] = tuning
    report["hybrid_setting"] = asdict(setting)
    log(f"hybrid: route {setting.route}, min confidence {setting.min_confidence:g}")

    for split in splits:
        results = evaluate_split(split, mm, taxonomy, taxdump, data, args, rules, setting, plots)
        val_refs = {}
        if split.val_reference is not split.reference:
            val_refs = {t: build_reference(mm, t, f"{split.name}-val", split.val_reference, data,
                                           taxdump, args.outdir).build for t in TIERS}
        report["splits"][split.name] = {
            "heldout_genera": genus_names(taxonomy, split.heldout),
            "validation": {"fragments": len(split.val),
                           "genera": genus_names(taxonomy, split.val_heldout),
                           "reference_genomes": len(split.val_reference)},
            "validation_references": val_refs,
            "results": results,
        }
    report["headline"] = headline(report)
    report["protein_costs"] = protein_costs(report)
    report["seconds"] = round(time.time() - started, 1)
    (args.outdir / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    args.out_md.parent.mkdir(parents=True, exist_ok=True)
    args.out_md.write_text(markdown(report))
    print(summary_text(report), flush=True)
    log(f"done in {report['seconds']:.0f} s: {args.outdir / 'results.json'}, {args.out_md}")
    return report


if __name__ == "__main__":
    main()
    sys.exit(0)
