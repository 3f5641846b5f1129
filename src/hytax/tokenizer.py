"""Non-overlapping 3-mer tokens with the original BERTax (keras-bert) vocabulary ids."""

from __future__ import annotations

import itertools

import numpy as np

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(5)
KMERS = tuple("".join(p) for p in itertools.product("ACGT", repeat=3))
VOCAB = SPECIAL_TOKENS + KMERS
N_SPECIAL = len(SPECIAL_TOKENS)

# Byte -> base code (0..3); every other byte (N, IUPAC codes, gaps) -> 4, which poisons its 3-mer.
_BASE_CODE = np.full(256, 4, dtype=np.int64)
for _code, _base in enumerate("ACGT"):
    _BASE_CODE[ord(_base)] = _code
    _BASE_CODE[ord(_base.lower())] = _code
_BASE_CODE[ord("U")] = _BASE_CODE[ord("T")]
_BASE_CODE[ord("u")] = _BASE_CODE[ord("T")]


def kmer_ids(seq: str) -> np.ndarray:
    """Token ids of the non-overlapping 3-mers of `seq` (a trailing partial 3-mer is dropped)."""
    n = len(seq) // 3
    codes = _BASE_CODE[np.frombuffer(seq[: 3 * n].encode("ascii", "replace"), dtype=np.uint8)]
    codes = codes.reshape(n, 3)
    ids = codes[:, 0] * 16 + codes[:, 1] * 4 + codes[:, 2] + N_SPECIAL
    ids[(codes == 4).any(axis=1)] = UNK
    return ids


def decode(ids: np.ndarray | list[int]) -> list[str]:
    return [VOCAB[i] for i in ids]


def windows(seq: str, window_nt: int, stride_nt: int | None = None) -> list[str]:
    """Cut a sequence into windows of at most `window_nt`; the last window ends at the sequence end.

    With the default stride (= window) windows do not overlap; a smaller stride gives the running
    window. A sequence no longer than the window is one window.
    """
    stride = stride_nt or window_nt
    if len(seq) <= window_nt:
        return [seq]
    starts = list(range(0, len(seq) - window_nt + 1, stride))
    if starts[-1] + window_nt < len(seq):
        starts.append(len(seq) - window_nt)
    return [seq[s : s + window_nt] for s in starts]


def encode(seq: str) -> np.ndarray:
    """Model input for one window: [CLS] then its 3-mers (no [SEP] at classification time)."""
    return np.concatenate(([CLS], kmer_ids(seq)))


def informative(ids: np.ndarray) -> bool:
    """True if a window has at least one real 3-mer (not only [CLS]/[UNK])."""
    return bool((ids >= N_SPECIAL).any())
