"""Calibration and abstention on genera a model never saw: real fragments of the bundled test
reference, a small random model whose classes are Escherichia and Arabidopsis."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SHARED_DATA

from hytax.calibrate import CalibrationOptions, abstain_threshold, calibrate_model, fit_temperature
from hytax.data import (
    FragmentOptions,
    GenomeTable,
    LengthSpec,
    ReferenceFasta,
    make_fragments,
    read_labels,
)
from hytax.errors import HytaxError
from hytax.predict import PredictOptions, predict_file

TEST_ASSETS = REPO / "assets" / "test"
MODEL = REPO / "assets" / "models" / "hytax-mini"
ESCHERICHIA = 561  # a genus class of the tiny model
FAST = PredictOptions(threads=2, progress="off", both_strands=False)
# small genomes of genera that are not classes of the shipped model (nor of its training data)
CALIBRATION_GENOMES = ["Anoxybacillus_amylolyticus_section", "Fusarium_equiseti_Z18755",
                       "Cryptosporidium_hominis_AAEL01000195", "Enterobacteria_phage_T1",
                       "Citrus_leaf_blotch_virus", "Methanococcus_maripaludis_S2"]
TEST_GENOMES = ["Planobispora_rosea_GE2270", "Ascaris_suum_mito", "Enterobacteria_phage_P22",
                "Rickettsia_prowazekii_testrp", "Enterobacteria_phage_Mu",
                "Thermococcus_kodakarensis_KOD1"]


@pytest.fixture(scope="module")
def fragments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("calibration")
    options = FragmentOptions(lengths=[LengthSpec(150, 300)], per_superkingdom=None, per_genus=60,
                              split="similar", test_fraction=0.0, val_fraction=0.0, seed=2)
    make_fragments(ReferenceFasta(TEST_ASSETS / "reference.fasta.gz",
                                  TEST_ASSETS / "seq2taxid.tsv"),
                   TEST_ASSETS / "taxdump", out, options)
    return out


def subset(folder: Path, out: Path, keep: object) -> tuple[Path, Path]:
    """The training fragments whose labels pass `keep`, as a FASTA and a labels table."""
    labels = read_labels(folder / "train.labels.tsv")
    lines = (folder / "train.fa").read_text().split("\n")
    fasta, table = out.with_suffix(".fa"), out.with_suffix(".labels.tsv")
    with open(fasta, "w") as fa:
        for header, seq in zip(lines[0::2], lines[1::2], strict=False):
            rid = header[1:].split(" ", 1)[0]
            if keep(labels[rid]):
                fa.write(f">{rid}\n{seq}\n")
    with open(folder / "train.labels.tsv") as src, open(table, "w") as dst:
        header = src.readline()
        dst.write(header)
        for line in src:
            if keep(labels[line.split("\t", 1)[0]]):
                dst.write(line)
    return fasta, table


def predicted(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_temperature_cools_an_overconfident_model() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 2000)
    right = rng.random(2000) < 0.6  # 60 % accurate ...
    pred = np.where(right, y, (y + 1) % 3)
    probs = np.full((2000, 3), 1e-9)
    probs[np.arange(2000), pred] = 1.0  # ... but ~100 % confident
    t = fit_temperature(probs, y)
    assert t > 5
    tempered = np.exp(np.log(probs) / t)
    tempered /= tempered.sum(1, keepdims=True)
    assert float(tempered.max(1).mean()) == pytest.approx(0.6, abs=0.05)


def test_abstain_threshold_lets_through_at_most_the_open_rate() -> None:
    unknown = 2
    # 20 fragments outside the classes (truth unknown), 18 given a class with these confidences
    conf = np.array([0.99, 0.9, 0.9, *np.linspace(0.3, 0.8, 15), 0.95, 0.2, 0.7, 0.6])
    top = np.array([0] * 18 + [unknown, unknown] + [0, 1])
    y = np.array([unknown] * 20 + [0, 0])
    cut = abstain_threshold(conf, top, y, unknown, max_open_rate=0.05)
    # 5 % of 20 is one answer: only the 0.99 stays, the tied 0.9s both go
    assert 0.9 < cut["min_confidence"] <= 0.99
    assert cut["open_rate"] == 0.05 and cut["open_fragments"] == 20
    assert cut["known_answered"] == 0.0  # both inside fragments are below the cut
    assert abstain_threshold(conf, top, np.zeros(22, dtype=int), unknown, 0.05) is None


@pytest.fixture(scope="module")
def unseen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Fragments of two sets of real genomes whose genera the shipped model never saw: one to
    calibrate on, one to test on."""
    root = tmp_path_factory.mktemp("unseen")
    with open(SHARED_DATA / "genomes.tsv", newline="") as fh:
        rows = {r["genome_id"]: r for r in csv.DictReader(fh, delimiter="\t")}
    out = {}
    for name, genomes in (("calibrate", CALIBRATION_GENOMES), ("test", TEST_GENOMES)):
        table = root / f"{name}.tsv"
        table.write_text("genome_id\ttaxid\tlength\n" + "".join(
            f"{g}\t{rows[g]['taxid']}\t{rows[g]['length']}\n" for g in genomes))
        options = FragmentOptions(lengths=[LengthSpec(150, 150), LengthSpec(1500, 1500)],
                                  length_weights=[4, 1], per_superkingdom=None, per_genus=40,
                                  split="similar", test_fraction=0.0, val_fraction=0.0, seed=4)
        make_fragments(GenomeTable(table, SHARED_DATA / "genomes"), SHARED_DATA / "taxdump",
                       root / name, options)
        out[name] = (root / name / "train.fa", root / name / "train.labels.tsv")
    return out


def invented(predictions: Path, labels: Path, classes: dict[str, set[int]], rank: str) -> float:
    """Share of the fragments whose taxon at `rank` is not a class that were given one."""
    truth = read_labels(labels)
    outside = {rid for rid, lab in truth.items() if lab[rank] not in classes[rank]}
    given = sum(1 for r in predicted(predictions)
                if r["read_id"] in outside and r[f"{rank}_taxid"] != "0")
    return given / len(outside)


def test_calibrated_model_abstains_on_genera_it_never_saw(
    unseen: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    classes = {rank: {int(c["taxid"]) for c in entries if c["taxid"]}
               for rank, entries in json.loads((MODEL / "config.json").read_text())
               ["classes"].items()}
    calibrated = tmp_path / "calibrated"
    calibration = calibrate_model(MODEL, *unseen["calibrate"], calibrated,
                                  CalibrationOptions(max_open_rate=0.05), FAST)
    config = json.loads((calibrated / "config.json").read_text())
    assert config["calibration"] == json.loads(json.dumps(calibration))
    assert config["classes"] == json.loads((MODEL / "config.json").read_text())["classes"]
    assert (calibrated / "model.safetensors").read_bytes() == (
        MODEL / "model.safetensors").read_bytes()
    cuts = calibration["abstain"]["per_rank"]
    assert cuts["superkingdom"] is None  # every superkingdom is a class: nothing to fit on
    assert cuts["genus"]["open_fragments"] == len(read_labels(unseen["calibrate"][1])) == 240

    rates = {}
    # the shipped model ships with its own abstention: without it, as before calibration
    for model, options in ((MODEL, replace(FAST, abstain=False)), (calibrated, FAST)):
        for name, (fasta, labels) in unseen.items():
            out = tmp_path / f"{model.name}_{name}.tsv"
            predict_file(model, fasta, None, out, None, options)
            rates[model.name, name] = invented(out, labels, classes, "genus")
    # thresholds per read length: within each, at most the open rate on the calibration genera
    assert [b["below_nt"] for b in cuts["genus"]["by_length"]] == [1000, None]
    rows = predicted(tmp_path / "calibrated_calibrate.tsv")
    for short in (True, False):
        part = {r["read_id"] for r in rows if (int(r["length"]) < 1000) == short}
        given = sum(1 for r in rows if r["read_id"] in part and r["genus_taxid"] != "0")
        assert given <= 0.05 * len(part)
    # unabstained, the model invents genera for genera it never saw ...
    assert rates[MODEL.name, "calibrate"] > 0.05 and rates[MODEL.name, "test"] > 0.05
    # ... calibrated, at most the open rate on the genera it was fitted on, fewer on others
    assert rates["calibrated", "calibrate"] <= 0.05
    assert rates["calibrated", "test"] < rates[MODEL.name, "test"]
    # abstaining at a rank leaves every rank below it unknown too
    before = {r["read_id"]: r for r in predicted(tmp_path / f"{MODEL.name}_test.tsv")}
    dropped = [r for r in predicted(tmp_path / "calibrated_test.tsv")
               if r["phylum_taxid"] == "0" and before[r["read_id"]]["phylum_taxid"] != "0"]
    assert dropped
    assert all(r["genus_taxid"] == "0" for r in dropped)


def test_no_abstain_gives_the_most_probable_class(
    fragments: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    never = {"min_confidence": 1.01}  # above any probability: phylum always abstains
    config["calibration"] = {"abstain": {"per_rank": {"phylum": never}}}
    (model / "config.json").write_text(json.dumps(config))
    fasta, _ = subset(fragments, tmp_path / "all", lambda lab: True)
    hytax = Path(sys.executable).parent / "hytax"
    for extra in ([], ["--no-abstain"]):
        out = tmp_path / f"out{len(extra)}.tsv"
        subprocess.run([str(hytax), "predict", "--model", str(model), "--input", str(fasta),
                        "--output", str(out), "--threads", "1", *extra],
                       check=True, capture_output=True)
        rows = predicted(out)
        assert all(r["superkingdom_taxid"] != "0" or r["superkingdom"] == "unknown" for r in rows)
        abstained = [r for r in rows if r["phylum_taxid"] == "0" and r["genus_taxid"] == "0"]
        assert (len(abstained) == len(rows)) == (not extra)


def test_calibrating_on_a_genus_the_model_knows_is_refused(
    fragments: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    val_fa, val_labels = subset(fragments, tmp_path / "val", lambda lab: True)
    known = rf"val.labels.tsv: .*classes of the model \({ESCHERICHIA}"
    with pytest.raises(HytaxError, match=known):
        calibrate_model(tiny_model_dir, val_fa, val_labels, tmp_path / "out",
                        CalibrationOptions(), FAST)
