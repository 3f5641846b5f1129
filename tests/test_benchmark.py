"""The hybrid benchmark's miniature (`benchmarks/hybrid_benchmark.py --mini`) on real genomes.

Runs the whole benchmark once (a few genera, a few hundred fragments, MMseqs2 nucleotide and
protein references built from the same genomes, the bundled hytax-mini model, or the random
tiny model when it is absent) and checks what it must guarantee: no reference holds the genera
it is tested or validated on, the nucleotide tier knows the similar split's fragments, every
test fragment is answered exactly once by every configuration, BERTax never overrides a
database claim, the claim minimums it reports are what `hytax.routing.keep` does to the
validation claims, and the reports hold every configuration x rank.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO, load_script

from hytax.data import RANKS, read_labels
from hytax.routing import ClaimRule, choose, is_open, keep
from hytax.seqio import read_records
from hytax.tables import read_claims
from hytax.taxonomy import Taxonomy

BUNDLED = REPO / "assets" / "models" / "hytax-mini"

pytestmark = pytest.mark.skipif(shutil.which("mmseqs") is None,
                                reason="mmseqs (MMseqs2) is not on PATH")


def load_benchmark() -> ModuleType:
    return load_script(REPO / "benchmarks" / "hybrid_benchmark.py", "hybrid_benchmark")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark()


@pytest.fixture(scope="module")
def run(
    bench: ModuleType, shared_data: Path, tiny_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict]:
    model = BUNDLED if (BUNDLED / "model.safetensors").is_file() else tiny_model_dir
    outdir = tmp_path_factory.mktemp("benchmark")
    report = bench.main(["--mini", "--data", str(shared_data), "--outdir", str(outdir),
                         "--model", str(model), "--threads", "2", "--nice", "0"])
    return outdir, report


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {r["read_id"]: r for r in csv.DictReader(fh, delimiter="\t")}


def _reference_genera(outdir: Path, tier: str, genome_ids: list[str]) -> set[int]:
    """Genera of a reference as MMseqs2 sees it: each entry's taxid (createtaxdb's mapping)."""
    folders = [p.parent for p in (outdir / "refs").glob(f"{tier}-*/manifest.json")
               if json.loads(p.read_text())["genomes"] == sorted(genome_ids)]
    assert len(folders) == 1, f"no {tier} reference built from {len(genome_ids)} genomes"
    taxonomy = Taxonomy.load(outdir / "taxdump")
    with open(folders[0] / "ref_mapping") as fh:
        genera = {taxonomy.at_rank(int(line.split("\t")[1]), "genus") for line in fh if line}
    assert genera, f"empty {tier} reference"
    return genera


def test_references_lack_heldout_genera(run: tuple[Path, dict]) -> None:
    outdir, report = run
    with open(outdir / "nonsimilar" / "heldout_genera.tsv", newline="") as fh:
        heldout = {int(r["genus_taxid"]) for r in csv.DictReader(fh, delimiter="\t")}
    assert heldout, "the non-similar split held out no genus"
    assert set(report["splits"]["nonsimilar"]["heldout_genera"]) == {str(g) for g in heldout}
    lines = (outdir / "nonsimilar" / "reference_genomes.txt").read_text().splitlines()
    genome_ids = [line.split("\t")[0] for line in lines]
    for tier in ("nt", "aa"):  # the protein reference: genes of the same genomes
        genera = _reference_genera(outdir, tier, genome_ids)
        assert not genera & heldout, f"held-out genera in the {tier} reference"
    for length in report["config"]["lengths"]:
        labels = read_labels(outdir / "nonsimilar" / f"test_{length}" / "test.labels.tsv")
        assert labels and {lab["genus"] for lab in labels.values()} <= heldout
    # the validation genera: in neither validation reference, and all the validation reads'
    val_genera = {int(g) for g in report["splits"]["nonsimilar"]["validation"]["genera"]}
    assert val_genera and not val_genera & heldout
    val_labels = read_labels(outdir / "nonsimilar" / "val" / "val.labels.tsv")
    assert {lab["genus"] for lab in val_labels.values()} <= val_genera
    for tier in ("nt", "aa"):
        used = [p for p in (outdir / "refs").glob(f"{tier}-*/manifest.json")]
        sets = [json.loads(p.read_text())["genomes"] for p in used]
        smaller = [s for s in sets if set(s) < set(genome_ids)]
        assert len(smaller) == 1, f"{tier}: no validation reference"
        assert not _reference_genera(outdir, tier, smaller[0]) & val_genera


def test_nucleotide_tier_knows_similar_fragments(run: tuple[Path, dict]) -> None:
    _, report = run
    for length, result in report["splits"]["similar"]["results"]["lengths"].items():
        sk = result["methods"]["nt"]["ranks"]["superkingdom"]
        assert sk["reads"] >= 20, f"{length} nt: too few test fragments to judge"
        assert sk["accuracy"] > 0.8, f"{length} nt: nucleotide tier superkingdom {sk}"


def test_every_fragment_once_per_method(bench: ModuleType, run: tuple[Path, dict]) -> None:
    outdir, report = run
    for split in ("nonsimilar", "similar"):
        for length in report["config"]["lengths"]:
            folder = outdir / split / f"test_{length}"
            truth = list(read_labels(folder / "test.labels.tsv"))
            assert truth
            for method in bench.METHODS:
                assert sorted(_rows(folder / f"{method}.tsv")) == sorted(truth), method
                summary = report["splits"][split]["results"]["lengths"][str(length)]
                counts = summary["methods"][method]
                assert (counts["rows"], counts["missing"], counts["extra"]) == (len(truth), 0, 0)


def test_bertax_never_overrides_database_claims(run: tuple[Path, dict]) -> None:
    """Where the database tiers answer a rank, the full hybrid gives that taxon from that tier;
    and a read the nucleotide tier closes keeps its answer when the protein tier is added."""
    outdir, report = run
    mode = report["hybrid_setting"]["route"]
    n_closed = 0
    for split in ("nonsimilar", "similar"):
        for length in report["config"]["lengths"]:
            folder = outdir / split / f"test_{length}"
            nt, nt_aa, hybrid = (_rows(folder / f"{m}.tsv") for m in ("nt", "nt_aa", "hybrid"))
            for read, row in nt_aa.items():
                for rank in RANKS:
                    if row[f"{rank}_source"].startswith("mmseqs2:"):
                        for column in (f"{rank}_taxid", f"{rank}_source"):
                            assert hybrid[read][column] == row[column], (split, read, column)
            closed = [r for r, row in nt.items()
                      if not is_open(tuple(int(row[f"{k}_taxid"]) for k in RANKS), mode, "genus")]
            n_closed += len(closed)
            for read in closed:
                for rank in RANKS:
                    assert nt_aa[read][f"{rank}_taxid"] == nt[read][f"{rank}_taxid"]
    assert n_closed, "the nucleotide tier closed no read"


def test_protein_tier_adds_superkingdom_answers(run: tuple[Path, dict]) -> None:
    """The protein tier searches the same genomes' genes by translated search: it places reads
    of held-out genera that the nucleotide search cannot, and adding it never loses an
    answer."""
    outdir, report = run
    added = 0
    for split, s in report["splits"].items():
        assert s["results"]["references"]["aa"]["genes"]["proteins"] > 0
        for length, r in s["results"]["lengths"].items():
            nt, nt_aa = (r["methods"][m]["ranks"]["superkingdom"] for m in ("nt", "nt_aa"))
            assert nt_aa["classified"] >= nt["classified"], (split, length)
            assert r["search_seconds"]["aa"] > 0
            # the tiers' claims before any minimum
            folder = outdir / split / f"test_{length}"
            claims = {t: {c.read_id: c for _, c in read_claims(folder / f"{t}_lca3.claims.tsv")}
                      for t in ("nt", "aa")}
            if split == "nonsimilar":
                added += sum(1 for read, c in claims["aa"].items()
                             if c.taxids[0] and not claims["nt"][read].taxids[0])
    assert added > 0, "the protein tier placed no held-out read the nucleotide tier left open"
    # translated search: the protein tier's alignments are in amino acids of a read's frame
    rows = (outdir / "similar" / "test_150" / "mmseqs_aa_lca3" / "aln.tsv").read_text()
    assert rows and all(int(row.split("\t")[6]) <= 50 for row in rows.splitlines())


def test_reported_minimums_are_what_keep_does(run: tuple[Path, dict]) -> None:
    """Recompute each chosen rule's wrong-genus share, genus recall and the tiers' genus recall
    (routed below_rank) per length from the saved validation claims with the seam's own `keep`
    and `choose`."""
    outdir, report = run
    criterion = report["rules"]["criterion"]
    genus = RANKS.index("genus")
    rules = {t: ClaimRule(c["chosen"]["min_identity"], c["chosen"]["min_aln_fraction"])
             for t, c in report["rules"]["tiers"].items()}
    assert list(rules) == ["nt", "aa"]
    for split in ("nonsimilar", "similar"):
        folder = outdir / split / "val"
        truth = read_labels(folder / "val.labels.tsv")
        length = {r.id: len(r.seq) for r in read_records(folder / "val.fa")}
        kept = {t: {c.read_id: keep(c, rule) for _, c in
                    read_claims(folder / f"{t}_lca3.claims.tsv")} for t, rule in rules.items()}
        for order, tier in enumerate(rules):
            assert sorted(kept[tier]) == sorted(truth)
            chosen = report["rules"]["tiers"][tier]["chosen"]
            for n, assessed in chosen["assessment"].items():
                reads = [r for r in truth if length[r] == int(n)]
                if split == "nonsimilar":
                    wrong = sum(1 for r in reads
                                if kept[tier][r].taxids[genus] not in (0, truth[r]["genus"]))
                    assert assessed["wrong"]["genus"] == pytest.approx(wrong / len(reads),
                                                                       abs=1e-6)
                    if chosen["meets"]:
                        assert wrong / len(reads) <= criterion["max_wrong"]["genus"]
                    continue
                known = [r for r in reads if truth[r]["genus"]]
                right = sum(1 for r in known if kept[tier][r].taxids[genus] == truth[r]["genus"])
                assert assessed["genus_recall"] == pytest.approx(right / len(known), abs=1e-6)
                tiers = list(rules)[:order + 1]
                answers = [choose([kept[t][r] for t in tiers], "below_rank", "genus")
                           for r in known]
                recall = sum(1 for r, a in zip(known, answers, strict=True)
                             if a.taxids[genus] == truth[r]["genus"]) / len(known)
                assert assessed["tiers_genus_recall"] == pytest.approx(recall, abs=1e-6)
                if chosen["meets"]:
                    assert recall >= criterion["min_genus_recall"]


def test_reports(bench: ModuleType, run: tuple[Path, dict]) -> None:
    outdir, _ = run
    saved = json.loads((outdir / "results.json").read_text())
    assert saved["splits"].keys() == {"nonsimilar", "similar"}
    assert saved["methods"] == list(bench.METHODS)
    for tier in ("nt", "aa"):
        assert saved["rules"]["tiers"][tier]["candidates"], f"{tier}: no minimum tried"
    assert {(t["route"], t["min_confidence"]) for t in saved["hybrid_tuning"]} == {
        (m, c) for m in ("below_rank", "unclassified") for c in (0.2, 0.5)}
    assert [h["length"] for h in saved["headline"]] == saved["config"]["lengths"]
    for split, s in saved["splits"].items():
        for length, result in s["results"]["lengths"].items():
            assert set(result["methods"]) == set(bench.METHODS)
            for method, m in result["methods"].items():
                assert set(m["ranks"]) == set(RANKS)
                for rank, metrics in m["ranks"].items():
                    for key in ("average_precision", "accuracy", "precision", "classified"):
                        assert 0.0 <= metrics[key] <= 1.0, (split, length, method, rank, key)
            # BERTax alone answers every fragment that has a 3-mer
            assert result["methods"]["bertax"]["ranks"]["superkingdom"]["classified"] == 1.0
            for rank in RANKS:
                assert (outdir / "plots" / f"pr_{split}_{length}_{rank}.png").stat().st_size > 0
    md = (outdir / "benchmark.md").read_text()
    for label in bench.METHOD_LABELS.values():
        for rank in RANKS:
            assert f"| {rank} | {label} |" in md
    for section in ("## Claim minimums chosen on validation", "## Headline",
                    "## Protein tier costs in this run"):
        assert section in md
