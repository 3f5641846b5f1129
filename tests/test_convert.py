"""Converting the original BERTax keras model: keras' own probabilities reproduced without
TensorFlow (fixture from tools/make_keras_fixture.py), class lists and taxids, clear errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import DUMP_2025

from hytax.convert import (
    BERTAX_CLASSES,
    ConversionError,
    ConversionWarning,
    _load_class_names,
    convert_bertax,
)
from hytax.errors import HytaxError
from hytax.model import load_model
from hytax.predict import PredictOptions, predict_file
from hytax.tokenizer import PAD

KERAS = Path(__file__).parent / "data" / "keras"
MODEL_H5 = KERAS / "bertax_tiny.h5"
WEIGHTS_H5 = KERAS / "bertax_tiny_weights.h5"
CLASSES = KERAS / "classes.json"
RANKS = ["superkingdom", "phylum", "genus"]


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(KERAS / "expected.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("converted")
    with pytest.warns(ConversionWarning):
        convert_bertax(MODEL_H5, outdir, taxdump=DUMP_2025, classes=CLASSES)
    return outdir


def _probs(model: torch.nn.Module, tokens: np.ndarray) -> list[np.ndarray]:
    with torch.inference_mode():
        return [lp.exp().numpy() for lp in model(torch.from_numpy(tokens.astype(np.int64)))]


def _assert_matches_keras(model: torch.nn.Module, expected: dict[str, np.ndarray]) -> None:
    for rank, probs in zip(RANKS, _probs(model, expected["tokens"]), strict=True):
        np.testing.assert_allclose(probs, expected[rank], atol=1e-5, rtol=0)


# --- fidelity -------------------------------------------------------------------------------------


def test_reproduces_keras_probabilities(converted: Path, expected: dict) -> None:
    """Inputs padded to 502 tokens as BERTax feeds them; one of 51 tokens, one with [UNK]s."""
    _assert_matches_keras(load_model(converted).model, expected)


def test_unpadded_inputs_give_keras_padded_result(converted: Path, expected: dict) -> None:
    """hytax pads a batch only to its longest input; keras-bert masks [PAD] keys as hytax does."""
    model = load_model(converted).model
    for i, tokens in enumerate(expected["tokens"]):
        n = int((tokens != PAD).sum())
        assert n < len(tokens)
        for rank, probs in zip(RANKS, _probs(model, tokens[None, :n]), strict=True):
            np.testing.assert_allclose(probs[0], expected[rank][i], atol=1e-5, rtol=0)


def test_architecture_is_read_from_the_file(converted: Path) -> None:
    config = json.loads((converted / "config.json").read_text())
    arch = config["architecture"]
    assert (arch["hidden"], arch["layers"], arch["heads"], arch["intermediate"]) == (24, 2, 3, 48)
    assert (arch["max_positions"], arch["vocab_size"], arch["segments"]) == (502, 69, 2)
    assert (arch["gelu"], arch["layer_norm_eps"]) == ("tanh", 1e-14)
    assert config["head"] == {"kind": "all_in_one", "ranks": RANKS}
    assert config["window_nt"] == 1500


def test_weights_only_file_needs_the_head_count(tmp_path: Path, expected: dict) -> None:
    with pytest.raises(ConversionError, match="5 attention heads do not divide the hidden size 24"):
        convert_bertax(WEIGHTS_H5, tmp_path / "a", classes=CLASSES)
    bundle = convert_bertax(WEIGHTS_H5, tmp_path / "b", classes=CLASSES, heads=3)
    _assert_matches_keras(bundle.model, expected)


def test_heads_contradicting_the_model_config(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="'Encoder-1-MultiHeadSelfAttention' has 3 heads"):
        convert_bertax(MODEL_H5, tmp_path, classes=CLASSES, heads=4)


# --- classes and taxids ---------------------------------------------------------------------------


def test_class_names_map_to_taxids_and_parents(converted: Path) -> None:
    classes = load_model(converted).config["classes"]
    taxid = {r: {c["name"]: c["taxid"] for c in classes[r]} for r in RANKS}
    assert taxid["superkingdom"]["Bacteria"] == 2 and taxid["superkingdom"]["Viruses"] == 10239
    assert taxid["phylum"]["Proteobacteria"] == 1224  # a synonym of Pseudomonadota in 2025
    assert taxid["genus"]["Escherichia"] == 561 and taxid["genus"]["unknown"] == 0

    def parent(rank: str, name: str) -> str:
        above = classes[RANKS[RANKS.index(rank) - 1]]
        return above[next(c["parent"] for c in classes[rank] if c["name"] == name)]["name"]

    assert parent("genus", "Escherichia") == "Proteobacteria"
    assert parent("genus", "Orthoebolavirus") == "Negarnaviricota"
    assert parent("phylum", "Negarnaviricota") == "Viruses"
    assert parent("genus", "Homo") == "unknown"  # not in the small dump


def test_names_missing_from_the_taxdump_are_warned(tmp_path: Path) -> None:
    warned = r"11 class names .*superkingdom 'Archaea'.*genus 'Vibrio'"
    with pytest.warns(ConversionWarning, match=warned):
        bundle = convert_bertax(MODEL_H5, tmp_path, taxdump=DUMP_2025, classes=CLASSES)
    assert "genus 'Homo'" in bundle.config["taxonomy"]["unresolved"]


def test_without_taxdump_every_taxid_is_zero(tmp_path: Path) -> None:
    bundle = convert_bertax(MODEL_H5, tmp_path, classes=CLASSES)
    assert {c["taxid"] for r in RANKS for c in bundle.classes(r)} == {0}


def test_published_class_lists_are_built_in() -> None:
    names = _load_class_names(None, RANKS, [5, 44, 156])
    assert names == BERTAX_CLASSES
    for rank_names in names.values():
        assert rank_names[-1] == "unknown" and rank_names[:-1] == sorted(rank_names[:-1])


def test_other_class_counts_need_a_classes_file(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match=r"superkingdom: 5, phylum: 7, genus: 9.*--classes"):
        convert_bertax(MODEL_H5, tmp_path)
    bad = tmp_path / "classes.json"
    bad.write_text(json.dumps({**json.loads(CLASSES.read_text()), "genus": ["Escherichia"]}))
    with pytest.raises(ConversionError, match=r"rank 'genus' needs 9 class names .* has 1"):
        convert_bertax(MODEL_H5, tmp_path / "out", classes=bad)


# --- the converted model in the pipeline ----------------------------------------------------------


def test_converted_model_predicts_reads(tmp_path: Path, converted: Path, ecoli: str) -> None:
    fasta = tmp_path / "reads.fa"
    fasta.write_text(f">long\n{ecoli[:3000]}\n>short\n{ecoli[5000:5150]}\n")
    out = tmp_path / "pred.tsv"
    options = PredictOptions(device="cpu", precision="fp32", progress="off")
    assert predict_file(converted, fasta, None, out, None, options) == 2
    with open(out) as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["read_id"] for r in rows] == ["long", "short"]
    names = {c for r in RANKS for c in json.loads(CLASSES.read_text())[r]}
    assert all(r["genus"] in names for r in rows)


# --- errors ---------------------------------------------------------------------------------------


def test_not_an_h5_file(tmp_path: Path) -> None:
    bogus = tmp_path / "model.h5"
    bogus.write_text("version https://git-lfs.github.com/spec/v1\n")  # an un-fetched LFS file
    with pytest.raises(HytaxError, match=rf"{bogus}: not an HDF5 \(keras .h5\) file"):
        convert_bertax(bogus, tmp_path / "out")
    with pytest.raises(HytaxError, match="no such file"):
        convert_bertax(tmp_path / "absent.h5", tmp_path / "out")
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    with pytest.raises(HytaxError, match=rf"{empty}: an HDF5 file but no keras model"):
        convert_bertax(empty, tmp_path / "out")


def _edited_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "edited.h5"
    shutil.copy(MODEL_H5, copy)
    return copy


def test_missing_layer_is_named(tmp_path: Path) -> None:
    path = _edited_copy(tmp_path)
    with h5py.File(path, "r+") as handle:
        weights = handle["model_weights"]
        del weights["Encoder-2-FeedForward-Norm"]
        names = [n.decode() if isinstance(n, bytes) else n for n in weights.attrs["layer_names"]]
        weights.attrs["layer_names"] = [n for n in names if n != "Encoder-2-FeedForward-Norm"]
    with pytest.raises(HytaxError, match=rf"{path}: layer 'Encoder-2-FeedForward-Norm' is missing"):
        convert_bertax(path, tmp_path / "out", classes=CLASSES)


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    path = _edited_copy(tmp_path)
    with h5py.File(path, "r+") as handle:
        group = handle["model_weights/NSP-Dense/NSP-Dense"]
        del group["bias:0"]
        group["bias:0"] = np.zeros(25, dtype=np.float32)
    with pytest.raises(
        HytaxError, match=r"layer 'NSP-Dense': shape \(25,\) for encoder.pooler.bias, expected"
    ):
        convert_bertax(path, tmp_path / "out", classes=CLASSES)


def test_head_reading_other_inputs_is_refused(tmp_path: Path) -> None:
    path = _edited_copy(tmp_path)
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["name"] == "concatenate_1":
                layer["inbound_nodes"][0] = layer["inbound_nodes"][0][1:]
        handle.attrs["model_config"] = json.dumps(config)
    with pytest.raises(HytaxError, match="layer 'genus_out' reads"):
        convert_bertax(path, tmp_path / "out", classes=CLASSES)
