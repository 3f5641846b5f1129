#!/usr/bin/env python3
"""Build the keras-bert fidelity fixture for `tests/test_convert.py` (needs TensorFlow; run once).

A small keras-bert model with the original BERTax layer layout and random weights, saved the way
BERTax ships its model (a full Keras 2 HDF5 file) and as a weights-only HDF5 file, plus tokenised
real sequences and keras' output probabilities. The test converts the model with
`hytax.convert` and must reproduce these probabilities without TensorFlow.

The layout follows BERTax: `keras_bert.get_model(..., training=True)` as in its pre-training,
then the fine-tuning head of `bertax_training/models/bert_utils.py`
(`generate_bert_with_pretrained_multi_tax`): on the `NSP-Dense` output one softmax Dense layer per
rank, named `{rank}_out`, where rank r sees `concatenate([out_0, ..., out_{r-1}, NSP-Dense])`
(probabilities first, pooled vector last). Inputs are tokenised as BERTax predicts: [CLS], then
at most 499 non-overlapping 3-mers (a trailing partial 3-mer padded with N, i.e. [UNK]), then
[PAD]=0 up to the model's input length; segment ids are all 0.

Throw-away environment (TensorFlow 2.15 is the last Keras 2 release; keras-bert 0.89.0 is the
last keras-bert release):

    python3.11 -m venv /tmp/kerasenv
    /tmp/kerasenv/bin/pip install "tensorflow-cpu==2.15.1" "keras-bert==0.89.0" h5py
    TF_KERAS=1 /tmp/kerasenv/bin/python tools/make_keras_fixture.py \\
        --data ../shared/data --out tests/data/keras
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
from pathlib import Path

os.environ.setdefault("TF_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

SEQ_LEN = 502  # BERTax's input length: [CLS] + 499 3-mers, padded
EMBED, HEADS, BLOCKS, FF = 24, 3, 2, 48
SEED = 20240611
RANKS = ("superkingdom", "phylum", "genus")
# Real names, alphabetical with `unknown` last as in BERTax. Against the small 2025 test taxdump
# (tests/data/taxonomy/ncbi2025) Proteobacteria resolves through its synonym and several names
# are absent, so the converter's "not found" warning is exercised.
CLASSES = {
    "superkingdom": ["Archaea", "Bacteria", "Eukaryota", "Viruses", "unknown"],
    "phylum": [
        "Chordata",
        "Euryarchaeota",
        "Negarnaviricota",
        "Proteobacteria",
        "Streptophyta",
        "Uroviricota",
        "unknown",
    ],
    "genus": [
        "Arabidopsis",
        "Escherichia",
        "Homo",
        "Methanosarcina",
        "Orthoebolavirus",
        "Pseudomonas",
        "Salmonella",
        "Vibrio",
        "unknown",
    ],
}
# (label, genome file stem, start, length, N-run (start, end) or None)
INPUTS = [
    ("ecoli_1500", "Ecoli_K12_MG1655", 10_000, 1500, None),
    ("acidilobus_1500", "Acidilobus_saccharovorans_345-15", 5_000, 1500, None),
    ("andes_1500", "Andes_virus", 0, 1500, None),
    ("athaliana_700_with_n", "Athaliana_BAC_T25K16", 2_000, 700, (100, 131)),
    ("akkermansia_150", "Akkermansia_muciniphila_BAA835_500kb", 3_000, 150, None),
    ("ecoli_100_partial", "Ecoli_K12_MG1655", 50_000, 100, None),
]

KMERS = ["".join(p) for p in itertools.product("ACGT", repeat=3)]
TOKEN_IDS = {"": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
TOKEN_IDS.update({k: i + 5 for i, k in enumerate(KMERS)})


def first_record(path: Path) -> str:
    """Sequence of the first FASTA record, upper case."""
    parts: list[str] = []
    with gzip.open(path, "rt") as handle:
        for line in handle:
            if line.startswith(">"):
                if parts:
                    break
                continue
            parts.append(line.strip())
    return "".join(parts).upper()


def bertax_tokens(seq: str, max_kmers: int = SEQ_LEN - 3, length: int = SEQ_LEN) -> np.ndarray:
    """BERTax's tokenisation: [CLS], 3-mers (last partial one padded with N), [PAD] to length."""
    kmers = [seq[i : i + 3] for i in range(0, len(seq), 3)]
    kmers = [k.ljust(3, "N") for k in kmers][:max_kmers]
    ids = [TOKEN_IDS["[CLS]"]] + [TOKEN_IDS.get(k, TOKEN_IDS["[UNK]"]) for k in kmers]
    return np.array(ids + [0] * (length - len(ids)), dtype=np.int32)


def build_model():  # -> keras.Model
    import keras_bert
    from tensorflow import keras

    bert = keras_bert.get_model(
        token_num=len(TOKEN_IDS),
        pos_num=SEQ_LEN,
        seq_len=SEQ_LEN,
        embed_dim=EMBED,
        transformer_num=BLOCKS,
        head_num=HEADS,
        feed_forward_dim=FF,
        dropout_rate=0.05,
        training=True,
    )
    pooled = bert.get_layer(name="NSP-Dense").output
    outputs: list = []
    head_in = pooled
    for rank in RANKS:
        out = keras.layers.Dense(len(CLASSES[rank]), activation="softmax", name=f"{rank}_out")
        outputs.append(out(head_in))
        head_in = keras.layers.concatenate([*outputs, pooled])
    return keras.Model(inputs=bert.inputs[:2], outputs=outputs)


def randomise(model, rng: np.random.Generator) -> None:
    """Random values for every weight (biases and norms too), so a wrong mapping shows."""
    values = []
    for weight in model.weights:
        shape, name = tuple(weight.shape), weight.name
        if "gamma" in name:
            values.append(1.0 + 0.2 * rng.standard_normal(shape))
        elif len(shape) == 1:
            values.append(0.2 * rng.standard_normal(shape))
        elif "embeddings" in name:
            values.append(0.5 * rng.standard_normal(shape))
        else:
            scale = 3.0 if name.endswith("_out/kernel:0") else 1.0
            values.append(scale * rng.standard_normal(shape) / np.sqrt(shape[0]))
    model.set_weights([v.astype(np.float32) for v in values])


def make_inputs(data: Path) -> tuple[list[str], np.ndarray]:
    labels, rows = [], []
    for label, stem, start, length, n_run in INPUTS:
        seq = first_record(data / "genomes" / f"{stem}.fa.gz")[start : start + length]
        if n_run is not None:
            seq = seq[: n_run[0]] + "N" * (n_run[1] - n_run[0]) + seq[n_run[1] :]
        labels.append(label)
        rows.append(bertax_tokens(seq))
    return labels, np.stack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[1] / "../shared/data")
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "tests/data/keras")
    args = parser.parse_args()

    import keras_bert
    import tensorflow as tf

    tf.random.set_seed(SEED)
    model = build_model()
    randomise(model, np.random.default_rng(SEED))
    labels, tokens = make_inputs(args.data)
    probs = model.predict([tokens, np.zeros_like(tokens)], verbose=0)

    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "bertax_tiny.h5", include_optimizer=False, save_format="h5")
    model.save_weights(args.out / "bertax_tiny_weights.h5", save_format="h5")
    np.savez_compressed(
        args.out / "expected.npz",
        tokens=tokens,
        labels=np.array(labels),
        **{rank: p.astype(np.float32) for rank, p in zip(RANKS, probs, strict=True)},
    )
    (args.out / "classes.json").write_text(json.dumps(CLASSES, indent=2) + "\n")
    info = {
        "made_by": "tools/make_keras_fixture.py",
        "tensorflow": tf.__version__,
        "keras_bert": getattr(keras_bert, "__version__", "0.89.0"),
        "architecture": {"seq_len": SEQ_LEN, "embed": EMBED, "heads": HEADS, "blocks": BLOCKS,
                         "feed_forward": FF},
        "seed": SEED,
        "inputs": [
            {"label": label, "genome": stem, "start": start, "length": length, "n_run": n_run}
            for label, stem, start, length, n_run in INPUTS
        ],
    }
    (args.out / "fixture.json").write_text(json.dumps(info, indent=2) + "\n")
    for path in sorted(args.out.iterdir()):
        print(f"{path}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
