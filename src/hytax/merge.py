"""The merge rule: a read's kept database claim, then BERTax where it is confident and
consistent, as one row per read of the merged table (hytax.tables)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from hytax.atomic import atomic_path
from hytax.errors import HytaxError
from hytax.seqio import read_records
from hytax.tables import (
    Claim,
    MergedRow,
    MergedWriter,
    Prediction,
    Slot,
    claims_beside,
    open_text_out,
    read_predictions,
)
from hytax.taxonomy import RANKS, Taxonomy, TaxonomyError

BERTAX = "bertax"

# BERTax sees 3-mers of A/C/G/T only; a unit without one has no prediction at all
_VALID_3MER = re.compile("[ACGT]{3}")


def merge_read(
    taxonomy: Taxonomy,
    claim: Claim,
    prediction: Prediction | None,
    min_confidence: float,
) -> list[Slot]:
    """One read's answer per rank: the kept claim's taxa, then BERTax's where it is at least
    `min_confidence` and its taxon is consistent with every rank already filled."""
    slots = [
        Slot(taxid, taxonomy.name(taxid), claim.source, claim.identity) if taxid else Slot()
        for taxid in claim.taxids
    ]
    if prediction is None:
        return slots
    for i, rank in enumerate(RANKS):
        taxid, prob = prediction.taxids[i], prediction.probs[i]
        if slots[i].taxid or not taxid or prob < min_confidence:
            continue
        # a class whose taxon is not at this rank (e.g. a species) is placed at its ancestor
        taxid = taxonomy.at_rank(taxid, rank)
        if taxid and _consistent(taxonomy, taxid, i, slots):
            slots[i] = Slot(taxid, taxonomy.name(taxid), BERTAX, prob)
    return slots


def _consistent(taxonomy: Taxonomy, taxid: int, i: int, slots: list[Slot]) -> bool:
    for j, other in enumerate(slots):
        if j == i or not other.taxid:
            continue
        if j < i and taxonomy.at_rank(taxid, RANKS[j]) != other.taxid:
            return False
        # a lower rank already filled (a gap above it, e.g. virus genus without phylum) must sit
        # under the BERTax taxon too
        if j > i and taxonomy.at_rank(other.taxid, RANKS[i]) != taxid:
            return False
    return True


def _resolved(taxonomy: Taxonomy, prediction: Prediction, path: Path, line: int) -> Prediction:
    try:
        taxids = tuple(taxonomy.resolve(t) for t in prediction.taxids)
    except TaxonomyError as exc:
        raise HytaxError(f"{path}: line {line}: {exc}") from None
    return Prediction(prediction.read_id, taxids, prediction.probs)


def _joined(units: Path, claims: Path, bertax: Path,
            taxonomy: Taxonomy) -> Iterator[tuple[str, str, Claim, Prediction | None]]:
    """(read id, sequence, kept claim, prediction or None) per prepared read. Claims list every
    read in order, predictions the routed reads in order, so all three stream side by side."""
    predictions = read_predictions(bertax)
    pending = next(predictions, None)
    for read, claim in claims_beside(units, read_records(units), claims):
        prediction = None
        if pending is not None and pending[1].read_id == read.id:
            prediction = _resolved(taxonomy, pending[1], bertax, pending[0])
            pending = next(predictions, None)
        yield read.id, read.seq, claim, prediction
    if pending is not None:
        raise HytaxError(f"{bertax}: line {pending[0]}: read '{pending[1].read_id}' is not in "
                         f"the prepared reads {units} (or not in their order)")


def merge(
    *,
    units: str | Path,
    claims: str | Path,
    bertax: str | Path,
    taxonomy: Taxonomy,
    min_confidence: float = 0.5,
    output: str | Path,
) -> int:
    """Write the merged table: every prepared read once, in order. Returns the read count."""
    if not 0.0 <= min_confidence <= 1.0:
        raise HytaxError(f"--min-confidence {min_confidence}: expected a fraction in 0-1")
    n = 0
    with atomic_path(output) as tmp, open_text_out(tmp) as out:
        writer = MergedWriter(out)
        for read_id, seq, claim, prediction in _joined(Path(units), Path(claims), Path(bertax),
                                                       taxonomy):
            if _VALID_3MER.search(seq):
                slots = merge_read(taxonomy, claim, prediction, min_confidence)
            else:
                slots = [Slot() for _ in RANKS]
            writer.write(MergedRow(read_id, len(seq), tuple(slots)))
            n += 1
    return n
