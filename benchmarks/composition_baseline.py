#!/usr/bin/env python3
"""A composition baseline for BERTax: multinomial logistic regression on canonical 4-mer
frequencies, trained on the same training fragments and tested on the same test genera.

It answers one question: how much of what BERTax gets right on genera it never saw would a
model of k-mer composition alone get right? The baseline never abstains, so a test fragment
whose phylum is not a class of the training fragments counts as wrong at phylum (BERTax is
scored the same way, except that `unknown` is right there).

    python benchmarks/composition_baseline.py --train FRAGMENTS_DIR --test FRAGMENTS_DIR
        [--k 4] [--epochs 300] [--seed 1]

FRAGMENTS_DIR: `hytax fragments` outputs (train.fa + train.labels.tsv in --train, test.fa +
test.labels.tsv in --test; they must be the same genus split). Prints a markdown table: accuracy
per rank and fragment length, and superkingdom precision at the confidence where the
validation fragments reach 85 % precision.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from hytax.data import read_labels
from hytax.evaluate import confidence_threshold
from hytax.train import read_fragments

RANKS = ("superkingdom", "phylum")
BASES = "ACGT"
TARGET_PRECISION = 0.85


def canonical_index(k: int) -> tuple[np.ndarray, int]:
    """Map each k-mer's code (base-4) to the column of its canonical form (k-mer and its
    reverse complement share a column, as strands are unknown in reads)."""
    kmers = ["".join(p) for p in itertools.product(BASES, repeat=k)]
    table = str.maketrans("ACGT", "TGCA")
    columns: dict[str, int] = {}
    index = np.empty(len(kmers), dtype=np.int64)
    for code, kmer in enumerate(kmers):
        canon = min(kmer, kmer.translate(table)[::-1])
        index[code] = columns.setdefault(canon, len(columns))
    return index, len(columns)


def features(seqs: list[str], k: int) -> np.ndarray:
    """Canonical k-mer frequencies per sequence (k-mers with a base other than ACGT skipped)."""
    index, width = canonical_index(k)
    lut = np.full(256, 4, dtype=np.int64)
    for i, b in enumerate(BASES):
        lut[ord(b)] = i
        lut[ord(b.lower())] = i
    out = np.zeros((len(seqs), width), dtype=np.float32)
    for row, seq in enumerate(seqs):
        codes = lut[np.frombuffer(seq.encode(), dtype=np.uint8)]
        if len(codes) < k:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(codes, k)
        ok = (windows < 4).all(axis=1)
        kmer = (windows[ok] * (4 ** np.arange(k - 1, -1, -1))).sum(axis=1)
        counts = np.bincount(index[kmer], minlength=width).astype(np.float32)
        out[row] = counts / max(1.0, counts.sum())
    return out


def read_split(folder: Path, split: str) -> tuple[list[str], dict[str, np.ndarray]]:
    """(sequences, {rank: taxid per read}) of one split of a fragments folder."""
    fragments = read_fragments(folder / f"{split}.fa")
    truth = read_labels(folder / f"{split}.labels.tsv")
    labels = {rank: np.array([truth[i][rank] for i in fragments.ids]) for rank in RANKS}
    return fragments.seqs, labels


def fit(x: np.ndarray, y: np.ndarray, n_classes: int, epochs: int, seed: int) -> np.ndarray:
    """Softmax regression, full batch Adam, class-balanced loss and a little L2."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.01, (x.shape[1] + 1, n_classes)).astype(np.float32)
    xb = np.hstack([x, np.ones((len(x), 1), dtype=np.float32)])
    weight = (len(y) / (n_classes * np.bincount(y, minlength=n_classes).clip(1)))[y]
    weight = (weight / weight.mean()).astype(np.float32)
    onehot = np.eye(n_classes, dtype=np.float32)[y]
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for step in range(1, epochs + 1):
        p = softmax(xb @ w)
        grad = xb.T @ ((p - onehot) * weight[:, None]) / len(y) + 1e-4 * w
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        w -= 0.05 * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return w


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return softmax(np.hstack([x, np.ones((len(x), 1), dtype=np.float32)]) @ w)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    train_seqs, train_y = read_split(args.train, "train")
    val_seqs, val_y = read_split(args.train, "val")
    test_seqs, test_y = read_split(args.test, "test")
    x_train, x_val, x_test = (features(s, args.k) for s in (train_seqs, val_seqs, test_seqs))
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    x_train, x_val, x_test = ((x - mean) / std for x in (x_train, x_val, x_test))
    lengths = np.array([len(s) for s in test_seqs])
    print(f"{args.k}-mer composition baseline: {len(train_seqs)} training, {len(val_seqs)} "
          f"validation, {len(test_seqs)} test fragments\n")
    print("| rank | test length | fragments | taxon not a class | accuracy |")
    print("|---|---|---:|---:|---:|")
    cut_lines = []
    for rank in RANKS:
        classes = np.unique(train_y[rank])
        code = {t: i for i, t in enumerate(classes)}
        w = fit(x_train, np.array([code[t] for t in train_y[rank]]), len(classes),
                args.epochs, args.seed)
        p_test = predict(w, x_test)
        answer = classes[p_test.argmax(axis=1)]
        right = answer == test_y[rank]
        for length in ("all", *map(str, sorted(set(lengths)))):
            keep = np.ones(len(lengths), bool) if length == "all" else lengths == int(length)
            unknown = ~np.isin(test_y[rank][keep], classes)
            print(f"| {rank} | {length} | {keep.sum()} | {unknown.mean():.1%} "
                  f"| {right[keep].mean():.1%} |")
        if rank == "superkingdom":
            p_val = predict(w, x_val)
            val_right = classes[p_val.argmax(axis=1)] == val_y[rank]
            found = confidence_threshold(p_val.max(axis=1), val_right, TARGET_PRECISION)
            cut = found["min_confidence"] if found else 1.0
            conf = p_test.max(axis=1)
            for length in ("all", *map(str, sorted(set(lengths)))):
                keep = (conf >= cut) & (
                    True if length == "all" else lengths == int(length))
                base = len(lengths) if length == "all" else (lengths == int(length)).sum()
                cut_lines.append(f"- {length}: {keep.sum() / base:.1%} answered, "
                                 f"{right[keep].mean() if keep.any() else 0:.1%} right")
            cut_lines.insert(0, f"\nSuperkingdom answers at the validation genera's "
                                f"{TARGET_PRECISION:.0%}-precision confidence ({cut:.3f}), "
                                "test genera:")
    print("\n".join(cut_lines))


if __name__ == "__main__":
    main()
