#!/usr/bin/env python3
"""Prediction speed of the original BERTax (keras-bert, TensorFlow) at the paper's model size.

The keras side of the comparison with `benchmarks/predict_throughput.py`: 12 blocks, 5 heads,
250 dims, feed-forward 1024, 502 tokens, the all-in-one head with 5/44/156 classes, random
weights. Each read is one `model.predict` call on its BERTax tokens ([CLS] + at most 499 3-mers,
padded to 502), as `bertax` predicts one FASTA record at a time. The reads are the ones
`benchmarks/predict_throughput.py` samples (same genomes, seed and positions).

Needs the throw-away environment of tools/make_keras_fixture.py; run both sides back to back on
the same cores, e.g.

    TF_KERAS=1 /tmp/kerasenv/bin/python tools/keras_speed.py --threads 2 --seconds 20
    .venv/bin/python benchmarks/predict_throughput.py --threads 2 --seconds 20 --precision fp32
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from make_keras_fixture import TOKEN_IDS, bertax_tokens, first_record

PAPER = {"embed_dim": 250, "transformer_num": 12, "head_num": 5, "feed_forward_dim": 1024}
PAPER_CLASSES = {"superkingdom": 5, "phylum": 44, "genus": 156}
SEQ_LEN = 502


def paper_model():  # -> keras.Model
    import keras_bert
    from tensorflow import keras

    bert = keras_bert.get_model(
        token_num=len(TOKEN_IDS), pos_num=SEQ_LEN, seq_len=SEQ_LEN, dropout_rate=0.05,
        training=True, **PAPER,
    )  # fmt: skip
    pooled = bert.get_layer(name="NSP-Dense").output
    outputs: list = []
    head_in = pooled
    for rank, n in PAPER_CLASSES.items():
        outputs.append(keras.layers.Dense(n, activation="softmax", name=f"{rank}_out")(head_in))
        head_in = keras.layers.concatenate([*outputs, pooled])
    return keras.Model(inputs=bert.inputs[:2], outputs=outputs)


def sample_reads(data: Path, length: int, n: int) -> list[str]:
    """The reads of benchmarks/predict_throughput.py `sample_reads` (same seed and order)."""
    genomes = sorted((data / "genomes").glob("*.fa.gz"))
    rng = random.Random(0)
    reads: list[str] = []
    for path in rng.sample(genomes, 12):
        seq = first_record(path)
        if len(seq) < length:
            continue
        for _ in range(n // 10):
            start = rng.randrange(len(seq) - length + 1)
            reads.append(seq[start : start + length])
    return (reads * (n // max(len(reads), 1) + 1))[:n]


def original_way(model, tokens: list[np.ndarray]) -> int:
    """One record per `model.predict` call, as bertax does."""
    for row in tokens:
        x = row[None, :]
        model.predict([x, np.zeros_like(x)], verbose=0, batch_size=32)
    return len(tokens)


def timed(fn, seconds: float) -> float:
    fn()  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += fn()
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[1] / "../shared/data")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=0, help="TF intra/inter-op threads")
    args = parser.parse_args()

    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.random.set_seed(0)
    model = paper_model()
    print(
        f"tensorflow {tf.__version__} (CPU, {args.threads or 'default'} threads), keras-bert "
        f"model: paper size (12 blocks, 5 heads, 250 dims, ff 1024, 502 tokens), "
        f"{model.count_params()} parameters; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    for length, n in [(1500, 64), (150, 1024)]:
        few = sample_reads(args.data, length, n)[: 8 if length == 1500 else 32]
        tokens = [bertax_tokens(seq) for seq in few]
        rate = timed(lambda t=tokens: original_way(model, t), args.seconds)
        print(
            f"{length:>5} nt  keras-bert, 1 record/model.predict, 502 tokens: {rate:8.2f} reads/s",
            flush=True,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
