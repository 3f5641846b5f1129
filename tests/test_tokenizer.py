"""3-mer tokens with keras-bert BERTax ids, on real sequence."""

from __future__ import annotations

import itertools

import numpy as np

from hytax.tokenizer import CLS, KMERS, N_SPECIAL, UNK, VOCAB, decode, encode, kmer_ids, windows


def test_vocabulary_matches_original_bertax_ids() -> None:
    assert VOCAB[:5] == ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
    assert len(VOCAB) == 69
    assert VOCAB.index("AAA") == 5 and VOCAB.index("TTT") == 68
    assert KMERS == tuple("".join(p) for p in itertools.product("ACGT", repeat=3))


def test_round_trip_on_real_sequence(ecoli: str) -> None:
    seq = ecoli[5000:6500]
    ids = kmer_ids(seq)
    assert len(ids) == 500 and ids.min() >= N_SPECIAL
    assert "".join(decode(ids)) == seq
    # Each id is the position of its 3-mer in product('ACGT') order, offset by the 5 specials.
    assert all(i == KMERS.index(seq[3 * k : 3 * k + 3]) + 5 for k, i in enumerate(ids[:50]))


def test_ambiguous_bases_make_unk_and_lower_case_is_accepted(ecoli: str) -> None:
    seq = ecoli[:30].lower()
    ids = kmer_ids(seq[:4] + "N" + seq[5:])
    assert ids[1] == UNK and (np.delete(ids, 1) >= N_SPECIAL).all()
    assert (kmer_ids(seq) == kmer_ids(seq.upper())).all()
    assert (kmer_ids("ACGU") == kmer_ids("ACGT")).all()


def test_encode_starts_with_cls_and_drops_partial_kmer(ecoli: str) -> None:
    ids = encode(ecoli[:152])
    assert ids[0] == CLS and len(ids) == 51


def test_windows_cover_the_sequence(ecoli: str) -> None:
    seq = ecoli[:4000]
    parts = windows(seq, 1500)
    assert [len(p) for p in parts] == [1500, 1500, 1500]
    assert parts[0] == seq[:1500] and parts[-1] == seq[-1500:]
    running = windows(seq, 1500, 500)
    assert len(running) == 6 and running[1] == seq[500:2000]
    assert windows(seq[:100], 1500) == [seq[:100]]
