#!/usr/bin/env python3
"""Prediction throughput of hytax's BERTax at the paper's model size (random weights).

Prints reads/s for 1500-nt fragments and 150-nt reads on the current device, for hytax's batched
predictor (both strands averaged, and one strand as the original tool does) and for the original
tool's way (one record per forward pass, padded to 502 tokens), plus peak memory.

    python benchmarks/predict_throughput.py [--data ../shared/data | --fasta FILE] [--seconds 20]
                                            [--device auto]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hytax.model import BertConfig, BertTax, HeadConfig, ModelBundle
from hytax.predict import PredictOptions, Predictor
from hytax.seqio import Read, read_records
from hytax.tokenizer import PAD, encode

PAPER_CLASSES = [5, 44, 156]  # the published model's superkingdom, phylum, genus classes


def paper_bundle() -> ModelBundle:
    torch.manual_seed(0)
    ranks = ["superkingdom", "phylum", "genus"]
    parents = [[0] * n for n in PAPER_CLASSES]
    model = BertTax(BertConfig(), HeadConfig("all_in_one", ranks, PAPER_CLASSES, parents)).eval()
    classes = {
        r: [{"name": f"{r}{i}", "taxid": i + 1, "parent": 0} for i in range(n)]
        for r, n in zip(ranks, PAPER_CLASSES, strict=True)
    }
    return ModelBundle(model, {"head": {"kind": "all_in_one", "ranks": ranks}, "classes": classes})


def sample_reads(sources: list[str], length: int, n: int) -> list[Read]:
    """`n` reads of `length` nt cut at random from the sources (10 per source, then repeated)."""
    rng = random.Random(0)
    reads: list[Read] = []
    for k, seq in enumerate(sources):
        if len(seq) < length:
            continue
        for _ in range(n // 10):
            start = rng.randrange(len(seq) - length + 1)
            reads.append(Read(f"source{k}_{start}", seq[start : start + length]))
    return (reads * (n // max(len(reads), 1) + 1))[:n]


def source_sequences(data: Path, fasta: Path | None) -> list[str]:
    """First record of 12 random genomes of `data`, or the 1000 longest records of `fasta`."""
    if fasta is not None:
        return sorted((r.seq for r in read_records(fasta)), key=len, reverse=True)[:1000]
    genomes = sorted((data / "genomes").glob("*.fa.gz"))
    return [next(iter(read_records(p))).seq for p in random.Random(0).sample(genomes, 12)]


def timed(fn, seconds: float) -> float:
    """Items per second of `fn()` (which returns an item count), repeated for `seconds`."""
    fn()  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += fn()
    return done / (time.perf_counter() - start)


def original_way(bundle: ModelBundle, reads: list[Read], device: torch.device) -> int:
    """One record per forward pass, padded to 502 tokens, as the keras tool predicts."""
    model = bundle.model.to(device)
    with torch.inference_mode():
        for read in reads:
            ids = encode(read.seq)[:502]
            x = np.full((1, 502), PAD, dtype=np.int64)
            x[0, : len(ids)] = ids
            model(torch.from_numpy(x).to(device))
    return len(reads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[1] / "../shared/data")
    parser.add_argument("--fasta", type=Path,
                        help="cut the reads from this FASTA's longest records instead of --data")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    bundle = paper_bundle()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, model: paper size "
        f"(12 blocks, 5 heads, 250 dims, ff 1024), classes {PAPER_CLASSES}"
    )
    sources = source_sequences(args.data, args.fasta)
    for length, n in [(1500, 64), (150, 1024)]:
        reads = sample_reads(sources, length, n)
        for strands in (False, True):
            opts = PredictOptions(
                device=args.device,
                precision=args.precision,
                threads=args.threads,
                both_strands=strands,
                progress="off",
            )
            predictor = Predictor(bundle, opts)
            rate = timed(lambda p=predictor, r=reads: sum(1 for _ in p.rows(r)), args.seconds)
            label = "both strands" if strands else "one strand  "
            print(
                f"{length:>5} nt  hytax batched, {label}: {rate:8.1f} reads/s  "
                f"[{predictor.describe()}]",
                flush=True,
            )
        device = Predictor(bundle, PredictOptions(device=args.device, precision="fp32")).device
        few = reads[: 8 if length == 1500 else 32]
        rate = timed(lambda d=device, r=few: original_way(bundle, r, d), args.seconds / 2)
        print(
            f"{length:>5} nt  original way (1 record/pass, 502 tokens, fp32): {rate:8.1f} reads/s",
            flush=True,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")
    if torch.cuda.is_available():
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
