"""MMseqs2 taxonomy output -> standard claims (one per prepared read, in read order).

MMseqs2 never sees our read ids: it shortens ids it thinks it can parse (`sp|P12345|r3` becomes
`P12345`, so two reads can collide), so the MMSEQS_TAXONOMY step names each read by its position
in the prepared reads (1, 2, ...) and sorts both tables by that number; here the n-th read of
the prepared reads gets the rows of query n back.

Tables read (MMseqs2 14, no header):
- LCA, `mmseqs createtsv qdb res lca.tsv` after `mmseqs taxonomy ... --tax-lineage 1
  --tax-output-mode 2`: `query taxid rank name [nfrag nassigned nagree support] [lineage]`;
  unclassified is taxid 0.
- Alignments the LCA used, `mmseqs convertalis qdb db res_aln aln.tsv --format-output
  query,target,fident,alnlen,qstart,qend,qlen,evalue,bits,taxid`.

Units of qstart/qend/qlen differ by search type, so the aligned share of a read is computed for
each (the rule that reads it is then the same for both tiers):
- nucleotide search: read nucleotides, 1-based, qstart > qend on the reverse strand. MMseqs2
  aligns a long query in pieces of at most 10 kb, so a contig's hits are many rows: the share is
  the union of their spans over the read, and a 150-kb contig that matches is covered in full.
  A noisy long read aligns in some pieces only: its share is of at most `LONGEST_PIECE_NT`.
- translated search (reads against proteins): `mmseqs taxonomy` searches the read's open reading
  frames, and the rows are in amino acids of the frame, not of the read. Each row's aligned
  codons (3 nt per residue) are summed over the read's frames.
For a pair (mate 1 + spacer + mate 2), the share is of the longer mate (see `aligned_share`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hytax.errors import HytaxError
from hytax.seqio import PAIR_SPACER, read_records
from hytax.tables import Claim, parse_float, parse_fraction, parse_int, tsv_rows
from hytax.taxonomy import RANKS, Taxonomy, TaxonomyError

DB_TYPES = ("nucleotide", "protein")
# MMseqs2 aligns at most this much of a query in one piece. A noisy long read (raw PacBio or
# Nanopore, 85-90 % identity) aligns in a few such pieces, not end to end, so the share of a
# long unit is taken over this length: a hit that aligns 5 kb of it is not the short conserved
# stretch that --min-aln-fraction guards short reads against.
LONGEST_PIECE_NT = 10_000
ALN_COLUMNS = "query,target,fident,alnlen,qstart,qend,qlen,evalue,bits,taxid"


@dataclass(frozen=True)
class Hit:
    identity: float
    qstart: int
    qend: int
    qlen: int
    evalue: float
    bits: float


@dataclass(frozen=True)
class Lca:
    taxid: int
    rank: str


def _query(path: Path, number: int, text: str, previous: int) -> int:
    query = parse_int(path, number, text, "query (the read's number in the prepared reads)")
    if query < previous:
        raise HytaxError(f"{path}: line {number}: query {query} after {previous}: the table must "
                         "be sorted by query number (sort -k1,1n)")
    return query


def read_lca_rows(path: Path) -> Iterator[tuple[int, int, Lca]]:
    """(line, query number, LCA) per row of a createtsv LCA table sorted by query."""
    previous = 0
    for number, fields in tsv_rows(path):
        if len(fields) < 4:
            raise HytaxError(
                f"{path}: line {number}: expected query, taxid, rank, name (mmseqs createtsv of "
                f"an mmseqs taxonomy result), found {len(fields)} column(s)"
            )
        query = _query(path, number, fields[0], previous)
        if query == previous:
            raise HytaxError(f"{path}: line {number}: query {query} appears twice")
        previous = query
        yield number, query, Lca(parse_int(path, number, fields[1], "taxid"), fields[2])


def read_hit_groups(path: Path) -> Iterator[tuple[int, list[Hit]]]:
    """(query number, its hits) from a convertalis table sorted by query."""
    columns = ALN_COLUMNS.split(",")
    group: list[Hit] = []
    current = 0
    for number, fields in tsv_rows(path):
        if len(fields) < len(columns) - 1:
            raise HytaxError(f"{path}: line {number}: expected {ALN_COLUMNS} (mmseqs convertalis "
                             f"--format-output), found {len(fields)} column(s)")
        query = _query(path, number, fields[0], current)
        if query != current and group:
            yield current, group
            group = []
        current = query
        group.append(Hit(
            identity=parse_fraction(path, number, fields[2], "fident"),
            qstart=parse_int(path, number, fields[4], "qstart"),
            qend=parse_int(path, number, fields[5], "qend"),
            qlen=parse_int(path, number, fields[6], "qlen"),
            evalue=parse_float(path, number, fields[7], "evalue"),
            bits=parse_float(path, number, fields[8], "bits"),
        ))
    if group:
        yield current, group


def _longest_mate(seq: str) -> int:
    """A pair is one unit, mate 1 + spacer + mate 2, and a hit can only cover the mate it lies
    in when the insert is longer than the two reads; so shares are of the longer mate."""
    return max(1, *(len(part) for part in seq.split(PAIR_SPACER)))


def aligned_share(hits: list[Hit], seq: str, db_type: str) -> float:
    """Share of the read (of its longer mate) that the hits cover, 0-1; of a read longer than
    `LONGEST_PIECE_NT`, the share of that length."""
    if not hits:
        return 0.0
    if db_type == "protein":
        aligned = sum(3 * min(h.qlen, abs(h.qend - h.qstart) + 1) for h in hits)
    else:
        spans = sorted((min(h.qstart, h.qend), max(h.qstart, h.qend)) for h in hits)
        aligned, end = 0, 0
        for start, stop in spans:
            if stop > end:
                aligned += stop - max(start, end + 1) + 1
                end = stop
    return min(1.0, aligned / min(_longest_mate(seq), LONGEST_PIECE_NT))


def _ranks(taxonomy: Taxonomy, taxid: int, path: Path, line: int) -> tuple[int, ...]:
    try:
        resolved = taxonomy.resolve(taxid)
    except TaxonomyError as exc:
        raise HytaxError(f"{path}: line {line}: {exc} (was the database built with another "
                         "taxonomy than the run's --taxdump?)") from None
    ranks = taxonomy.ranks(resolved, RANKS)
    return tuple(ranks[rank] for rank in RANKS)


def claims(
    *,
    units: str | Path,
    raw: list[Path],
    taxonomy: Taxonomy,
    db_type: str,
    source: str,
) -> Iterator[Claim]:
    """One claim per prepared read, in read order, from MMseqs2's tables `raw` = [LCA table,
    alignment table] (not yet cut by any minimum: see hytax.routing.keep)."""
    if db_type not in DB_TYPES:
        raise HytaxError(f"database type '{db_type}': expected one of {', '.join(DB_TYPES)}")
    if len(raw) != 2:
        raise HytaxError(f"mmseqs2 claims need two tables, LCA and alignments; got {len(raw)}")
    lca_path, aln_path = Path(raw[0]), Path(raw[1])
    lcas = read_lca_rows(lca_path)
    hit_groups = read_hit_groups(aln_path)
    next_lca = next(lcas, None)
    next_hits = next(hit_groups, None)
    n = 0
    for n, read in enumerate(read_records(units), start=1):
        lca_row: Lca | None = None
        hits: list[Hit] = []
        if next_lca is not None and next_lca[1] == n:
            lca_row = next_lca[2]
            line = next_lca[0]
            next_lca = next(lcas, None)
        if next_hits is not None and next_hits[0] == n:
            hits = next_hits[1]
            next_hits = next(hit_groups, None)
        if lca_row is None or lca_row.taxid == 0:
            yield Claim.empty(read.id, source)
            continue
        best = max(hits, key=lambda h: h.bits) if hits else None
        yield Claim(
            read_id=read.id,
            source=source,
            taxids=_ranks(taxonomy, lca_row.taxid, lca_path, line),
            lca_taxid=lca_row.taxid,
            lca_rank=lca_row.rank,
            identity=best.identity if best else 0.0,
            aln_fraction=aligned_share(hits, read.seq, db_type),
            evalue=best.evalue if best else math.inf,
            bits=best.bits if best else 0.0,
        )
    for leftover, path in ((next_lca, lca_path), (next_hits, aln_path)):
        if leftover is not None:
            query = leftover[1] if path == lca_path else leftover[0]
            raise HytaxError(f"{path}: query {query} but {units} has only {n} reads; was MMseqs2 "
                             "run on another sample?")
