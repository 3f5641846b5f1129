"""Per-sample reports from the merged table, and MultiQC custom content across samples.

The Kraken2 report is what downstream tools already read (MultiQC's kraken module, Pavian,
taxpasta, KrakenTools), so it follows kraken2's `reports.cc` byte for byte: `%6.2f` percent of
all reads, clade and direct counts, rank code with depth suffix, taxid, name indented by two
spaces per tree depth, children by clade count descending.
"""

from __future__ import annotations

import colorsys
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from hytax.atomic import atomic_path
from hytax.errors import HytaxError
from hytax.tables import NO_SOURCE, MergedRow, read_merged
from hytax.taxonomy import RANKS, Taxonomy

MMSEQS2 = "mmseqs2"  # alone, or `mmseqs2:<db_name>` for one database tier
BERTAX = "bertax"
HIST_BINS = 10
TOP_TAXA = 10

# kraken2 reports.cc; the 2025 NCBI top ranks take superkingdom's `D`
_RANK_CODES = {
    "superkingdom": "D", "domain": "D", "acellular root": "D", "kingdom": "K", "phylum": "P",
    "class": "C", "order": "O", "family": "F", "genus": "G", "species": "S",
}


# --- reading the merged table --------------------------------------------------------------------


def is_source(text: str) -> bool:
    """`mmseqs2`, `mmseqs2:<db_name>`, `bertax` or `none`."""
    tier = text.removeprefix(f"{MMSEQS2}:")
    return text in (MMSEQS2, BERTAX, NO_SOURCE) or (tier != text and bool(tier))


class MergedTally:
    """What reports need of a merged table: counts only, so memory does not grow with reads."""

    def __init__(self) -> None:
        self.reads = 0
        self.direct: Counter[int] = Counter()  # lowest merged taxid -> reads (0 = unclassified)
        self.sources = {rank: Counter[str]() for rank in RANKS}
        self.composition = {rank: Counter[str]() for rank in RANKS}
        self.confidence = {rank: [0] * HIST_BINS for rank in RANKS}
        self.krona: Counter[tuple[str, ...]] = Counter()


def tally_merged(path: str | Path) -> MergedTally:
    """One streaming pass over a `hytax merge` table."""
    path = Path(path)
    tally = MergedTally()
    for number, row in read_merged(path):
        _tally_row(tally, path, number, row)
    return tally


def _tally_row(tally: MergedTally, path: Path, number: int, row: MergedRow) -> None:
    lowest = row.lowest
    tally.reads += 1
    tally.direct[0 if lowest is None else row.slots[lowest].taxid] += 1
    lineage: list[str] = []
    for rank, slot in zip(RANKS, row.slots, strict=True):
        if not is_source(slot.source):
            raise HytaxError(f"{path}: line {number}: {rank}_source '{slot.source}' is not one "
                             f"of {MMSEQS2}, {MMSEQS2}:<db_name>, {BERTAX}, {NO_SOURCE}")
        tally.sources[rank][slot.source] += 1
        answered = slot.source != NO_SOURCE
        lineage.append(slot.name if answered else "")
        if answered:
            tally.composition[rank][slot.name] += 1
        if slot.source == BERTAX:
            tally.confidence[rank][min(int(slot.confidence * HIST_BINS), HIST_BINS - 1)] += 1
    tally.krona[_krona_path(lineage)] += 1


def _krona_path(lineage: list[str]) -> tuple[str, ...]:
    """Names from superkingdom down for one Krona text line ('' = rank not resolved)."""
    # Krona needs a name at every level above the last one given: fill gaps, drop the tail
    while lineage and not lineage[-1]:
        lineage.pop()
    return tuple(name or f"unassigned {rank}" for name, rank in zip(lineage, RANKS, strict=False))


def krona_lines(paths: Counter[tuple[str, ...]], *above: str) -> Iterable[str]:
    """Krona text (`ktImportText`): count, then the wedges from the top; most reads first.
    `above` are wedges put over every path (a sample's name in a chart of several)."""
    for path, count in sorted(paths.items(), key=lambda item: (-item[1], item[0])):
        yield "\t".join((str(count), *above, *path))


# --- Kraken2 report ------------------------------------------------------------------------------


def kraken_report_lines(direct: Counter[int], taxonomy: Taxonomy) -> list[str]:
    """Kraken2 report lines for reads counted at their lowest taxid (0 = unclassified)."""
    total = sum(direct.values())
    clade: Counter[int] = Counter()
    children: defaultdict[int, set[int]] = defaultdict(set)
    own: Counter[int] = Counter()
    for taxid, count in direct.items():
        if taxid == 0:
            continue
        lineage = taxonomy.lineage(taxid)
        own[lineage[-1]] += count  # merged.dmp may map several old taxids to one node
        for parent, child in pairwise(lineage):
            children[parent].add(child)
        for node in lineage:
            clade[node] += count

    def line(count_clade: int, count_direct: int, code: str, taxid: int, depth: int,
             name: str) -> str:
        pct = 100.0 * count_clade / total if total else 0.0
        return f"{pct:6.2f}\t{count_clade}\t{count_direct}\t{code}\t{taxid}\t{'  ' * depth}{name}"

    lines = [line(direct[0], direct[0], "U", 0, 0, "unclassified")]
    # iterative DFS: lineages can be 40 deep, but a recursion limit is no place to fail
    stack: list[tuple[int, int, str, int]] = [(1, 0, "R", 0)]
    while stack:
        taxid, depth, base, below = stack.pop()
        rank = taxonomy.rank(taxid)
        if taxid == 1:
            code, base, below = "R", "R", 0
        elif rank in _RANK_CODES:
            base, below = _RANK_CODES[rank], 0
            code = base
        else:
            below += 1
            code = f"{base}{below}"
        lines.append(line(clade[taxid], own[taxid], code, taxid, depth, taxonomy.name(taxid)))
        ordered = sorted(children[taxid], key=lambda t: (-clade[t], t))
        stack.extend((child, depth + 1, base, below) for child in reversed(ordered))
    return lines


# --- per-sample outputs --------------------------------------------------------------------------


def _sources_of(tally: MergedTally, rank: str) -> dict[str, int]:
    # every MMseqs2 tier that answered, then BERTax and none (always, so samples line up)
    tiers = sorted(s for s in tally.sources[rank] if s.startswith(MMSEQS2))
    return {s: tally.sources[rank][s] for s in (*tiers, BERTAX, NO_SOURCE)}


def _summary(sample: str, tally: MergedTally) -> dict[str, Any]:
    edges = [round(i / HIST_BINS, 2) for i in range(HIST_BINS + 1)]
    return {
        "sample": sample,
        "reads": tally.reads,
        "sources": {rank: _sources_of(tally, rank) for rank in RANKS},
        "composition": {rank: dict(tally.composition[rank].most_common()) for rank in RANKS},
        "bertax_confidence": {"bin_edges": edges,
                              **{rank: tally.confidence[rank] for rank in RANKS}},
    }


def check_sample_name(sample: str) -> None:
    """Sample names become file names and table columns."""
    if not sample or "/" in sample or "\t" in sample or sample != sample.strip():
        raise HytaxError(f"sample name '{sample}': must be non-empty, without '/', tabs or "
                         "padding")


def write_reports(merged: str | Path, taxdump: str | Path, sample: str, outdir: str | Path) -> None:
    """Write <sample>.kraken2.report.txt, .profile.tsv, .krona.txt and .summary.json."""
    check_sample_name(sample)
    tally = tally_merged(merged)
    taxonomy = Taxonomy.load(taxdump)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)

    write_lines(out / f"{sample}.kraken2.report.txt", kraken_report_lines(tally.direct, taxonomy))
    profile = sorted(tally.direct.items(), key=lambda item: (-item[1], item[0]))
    write_lines(out / f"{sample}.profile.tsv",
                ["taxonomy_id\tcount", *(f"{taxid}\t{count}" for taxid, count in profile)])
    write_lines(out / f"{sample}.krona.txt", krona_lines(tally.krona))
    write_lines(out / f"{sample}.summary.json", [json.dumps(_summary(sample, tally), indent=1)])


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """A text file, one line per item, that appears whole or not at all."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for text in lines:
            fh.write(text + "\n")


# --- MultiQC custom content ----------------------------------------------------------------------


def _load_summaries(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    summaries: list[dict[str, Any]] = []
    seen: dict[str, Path] = {}
    for item in paths:
        path = Path(item)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise HytaxError(f"{path}: cannot read ({exc.strerror or exc})") from None
        except json.JSONDecodeError as exc:
            raise HytaxError(f"{path}: line {exc.lineno}: not JSON ({exc.msg})") from None
        _check_summary(path, data)
        if data["sample"] in seen:
            raise HytaxError(f"{path}: sample '{data['sample']}' is also in {seen[data['sample']]}")
        seen[data["sample"]] = path
        summaries.append(data)
    if not summaries:
        raise HytaxError("no sample summaries given")
    return summaries


def _check_summary(path: Path, data: Any) -> None:
    keys = ("sample", "reads", "sources", "composition", "bertax_confidence")
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise HytaxError(f"{path}: not a hytax summary (needs keys {', '.join(keys)})")
    for key in ("sources", "composition", "bertax_confidence"):
        missing = [rank for rank in RANKS if rank not in data[key]]
        if missing:
            raise HytaxError(f"{path}: '{key}' has no entry for {', '.join(missing)}")


# Colours as 'rgb(r,g,b)': MultiQC hands those to the plot unchanged, while it rescales hex
# colours by 256/255 (#ff becomes 256).
def _rgb(red: float, green: float, blue: float) -> str:
    """A colour from channels in 0-1."""
    return f"rgb({','.join(str(round(255 * c)) for c in (red, green, blue))})"


def _hex(colour: str) -> str:
    return _rgb(*(int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)))


def _shades(n: int, hue: float) -> list[str]:
    """n distinct shades of one hue, dark to light."""
    return [_rgb(*colorsys.hls_to_rgb(hue, 0.3 + 0.4 * i / max(n - 1, 1), 0.65))
            for i in range(n)]


def _hues(n: int) -> list[str]:
    """n distinct colours around the colour wheel."""
    return [_rgb(*colorsys.hls_to_rgb(i / max(n, 1), 0.45, 0.65)) for i in range(n)]


# ColorBrewer "Paired", dark shades first: ten hues for the top taxa, greys for the rest, so
# no two categories of a plot share a colour (MultiQC's default palette has ten and repeats)
_TAXON_COLOURS = tuple(_hex(c) for c in ("#1f78b4", "#33a02c", "#e31a1c", "#ff7f00", "#6a3d9a",
                                         "#b15928", "#a6cee3", "#b2df8a", "#fb9a99", "#cab2d6"))
_OTHER_COLOUR = _hex("#8c8c8c")
_NONE_COLOUR = _hex("#d9d9d9")
_BERTAX_COLOUR = _hex("#ff7f00")
_MMSEQS2_HUE = 0.58  # blue
_RANK_DASH = {"superkingdom": "solid", "phylum": "dash", "genus": "dot"}


def _header(section_id: str, name: str, description: str, plot_type: str,
            pconfig: dict[str, Any], categories: dict[str, str] | None = None) -> list[str]:
    """MultiQC's commented YAML block; `categories` maps each bar category to its colour."""
    # JSON scalars and flow mappings are valid YAML
    lines = [f"# id: {json.dumps(section_id)}",
             f"# section_name: {json.dumps(name)}",
             f"# description: {json.dumps(description)}",
             f"# plot_type: {json.dumps(plot_type)}",
             "# pconfig:"]
    lines += [f"#     {key}: {json.dumps(value)}" for key, value in pconfig.items()]
    if categories:
        cats = {label: {"name": label, "color": colour} for label, colour in categories.items()}
        lines.append(f"# categories: {json.dumps(cats)}")
    return lines


def _row_label(sample: str, rank: str) -> str:
    return f"{sample} {rank}"


def _source_label(source: str) -> str:
    if source == BERTAX:
        return "BERTax"
    if source == NO_SOURCE:
        return "unresolved"
    tier = source.removeprefix(f"{MMSEQS2}:")
    return "MMseqs2" if tier == source else f"MMseqs2 {tier}"


def _sources_table(summaries: list[dict[str, Any]]) -> list[str]:
    tiers = sorted({source for data in summaries for rank in RANKS
                    for source in data["sources"][rank] if source.startswith(MMSEQS2)})
    sources = [*(tiers or [MMSEQS2]), BERTAX, NO_SOURCE]
    colours = [*_shades(len(sources) - 2, _MMSEQS2_HUE), _BERTAX_COLOUR, _NONE_COLOUR]
    labels = [_source_label(source) for source in sources]
    lines = _header(
        "hytax_sources", "hytax: MMseqs2 or BERTax",
        "Share of each sample's reads resolved at each rank by MMseqs2 (database hit; one "
        "category per database), by BERTax (no usable hit, confident prediction), or left "
        "unresolved. One bar per sample and rank (`sample rank`); switch to counts above the plot.",
        "bargraph",
        {"id": "hytax_sources_plot", "title": "hytax: source of the answer per sample and rank",
         "ylab": "Reads", "cpswitch_c_active": False},
        dict(zip(labels, colours, strict=True)),
    )
    lines.append("\t".join(("Sample and rank", *labels)))
    for data in summaries:
        for rank in RANKS:
            counts = data["sources"][rank]
            lines.append("\t".join((_row_label(data["sample"], rank),
                                    *(str(counts.get(s, 0)) for s in sources))))
    return lines


def _top_taxa(summaries: list[dict[str, Any]], rank: str) -> list[str]:
    # by summed per-sample share, so one deep sample does not decide for all
    share: Counter[str] = Counter()
    for data in summaries:
        reads = max(int(data["reads"]), 1)
        for name, count in data["composition"][rank].items():
            share[name] += count / reads
    return [name for name, _ in sorted(share.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_TAXA]]


def _composition_table(summaries: list[dict[str, Any]], rank: str) -> list[str]:
    top = _top_taxa(summaries, rank)
    other, unresolved = "other", f"no {rank}"
    # a taxon named like a catch-all keeps its own category
    labels = [f"{name} ({rank})" if name in (other, unresolved) else name for name in top]
    colours = dict(zip(labels, _TAXON_COLOURS[:len(labels)], strict=True))
    colours |= {other: _OTHER_COLOUR, unresolved: _NONE_COLOUR}
    lines = _header(
        f"hytax_composition_{rank}", f"hytax: {rank} composition",
        f"Reads per {rank} (MMseqs2 and BERTax answers together): the {TOP_TAXA} most abundant "
        f"{rank} taxa over all samples, the rest as 'other', and reads without a {rank}.",
        "bargraph",
        {"id": f"hytax_composition_{rank}_plot", "title": f"hytax: {rank} composition",
         "ylab": "Reads", "cpswitch_c_active": False},
        colours,
    )
    lines.append("\t".join(("Sample", *colours)))
    for data in summaries:
        counts = data["composition"][rank]
        shown = [int(counts.get(name, 0)) for name in top]
        resolved = sum(int(v) for v in counts.values())
        lines.append("\t".join(str(v) for v in (data["sample"], *shown, resolved - sum(shown),
                                                 int(data["reads"]) - resolved)))
    return lines


def _confidence_table(summaries: list[dict[str, Any]]) -> list[str]:
    centres = [f"{(i + 0.5) / HIST_BINS:.2f}" for i in range(HIST_BINS)]
    # colour = sample, line style = rank: every line tells itself apart in the legend
    sample_colour = dict(zip((d["sample"] for d in summaries), _hues(len(summaries)),
                             strict=True))
    series = [(data, rank) for data in summaries for rank in RANKS]
    lines = _header(
        "hytax_bertax_confidence", "hytax: BERTax confidence",
        "Histogram of BERTax's probability for the answers it contributed (reads MMseqs2 "
        "left open and BERTax filled), ten bins of width 0.1, one line per sample and rank "
        "(colour: sample; solid, dashed, dotted: superkingdom, phylum, genus).",
        "linegraph",
        {"id": "hytax_bertax_confidence_plot", "title": "hytax: BERTax probability of used answers",
         "xlab": "BERTax probability (bin centre)", "ylab": "Reads", "xmin": 0, "xmax": 1,
         "showlegend": True,
         "colors": {_row_label(d["sample"], r): sample_colour[d["sample"]] for d, r in series},
         "dash_styles": {_row_label(d["sample"], r): _RANK_DASH[r] for d, r in series}},
    )
    lines.append("\t".join(("", *centres)))
    for data, rank in series:
        hist = [int(v) for v in data["bertax_confidence"][rank]]
        if len(hist) != HIST_BINS:
            raise HytaxError(f"summary of '{data['sample']}': {rank} histogram has "
                             f"{len(hist)} bins, expected {HIST_BINS}")
        lines.append("\t".join((_row_label(data["sample"], rank), *map(str, hist))))
    return lines


def write_multiqc_tables(summaries: Sequence[str | Path], outdir: str | Path) -> None:
    """MultiQC custom-content `*_mqc.tsv` files from the samples' summary JSONs."""
    data = _load_summaries(summaries)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    write_lines(out / "hytax_sources_mqc.tsv", _sources_table(data))
    for rank in RANKS:
        write_lines(out / f"hytax_composition_{rank}_mqc.tsv", _composition_table(data, rank))
    write_lines(out / "hytax_bertax_confidence_mqc.tsv", _confidence_table(data))
