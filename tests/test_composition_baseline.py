"""The composition baseline of the benchmark (benchmarks/composition_baseline.py) on real genomes:
strand-free 4-mer features, and a classifier that learns what composition can tell apart."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from conftest import REPO, load_script

from hytax.evaluate import confidence_threshold
from hytax.seqio import read_records, reverse_complement


@pytest.fixture(scope="module")
def baseline() -> ModuleType:
    return load_script(REPO / "benchmarks" / "composition_baseline.py", "composition_baseline")


def pieces(path: Path, length: int, count: int, seed: int) -> list[str]:
    """`count` random pieces of `length` nt from the first record of a genome."""
    seq = next(iter(read_records(path))).seq
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(seq) - length, count)
    return [seq[s : s + length] for s in starts]


def test_features_are_canonical_frequencies(baseline: ModuleType, shared_data: Path) -> None:
    _, width = baseline.canonical_index(4)
    assert width == 136  # 256 4-mers, 16 of them their own reverse complement
    seqs = pieces(shared_data / "genomes" / "Ecoli_536.fa.gz", 300, 5, seed=1)
    forward = baseline.features(seqs, 4)
    reverse = baseline.features([reverse_complement(s) for s in seqs], 4)
    np.testing.assert_allclose(forward, reverse, atol=1e-6)
    np.testing.assert_allclose(forward.sum(axis=1), 1.0, atol=1e-5)
    # a k-mer with N is skipped, not counted as another k-mer
    with_n = baseline.features([seqs[0][:150] + "N" + seqs[0][151:]], 4)
    assert with_n[0].sum() == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(with_n[0], forward[0])


def test_composition_tells_a_high_gc_genome_from_a_low_gc_one(
    baseline: ModuleType, shared_data: Path
) -> None:
    # Streptomyces (~72 % GC) against Borrelia (~28 %): composition alone separates them; held-out
    # pieces come from other positions of the same genomes.
    genomes = [shared_data / "genomes" / f"{g}.fa.gz"
               for g in ("Savermitilis_fragment", "Borrelia_burgdorferi_B31")]
    train = [pieces(g, 150, 200, seed=2) for g in genomes]
    test = [pieces(g, 150, 100, seed=3) for g in genomes]
    x = baseline.features(train[0] + train[1], 4)
    y = np.array([0] * 200 + [1] * 200)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    w = baseline.fit((x - mean) / std, y, 2, epochs=100, seed=1)
    p = baseline.predict(w, (baseline.features(test[0] + test[1], 4) - mean) / std)
    accuracy = (p.argmax(axis=1) == np.array([0] * 100 + [1] * 100)).mean()
    assert accuracy > 0.95
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_the_cut_is_the_lowest_confidence_reaching_the_target() -> None:
    # the baseline's confidence cut is hytax's own (the one model configs store)
    confidence = np.array([0.95, 0.9, 0.8, 0.7, 0.6])
    right = np.array([True, True, True, False, False])
    cut = confidence_threshold(confidence, right, 0.75)
    assert cut is not None and cut["min_confidence"] == 0.7  # 3 of 4 right from 0.7 up
    cut = confidence_threshold(confidence, right, 1.0)
    assert cut is not None and cut["min_confidence"] == 0.8
    assert confidence_threshold(confidence, ~right, 0.5) is None  # never reached
