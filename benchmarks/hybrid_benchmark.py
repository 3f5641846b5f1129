#!/usr/bin/env python3
"""Hybrid benchmark (issue 5): MMseqs2 alone, BERTax alone and MMseqs2 + BERTax.

For the paper's two splits, "similar" (random fragments per genus; the reference holds every
genome) and "non-similar" (whole genera held out of the reference and of the model's training),
at each fragment length:

1. samples labelled fragments from the genomes with `hytax fragments`' library functions (one
   sample, split twice), keeps at most `--max-test` test fragments per length;
2. builds an MMseqs2 reference from the training genomes of the split (`createdb`,
   `createtaxdb --tax-db-mode 0` on a taxdump subset, `createindex --search-type 3 -k K`) and
   classifies the fragments (`mmseqs taxonomy --search-type 3 --tax-lineage 1
   --tax-output-mode 2`, `createtsv`, `convertalis`);
3. scores MMseqs2 alone (route without identity minimums, claims merged with no BERTax rows),
   BERTax alone (`hytax predict` on every fragment) and the hybrid (route -> predict on the
   routed reads -> merge) with `hytax evaluate`'s functions: per rank average precision
   (top class), mean per-class accuracy, share classified; PR curves;
4. tunes the routing (identity minimums x `--lca-mode`) on a validation set, never the test set:
   in the similar split the split's validation fragments against the same reference; in the
   non-similar split fragments of *validation genera* (chosen like the held-out test genera among
   the training genera) against a reference without those genera, so that validation, like the
   test, sees genera the reference lacks;
5. writes `results.json`, a Markdown report and PNGs into `--outdir`.

    python benchmarks/hybrid_benchmark.py --data ../shared/data --outdir benchmark-out [--mini]

Deterministic for a given `--seed` and `--threads`.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
from hytax.evaluate import RankResult, read_probabilities, score_rank
from hytax.evaluate import read_predictions as read_calls
from hytax.merge import merge, route
from hytax.predict import PredictOptions, predict_file
from hytax.seqio import read_records
from hytax.taxonomy import write_subset

REPO = Path(__file__).resolve().parents[1]
METHODS = ("mmseqs2", "bertax", "hybrid")
METHOD_LABELS = {"mmseqs2": "MMseqs2 alone", "bertax": "BERTax alone", "hybrid": "MMseqs2 + BERTax"}
SPLITS = ("nonsimilar", "similar")
MAX_AMBIGUOUS = 0.0008  # hytax fragments' default (paper: 0.08 %)
MAX_COVERAGE = 2.0

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


# --- small helpers -------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_identity(text: str) -> dict[str, float]:
    """'none' or 'genus=0.95,phylum=0.85' -> {rank: minimum}."""
    out: dict[str, float] = {}
    if text.strip().lower() in ("", "none"):
        return out
    for item in text.split(","):
        rank, sep, value = item.partition("=")
        if not sep or rank.strip() not in RANKS:
            raise argparse.ArgumentTypeError(f"expected none or RANK=NUMBER,..., got '{text}'")
        out[rank.strip()] = float(value)
    return out


def identity_text(setting: dict[str, float]) -> str:
    return ",".join(f"{r}={v:g}" for r, v in setting.items()) or "none"


@dataclass
class Mmseqs:
    """Runs `mmseqs` subcommands with a shared log; fails with the log's tail."""

    threads: int
    kmer: int
    log_path: Path

    def __call__(self, *args: str | Path) -> None:
        cmd = ["mmseqs", *map(str, args)]
        with open(self.log_path, "a") as fh:
            fh.write("\n$ " + " ".join(cmd) + "\n")
            fh.flush()
            done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
        if done.returncode:
            tail = self.log_path.read_text().splitlines()[-20:]
            raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n" + "\n".join(tail))


def write_fasta_subset(fragments: Sequence[Fragment], fasta: Path, labels: Path) -> None:
    write_split(list(fragments), fasta, labels)


def cap(fragments: list[Fragment], n: int, rng: np.random.Generator) -> list[Fragment]:
    """At most n fragments, chosen at random, kept in their original order."""
    if len(fragments) <= n:
        return fragments
    keep = np.sort(rng.choice(len(fragments), size=n, replace=False))
    return [fragments[i] for i in keep]


def by_length(fragments: Iterable[Fragment], length: int) -> list[Fragment]:
    return [f for f in fragments if len(f.seq) == length]


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
    taxids.write_text("".join(f"{t}\n" for t in sorted(ids)))
    if not (taxdump / "nodes.dmp").is_file() or taxdump.stat().st_mtime < taxids.stat().st_mtime:
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


# --- MMseqs2 -------------------------------------------------------------------------------------


def build_reference(
    mm: Mmseqs, name: str, genomes: list[Genome], data: Path, taxdump: Path, outdir: Path
) -> Path:
    """createdb + createtaxdb --tax-db-mode 0 + createindex for `genomes`; reused when the same
    genomes, k and MMseqs2 settings were built before."""
    manifest = {"genomes": sorted(g.genome_id for g in genomes), "kmer": mm.kmer}
    key = hashlib.sha1(json.dumps(manifest).encode()).hexdigest()[:10]
    folder = outdir / "refs" / key  # one build per genome set: splits may share it
    db = folder / "ref"
    done = folder / "manifest.json"
    if done.is_file() and json.loads(done.read_text()) == manifest:
        log(f"reference {name}: reused {folder.name} ({len(genomes)} genomes)")
        return db
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    tmp = folder / "tmp"
    log(f"reference {name}: {len(genomes)} genomes")
    mm("createdb", *[g.path for g in genomes], db, "--dbtype", "2")
    mm("createtaxdb", db, tmp, "--ncbi-tax-dump", taxdump,
       "--tax-mapping-file", data / "seq2taxid.tsv", "--tax-db-mode", "0",
       "--threads", mm.threads)
    mm("createindex", db, tmp, "--search-type", "3", "-k", mm.kmer, "--threads", mm.threads)
    shutil.rmtree(tmp, ignore_errors=True)
    done.write_text(json.dumps(manifest, indent=1) + "\n")
    return db


def reference_taxids(db: Path) -> set[int]:
    """Taxids of the reference's sequences (createtaxdb's `<db>_mapping`)."""
    with open(f"{db}_mapping") as fh:
        return {int(line.split("\t")[1]) for line in fh if line.strip()}


def classify(mm: Mmseqs, query: Path, db: Path, workdir: Path, lca_mode: int) -> tuple[Path, Path]:
    """mmseqs taxonomy of a FASTA; returns (LCA TSV, alignment TSV)."""
    workdir.mkdir(parents=True, exist_ok=True)
    qdb = workdir / "query"
    # Always from this FASTA: a query DB left by an earlier run (another model's held-out
    # genera) would hold other reads. createdb takes about a second.
    for path in workdir.glob("query*"):
        path.unlink()
    mm("createdb", query, qdb, "--dbtype", "2")
    lca, aln = workdir / f"lca{lca_mode}.tsv", workdir / f"aln{lca_mode}.tsv"
    res, tmp = workdir / f"res{lca_mode}", workdir / "tmp"
    mm("taxonomy", qdb, db, res, tmp, "--search-type", "3", "--tax-lineage", "1",
       "--tax-output-mode", "2", "--lca-mode", lca_mode, "-k", mm.kmer, "--threads", mm.threads)
    mm("createtsv", qdb, res, lca, "--threads", mm.threads)
    mm("convertalis", qdb, db, f"{res}_aln", aln, "--format-output",
       "query,target,fident,alnlen,evalue,bits,taxid", "--search-type", "3",
       "--threads", mm.threads)
    shutil.rmtree(tmp, ignore_errors=True)
    for path in workdir.glob(f"res{lca_mode}*"):
        path.unlink()
    return lca, aln


# --- methods -------------------------------------------------------------------------------------


def predict(model: Path, fasta: Path, out: Path, threads: int, probabilities: Path | None = None
            ) -> None:
    options = PredictOptions(device="cpu", threads=threads, progress="off")
    if not any(True for _ in read_records(fasta)):
        out.write_text("")  # nothing routed: merge treats an empty table as no predictions
        return
    predict_file(model, fasta, None, out, probabilities, options)


def subset_predictions(source: Path, fasta: Path, out: Path) -> None:
    """Rows of a predictions TSV for the reads of `fasta` (the routed reads)."""
    wanted = {r.id for r in read_records(fasta)}
    with open(source) as src, open(out, "w") as dst:
        dst.write(src.readline())
        for line in src:
            if line.split("\t", 1)[0] in wanted:
                dst.write(line)


def mmseqs_alone(units: Path, lca: Path, aln: Path, taxdump: Path, out: Path) -> None:
    """MMseqs2's claims without identity minimums, merged with no BERTax rows."""
    claims, routed, empty = (out.with_suffix(s) for s in (".claims.tsv", ".routed.fa",
                                                          ".nobertax.tsv"))
    route(units=units, lca=lca, aln=aln, taxdump=taxdump, min_identity={},
          claims_out=claims, routed_out=routed)
    empty.write_text("")
    merge(units=units, claims=claims, bertax=empty, taxdump=taxdump, min_confidence=1.0,
          output=out)
    routed.unlink()
    empty.unlink()


def hybrid(
    units: Path, lca: Path, aln: Path, taxdump: Path, out: Path, min_identity: dict[str, float],
    min_aln_fraction: float, min_confidence: float, route_mode: str, bertax: Path | None,
    model: Path, threads: int,
) -> tuple[int, int]:
    """route -> predict on the routed reads (or take their rows of `bertax`) -> merge."""
    claims, routed, predicted = (out.with_suffix(s) for s in (".claims.tsv", ".routed.fa",
                                                              ".routed.bertax.tsv"))
    n, n_routed = route(units=units, lca=lca, aln=aln, taxdump=taxdump, mode=route_mode,
                        min_identity=min_identity, min_aln_fraction=min_aln_fraction,
                        claims_out=claims, routed_out=routed)
    if bertax is None:
        predict(model, routed, predicted, threads)
    else:
        subset_predictions(bertax, routed, predicted)
    merge(units=units, claims=claims, bertax=predicted, taxdump=taxdump,
          min_confidence=min_confidence, output=out)
    return n, n_routed


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
        result = score_rank(rank, {r: lab[rank] for r, lab in truth_all.items()}, calls, None)
        m = result.metrics
        entry = {k: m[k] for k in ("reads", "classified", "accuracy", "precision",
                                   "mean_class_accuracy", "average_precision")}
        if probs is not None:
            full = score_rank(rank, {r: lab[rank] for r, lab in truth_all.items()}, calls, probs)
            entry["average_precision_all_classes"] = full.metrics["average_precision"]
        summary["ranks"][rank] = entry
        results[rank] = result
    return summary, results


def plot_pr(path: Path, title: str, curves: dict[str, RankResult]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    for method, result in curves.items():
        p, r = result.curve_top1
        ap = result.metrics["average_precision_top1"]
        style = {"mmseqs2": ":", "bertax": "--", "hybrid": "-"}[method]  # hybrid may cover mmseqs2
        ax.step(np.r_[0.0, r], np.r_[p[:1] if len(p) else [1.0], p], where="post", ls=style,
                lw=2.2 if method == "mmseqs2" else 1.4, zorder=3 if method == "mmseqs2" else 2,
                label=f"{METHOD_LABELS[method]} (AP {ap:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=title)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- the benchmark -------------------------------------------------------------------------------


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


def tune(
    split: SplitData, mm: Mmseqs, taxdump: Path, data: Path, args: argparse.Namespace,
    work: Path,
) -> list[dict]:
    """Hybrid AP per rank on the validation set for every (lca mode, identity minimums)."""
    work.mkdir(parents=True, exist_ok=True)
    fasta, labels = work / "val.fa", work / "val.labels.tsv"
    write_fasta_subset(split.val, fasta, labels)
    if not split.val:
        return []
    db = build_reference(mm, f"{split.name}-val", split.val_reference, data, taxdump, args.outdir)
    bertax = work / "val.bertax.tsv"
    predict(args.model, fasta, bertax, args.threads)
    rows = []
    for lca_mode in args.tune_lca_modes:
        lca, aln = classify(mm, fasta, db, work / "mmseqs", lca_mode)
        grid = [(m, s, a, c) for m in args.tune_route for s in args.tune_identity
                for a in args.tune_aln_fraction for c in args.tune_min_confidence]
        for mode, setting, aln_fraction, conf in grid:
            name = (f"lca{lca_mode}_{mode}_{identity_text(setting).replace(',', '_')}"
                    f"_aln{aln_fraction:g}_conf{conf:g}")
            out = work / f"hybrid_{name}.tsv"
            _, n_routed = hybrid(fasta, lca, aln, taxdump, out, setting, aln_fraction, conf,
                                 mode, bertax, args.model, args.threads)
            summary, _ = score(out, labels)
            ap = {r: summary["ranks"][r]["average_precision"] for r in RANKS}
            rows.append({"lca_mode": lca_mode, "route": mode,
                         "min_identity": identity_text(setting),
                         "min_aln_fraction": aln_fraction,
                         "min_confidence": conf, "routed": n_routed,
                         "reads": summary["reads"], "average_precision": ap,
                         "mean_average_precision": round(float(np.mean(list(ap.values()))), 6)})
            log(f"tune {split.name}: lca {lca_mode}, {mode}, {identity_text(setting)}, "
                f"aln {aln_fraction:g}, conf {conf:g}: AP "
                + " ".join(f"{r} {v:.3f}" for r, v in ap.items()))
    return rows


def evaluate_split(
    split: SplitData, mm: Mmseqs, taxdump: Path, data: Path, args: argparse.Namespace,
    lca_mode: int, setting: dict[str, float], min_aln_fraction: float, min_confidence: float,
    route_mode: str, plots: Path,
) -> dict:
    work = args.outdir / split.name
    db = build_reference(mm, split.name, split.reference, data, taxdump, args.outdir)
    ref_taxids = reference_taxids(db)
    results: dict = {"reference": {"genomes": len(split.reference),
                                   "bases": sum(g.length or 0 for g in split.reference),
                                   "taxids": len(ref_taxids)}, "lengths": {}}
    for length, fragments in split.test.items():
        d = work / f"test_{length}"
        d.mkdir(parents=True, exist_ok=True)
        fasta, labels = d / "test.fa", d / "test.labels.tsv"
        write_fasta_subset(fragments, fasta, labels)
        log(f"{split.name} {length} nt: {len(fragments)} test fragments")
        lca3, aln3 = classify(mm, fasta, db, d / "mmseqs", 3)
        mmseqs_alone(fasta, lca3, aln3, taxdump, d / "mmseqs2.tsv")
        predict(args.model, fasta, d / "bertax.tsv", args.threads, d / "bertax.probs.jsonl")
        lca, aln = (lca3, aln3) if lca_mode == 3 else classify(mm, fasta, db, d / "mmseqs",
                                                               lca_mode)
        _, n_routed = hybrid(fasta, lca, aln, taxdump, d / "hybrid.tsv", setting,
                             min_aln_fraction, min_confidence, route_mode, None, args.model,
                             args.threads)
        per_method: dict = {}
        curves: dict[str, dict[str, RankResult]] = {r: {} for r in RANKS}
        for method in METHODS:
            probs = d / "bertax.probs.jsonl" if method == "bertax" else None
            summary, rank_results = score(d / f"{method}.tsv", labels, probs, args.model)
            per_method[method] = summary
            for rank in RANKS:
                curves[rank][method] = rank_results[rank]
        for rank in RANKS:
            plot_pr(plots / f"pr_{split.name}_{length}_{rank}.png",
                    f"{split.name}, {length} nt: {rank}", curves[rank])
        results["lengths"][str(length)] = {"fragments": len(fragments), "routed": n_routed,
                                           "methods": per_method}
    return results


def genus_names(taxdump: Path, taxids: Iterable[int]) -> dict[str, str]:
    from hytax.taxonomy import Taxonomy

    tax = Taxonomy.load(taxdump)
    return {str(t): tax.name(t) for t in sorted(taxids)}


def markdown(report: dict) -> str:
    cfg = report["config"]
    lines = [
        "# Hybrid benchmark: MMseqs2 alone, BERTax alone, MMseqs2 + BERTax", "",
        f"Command: `{cfg['command']}`", "",
        f"Model `{cfg['model']}`; lengths {', '.join(map(str, cfg['lengths']))} nt; "
        f"seed {cfg['seed']}; MMseqs2 `-k {cfg['kmer']}`; the hybrid's `--route`, identity "
        "minimums, `--lca-mode` and `--min-confidence` are tuned on validation (see below). "
        "AP is the average precision of the top class over confidence thresholds (MMseqs2: "
        "best-hit identity; BERTax: class probability; hybrid: each rank's source's), as "
        "`hytax evaluate` computes it without `--probabilities`; every test fragment counts, "
        "unclassified ones lower recall.", "",
        "## Data", "",
        "| split | genomes sampled | held-out genera | reference genomes | reference Mb "
        "| test fragments per length | validation fragments | validation genera |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for split, s in report["splits"].items():
        ref = s["results"]["reference"]
        per_len = ", ".join(f"{n} nt: {v['fragments']}" for n, v in s["results"]["lengths"].items())
        lines.append(
            f"| {split} | {report['data']['genomes']} | {len(s['heldout_genera'])} "
            f"| {ref['genomes']} | {ref['bases'] / 1e6:.1f} | {per_len} "
            f"| {s['validation']['fragments']} | {len(s['validation']['genera'])} |")
    for split, s in report["splits"].items():
        if s["heldout_genera"]:
            names = ", ".join(s["heldout_genera"].values())
            lines += ["", f"Held-out genera ({split}): {names}."]
    lines += ["", "## Results (test)", ""]
    for split, s in report["splits"].items():
        chosen = s["chosen"]
        for length, r in s["results"]["lengths"].items():
            lines += [
                f"### {split}, {length} nt ({r['fragments']} fragments; hybrid: lca-mode "
                f"{chosen['lca_mode']}, route {chosen['route']}, min identity "
                f"{chosen['min_identity']}, min alignment fraction "
                f"{chosen['min_aln_fraction']:g}, min confidence "
                f"{chosen['min_confidence']:g}, "
                f"{r['routed']} routed to BERTax)", "",
                "| rank | method | AP | mean class accuracy | accuracy | classified |",
                "|---|---|---:|---:|---:|---:|",
            ]
            for rank in RANKS:
                for method in METHODS:
                    m = r["methods"][method]["ranks"][rank]
                    lines.append(
                        f"| {rank} | {METHOD_LABELS[method]} | {m['average_precision']:.1%} "
                        f"| {m['mean_class_accuracy']:.1%} | {m['accuracy']:.1%} "
                        f"| {m['classified']:.1%} |")
            lines.append("")
    lines += ["## Routing tuned on validation", "",
              "| split | lca-mode | route | min identity | min aln fraction | min confidence "
              "| routed | AP superkingdom | AP phylum | AP genus | mean AP | chosen |",
              "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for split, s in report["splits"].items():
        for t in s["tuning"]:
            ap = t["average_precision"]
            keys = ("lca_mode", "route", "min_identity", "min_aln_fraction", "min_confidence")
            mark = "**yes**" if all(t[k] == s["chosen"][k] for k in keys) else ""
            lines.append(
                f"| {split} | {t['lca_mode']} | {t['route']} | {t['min_identity']} "
                f"| {t['min_aln_fraction']:g} | {t['min_confidence']:g} "
                f"| {t['routed']}/{t['reads']} "
                f"| {ap['superkingdom']:.1%} | {ap['phylum']:.1%} | {ap['genus']:.1%} "
                f"| {t['mean_average_precision']:.1%} | {mark} |")
    lines += ["", f"Wall time: {report['seconds']:.0f} s.", ""]
    return "\n".join(lines)


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
                   "(default 500, --mini 60)")
    p.add_argument("--max-val", type=int, help="validation fragments per split and length "
                   "(default 250, --mini 40)")
    p.add_argument("--test-fraction", type=float, default=0.15,
                   help="similar: test share per genus; non-similar: genus share held out "
                        "(when not taken from the model)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--val-genus-fraction", type=float, default=0.3,
                   help="non-similar: share of each phylum's training fragments whose genera "
                        "become validation genera (left out of the validation reference)")
    p.add_argument("--heldout-genera", default="auto",
                   help="non-similar test genera: a heldout_genera.tsv, 'auto' (the model's own "
                        "held-out genera where its file exists, else chosen) or 'choose'")
    p.add_argument("--tune-identity", type=parse_identity, nargs="+",
                   default=[{}, {"genus": 0.95}, {"genus": 0.95, "phylum": 0.85}],
                   help="identity minimums tried on validation ('none' or RANK=X,...)")
    p.add_argument("--tune-lca-modes", type=int, nargs="+", default=[3, 1],
                   help="mmseqs taxonomy --lca-mode values tried (1 single search LCA, "
                        "3 approximate 2bLCA = default)")
    p.add_argument("--min-identity", type=parse_identity,
                   help="fix the hybrid's identity minimums (default: best on validation)")
    p.add_argument("--lca-mode", type=int, help="fix the hybrid's --lca-mode (default: tuned)")
    p.add_argument("--tune-aln-fraction", type=float, nargs="+", default=[0.0, 0.5, 0.8],
                   help="MMseqs2 minimum alignment fractions to try (hytax route "
                        "--min-aln-fraction)")
    p.add_argument("--min-aln-fraction", type=float,
                   help="fix the hybrid's minimum alignment fraction (default: tuned)")
    p.add_argument("--tune-min-confidence", type=float, nargs="+", default=[0.5, 0.2],
                   help="hytax merge --min-confidence values tried on validation")
    p.add_argument("--min-confidence", type=float,
                   help="fix the hybrid's BERTax minimum probability (default: tuned)")
    p.add_argument("--max-genome-mb", type=float,
                   help="leave out genomes longer than this (keeps the reference index small)")
    p.add_argument("--tune-route", nargs="+", choices=["unclassified", "below_rank"],
                   default=["unclassified", "below_rank"],
                   help="hytax route --route modes tried (below_rank: --route-rank genus)")
    p.add_argument("--route", choices=["unclassified", "below_rank"],
                   help="fix the hybrid's routing mode (default: tuned)")
    p.add_argument("--kmer", type=int, default=13, help="MMseqs2 -k (15 needs ~8 GB)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--nice", type=int, default=10, help="os.nice increment (0: none)")
    args = p.parse_args(argv)
    defaults = {"per_superkingdom": (3000, 240), "per_genus": (200, 40), "max_test": (500, 60),
                "max_val": (250, 40)}
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
        "data": {"genomes": len(genomes), "fragments_sampled": len(fragments),
                 "bases": sum(g.length or 0 for g in genomes)},
        "splits": {},
    }
    for split in splits:
        work = args.outdir / split.name
        work.mkdir(parents=True, exist_ok=True)
        if split.heldout:
            write_heldout(work / "heldout_genera.tsv", split.heldout,
                          [f for f in fragments if f.genome.labels["genus"] in split.heldout])
        (work / "reference_genomes.txt").write_text(
            "".join(f"{g.genome_id}\t{g.taxid}\t{g.labels['genus']}\n" for g in split.reference))
        log(f"{split.name}: tuning on {len(split.val)} validation fragments")
        tuning = tune(split, mm, taxdump, data, args, work / "val")
        if tuning:
            best = max(tuning, key=lambda t: t["mean_average_precision"])  # first of ties
            chosen = {k: best[k] for k in ("lca_mode", "route", "min_identity",
                                            "min_aln_fraction", "min_confidence")}
        else:
            chosen = {"lca_mode": 3, "route": "unclassified", "min_identity": "none",
                      "min_aln_fraction": 0.0, "min_confidence": 0.5}
        if args.lca_mode is not None:
            chosen["lca_mode"] = args.lca_mode
        if args.min_identity is not None:
            chosen["min_identity"] = identity_text(args.min_identity)
        if args.min_aln_fraction is not None:
            chosen["min_aln_fraction"] = args.min_aln_fraction
        if args.min_confidence is not None:
            chosen["min_confidence"] = args.min_confidence
        if args.route is not None:
            chosen["route"] = args.route
        log(f"{split.name}: hybrid uses lca-mode {chosen['lca_mode']}, {chosen['route']}, "
            f"min identity {chosen['min_identity']}, min aln fraction "
            f"{chosen['min_aln_fraction']}, min confidence {chosen['min_confidence']}")
        results = evaluate_split(split, mm, taxdump, data, args, chosen["lca_mode"],
                                 parse_identity(chosen["min_identity"]),
                                 chosen["min_aln_fraction"], chosen["min_confidence"],
                                 chosen["route"], plots)
        report["splits"][split.name] = {
            "heldout_genera": genus_names(taxdump, split.heldout),
            "validation": {"fragments": len(split.val),
                           "genera": genus_names(taxdump, split.val_heldout),
                           "reference_genomes": len(split.val_reference)},
            "tuning": tuning, "chosen": chosen, "results": results,
        }
    report["seconds"] = round(time.time() - started, 1)
    (args.outdir / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    args.out_md.parent.mkdir(parents=True, exist_ok=True)
    args.out_md.write_text(markdown(report))
    log(f"done in {report['seconds']:.0f} s: {args.outdir / 'results.json'}, {args.out_md}")
    return report


if __name__ == "__main__":
    main()
    sys.exit(0)
