"""What a classifier's claim may keep, and which reads go on to the next tier and to BERTax.

Tiers are tried in order (e.g. a nucleotide database, then a protein one): a read keeps the
answer of the first tier whose kept claim closes it (by the route mode), and only reads that
every tier leaves open go to BERTax. A tier that answers only part of a read (say its phylum,
in `below_rank` mode) is kept when no later tier closes the read, and BERTax fills the rest.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from hytax.atomic import atomic_path
from hytax.errors import HytaxError
from hytax.seqio import Read, read_records
from hytax.tables import Claim, claims_beside, open_text_out, write_claims
from hytax.taxonomy import RANKS

ROUTE_MODES = ("unclassified", "below_rank")


def check_rank(rank: str, what: str) -> None:
    if rank not in RANKS:
        raise HytaxError(f"{what}: unknown rank '{rank}' (expected one of {', '.join(RANKS)})")


@dataclass(frozen=True)
class ClaimRule:
    """A tier's minimums. `min_aln_fraction`: the tier claims nothing when its hits cover less
    of the read (a short conserved stretch, an rRNA or a mobile element, can match at high
    identity in a genome of another phylum; identity minimums cannot catch that). `min_identity`:
    per rank, the best hit's identity needed to keep that rank and every rank below it."""

    min_identity: dict[str, float] = field(default_factory=dict)
    min_aln_fraction: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_aln_fraction <= 1.0:
            raise HytaxError(f"--min-aln-fraction {self.min_aln_fraction}: expected a fraction "
                             "in 0-1")
        for rank, minimum in self.min_identity.items():
            check_rank(rank, "--min-identity")
            if not 0.0 <= minimum <= 1.0:
                raise HytaxError(f"--min-identity {rank}={minimum}: expected a fraction in 0-1")


def keep(claim: Claim, rule: ClaimRule) -> Claim:
    """The claim cut by the rule: nothing when the hits cover too little of the read, else cut
    at the first rank whose identity minimum the best hit misses (a lower rank cannot be surer
    than a higher one). The evidence stays as it was."""
    cleared = claim.aln_fraction < rule.min_aln_fraction
    taxids = []
    for rank, taxid in zip(RANKS, claim.taxids, strict=True):
        cleared = cleared or rule.min_identity.get(rank, 0.0) > claim.identity
        taxids.append(0 if cleared else taxid)
    return replace(claim, taxids=tuple(taxids))


def is_open(taxids: tuple[int, ...], mode: str, route_rank: str) -> bool:
    """Whether a read goes on: no claim at all, or (below_rank) claims that stop above
    `route_rank`. A natural gap (a virus with genus but no phylum) does not stop the claims."""
    claimed = [i for i, taxid in enumerate(taxids) if taxid]
    if not claimed:
        return True
    if mode == "unclassified":
        return False
    return max(claimed) < RANKS.index(route_rank)


def choose(claims: list[Claim], mode: str, route_rank: str) -> Claim:
    """The answer a read keeps from its tiers' (already cut) claims, in tier order: the first
    that closes the read, else the first that claims anything, else none."""
    partial: Claim | None = None
    for claim in claims:
        if not claim.claimed:
            continue
        if not is_open(claim.taxids, mode, route_rank):
            return claim
        partial = partial or claim
    return partial or Claim.empty(claims[0].read_id if claims else "")


def _check_mode(mode: str, route_rank: str) -> None:
    if mode not in ROUTE_MODES:
        raise HytaxError(f"route mode '{mode}': expected one of {', '.join(ROUTE_MODES)}")
    check_rank(route_rank, "--route-rank")


def _tier_rows(units: Path, tiers: list[Path]) -> Iterator[tuple[Read, list[Claim]]]:
    """Each prepared read with its claim from every tier; every tier's table lists the same
    reads in the same order (each tier's converter writes one row per prepared read), so the
    reads are read once and every table beside them."""
    if not tiers:
        raise HytaxError("route: no claims table (give one --claims per tier)")
    copies = itertools.tee(read_records(units), len(tiers))
    beside = [claims_beside(units, reads, path) for reads, path in zip(copies, tiers, strict=True)]
    for row in zip(*beside, strict=True):
        yield row[0][0], [claim for _, claim in row]


def route(
    *,
    units: str | Path,
    tiers: list[Path],
    mode: str = "unclassified",
    route_rank: str = "genus",
    kept_out: str | Path,
    routed_out: str | Path,
) -> tuple[int, int]:
    """Write the kept claims (every prepared read once, in order; `source` names the tier that
    answered) and the FASTA of the reads BERTax should classify. Returns (reads, routed)."""
    _check_mode(mode, route_rank)
    counts = [0, 0]

    def kept(routed_fh) -> Iterator[Claim]:
        for read, claims in _tier_rows(Path(units), tiers):
            claim = replace(choose(claims, mode, route_rank), read_id=read.id)
            counts[0] += 1
            if is_open(claim.taxids, mode, route_rank):
                routed_fh.write(f">{read.id}\n{read.seq}\n")
                counts[1] += 1
            yield claim

    with atomic_path(routed_out) as tmp, open_text_out(tmp) as routed_fh:
        write_claims(kept_out, kept(routed_fh))
    return counts[0], counts[1]


def write_tier_claims(claims: Iterator[Claim], rule: ClaimRule, output: str | Path) -> int:
    """A tier's claims table, every claim cut by the tier's rule."""
    return write_claims(output, (keep(claim, rule) for claim in claims))

