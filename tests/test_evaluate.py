"""`hytax evaluate` on small cases whose numbers can be derived by hand."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hytax.evaluate import (
    CardOptions,
    EvaluateOptions,
    average_precision,
    confidence_threshold,
    evaluate,
    pr_curve,
)

PREDICT_HEADER = ["read_id", "length", "superkingdom", "superkingdom_taxid", "superkingdom_prob",
                  "phylum", "phylum_taxid", "phylum_prob", "genus", "genus_taxid", "genus_prob"]
TRUTH = [  # read, superkingdom, phylum, genus
    ("r1", 2, 1224, 561),
    ("r2", 2, 1224, 561),
    ("r3", 2759, 4890, 4930),
    ("r4", 2759, 4890, 4930),
    ("r5", 2759, 0, 4930),
]
PREDICTIONS = [  # superkingdom (name, taxid, prob), phylum (...); genus is always NA
    ("r1", ("Bacteria", 2, 0.9), ("Proteobacteria", 1224, 0.9)),
    ("r2", ("Eukaryota", 2759, 0.8), ("unknown", 0, 0.5)),
    ("r3", ("Eukaryota", 2759, 0.7), ("Ascomycota", 4890, 0.7)),
    ("r4", ("NA", 0, 0.0), ("NA", 0, 0.0)),
    ("r5", ("Eukaryota", 2759, 0.6), ("unknown", 0, 0.6)),
]


def write_tsv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w") as fh:
        fh.write("\t".join(header) + "\n")
        for row in rows:
            fh.write("\t".join(str(x) for x in row) + "\n")
    return path


def write_truth(path: Path) -> Path:
    header = ["read_id", "superkingdom_taxid", "phylum_taxid", "genus_taxid", "genome_id"]
    return write_tsv(path, header, [[*row, "g"] for row in TRUTH])


def write_predict(path: Path) -> Path:
    rows = [[rid, 150, *sk, *ph, "NA", 0, 0] for rid, sk, ph in PREDICTIONS]
    return write_tsv(path, PREDICT_HEADER, rows)


def run(tmp_path: Path, predictions: Path, truth: Path, **options: object) -> dict:
    return evaluate(EvaluateOptions(predictions, truth, tmp_path / "eval", **options))


def test_pr_curve_and_average_precision_by_hand() -> None:
    # Three predictions (hit, miss, hit) out of four reads, one never predicted:
    # precision 1, 1/2, 2/3 at recall 1/4, 1/4, 2/4 -> AP = 1/4 * 1 + 0 + 1/4 * 2/3.
    p, r, t = pr_curve(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 4)
    assert p.tolist() == pytest.approx([1, 0.5, 2 / 3])
    assert r.tolist() == pytest.approx([0.25, 0.25, 0.5])
    assert average_precision(p, r) == pytest.approx(0.25 + 0.25 * 2 / 3)
    # Tied scores form one threshold.
    p, r, t = pr_curve(np.array([0.5, 0.5]), np.array([True, False]), 2)
    assert p.tolist() == [0.5] and r.tolist() == [0.5] and t.tolist() == [0.5]


def test_evaluate_predict_table(tmp_path: Path) -> None:
    summary = run(tmp_path, write_predict(tmp_path / "pred.tsv"),
                  write_truth(tmp_path / "truth.tsv"))
    assert summary["format"] == "predict"
    sk = summary["ranks"]["superkingdom"]
    # Hits at 0.9, 0.7, 0.6, a miss at 0.8, r4 unclassified: 3 of 5 right.
    assert sk["classified"] == pytest.approx(0.8)
    assert sk["accuracy"] == pytest.approx(0.6)
    assert sk["precision"] == pytest.approx(0.75)
    # Bacteria 1/2 right, Eukaryota 2/3 right.
    assert sk["mean_class_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-6)
    # P = 1, 1/2, 2/3, 3/4 at R = .2, .2, .4, .6
    assert sk["average_precision"] == pytest.approx(0.2 + 0.2 * 2 / 3 + 0.2 * 3 / 4, abs=1e-6)

    ph = summary["ranks"]["phylum"]
    # r5 has no phylum (truth 0): "unknown" is right there; r2's "unknown" is wrong.
    assert ph["accuracy"] == pytest.approx(0.6)
    assert ph["class_accuracy"] == {"0": 1.0, "1224": 0.5, "4890": 0.5}
    assert ph["mean_class_accuracy"] == pytest.approx(2 / 3, abs=1e-6)
    # Hits at 0.9, 0.7, 0.6 then the miss at 0.5: P = 1, 1, 1, 3/4 at R = .2, .4, .6, .6
    assert ph["average_precision"] == pytest.approx(0.6)

    genus = summary["ranks"]["genus"]
    assert genus["classified"] == 0 and genus["average_precision"] == 0

    out = tmp_path / "eval"
    for rank in ("superkingdom", "phylum", "genus"):
        for name in (f"pr_{rank}.png", f"reliability_{rank}.png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "confusion_superkingdom.tsv") as fh:
        rows = {r["truth_taxid"]: r for r in csv.DictReader(fh, delimiter="\t")}
    assert rows["2759"]["2759:Eukaryota"] == "2" and rows["2759"]["unclassified"] == "1"
    assert rows["2"]["2:Bacteria"] == "1" and rows["2"]["2759:Eukaryota"] == "1"
    assert "| superkingdom | 5 | 80.0% | 60.0% |" in (out / "summary.md").read_text()
    assert json.loads((out / "summary.json").read_text())["ranks"]["phylum"]["reads"] == 5


def test_probabilities_give_the_micro_averaged_curve(tmp_path: Path) -> None:
    probs = {"r1": (0.9, 0.1), "r2": (0.2, 0.8), "r3": (0.3, 0.7), "r4": (0.0, 0.0),
             "r5": (0.4, 0.6)}
    with open(tmp_path / "probs.jsonl", "w") as fh:
        for rid, (b, e) in probs.items():
            fh.write(json.dumps({"read_id": rid, "superkingdom": {"Bacteria": b, "Eukaryota": e},
                                 "phylum": {}, "genus": {}}) + "\n")
    model = tmp_path / "model"
    model.mkdir()
    classes = {"superkingdom": [{"name": "Bacteria", "taxid": 2, "parent": 0},
                                {"name": "Eukaryota", "taxid": 2759, "parent": 0},
                                {"name": "unknown", "taxid": 0, "parent": 0}],
               "phylum": [{"name": "unknown", "taxid": 0, "parent": 2}],
               "genus": [{"name": "unknown", "taxid": 0, "parent": 0}]}
    (model / "config.json").write_text(json.dumps({"classes": classes}))
    summary = run(tmp_path, write_predict(tmp_path / "pred.tsv"),
                  write_truth(tmp_path / "truth.tsv"), probabilities=tmp_path / "probs.jsonl",
                  model=model)
    sk = summary["ranks"]["superkingdom"]
    # Scores sorted: .9 H, .8 M, .7 H, .6 H, .4 M, .3 M, .2 H, .1 M; 5 positives (r4 never
    # scored): recall rises at .9 (P 1), .7 (P 2/3), .6 (P 3/4), .2 (P 4/7), by 0.2 each.
    expected = 0.2 * (1 + 2 / 3 + 3 / 4 + 4 / 7)
    assert sk["average_precision"] == pytest.approx(expected, abs=1e-6)
    assert sk["average_precision_top1"] == pytest.approx(0.2 + 0.2 * 2 / 3 + 0.2 * 3 / 4, abs=1e-6)
    # The model has no phylum classes: every truth phylum is scored as "unknown".
    ph = summary["ranks"]["phylum"]
    assert ph["truth_outside_model_classes"] == 4
    assert ph["class_accuracy"] == {"0": pytest.approx(2 / 5)}  # r2 and r5 said unknown


def test_merge_table_is_detected_and_none_is_unclassified(tmp_path: Path) -> None:
    header = ["read_id", "length", "rank", "taxid", "name"]
    for rank in ("superkingdom", "phylum", "genus"):
        header += [f"{rank}_taxid", f"{rank}_name", f"{rank}_source", f"{rank}_confidence"]
    rows = [
        ["r1", 150, "genus", 561, "Escherichia", 2, "Bacteria", "mmseqs2", 0.99,
         1224, "Proteobacteria", "mmseqs2", 0.99, 561, "Escherichia", "mmseqs2", 0.99],
        ["r3", 150, "superkingdom", 2759, "Eukaryota", 2759, "Eukaryota", "bertax", 0.9,
         0, "unclassified", "none", 0, 0, "unclassified", "none", 0],
    ]
    pred = write_tsv(tmp_path / "merged.tsv", header, rows)
    summary = run(tmp_path, pred, write_truth(tmp_path / "truth.tsv"))
    assert summary["format"] == "merge"
    assert summary["ranks"]["superkingdom"]["accuracy"] == pytest.approx(2 / 5)
    assert summary["ranks"]["genus"]["classified"] == pytest.approx(1 / 5)
    assert summary["ranks"]["genus"]["average_precision"] == pytest.approx(1 / 5)


def test_confidence_threshold_is_the_lowest_reaching_the_precision() -> None:
    # Sorted by confidence: H H M H H M M; precision at each threshold 1, 1, 2/3, 3/4, 4/5,
    # 4/6, 4/7: 0.75 is first missed at 0.7 and reached again down to 0.5 (4/5).
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    hit = np.array([True, True, False, True, True, False, False])
    assert confidence_threshold(conf, hit, 0.75) == {
        "min_confidence": 0.5, "precision": 0.8, "recall": pytest.approx(4 / 7, abs=1e-4)}
    assert confidence_threshold(conf, hit, 1.0)["min_confidence"] == 0.8
    assert confidence_threshold(conf, np.zeros(7, dtype=bool), 0.5) is None


def test_model_card_and_multiqc_content(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The published model folder and MultiQC files, from a model, its logs and its splits."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["name"] = "card-test"
    config["calibration"] = {"temperature": {"superkingdom": 1.5, "phylum": 2.0, "genus": 3.0},
                             "thresholds": {"target_precision": 0.9, "per_rank": {
                                 "superkingdom": {"min_confidence": 0.7, "precision": 0.92,
                                                  "recall": 0.41},
                                 "phylum": None, "genus": None}}}
    config["training"] = {"steps": 5, "resumed_at": [3], "batch_size": 16, "lr": 1e-3}
    (model / "config.json").write_text(json.dumps(config))
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "pretrain.metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"epoch": 1, "step": 4, "train_loss": 4.5, "val_loss": 4.4, "val_mlm_accuracy": 0.05,
         "val_nsp_accuracy": 0.6}]))
    (logs / "finetune.metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"epoch": 1, "step": 3, "train_loss": 2.0, "val_loss": 1.9,
         "val_accuracy": {"superkingdom": 0.5, "phylum": 0.2, "genus": 0.0}},
        {"epoch": 2, "step": 5, "train_loss": 1.5, "val_loss": 1.7,
         "val_accuracy": {"superkingdom": 0.6, "phylum": 0.3, "genus": 0.0}}]))
    fragments = tmp_path / "fragments"
    fragments.mkdir()
    (fragments / "fragments.json").write_text(json.dumps({
        "reference": "ref.fa.gz", "lengths": ["150:300"], "split": "genus", "seed": 1,
        "fragments": {"train": 10, "val": 2, "test": 5},
        "genera": {"train": 3, "val": 1, "test": 1}, "superkingdoms_not_held_out": ["Viruses"]}))
    (fragments / "genera.tsv").write_text(
        "genus_taxid\tgenus\tphylum_taxid\tphylum\tsuperkingdom_taxid\tsuperkingdom\tsplit"
        "\tfragments\ttaxa\n561\tEscherichia\t1224\tProteobacteria\t2\tBacteria\ttest\t5\t562\n")
    card = tmp_path / "published"
    summary = run(tmp_path, write_predict(tmp_path / "pred.tsv"),
                  write_truth(tmp_path / "truth.tsv"), model=model, multiqc=tmp_path / "mqc",
                  card=CardOptions(card, sorted(logs.glob("*.jsonl")), fragments))

    # the published folder: the same weights, the config with the test metrics
    assert (card / "model.safetensors").read_bytes() == (model / "model.safetensors").read_bytes()
    published = json.loads((card / "config.json").read_text())
    assert published["training"]["heldout_test_metrics"]["superkingdom"]["accuracy"] == \
        summary["ranks"]["superkingdom"]["accuracy"]
    assert (card / "genera.tsv").is_file()
    text = (card / "README.md").read_text()
    for expected in ("# card-test", "Source: ref.fa.gz", "train 10 fragments / 3 genera",
                     "never validated or tested): Viruses", "| test | Escherichia |",
                     "- finetune: 5 steps (the last in epoch 2), 2 validation(s)",
                     "- Encoder: random weights",
                     "resumed from a checkpoint at step(s) [3]",
                     "| superkingdom | 1.5 | 0.700 | 92.0% | 41.0% |", "| phylum | 2.0 | none |",
                     "| superkingdom | 5 | 80.0% | 60.0% |",
                     "![learning_curves](figures/learning_curves.png)"):
        assert expected in text, expected
    for png in ("learning_curves.png", "reliability_superkingdom.png", "pr_genus.png"):
        assert (card / "figures" / png).read_bytes()[:4] == b"\x89PNG"

    sections = {p.name: json.loads(p.read_text()) for p in (tmp_path / "mqc").glob("*_mqc.json")}
    loss = sections["hytax_train_finetune_loss_mqc.json"]
    assert loss["plot_type"] == "linegraph"
    assert loss["data"] == {"training loss": [[3, 2.0], [5, 1.5]],
                            "validation loss": [[3, 1.9], [5, 1.7]]}
    accuracy = sections["hytax_train_pretrain_accuracy_mqc.json"]["data"]
    assert accuracy == {"masked 3-mers": [[4, 0.05]], "next sentence": [[4, 0.6]]}
    table = sections["hytax_train_evaluation_mqc.json"]
    assert table["plot_type"] == "table"
    assert table["data"]["superkingdom"]["accuracy"] == pytest.approx(60.0)
    assert table["data"]["superkingdom"]["threshold"] == 0.7
    assert table["data"]["phylum"]["threshold"] is None
    reliability = sections["hytax_train_reliability_mqc.json"]["data"]
    assert reliability["perfect calibration"] == [[0.0, 0.0], [1.0, 1.0]]
    # superkingdom: hits at 0.9 and 0.7, 0.6, a miss at 0.8 -> bins 0.6, 0.7, 0.8, 0.9
    assert reliability["superkingdom"] == [[0.6, 1.0], [0.7, 1.0], [0.8, 0.0], [0.9, 1.0]]
