"""One run's samples side by side: taxpasta-style wide tables and Krona input.

The wide tables are what `taxpasta merge` writes (and nf-core/taxprofiler publishes as
`taxpasta/<tool>_<db>.tsv`): `taxonomy_id`, optionally `name`, `rank`, `lineage`, `id_lineage`,
`rank_lineage` (taxpasta's `--add-*` options, in its order and with its values: lineages from
below the root down to the taxon, `;`-joined, empty for taxids 0 and 1), then one column per
sample with the reads assigned directly to that taxon; taxid 0 counts the unclassified reads.
So a run's tables join another profiler's on `taxonomy_id`.

- `hytax_merged.tsv`: the merged result, each read at its lowest resolved taxon (as in the
  sample's Kraken2 report and profile).
- `mmseqs2_<db_name>.tsv`: one per MMseqs2 database tier, each read at its tier's LCA
  (`lca_taxid` of the standard claims tables `<sample>.<db_name>.claims.tsv`).
- `krona/<sample>.txt` and `hytax.krona.txt`: Krona text (`ktImportText`) per sample, and the
  whole run in one file with the sample as the top wedge.

Every input is read once, streaming; only per-taxon counts are kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from hytax.errors import HytaxError
from hytax.reports import MMSEQS2, check_sample_name, krona_lines, tally_merged, write_lines
from hytax.tables import read_claims
from hytax.taxonomy import Taxonomy

MERGED_TABLE = "hytax_merged.tsv"
KRONA_RUN = "hytax.krona.txt"
KRONA_DIR = "krona"
MERGED_SUFFIXES = (".hytax.tsv", ".hytax.tsv.gz")
CLAIMS_SUFFIXES = (".claims.tsv", ".claims.tsv.gz")
TIER_PREFIX = f"{MMSEQS2}:"


@dataclass(frozen=True)
class TaxonColumns:
    """Which of taxpasta's optional taxon columns to write (`--add-name` ...)."""

    name: bool = False
    rank: bool = False
    lineage: bool = False
    id_lineage: bool = False
    rank_lineage: bool = False

    def chosen(self) -> list[str]:
        """Column names in taxpasta's order."""
        return [field.name for field in fields(self) if getattr(self, field.name)]


RESERVED = frozenset({"taxonomy_id", *(field.name for field in fields(TaxonColumns))})


@dataclass
class Profile:
    """One sample's reads per taxid (0 = unclassified)."""

    sample: str
    counts: Counter[int]
    source: Path


# --- inputs ------------------------------------------------------------------------------------


def _strip_suffix(path: Path, suffixes: tuple[str, ...], expected: str) -> str:
    for suffix in suffixes:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)]
    raise HytaxError(f"{path}: expected a file named {expected} (the sample name comes from it)")


def _merged_sample(path: Path) -> str:
    """`<sample>` of `<sample>.hytax.tsv`."""
    return _strip_suffix(path, MERGED_SUFFIXES, "<sample>.hytax.tsv")


def _claims_sample(path: Path, tier: str | None) -> tuple[str, str]:
    """(sample, db_name) of `<sample>.<db_name>.claims.tsv`; the table's own tier wins."""
    stem = _strip_suffix(path, CLAIMS_SUFFIXES, "<sample>.<db_name>.claims.tsv")
    if tier is None:  # a sample without reads: only the file name tells
        sample, _, tier = stem.rpartition(".")
    elif stem.endswith(f".{tier}"):
        sample = stem[: -len(tier) - 1]
    else:
        raise HytaxError(f"{path}: holds the claims of tier '{TIER_PREFIX}{tier}', but its name "
                         f"is not <sample>.{tier}.claims.tsv")
    if not sample or not tier or "/" in tier:
        raise HytaxError(f"{path}: expected a file named <sample>.<db_name>.claims.tsv")
    return sample, tier


def read_tier_claims(path: Path) -> tuple[str, Profile]:
    """(db_name, reads per `lca_taxid`) of one tier's standard claims table."""
    tier: str | None = None
    counts: Counter[int] = Counter()
    for number, claim in read_claims(path):
        name = claim.source.removeprefix(TIER_PREFIX)
        if name == claim.source or not name:
            raise HytaxError(f"{path}: line {number}: source '{claim.source}' is not a database "
                             f"tier ({TIER_PREFIX}<db_name>); give each tier's own claims table, "
                             "not the kept claims")
        if tier is None:
            tier = name
        elif name != tier:
            raise HytaxError(f"{path}: line {number}: source '{claim.source}', but earlier rows "
                             f"are '{TIER_PREFIX}{tier}': one table per tier")
        counts[claim.lca_taxid] += 1
    sample, tier = _claims_sample(path, tier)
    return tier, Profile(sample, counts, path)


def _check_samples(samples: Iterable[tuple[str, Path]], what: str) -> None:
    """Each (sample, file) names one column of a table: a valid name, once."""
    seen: dict[str, Path] = {}
    for sample, path in samples:
        try:
            check_sample_name(sample)
        except HytaxError as exc:
            raise HytaxError(f"{path}: {exc}") from None
        if sample in RESERVED:
            raise HytaxError(f"{path}: sample name '{sample}' is a column name of the wide "
                             "table; rename the sample")
        if sample in seen:
            raise HytaxError(f"{path}: sample '{sample}' of {what} is also {seen[sample]}")
        seen[sample] = path


# --- the wide table ----------------------------------------------------------------------------


def _taxon_cells(taxid: int, taxonomy: Taxonomy, chosen: list[str]) -> list[str]:
    if taxid == 0:  # no taxon: taxpasta leaves the cells empty
        return [""] * len(chosen)
    lineage = taxonomy.lineage(taxid)[1:]  # below the root, as taxpasta
    values = {
        "name": taxonomy.name(taxid),
        "rank": taxonomy.rank(taxid),
        "lineage": ";".join(taxonomy.name(t) for t in lineage),
        "id_lineage": ";".join(str(t) for t in lineage),
        "rank_lineage": ";".join(taxonomy.rank(t) for t in lineage),
    }
    return [values[column] for column in chosen]


def wide_table(profiles: Sequence[Profile], taxonomy: Taxonomy | None = None,
               columns: TaxonColumns = TaxonColumns()) -> Iterator[str]:
    """Lines of a taxpasta wide table: one row per taxid seen in any sample, by taxid."""
    chosen = columns.chosen()
    if chosen and taxonomy is None:
        raise HytaxError(f"the columns {', '.join(chosen)} need a taxonomy (--taxdump)")
    yield "\t".join(("taxonomy_id", *chosen, *(p.sample for p in profiles)))
    for taxid in sorted(set().union(*(p.counts for p in profiles))):
        try:
            cells = _taxon_cells(taxid, taxonomy, chosen) if taxonomy and chosen else []
        except HytaxError as exc:
            where = next(p.source for p in profiles if taxid in p.counts)
            raise HytaxError(f"{where}: {exc}") from None
        yield "\t".join((str(taxid), *cells, *(str(p.counts[taxid]) for p in profiles)))


# --- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CombineOptions:
    columns: TaxonColumns = TaxonColumns()
    taxdump: Path | None = None  # needed only for the taxon columns


def _tiers(claims: Iterable[Path]) -> dict[str, list[Profile]]:
    tiers: dict[str, list[Profile]] = {}
    for path in claims:
        tier, profile = read_tier_claims(Path(path))
        tiers.setdefault(tier, []).append(profile)
    for tier, profiles in tiers.items():
        _check_samples(((p.sample, p.source) for p in profiles), f"tier {tier}")
    return tiers


def combine(merged: Sequence[Path], outdir: Path, claims: Sequence[Path] = (),
            options: CombineOptions = CombineOptions()) -> list[Path]:
    """Write the run's wide tables and Krona text to `outdir`; returns the files written."""
    if not merged:
        raise HytaxError("no merged tables given (<sample>.hytax.tsv)")
    samples = [_merged_sample(Path(path)) for path in merged]
    _check_samples(zip(samples, map(Path, merged), strict=True), "the merged tables")
    tallies = [tally_merged(path) for path in merged]
    profiles = [Profile(sample, tally.direct, Path(path))
                for sample, tally, path in zip(samples, tallies, merged, strict=True)]
    tiers = _tiers(claims)
    taxonomy = None
    if options.columns.chosen() and options.taxdump is not None:
        taxonomy = Taxonomy.load(options.taxdump)  # the whole dump takes a while: only if asked

    outdir.mkdir(parents=True, exist_ok=True)
    written = [outdir / MERGED_TABLE]
    write_lines(written[-1], wide_table(profiles, taxonomy, options.columns))
    for tier, tier_profiles in sorted(tiers.items()):
        written.append(outdir / f"{MMSEQS2}_{tier}.tsv")
        write_lines(written[-1], wide_table(tier_profiles, taxonomy, options.columns))

    krona = outdir / KRONA_DIR
    krona.mkdir(exist_ok=True)
    for sample, tally in zip(samples, tallies, strict=True):
        written.append(krona / f"{sample}.txt")
        write_lines(written[-1], krona_lines(tally.krona))
    written.append(outdir / KRONA_RUN)
    write_lines(written[-1], (line for sample, tally in zip(samples, tallies, strict=True)
                              for line in krona_lines(tally.krona, sample)))
    return written
