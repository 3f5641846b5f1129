"""Sequence input: FASTA/FASTQ (plain or gzip) through dnaio, paired reads as one unit.

dnaio is used rather than Biopython because it is the parser cutadapt relies on: it streams
gzip at C speed, validates FASTQ structure (quality length, truncated records) and reports the
line of a malformed record, which is exactly what we need for clear user-facing errors.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dnaio

from hytax.errors import HytaxError

# A pair is classified as one unit: mate 1, a spacer of ambiguous bases (it tokenizes to
# [UNK], so no 3-mer spans the junction), then mate 2 reverse-complemented onto mate 1's strand.
PAIR_SPACER = "NNN"

_COMPLEMENT = str.maketrans("ACGTUNacgtun", "TGCAANtgcaan")


class SequenceFormatError(HytaxError):
    """Input that is not valid FASTA/FASTQ; the message names the file and the record."""


@dataclass(frozen=True)
class Read:
    id: str
    seq: str


def normalise(seq: str) -> str:
    """Upper case, RNA U read as T; other letters stay and become [UNK] 3-mers downstream."""
    return seq.upper().replace("U", "T")


def reverse_complement(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def read_id(name: str) -> str:
    """First word of a header, without a /1 or /2 mate suffix."""
    word = name.split(maxsplit=1)[0] if name.strip() else ""
    if len(word) > 2 and word[-2] == "/" and word[-1] in "12":
        word = word[:-2]
    return word


def _is_empty(path: Path) -> bool:
    if path.stat().st_size == 0:
        return True
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read(1) == b""
        except (OSError, EOFError, zlib.error) as exc:
            raise SequenceFormatError(f"{path}: not a readable gzip file ({exc})") from None
    return False


def read_records(path: str | Path) -> Iterator[Read]:
    """Yield every record of a FASTA/FASTQ file; an empty file yields nothing."""
    path = Path(path)
    if not path.is_file():
        raise SequenceFormatError(f"{path}: no such file")
    if _is_empty(path):
        return
    number = 0
    try:
        with dnaio.open(path) as reader:
            for number, record in enumerate(reader, start=1):
                rid = read_id(record.name)
                if not rid:
                    raise SequenceFormatError(f"{path}: record {number} has an empty header")
                yield Read(rid, normalise(record.sequence))
    except dnaio.exceptions.UnknownFileFormat as exc:
        raise SequenceFormatError(f"{path}: not FASTA or FASTQ ({exc})") from None
    except dnaio.exceptions.FileFormatError as exc:
        where = f"line {exc.line + 1}" if exc.line is not None else f"after record {number}"
        raise SequenceFormatError(f"{path}: malformed record at {where}: {exc.message}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise SequenceFormatError(
            f"{path}: unreadable after record {number} (truncated or binary data: {exc})"
        ) from None


def read_units(path1: str | Path, path2: str | Path | None = None) -> Iterator[Read]:
    """Yield classification units: single reads, or mate pairs joined into one sequence."""
    if path2 is None:
        yield from read_records(path1)
        return
    mates2 = read_records(path2)
    number = 0
    for number, mate1 in enumerate(read_records(path1), start=1):
        mate2 = next(mates2, None)
        if mate2 is None:
            raise SequenceFormatError(
                f"{path2}: ends at record {number - 1} but {path1} has more reads"
            )
        if mate2.id != mate1.id:
            raise SequenceFormatError(
                f"{path2}: record {number} is '{mate2.id}' but its mate in {path1} is '{mate1.id}'"
            )
        yield Read(mate1.id, mate1.seq + PAIR_SPACER + reverse_complement(mate2.seq))
    if next(mates2, None) is not None:
        raise SequenceFormatError(f"{path1}: ends at record {number} but {path2} has more reads")


def write_fasta(reads: Iterator[Read], path: str | Path) -> int:
    """Write reads as FASTA (one line per sequence); returns how many were written."""
    count = 0
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt") as out:
        for read in reads:
            out.write(f">{read.id}\n{read.seq}\n")
            count += 1
    return count
