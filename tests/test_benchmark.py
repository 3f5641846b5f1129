"""The hybrid benchmark's miniature (`benchmarks/hybrid_benchmark.py --mini`) on real genomes.

Runs the whole benchmark once (a few genera, a few hundred fragments, MMseqs2 with -k 13 and
the bundled hytax-mini model, or the random tiny model when it is absent) and checks what it
must guarantee: the non-similar reference lacks the held-out genera, MMseqs2 knows the similar
split's fragments, every test fragment is answered exactly once by every method, and the
reports hold every method x rank.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from hytax.data import RANKS, read_labels
from hytax.taxonomy import Taxonomy

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "assets" / "models" / "hytax-mini"

pytestmark = pytest.mark.skipif(shutil.which("mmseqs") is None,
                                reason="mmseqs (MMseqs2) is not on PATH")


def load_benchmark() -> ModuleType:
    path = REPO / "benchmarks" / "hybrid_benchmark.py"
    spec = importlib.util.spec_from_file_location("hybrid_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


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


def test_nonsimilar_reference_lacks_heldout_genera(run: tuple[Path, dict]) -> None:
    outdir, report = run
    with open(outdir / "nonsimilar" / "heldout_genera.tsv", newline="") as fh:
        heldout = {int(r["genus_taxid"]) for r in csv.DictReader(fh, delimiter="\t")}
    assert heldout, "the non-similar split held out no genus"
    assert set(report["splits"]["nonsimilar"]["heldout_genera"]) == {str(g) for g in heldout}
    # the reference as MMseqs2 sees it: every sequence's taxid, mapped to its genus
    manifests = {p.parent: json.loads(p.read_text())
                 for p in (outdir / "refs").glob("*/manifest.json")}
    reference_genomes = (outdir / "nonsimilar" / "reference_genomes.txt").read_text().split("\n")
    wanted = sorted(line.split("\t")[0] for line in reference_genomes if line)
    folders = [f for f, m in manifests.items() if m["genomes"] == wanted]
    assert len(folders) == 1, "no reference built from the non-similar training genomes"
    taxonomy = Taxonomy.load(outdir / "taxdump")
    with open(folders[0] / "ref_mapping") as fh:
        genera = {taxonomy.at_rank(int(line.split("\t")[1]), "genus") for line in fh if line}
    assert genera, "empty reference"
    assert not genera & heldout, f"held-out genera in the reference: {genera & heldout}"
    # and the test fragments do come from the held-out genera
    for length in report["config"]["lengths"]:
        labels = read_labels(outdir / "nonsimilar" / f"test_{length}" / "test.labels.tsv")
        assert labels and {lab["genus"] for lab in labels.values()} <= heldout


def test_mmseqs2_knows_similar_fragments(run: tuple[Path, dict]) -> None:
    _, report = run
    for length, result in report["splits"]["similar"]["results"]["lengths"].items():
        sk = result["methods"]["mmseqs2"]["ranks"]["superkingdom"]
        assert sk["reads"] >= 20, f"{length} nt: too few test fragments to judge"
        assert sk["accuracy"] > 0.8, f"{length} nt: MMseqs2 superkingdom accuracy {sk}"


def test_every_fragment_once_per_method(bench: ModuleType, run: tuple[Path, dict]) -> None:
    outdir, report = run
    for split in ("nonsimilar", "similar"):
        for length in report["config"]["lengths"]:
            folder = outdir / split / f"test_{length}"
            truth = list(read_labels(folder / "test.labels.tsv"))
            assert truth
            for method in bench.METHODS:
                with open(folder / f"{method}.tsv", newline="") as fh:
                    ids = [r["read_id"] for r in csv.DictReader(fh, delimiter="\t")]
                assert sorted(ids) == sorted(truth), f"{split} {length} {method}"
                summary = report["splits"][split]["results"]["lengths"][str(length)]
                counts = summary["methods"][method]
                assert (counts["rows"], counts["missing"], counts["extra"]) == (len(truth), 0, 0)


def test_hybrid_keeps_mmseqs2_claims(run: tuple[Path, dict]) -> None:
    """Where MMseqs2 alone answers a rank, the hybrid gives the same taxon from MMseqs2."""
    outdir, report = run
    for split, s in report["splits"].items():
        chosen = s["chosen"]
        if chosen["min_identity"] != "none" or chosen["min_aln_fraction"] or (
            chosen["lca_mode"] != 3
        ):
            continue  # identity or alignment minimums or another LCA mode change the claims
        for length in report["config"]["lengths"]:
            folder = outdir / split / f"test_{length}"
            rows = {}
            for method in ("mmseqs2", "hybrid"):
                with open(folder / f"{method}.tsv", newline="") as fh:
                    rows[method] = {r["read_id"]: r for r in csv.DictReader(fh, delimiter="\t")}
            for read, alone in rows["mmseqs2"].items():
                for rank in RANKS:
                    if alone[f"{rank}_source"] == "mmseqs2":
                        got = rows["hybrid"][read]
                        assert got[f"{rank}_source"] == "mmseqs2"
                        assert got[f"{rank}_taxid"] == alone[f"{rank}_taxid"]


def test_reports(bench: ModuleType, run: tuple[Path, dict]) -> None:
    outdir, _ = run
    saved = json.loads((outdir / "results.json").read_text())
    assert saved["splits"].keys() == {"nonsimilar", "similar"}
    for split, s in saved["splits"].items():
        assert s["tuning"], f"{split}: no routing setting tried on validation"
        assert {t["lca_mode"] for t in s["tuning"]} == {1, 3}
        assert {t["min_aln_fraction"] for t in s["tuning"]} == {0.0, 0.5, 0.8}
        for length, result in s["results"]["lengths"].items():
            assert set(result["methods"]) == set(bench.METHODS)
            for method, m in result["methods"].items():
                assert set(m["ranks"]) == set(RANKS)
                for rank, metrics in m["ranks"].items():
                    for key in ("average_precision", "mean_class_accuracy", "classified"):
                        assert 0.0 <= metrics[key] <= 1.0, (split, length, method, rank, key)
            # BERTax alone answers every fragment that has a 3-mer
            assert result["methods"]["bertax"]["ranks"]["superkingdom"]["classified"] == 1.0
            for rank in RANKS:
                assert (outdir / "plots" / f"pr_{split}_{length}_{rank}.png").stat().st_size > 0
    md = (outdir / "benchmark.md").read_text()
    for label in bench.METHOD_LABELS.values():
        for rank in RANKS:
            assert f"| {rank} | {label} |" in md
    assert "## Routing tuned on validation" in md
