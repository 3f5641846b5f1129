#!/usr/bin/env python3
"""Prediction throughput of hytax's BERTax at the paper's model size (random weights).

Prints reads/s for 1500-nt fragments and 150-nt reads on the current device, for hytax's batched
predictor (both strands averaged, and one strand as the original tool does) and for the original
tool's way (one record per forward pass, padded to 502 tokens), plus peak memory. It also
measures the device's own matrix-multiply peak in the arithmetic hytax runs in (fp32 or bf16
torch.matmul; on CPU the int8 dynamic-quantized Linear of `--precision int8` and the raw int8
GEMM torch._int_mm) and prints each batched rate as a share of what that peak allows, from the
model's FLOPs per read.

    python benchmarks/predict_throughput.py [--data ../shared/data | --fasta FILE] [--seconds 20]
                                            [--device auto]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hytax.model import BertConfig, BertTax, HeadConfig, ModelBundle, attention_flops
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


@dataclass
class Rate:
    """Items per second of wall-clock time, and per second of this process's CPU time (all
    threads): on a CPU shared with other work the second still says what the cores did while
    they ran this (its shares of peak are the ones to trust under load; the GPU has no such)."""

    wall: float
    cpu: float


def timed(fn: Callable[[], float], seconds: float, sync: Callable[[], None] = lambda: None) -> Rate:
    """Rate of `fn()` (which returns an item count), repeated for at least `seconds`."""
    fn()  # warm-up
    sync()
    done, wall, cpu = 0.0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds or not done:
        done += fn()
    sync()
    return Rate(done / (time.perf_counter() - wall), done / (time.process_time() - cpu))


@dataclass
class Flops:
    """FLOPs (2 per multiply-add) of one read: in linear layers, and in attention's two batched
    products (queries x keys, weights x values), which run in floating point even with int8."""

    linear: float
    attention: float

    @property
    def total(self) -> float:
        return self.linear + self.attention


def forward_flops(cfg: BertConfig, tokens: int, n_classes: list[int]) -> Flops:
    """One forward pass over `tokens` tokens as hytax runs it: every block in full
    (`attention_flops`: linear layers and attention products) but the last, which computes
    keys and values for all tokens and the rest for the [CLS] row alone; then the pooler and the
    all-in-one head. Embeddings, layer norms, GELU and softmax are left out (a few % at most)."""
    h, i, t = cfg.hidden, cfg.intermediate, tokens
    block_attention = 4 * t * t * h
    block_linear = attention_flops(BertConfig(hidden=h, intermediate=i, layers=1), t) - (
        block_attention)
    last_linear = 2 * t * 2 * h * h + 2 * (2 * h * h + 2 * h * i)
    head = sum(2 * (h + sum(n_classes[:r])) * n for r, n in enumerate(n_classes))
    return Flops(
        linear=(cfg.layers - 1) * block_linear + last_linear + 2 * h * h + head,
        attention=(cfg.layers - 1) * block_attention + 4 * t * h,
    )


def read_flops(bundle: ModelBundle, reads: list[Read], both_strands: bool) -> Flops:
    """Mean FLOPs the predictor spends on one of `reads` (one window each here)."""
    n_classes = [len(bundle.classes(r)) for r in bundle.ranks]
    cfg = bundle.model.bert_config
    per_strand = [forward_flops(cfg, len(encode(r.seq)), n_classes) for r in reads]
    strands = 2 if both_strands else 1
    return Flops(strands * sum(f.linear for f in per_strand) / len(per_strand),
                 strands * sum(f.attention for f in per_strand) / len(per_strand))


def matmul_peaks(device: torch.device, seconds: float) -> dict[str, Rate]:
    """FLOP rates of large square products on `device`, per arithmetic: fp32 and bf16 matmul
    (bf16 on GPU only), and on CPU int8 two ways: the dynamic-quantized Linear `--precision int8`
    runs (it also quantizes its fp32 input each call, as hytax's layers do) and the raw int8
    GEMM (torch._int_mm)."""
    n = 2048 if device.type == "cpu" else 8192
    flops = 2.0 * n**3
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    products: dict[str, Callable[[], object]] = {"fp32": lambda: a @ b}
    if device.type == "cuda":
        a16, b16 = a.bfloat16(), b.bfloat16()
        products["bf16"] = lambda: a16 @ b16
    else:
        layer = torch.nn.Sequential(torch.nn.Linear(n, n))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao announces its move to torchao
            layer = torch.ao.quantization.quantize_dynamic(layer, {torch.nn.Linear}, torch.qint8)
        a8 = torch.randint(-128, 128, (n, n), dtype=torch.int8)
        b8 = torch.randint(-128, 128, (n, n), dtype=torch.int8)
        products["int8"] = lambda: layer(a)
        products["int8 GEMM"] = lambda: torch._int_mm(a8, b8)
    with torch.inference_mode():
        return {name: timed(lambda p=product: (p(), flops)[1], seconds, sync)
                for name, product in products.items()}


# which measured peak bounds each part of the model, per --precision
PEAK_OF = {"fp32": ("fp32", "fp32"), "int8": ("int8", "fp32"), "bf16": ("bf16", "bf16")}


def share_of_peak(rate: Rate, flops: Flops, precision: str, peaks: dict[str, Rate],
                  on_cpu: bool) -> str:
    """Achieved FLOP/s, and the rate as a share of what the peaks allow: linear layers at the
    peak of their arithmetic, attention products at the floating-point matmul peak."""
    linear, attention = PEAK_OF[precision]

    def allowed(clock: str) -> float:
        """Reads per second (of `clock`: wall or cpu) if every product ran at its peak."""
        return 1 / (flops.linear / getattr(peaks[linear], clock)
                    + flops.attention / getattr(peaks[attention], clock))

    text = (f"{rate.wall * flops.total / 1e9:.0f} GFLOP/s ({flops.total / 1e9:.2f} GFLOP/read, "
            f"{100 * flops.linear / flops.total:.0f} % linear), "
            f"{100 * rate.wall / allowed('wall'):.0f} % of what the {linear}/{attention} peaks "
            "allow")
    if on_cpu:
        text += f" ({100 * rate.cpu / allowed('cpu'):.0f} % per CPU-second)"
    return text


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
    if args.threads > 0:
        torch.set_num_threads(args.threads)  # before the peak is measured, too
    bundle = paper_bundle()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, model: paper size "
        f"(12 blocks, 5 heads, 250 dims, ff 1024), classes {PAPER_CLASSES}"
    )
    device = Predictor(bundle, PredictOptions(device=args.device, precision="fp32")).device
    on_cpu = device.type == "cpu"
    peaks = matmul_peaks(device, min(args.seconds, 5))
    print(f"matrix-multiply peak on {device.type}: " + ", ".join(
        f"{name} {peak.wall / 1e9:.0f} GFLOP/s"
        + (f" ({peak.cpu / 1e9:.0f} per CPU-second)" if on_cpu else "")
        for name, peak in peaks.items()), flush=True)
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
            flops = read_flops(bundle, reads, strands)
            print(
                f"{length:>5} nt  hytax batched, {label}: {rate.wall:8.1f} reads/s  "
                f"[{predictor.describe()}]  "
                f"{share_of_peak(rate, flops, predictor.precision, peaks, on_cpu)}",
                flush=True,
            )
        few = reads[: 8 if length == 1500 else 32]
        rate = timed(lambda d=device, r=few: original_way(bundle, r, d), args.seconds / 2)
        print(
            f"{length:>5} nt  original way (1 record/pass, 502 tokens, fp32): "
            f"{rate.wall:8.1f} reads/s",
            flush=True,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")
    if torch.cuda.is_available():
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
