"""MMseqs2 first, BERTax for the rest: decide what MMseqs2 may claim, then merge both answers.

MMseqs2 outputs this module reads (MMseqs2 14, nucleotide search):

- LCA TSV, `mmseqs createtsv qdb res lca.tsv` after
  `mmseqs taxonomy qdb ref res tmp --search-type 3 --tax-lineage 1 --tax-output-mode 2`:
  `query  taxid  rank  name  [lineage]` with no header; an unclassified read is
  `query  0  no rank  unclassified  ` (empty lineage). Without --tax-lineage there are 4 columns;
  --lca-ranks would add a column before the lineage. Rows are not in query order.
- Alignment TSV from the `<res>_aln` database that --tax-output-mode 2 writes (the hits the LCA
  used, i.e. those with an E-value as good as the best):
  `mmseqs convertalis qdb ref res_aln aln.tsv --format-output
  query,target,fident,alnlen,evalue,bits,taxid`. fident is a 0-1 fraction (`1.000`), bits an
  integer; only classified-by-hit reads appear, possibly with several rows.
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from hytax.errors import HytaxError
from hytax.seqio import PAIR_SPACER, read_records
from hytax.taxonomy import RANKS, Taxonomy, TaxonomyError

CLAIMS_HEADER = ("read_id", "lca_taxid", "lca_rank", "identity",
                 *(f"{rank}_taxid" for rank in RANKS))
BERTAX_COLUMNS = ("read_id", "length",
                  *(f"{rank}{suffix}" for rank in RANKS for suffix in ("", "_taxid", "_prob")))
MERGED_HEADER = ("read_id", "length", "rank", "taxid", "name",
                 *(f"{rank}_{field}" for rank in RANKS
                   for field in ("taxid", "name", "source", "confidence")))
ROUTE_MODES = ("unclassified", "below_rank")

# BERTax sees 3-mers of A/C/G/T only; a unit without one has no prediction at all
_VALID_3MER = re.compile("[ACGT]{3}")


# --- small TSV helpers ---------------------------------------------------------------------------


def _open_out(path: str | Path) -> TextIO:
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


def _int(path: Path, number: int, text: str, column: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise HytaxError(f"{path}: line {number}: {column} '{text}' is not an integer") from None


def _fraction(path: Path, number: int, text: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise HytaxError(f"{path}: line {number}: {column} '{text}' is not a number in 0-1")
    return value


def _resolve(taxonomy: Taxonomy, taxid: int, path: Path, number: int) -> int:
    try:
        return taxonomy.resolve(taxid)
    except TaxonomyError as exc:
        raise HytaxError(f"{path}: line {number}: {exc}") from None


def _format_fraction(value: float) -> str:
    return "0" if value == 0 else f"{value:.4g}"


def _check_rank(rank: str, what: str) -> None:
    if rank not in RANKS:
        raise HytaxError(f"{what}: unknown rank '{rank}' (expected one of {', '.join(RANKS)})")


# --- route ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lca:
    taxid: int
    rank: str
    line: int


def read_lca(path: Path) -> dict[str, _Lca]:
    """query -> MMseqs2 LCA (taxid as reported, rank) from `mmseqs createtsv` output."""
    out: dict[str, _Lca] = {}
    for number, fields in tsv_rows(path):
        if len(fields) < 4:
            raise HytaxError(
                f"{path}: line {number}: expected query, taxid, rank, name (mmseqs createtsv of "
                f"an mmseqs taxonomy result), found {len(fields)} column(s)"
            )
        query = fields[0]
        if query in out:
            raise HytaxError(f"{path}: line {number}: read '{query}' appears twice")
        out[query] = _Lca(_int(path, number, fields[1], "taxid"), fields[2], number)
    return out


@dataclass(frozen=True)
class BestHit:
    identity: float  # fident, 0-1
    aln_len: int  # alignment length in nucleotides


def read_best_hits(path: Path) -> dict[str, BestHit]:
    """query -> its best hit (highest bit score) from `mmseqs convertalis` output
    with --format-output query,target,fident,alnlen,evalue,bits[,...]."""
    best: dict[str, tuple[float, BestHit]] = {}
    for number, fields in tsv_rows(path):
        if len(fields) < 6:
            raise HytaxError(
                f"{path}: line {number}: expected query,target,fident,alnlen,evalue,bits "
                f"(mmseqs convertalis --format-output), found {len(fields)} column(s)"
            )
        identity = _fraction(path, number, fields[2], "fident")
        aln_len = _int(path, number, fields[3], "alnlen")
        try:
            bits = float(fields[5])
        except ValueError:
            raise HytaxError(f"{path}: line {number}: bits '{fields[5]}' is not a number") from None
        query = fields[0]
        if query not in best or bits > best[query][0]:
            best[query] = (bits, BestHit(identity, aln_len))
    return {query: hit for query, (_, hit) in best.items()}


def cut_claims(
    claims: dict[str, int],
    best: BestHit,
    aligned_share: float,
    min_identity: dict[str, float],
    min_aln_fraction: float,
) -> dict[str, int]:
    """What MMseqs2 may claim: the LCA's taxon at each rank, cut at the first rank whose
    identity minimum the best hit misses (a lower rank cannot be surer than a higher one);
    nothing at all when the best hit covers less than `min_aln_fraction` of the read."""
    out = dict(claims)
    cleared = aligned_share < min_aln_fraction
    for rank in RANKS:
        cleared = cleared or min_identity.get(rank, 0.0) > best.identity
        if cleared:
            out[rank] = 0
    return out


def is_routed(claims: dict[str, int], mode: str, route_rank: str) -> bool:
    """Whether a read goes on to BERTax: no claim at all, or (below_rank) claims that stop above
    `route_rank`. A natural gap (a virus with genus but no phylum) does not stop the claims."""
    claimed = [i for i, rank in enumerate(RANKS) if claims[rank]]
    if not claimed:
        return True
    if mode == "unclassified":
        return False
    return max(claimed) < RANKS.index(route_rank)


def route(
    *,
    units: str | Path,
    lca: str | Path,
    aln: str | Path | None,
    taxdump: str | Path,
    mode: str = "unclassified",
    route_rank: str = "genus",
    min_identity: dict[str, float] | None = None,
    min_aln_fraction: float = 0.0,
    claims_out: str | Path,
    routed_out: str | Path,
) -> tuple[int, int]:
    """Write the claims TSV (every prepared read once, in order) and the FASTA of the reads that
    BERTax should classify. Returns (reads, routed reads).

    `min_aln_fraction`: MMseqs2 claims nothing when its best hit aligns less than this share of
    the read (of the longer mate, for a pair). A short conserved stretch (rRNA, a mobile
    element) can match at high identity in a genome of another phylum; identity minimums cannot
    catch that, the alignment length can."""
    min_identity = dict(min_identity or {})
    if not 0.0 <= min_aln_fraction <= 1.0:
        raise HytaxError(f"--min-aln-fraction {min_aln_fraction}: expected a fraction in 0-1")
    if mode not in ROUTE_MODES:
        raise HytaxError(f"route mode '{mode}': expected one of {', '.join(ROUTE_MODES)}")
    _check_rank(route_rank, "--route-rank")
    for rank, minimum in min_identity.items():
        _check_rank(rank, "--min-identity")
        if not 0.0 <= minimum <= 1.0:
            raise HytaxError(f"--min-identity {rank}={minimum}: expected a fraction in 0-1")
    if aln is None and (any(v > 0 for v in min_identity.values()) or min_aln_fraction > 0):
        raise HytaxError(
            "--min-identity and --min-aln-fraction need the alignment TSV (--aln) of the hits"
        )

    lca_path = Path(lca)
    taxonomy = Taxonomy.load(taxdump)
    lcas = read_lca(lca_path)
    hits = read_best_hits(Path(aln)) if aln is not None else {}
    no_hit = BestHit(0.0, 0)
    resolved: dict[int, dict[str, int]] = {}  # per LCA taxid, without identity cuts

    seen: set[str] = set()
    n_routed = 0
    with _open_out(claims_out) as claims_fh, _open_out(routed_out) as routed_fh:
        claims_fh.write("\t".join(CLAIMS_HEADER) + "\n")
        for read in read_records(units):
            if read.id in seen:
                raise HytaxError(f"{units}: read id '{read.id}' appears twice")
            seen.add(read.id)
            hit = lcas.get(read.id)
            lca_taxid, lca_rank = (hit.taxid, hit.rank) if hit else (0, "no rank")
            best = hits.get(read.id, no_hit)
            if lca_taxid not in resolved:
                assert hit is not None or lca_taxid == 0
                taxid = _resolve(taxonomy, lca_taxid, lca_path, hit.line if hit else 0)
                resolved[lca_taxid] = taxonomy.ranks(taxid, RANKS)
            share = best.aln_len / _longest_mate(read.seq) if min_aln_fraction else 1.0
            claims = cut_claims(resolved[lca_taxid], best, share, min_identity, min_aln_fraction)
            claims_fh.write(
                f"{read.id}\t{lca_taxid}\t{lca_rank}\t{_format_fraction(best.identity)}\t"
                + "\t".join(str(claims[rank]) for rank in RANKS) + "\n"
            )
            if is_routed(claims, mode, route_rank):
                routed_fh.write(f">{read.id}\n{read.seq}\n")
                n_routed += 1
    _check_all_known(lcas, seen, lca_path)
    return len(seen), n_routed


def _longest_mate(seq: str) -> int:
    """A pair is one unit, mate 1 + spacer + mate 2, and a hit can only cover the mate it lies
    in when the insert is longer than the two reads; so fractions are of the longer mate."""
    return max(1, *(len(part) for part in seq.split(PAIR_SPACER)))


def _check_all_known(lcas: dict[str, _Lca], seen: set[str], path: Path) -> None:
    stray = [(hit.line, query) for query, hit in lcas.items() if query not in seen]
    if stray:
        line, query = min(stray)
        raise HytaxError(
            f"{path}: line {line}: read '{query}' is not in the prepared reads "
            f"({len(stray)} such read(s)); was MMseqs2 run on another sample?"
        )


# --- merge ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claim:
    identity: float
    taxids: tuple[int, ...]


@dataclass(frozen=True)
class _Prediction:
    taxids: tuple[int, ...]
    probs: tuple[float, ...]


def _header_index(path: Path, header: list[str], wanted: tuple[str, ...], what: str) -> list[int]:
    missing = [column for column in wanted if column not in header]
    if missing:
        raise HytaxError(
            f"{path}: line 1: not {what} (missing column(s) {', '.join(missing)})"
        )
    return [header.index(column) for column in wanted]


def read_claims(path: Path) -> dict[str, tuple[int, _Claim]]:
    """read id -> (line, claim) from a `hytax route` claims TSV."""
    rows = tsv_rows(path)
    first = next(rows, None)
    if first is None:
        raise HytaxError(f"{path}: empty file, expected the claims TSV of `hytax route`")
    columns = ("read_id", "identity", *(f"{rank}_taxid" for rank in RANKS))
    index = _header_index(path, first[1], columns, "a `hytax route` claims TSV")
    out: dict[str, tuple[int, _Claim]] = {}
    for number, fields in rows:
        if len(fields) != len(first[1]):
            raise HytaxError(f"{path}: line {number}: {len(fields)} columns, expected "
                             f"{len(first[1])}")
        values = [fields[i] for i in index]
        if values[0] in out:
            raise HytaxError(f"{path}: line {number}: read '{values[0]}' appears twice")
        pairs = zip(values[2:], columns[2:], strict=True)
        taxids = tuple(_int(path, number, value, column) for value, column in pairs)
        out[values[0]] = (number, _Claim(_fraction(path, number, values[1], "identity"), taxids))
    return out


def read_predictions(path: Path, taxonomy: Taxonomy) -> dict[str, tuple[int, _Prediction]]:
    """read id -> (line, prediction) from a `hytax predict` TSV; taxids resolved."""
    rows = tsv_rows(path)
    first = next(rows, None)
    if first is None:  # nothing was routed, so nothing was predicted
        return {}
    header = first[1]
    if "window" in header:
        raise HytaxError(f"{path}: has one row per window (--windows each); merge needs one row "
                         "per read (--windows mean)")
    index = _header_index(path, header, BERTAX_COLUMNS, "a `hytax predict` TSV")
    out: dict[str, tuple[int, _Prediction]] = {}
    for number, fields in rows:
        if len(fields) != len(header):
            raise HytaxError(f"{path}: line {number}: {len(fields)} columns, expected "
                             f"{len(header)}")
        row = dict(zip(BERTAX_COLUMNS, (fields[i] for i in index), strict=True))
        read_id = row["read_id"]
        if read_id in out:
            raise HytaxError(f"{path}: line {number}: read '{read_id}' appears twice")
        taxids = tuple(
            _resolve(taxonomy, _int(path, number, row[f"{r}_taxid"], f"{r}_taxid"), path, number)
            for r in RANKS
        )
        probs = tuple(_fraction(path, number, row[f"{r}_prob"], f"{r}_prob") for r in RANKS)
        out[read_id] = (number, _Prediction(taxids, probs))
    return out


@dataclass
class _Slot:
    taxid: int = 0
    source: str = "none"
    confidence: float = 0.0


def merge_read(
    taxonomy: Taxonomy,
    claim: _Claim | None,
    prediction: _Prediction | None,
    min_confidence: float,
) -> list[_Slot]:
    """One read's answer per rank: MMseqs2's claims, then BERTax where it is confident and its
    taxon is consistent with every rank already filled."""
    slots = [_Slot() for _ in RANKS]
    if claim is not None:
        for slot, taxid in zip(slots, claim.taxids, strict=True):
            if taxid:
                slot.taxid, slot.source, slot.confidence = taxid, "mmseqs2", claim.identity
    if prediction is None:
        return slots
    for i, rank in enumerate(RANKS):
        taxid, prob = prediction.taxids[i], prediction.probs[i]
        if slots[i].taxid or not taxid or prob < min_confidence:
            continue
        # a class whose taxon is not at this rank (e.g. a species) is placed at its ancestor
        taxid = taxonomy.at_rank(taxid, rank)
        if taxid and _consistent(taxonomy, taxid, i, slots):
            slots[i] = _Slot(taxid, "bertax", prob)
    return slots


def _consistent(taxonomy: Taxonomy, taxid: int, i: int, slots: list[_Slot]) -> bool:
    for j, other in enumerate(slots):
        if j == i or not other.taxid:
            continue
        if j < i and taxonomy.at_rank(taxid, RANKS[j]) != other.taxid:
            return False
        # a lower rank MMseqs2 kept (a gap above it, e.g. virus genus without phylum) must sit
        # under the BERTax taxon too
        if j > i and taxonomy.at_rank(other.taxid, RANKS[i]) != taxid:
            return False
    return True


def merge(
    *,
    units: str | Path,
    claims: str | Path,
    bertax: str | Path,
    taxdump: str | Path,
    min_confidence: float = 0.5,
    output: str | Path,
) -> int:
    """Write the merged table: every prepared read once, in order. Returns the read count."""
    if not 0.0 <= min_confidence <= 1.0:
        raise HytaxError(f"--min-confidence {min_confidence}: expected a fraction in 0-1")
    claims_path, bertax_path = Path(claims), Path(bertax)
    taxonomy = Taxonomy.load(taxdump)
    claim_of = read_claims(claims_path)
    predictions = read_predictions(bertax_path, taxonomy)

    seen: set[str] = set()
    with _open_out(output) as out:
        out.write("\t".join(MERGED_HEADER) + "\n")
        for read in read_records(units):
            if read.id in seen:
                raise HytaxError(f"{units}: read id '{read.id}' appears twice")
            seen.add(read.id)
            claim = claim_of.get(read.id, (0, None))[1]
            if claim is None:
                raise HytaxError(f"{claims_path}: has no row for read '{read.id}' of {units}")
            prediction = predictions.get(read.id, (0, None))[1]
            if not _VALID_3MER.search(read.seq):
                slots = [_Slot() for _ in RANKS]
            else:
                slots = merge_read(taxonomy, claim, prediction, min_confidence)
            out.write(_merged_row(taxonomy, read.id, len(read.seq), slots))
    _check_subset(predictions, seen, bertax_path, units)
    _check_subset(claim_of, seen, claims_path, units)
    return len(seen)


def _merged_row(taxonomy: Taxonomy, read_id: str, length: int, slots: list[_Slot]) -> str:
    lowest = next((i for i in reversed(range(len(RANKS))) if slots[i].taxid), None)
    if lowest is None:
        head = ["unclassified", "0", "unclassified"]
    else:
        taxid = slots[lowest].taxid
        head = [RANKS[lowest], str(taxid), taxonomy.name(taxid)]
    cells = [read_id, str(length), *head]
    for slot in slots:
        name = taxonomy.name(slot.taxid) if slot.taxid else ""
        cells += [str(slot.taxid), name, slot.source, _format_fraction(slot.confidence)]
    return "\t".join(cells) + "\n"


def _check_subset(
    rows: dict[str, tuple[int, object]], seen: set[str], path: Path, units: str | Path
) -> None:
    stray = [(line, read_id) for read_id, (line, _) in rows.items() if read_id not in seen]
    if stray:
        line, read_id = min(stray)
        where = f"line {line}: " if line else ""
        raise HytaxError(f"{path}: {where}read '{read_id}' is not in the prepared reads {units}")
