"""The tables that cross step boundaries, each defined once with its reader and writer.

- **claims**: what one classifier tier says of every prepared read (taxid per rank plus the
  evidence), in read order; also the table of claims the routing kept, one answer per read.
- **predictions**: BERTax's answer per routed read (written by `hytax predict`).
- **merged**: every input read once, per rank the taxon, its source and its confidence.

Readers stream (one row at a time) so that no step holds a sample in memory; they check the
header and every value and name the file and line of anything wrong.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from hytax.atomic import atomic_path
from hytax.errors import HytaxError
from hytax.seqio import Read
from hytax.taxonomy import RANKS

NO_SOURCE = "none"

CLAIM_COLUMNS: tuple[str, ...] = (
    "read_id", "source", "lca_taxid", "lca_rank", "identity", "aln_fraction", "evalue", "bits",
    *(f"{rank}_taxid" for rank in RANKS),
)
PREDICTION_COLUMNS: tuple[str, ...] = (
    "read_id", "length",
    *(f"{rank}{suffix}" for rank in RANKS for suffix in ("", "_taxid", "_prob")),
)
MERGED_COLUMNS: tuple[str, ...] = (
    "read_id", "length", "rank", "taxid", "name",
    *(f"{rank}_{field}" for rank in RANKS for field in ("taxid", "name", "source", "confidence")),
)


# --- plain TSV --------------------------------------------------------------------------------


def open_text_out(path: str | Path) -> TextIO:
    if str(path).endswith(".gz"):
        return gzip.open(path, "wt", encoding="utf-8")
    return open(path, "w", encoding="utf-8")


def tsv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, tab-split fields) of every non-empty line."""
    if not path.is_file():
        raise HytaxError(f"{path}: no such file")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if line:
                yield number, line.split("\t")


def parse_int(path: Path, number: int, text: str, column: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise HytaxError(f"{path}: line {number}: {column} '{text}' is not an integer") from None


def parse_float(path: Path, number: int, text: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value):
        raise HytaxError(f"{path}: line {number}: {column} '{text}' is not a number")
    return value


def parse_fraction(path: Path, number: int, text: str, column: str) -> float:
    value = parse_float(path, number, text, column)
    if not 0.0 <= value <= 1.0:
        raise HytaxError(f"{path}: line {number}: {column} '{text}' is not a number in 0-1")
    return value


def format_fraction(value: float) -> str:
    return "0" if value == 0 else f"{value:.4g}"


def _header(path: Path, rows: Iterator[tuple[int, list[str]]], columns: tuple[str, ...],
            what: str) -> list[int] | None:
    """Column indexes of `columns` in the file's header; None for an empty file."""
    first = next(rows, None)
    if first is None:
        return None
    header = first[1]
    missing = [column for column in columns if column not in header]
    if missing:
        raise HytaxError(f"{path}: line 1: not {what} (missing column(s) {', '.join(missing)})")
    return [header.index(column) for column in columns]


def _required_header(path: Path, rows: Iterator[tuple[int, list[str]]],
                     columns: tuple[str, ...], what: str) -> list[int]:
    index = _header(path, rows, columns, what)
    if index is None:
        raise HytaxError(f"{path}: empty file, expected {what} with a header")
    return index


def _fields(path: Path, number: int, fields: list[str], index: list[int]) -> list[str]:
    if len(fields) <= max(index):
        raise HytaxError(f"{path}: line {number}: {len(fields)} columns, expected at least "
                         f"{max(index) + 1}")
    return [fields[i] for i in index]


# --- claims -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One classifier's answer for one read: a taxid per rank (0 = none) plus its evidence.
    identity and aln_fraction are 0-1; evalue and bits are the best hit's."""

    read_id: str
    source: str
    taxids: tuple[int, ...]
    lca_taxid: int = 0
    lca_rank: str = "no rank"
    identity: float = 0.0
    aln_fraction: float = 0.0
    evalue: float = math.inf
    bits: float = 0.0

    @classmethod
    def empty(cls, read_id: str, source: str = NO_SOURCE) -> Claim:
        return cls(read_id, source, (0,) * len(RANKS))

    @property
    def claimed(self) -> bool:
        return any(self.taxids)


def _claim_row(claim: Claim) -> str:
    evalue = "inf" if math.isinf(claim.evalue) else f"{claim.evalue:.3g}"
    cells = [claim.read_id, claim.source, str(claim.lca_taxid), claim.lca_rank,
             format_fraction(claim.identity), format_fraction(claim.aln_fraction), evalue,
             f"{claim.bits:g}", *map(str, claim.taxids)]
    return "\t".join(cells) + "\n"


def write_claims(path: str | Path, claims: Iterable[Claim]) -> int:
    """Write a claims table; returns the number of rows."""
    n = 0
    with atomic_path(path) as tmp, open_text_out(tmp) as out:
        out.write("\t".join(CLAIM_COLUMNS) + "\n")
        for claim in claims:
            out.write(_claim_row(claim))
            n += 1
    return n


def read_claims(path: str | Path) -> Iterator[tuple[int, Claim]]:
    """(line, claim) of every row of a claims table, in file order."""
    path = Path(path)
    rows = tsv_rows(path)
    index = _required_header(path, rows, CLAIM_COLUMNS, "a hytax claims table")
    rank_columns = CLAIM_COLUMNS[8:]
    for number, fields in rows:
        v = _fields(path, number, fields, index)
        taxids = tuple(parse_int(path, number, text, column)
                       for text, column in zip(v[8:], rank_columns, strict=True))
        yield number, Claim(
            read_id=v[0], source=v[1], taxids=taxids,
            lca_taxid=parse_int(path, number, v[2], "lca_taxid"), lca_rank=v[3],
            identity=parse_fraction(path, number, v[4], "identity"),
            aln_fraction=parse_fraction(path, number, v[5], "aln_fraction"),
            evalue=parse_float(path, number, v[6], "evalue"),
            bits=parse_float(path, number, v[7], "bits"),
        )


def claims_beside(units: Path, reads: Iterator[Read], path: Path) -> Iterator[tuple[Read, Claim]]:
    """(read, its claim) per prepared read: a claims table lists every read in read order, so
    it is read side by side with the reads; any gap, stray or extra row names the line."""
    rows = read_claims(path)
    n = 0
    for n, read in enumerate(reads, start=1):
        item = next(rows, None)
        if item is None:
            raise HytaxError(f"{path}: has no row for read {n} ('{read.id}') of {units}")
        line, claim = item
        if claim.read_id != read.id:
            raise HytaxError(f"{path}: line {line}: read '{claim.read_id}' where read {n} of "
                             f"{units} is '{read.id}'; were the claims made from another "
                             "sample?")
        yield read, claim
    extra = next(rows, None)
    if extra is not None:
        raise HytaxError(f"{path}: line {extra[0]}: read '{extra[1].read_id}' is not in the "
                         f"prepared reads {units} ({n} reads)")


# --- seq2taxid --------------------------------------------------------------------------------


def read_seq2taxid(path: Path) -> dict[str, int]:
    """sequence id -> taxid from a seq2taxid TSV (`mmseqs createtaxdb --tax-mapping-file`)."""
    out: dict[str, int] = {}
    for number, fields in tsv_rows(path):
        if len(fields) < 2:
            raise HytaxError(f"{path}: line {number}: expected 'sequence id<TAB>taxid'")
        out[fields[0]] = parse_int(path, number, fields[-1], "taxid")
    return out


# --- predictions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """BERTax's taxid (as the model gives it, 0 = none) and probability per rank."""

    read_id: str
    taxids: tuple[int, ...]
    probs: tuple[float, ...]


def read_predictions(path: str | Path) -> Iterator[tuple[int, Prediction]]:
    """(line, prediction) of every row of a `hytax predict` table; an empty file (nothing
    was routed) has none."""
    path = Path(path)
    rows = tsv_rows(path)
    first = next(rows, None)
    if first is None:
        return
    if "window" in first[1]:
        raise HytaxError(f"{path}: has one row per window (--windows each); merge needs one row "
                         "per read (--windows mean)")
    index = _header(path, iter([first]), PREDICTION_COLUMNS, "a `hytax predict` table")
    assert index is not None
    for number, fields in rows:
        v = dict(zip(PREDICTION_COLUMNS, _fields(path, number, fields, index), strict=True))
        taxids = tuple(parse_int(path, number, v[f"{r}_taxid"], f"{r}_taxid") for r in RANKS)
        probs = tuple(parse_fraction(path, number, v[f"{r}_prob"], f"{r}_prob") for r in RANKS)
        yield number, Prediction(v["read_id"], taxids, probs)


# --- merged -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One rank of a merged row."""

    taxid: int = 0
    name: str = ""
    source: str = NO_SOURCE
    confidence: float = 0.0


@dataclass(frozen=True)
class MergedRow:
    read_id: str
    length: int
    slots: tuple[Slot, ...]

    @property
    def lowest(self) -> int | None:
        """Index of the lowest rank with a taxon, or None for an unclassified read."""
        return next((i for i in reversed(range(len(self.slots))) if self.slots[i].taxid), None)


class MergedWriter:
    """Writes a merged table row by row (through a temporary file, renamed on success)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        out.write("\t".join(MERGED_COLUMNS) + "\n")

    def write(self, row: MergedRow) -> None:
        lowest = row.lowest
        if lowest is None:
            head = ["unclassified", "0", "unclassified"]
        else:
            slot = row.slots[lowest]
            head = [RANKS[lowest], str(slot.taxid), slot.name]
        cells = [row.read_id, str(row.length), *head]
        for slot in row.slots:
            cells += [str(slot.taxid), slot.name, slot.source, format_fraction(slot.confidence)]
        self._out.write("\t".join(cells) + "\n")


def read_merged(path: str | Path) -> Iterator[tuple[int, MergedRow]]:
    """(line, row) of every read of a merged table."""
    path = Path(path)
    rows = tsv_rows(path)
    index = _required_header(path, rows, MERGED_COLUMNS, "a hytax merged table")
    for number, fields in rows:
        v = _fields(path, number, fields, index)
        slots = []
        for r, rank in enumerate(RANKS):
            taxid, name, source, confidence = v[5 + 4 * r: 9 + 4 * r]
            slots.append(Slot(parse_int(path, number, taxid, f"{rank}_taxid"), name, source,
                              parse_fraction(path, number, confidence, f"{rank}_confidence")))
        yield number, MergedRow(v[0], parse_int(path, number, v[1], "length"), tuple(slots))
