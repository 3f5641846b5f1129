"""Sequence input: FASTA/FASTQ (plain or compressed) through dnaio, paired reads as one unit.

dnaio is used rather than Biopython because it is the parser cutadapt relies on: it streams
gzip at C speed and validates FASTQ structure (quality length, truncated records). It reads in
large blocks, though, so when it rejects a file it cannot always say which record was at fault
(a non-ASCII byte anywhere in the first block is "after record 0"); on that error path the file
is scanned again here, line by line, to name the record and the line.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dnaio
import numpy as np
from xopen import xopen

from hytax.atomic import atomic_path
from hytax.errors import HytaxError

try:  # xopen decompresses gzip with python-isal where it is installed; its errors are its own
    from isal.isal_zlib import error as IsalError
except ImportError:  # pragma: no cover - platforms without isal
    IsalError = zlib.error

# A pair is classified as one unit: mate 1, a spacer of ambiguous bases (it tokenizes to
# [UNK], so no 3-mer spans the junction), then mate 2 reverse-complemented onto mate 1's strand.
PAIR_SPACER = "NNN"

_COMPLEMENT = str.maketrans("ACGTUNacgtun", "TGCAANtgcaan")
# IUPAC codes and any other letter are read (they become [UNK] 3-mers); anything else in a
# sequence (spaces, digits, alignment gaps) means the file is not what it claims to be.
_NOT_A_LETTER = re.compile(r"[^A-Za-z]")
# What a broken or truncated compressed stream raises, depending on the decompressor.
_UNREADABLE = (EOFError, OSError, zlib.error, IsalError, UnicodeDecodeError)


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
    try:
        with xopen(path, "rb", threads=0) as fh:
            return fh.read(1) == b""
    except _UNREADABLE as exc:
        raise SequenceFormatError(
            f"{path}: unreadable from line 1 on: not valid compressed data ({exc})"
        ) from None


def read_records(path: str | Path) -> Iterator[Read]:
    """Yield every record of a FASTA/FASTQ file; an empty file yields nothing."""
    path = Path(path)
    if not path.is_file():
        raise SequenceFormatError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise SequenceFormatError(f"{path}: not readable (permission denied)")
    if _is_empty(path):
        return
    number = 0
    fastq: bool | None = None  # known once dnaio has chosen its reader
    try:
        with dnaio.open(path) as reader:
            fastq = isinstance(reader, dnaio.FastqReader)
            for number, record in enumerate(reader, start=1):
                yield _checked(path, fastq, number, record)
    except dnaio.exceptions.UnknownFileFormat:
        raise SequenceFormatError(
            f"{path}: line 1: not FASTA or FASTQ (a record starts with '>' or '@'; "
            f"the file starts with {_first_bytes(path)!r})"
        ) from None
    except (dnaio.exceptions.FileFormatError, *_UNREADABLE) as exc:
        if fastq is None:  # dnaio failed while opening: choose as it chooses
            fastq = _fastq_by_name(path)
            fastq = fastq if fastq is not None else not _first_bytes(path).startswith(b">")
        raise _located(path, fastq, number, exc) from None


def _checked(path: Path, fastq: bool, number: int, record: dnaio.SequenceRecord) -> Read:
    """The record as a Read, or an error naming it: a header without a name, a non-letter."""
    rid = read_id(record.name)
    if not rid:
        raise _record_error(path, fastq, number, "the header has no read id")
    bad = _NOT_A_LETTER.search(record.sequence)
    if bad is not None:
        raise _record_error(
            path,
            fastq,
            number,
            f"read '{rid}': sequence has {bad.group()!r} at position {bad.start() + 1} "
            "(only letters, IUPAC codes, are read)",
        )
    return Read(rid, normalise(record.sequence))


def _record_error(path: Path, fastq: bool, number: int, what: str) -> SequenceFormatError:
    return SequenceFormatError(
        f"{path}: record {number} (line {_header_line(path, fastq, number)}): {what}"
    )


def _fastq_by_name(path: Path) -> bool | None:
    """FASTQ or FASTA by the file name, as dnaio decides first; None when the name says neither."""
    suffixes = [x.lower() for x in path.suffixes]
    if suffixes[-1:] and suffixes[-1] in (".gz", ".xz", ".bz2", ".zst"):
        suffixes.pop()
    kind = suffixes[-1] if suffixes else ""
    if kind in (".fastq", ".fq"):
        return True
    if kind in (".fasta", ".fa", ".fna"):
        return False
    return None


def _first_bytes(path: Path) -> bytes:
    try:
        with xopen(path, "rb", threads=0) as fh:
            return fh.read(12)
    except _UNREADABLE:
        return path.read_bytes()[:12]


# --- naming the record and line of a file dnaio rejected -----------------------------------------


@dataclass(frozen=True)
class _Problem:
    record: int  # 1-based; the record being read when the problem showed
    line: int  # 1-based
    what: str


@dataclass(frozen=True)
class _Broken:
    """Where the decompressed lines stop because the compressed stream is truncated or corrupt."""

    what: str


def _lines(path: Path) -> Iterator[bytes | _Broken]:
    """The file's lines (decompressed), without the line break (\\n or \\r\\n); a _Broken
    last when the compressed data breaks off."""
    try:
        with xopen(path, "rb", threads=0) as fh:
            for raw in fh:
                line = raw[:-1] if raw.endswith(b"\n") else raw
                yield line[:-1] if line.endswith(b"\r") else line
    except _UNREADABLE as exc:
        yield _Broken(f"the compressed data ends or breaks here: truncated or corrupt file ({exc})")


def _located(path: Path, fastq: bool, records_read: int, exc: BaseException) -> SequenceFormatError:
    """An error naming the record and line that made dnaio (or the decompressor) give up."""
    problem = _fastq_problem(_lines(path)) if fastq else _fasta_problem(_lines(path))
    if problem is not None:
        return SequenceFormatError(
            f"{path}: record {problem.record} (line {problem.line}): {problem.what}"
        )
    # dnaio found something this scan does not look for: pass its words on.
    detail = getattr(exc, "message", None) or str(exc)
    line = getattr(exc, "line", None)
    where = f"line {line + 1}" if line is not None else f"after record {records_read}"
    return SequenceFormatError(f"{path}: malformed input at {where}: {detail}")


def _non_ascii(line: bytes) -> str | None:
    if line.isascii():
        return None
    column, byte = next((i, b) for i, b in enumerate(line) if b > 127)
    return f"non-ASCII byte 0x{byte:02x} at column {column + 1} (not a sequence file character)"


def _shown(line: bytes) -> str:
    if not line:
        return "a blank line"
    text = line.decode("ascii", "replace")
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _fastq_problem(lines: Iterable[bytes | _Broken]) -> _Problem | None:
    """The first structural problem of a FASTQ file: dnaio's rules (four lines per record,
    '@', '+' empty or repeating the header, quality as long as the sequence, ASCII only)."""
    header = sequence = b""
    number = line_no = 0
    for line_no, line in enumerate(lines, start=1):
        if isinstance(line, _Broken):
            return _Problem(max(number, 1), line_no, line.what)
        part = (line_no - 1) % 4
        number += part == 0
        what = _non_ascii(line)
        if what is None and part == 0 and not line.startswith(b"@"):
            what = f"expected a header starting with '@', found {_shown(line)}"
        elif what is None and part == 2 and not line.startswith(b"+"):
            what = f"expected the '+' line, found {_shown(line)}"
        elif what is None and part == 2 and len(line) > 1 and line[1:] != header[1:]:
            what = f"the '+' line repeats {_shown(line[1:])}, not the header {_shown(header[1:])}"
        elif what is None and part == 3 and len(line) != len(sequence):
            what = f"quality length {len(line)}, sequence length {len(sequence)}"
        if what is not None:
            return _Problem(number, line_no, what)
        header = line if part == 0 else header
        sequence = line if part == 1 else sequence
    if line_no % 4:
        missing = ("sequence", "'+' line", "quality")[line_no % 4 - 1]
        return _Problem(number, line_no, f"the file ends inside the record, before its {missing}")
    return None


def _fasta_problem(lines: Iterable[bytes | _Broken]) -> _Problem | None:
    """The first problem of a FASTA file: non-ASCII bytes, or text before the first header
    (blank lines and '#' comments are allowed, as dnaio allows them)."""
    number = 0
    for line_no, line in enumerate(lines, start=1):
        if isinstance(line, _Broken):
            return _Problem(max(number, 1), line_no, line.what)
        what = _non_ascii(line)
        text = line.strip()
        number += text.startswith(b">")
        if what is None and number == 0 and text and not text.startswith(b"#"):
            what = f"expected a header starting with '>', found {_shown(text)}"
        if what is not None:
            return _Problem(max(number, 1), line_no, what)
    return None


def _header_line(path: Path, fastq: bool, number: int) -> int:
    """The line on which record `number` starts."""
    if fastq:  # dnaio accepts FASTQ only as exactly four lines per record
        return 4 * (number - 1) + 1
    seen = 0
    for line_no, line in enumerate(_lines(path), start=1):
        seen += isinstance(line, bytes) and line.lstrip().startswith(b">")
        if seen == number:
            return line_no
    raise AssertionError(f"{path}: record {number} not found on a second read")


# --- units: single reads or pairs ----------------------------------------------------------------


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


def write_fasta(reads: Iterable[Read], path: str | Path) -> int:
    """Write reads as FASTA (one line per sequence); returns how many were written."""
    count = 0
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt") as out:
        for read in reads:
            out.write(f">{read.id}\n{read.seq}\n")
            count += 1
    return count


# --- hytax prepare: all runs of a sample, every read id once -------------------------------------

RunFiles = tuple[Path, Path | None]  # mate-1 (or single-end) file, mate-2 file


class DuplicateReadError(SequenceFormatError):
    """A read id seen twice in one sample: its rows could not be told apart downstream."""


def prepare(runs: Sequence[RunFiles], output: str | Path) -> int:
    """Validate the reads of every run of a sample and write them, run after run, as FASTA
    (one record per read or pair); returns the number of units. A read id that occurs twice
    in the sample is an error, and on any error no output file is left behind."""
    hashes = array("q")
    with atomic_path(output) as partial:
        count = write_fasta(_hashed(_numbered_units(runs), hashes), partial)
        suspects = _repeated(hashes)
        if suspects:
            _raise_first_duplicate(runs, suspects)
    return count


# str hashes are 64-bit and salted per process, which is fine: both passes run in this one.
_id_hash = hash


def _numbered_units(runs: Sequence[RunFiles]) -> Iterator[tuple[int, Path, int, Read]]:
    """(run index, mate-1 file, record number in it, unit) for every unit of every run."""
    for run, (path1, path2) in enumerate(runs):
        for number, unit in enumerate(read_units(path1, path2), start=1):
            yield run, Path(path1), number, unit


def _hashed(units: Iterable[tuple[int, Path, int, Read]], hashes: array) -> Iterator[Read]:
    # 8 bytes per read instead of a set of ids: 10 M reads cost 80 MB whatever the id length.
    for *_, unit in units:
        hashes.append(_id_hash(unit.id))
        yield unit


def _repeated(hashes: array) -> set[int]:
    """Hashes that occur more than once (a repeated id, or rarely two ids sharing a hash)."""
    ordered = np.frombuffer(hashes, dtype=np.int64)
    ordered.sort()  # in place: the order of the hashes is not needed after this
    return set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())


def _raise_first_duplicate(runs: Sequence[RunFiles], suspects: set[int]) -> None:
    """Read the input again, remembering only reads whose hash repeats, and raise at the first
    id seen twice; hashes shared by different ids (a collision) pass silently."""
    first: dict[str, tuple[int, Path, int]] = {}
    for run, path, number, unit in _numbered_units(runs):
        if _id_hash(unit.id) not in suspects:
            continue
        earlier_run, earlier_path, earlier_number = first.setdefault(unit.id, (run, path, number))
        if (earlier_run, earlier_number) == (run, number):
            continue
        earlier = f"record {earlier_number}"
        if earlier_run != run:
            earlier += f" of {earlier_path}" + (" (given twice?)" if earlier_path == path else "")
        raise DuplicateReadError(
            f"{path}: record {number} has read id '{unit.id}', already at {earlier}: "
            "read ids must be unique within a sample"
        )
