"""Per-sample reports from the merged table, and MultiQC custom content across samples.

The Kraken2 report is what downstream tools already read (MultiQC's kraken module, Pavian,
taxpasta, KrakenTools), so it follows kraken2's `reports.cc` byte for byte: `%6.2f` percent of
all reads, clade and direct counts, rank code with depth suffix, taxid, name indented by two
spaces per tree depth, children by clade count descending.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path
from typing import Any

from hytax.errors import HytaxError
from hytax.merge import MERGED_HEADER, tsv_rows
from hytax.taxonomy import RANKS, Taxonomy

SOURCES = ("mmseqs2", "bertax", "none")
HIST_BINS = 10
TOP_TAXA = 10

# kraken2 reports.cc; the 2025 NCBI top ranks take superkingdom's `D`
_RANK_CODES = {
    "superkingdom": "D", "domain": "D", "acellular root": "D", "kingdom": "K", "phylum": "P",
    "class": "C", "order": "O", "family": "F", "genus": "G", "species": "S",
}


# --- reading the merged table --------------------------------------------------------------------


class _Merged:
    """The columns of a merged table that reports need, tallied in one pass."""

    def __init__(self) -> None:
        self.reads = 0
        self.direct: Counter[int] = Counter()  # lowest merged taxid -> reads (0 = unclassified)
        self.sources = {rank: Counter[str]() for rank in RANKS}
        self.composition = {rank: Counter[str]() for rank in RANKS}
        self.confidence = {rank: [0] * HIST_BINS for rank in RANKS}
        self.krona: Counter[tuple[str, ...]] = Counter()


def _read_merged(path: Path) -> _Merged:
    rows = tsv_rows(path)
    first = next(rows, None)
    if first is None:
        raise HytaxError(f"{path}: empty file, expected the merged table of `hytax merge`")
    header = first[1]
    missing = [c for c in MERGED_HEADER if c not in header]
    if missing:
        raise HytaxError(f"{path}: line 1: not a `hytax merge` table (missing column(s) "
                         f"{', '.join(missing)})")
    col = {name: header.index(name) for name in MERGED_HEADER}
    tally = _Merged()
    for number, fields in rows:
        if len(fields) != len(header):
            raise HytaxError(f"{path}: line {number}: {len(fields)} columns, expected "
                             f"{len(header)}")
        _tally_row(tally, path, number, fields, col)
    return tally


def _tally_row(tally: _Merged, path: Path, number: int, fields: list[str],
               col: dict[str, int]) -> None:
    try:
        taxid = int(fields[col["taxid"]])
    except ValueError:
        raise HytaxError(f"{path}: line {number}: taxid '{fields[col['taxid']]}' is not an "
                         "integer") from None
    tally.reads += 1
    tally.direct[taxid] += 1
    lineage: list[str] = []
    for rank in RANKS:
        source = fields[col[f"{rank}_source"]]
        if source not in SOURCES:
            raise HytaxError(f"{path}: line {number}: {rank}_source '{source}' is not one of "
                             f"{', '.join(SOURCES)}")
        tally.sources[rank][source] += 1
        name = fields[col[f"{rank}_name"]]
        lineage.append(name if source != "none" else "")
        if source != "none":
            tally.composition[rank][name] += 1
        if source == "bertax":
            text = fields[col[f"{rank}_confidence"]]
            try:
                prob = float(text)
            except ValueError:
                raise HytaxError(f"{path}: line {number}: {rank}_confidence '{text}' is not "
                                 "a number") from None
            tally.confidence[rank][min(int(prob * HIST_BINS), HIST_BINS - 1)] += 1
    tally.krona[_krona_path(lineage)] += 1


def _krona_path(lineage: list[str]) -> tuple[str, ...]:
    # Krona needs a name at every level above the last one given: fill gaps, drop the tail
    while lineage and not lineage[-1]:
        lineage.pop()
    return tuple(name or f"unassigned {rank}" for name, rank in zip(lineage, RANKS, strict=False))


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


def _summary(sample: str, tally: _Merged) -> dict[str, Any]:
    edges = [round(i / HIST_BINS, 2) for i in range(HIST_BINS + 1)]
    return {
        "sample": sample,
        "reads": tally.reads,
        "sources": {rank: {s: tally.sources[rank][s] for s in SOURCES} for rank in RANKS},
        "composition": {rank: dict(tally.composition[rank].most_common()) for rank in RANKS},
        "bertax_confidence": {"bin_edges": edges,
                              **{rank: tally.confidence[rank] for rank in RANKS}},
    }


def write_reports(merged: str | Path, taxdump: str | Path, sample: str, outdir: str | Path) -> None:
    """Write <sample>.kraken2.report.txt, .profile.tsv, .krona.txt and .summary.json."""
    if not sample or "/" in sample or sample != sample.strip():
        raise HytaxError(f"sample name '{sample}': must be non-empty, without '/' or padding")
    tally = _read_merged(Path(merged))
    taxonomy = Taxonomy.load(taxdump)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)

    report = kraken_report_lines(tally.direct, taxonomy)
    (out / f"{sample}.kraken2.report.txt").write_text("\n".join(report) + "\n", encoding="utf-8")

    profile = sorted(tally.direct.items(), key=lambda item: (-item[1], item[0]))
    _write_lines(out / f"{sample}.profile.tsv", ["taxonomy_id\tcount"],
                 (f"{taxid}\t{count}" for taxid, count in profile))

    krona = sorted(tally.krona.items(), key=lambda item: (-item[1], item[0]))
    _write_lines(out / f"{sample}.krona.txt", [],
                 ("\t".join((str(count), *path)) for path, count in krona))

    summary = _summary(sample, tally)
    (out / f"{sample}.summary.json").write_text(json.dumps(summary, indent=1) + "\n",
                                                encoding="utf-8")


def _write_lines(path: Path, head: list[str], lines: Iterable[str]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for text in (*head, *lines):
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


def _header(section_id: str, name: str, description: str, plot_type: str,
            pconfig: dict[str, Any]) -> list[str]:
    # MultiQC reads a YAML block from leading '#' lines; JSON scalars are valid YAML
    lines = [f"# id: {json.dumps(section_id)}",
             f"# section_name: {json.dumps(name)}",
             f"# description: {json.dumps(description)}",
             f"# plot_type: {json.dumps(plot_type)}",
             "# pconfig:"]
    lines += [f"#     {key}: {json.dumps(value)}" for key, value in pconfig.items()]
    return lines


def _row_label(sample: str, rank: str) -> str:
    return f"{sample} {rank}"


def _sources_table(summaries: list[dict[str, Any]]) -> list[str]:
    lines = _header(
        "hytax_sources", "hytax: MMseqs2 or BERTax",
        "Share of each sample's reads resolved at each rank by MMseqs2 (database hit), by BERTax "
        "(no usable hit, confident prediction), or left unresolved. One bar per sample and rank "
        "(`sample rank`); switch to counts above the plot.",
        "bargraph",
        {"id": "hytax_sources_plot", "title": "hytax: source of the answer per sample and rank",
         "ylab": "Reads", "cpswitch_c_active": False},
    )
    lines.append("\t".join(("Sample and rank", "MMseqs2", "BERTax", "unresolved")))
    for data in summaries:
        for rank in RANKS:
            counts = data["sources"][rank]
            lines.append("\t".join((_row_label(data["sample"], rank),
                                    *(str(counts.get(s, 0)) for s in SOURCES))))
    return lines


def _composition_table(summaries: list[dict[str, Any]], rank: str) -> list[str]:
    # top taxa by summed per-sample share, so one deep sample does not decide for all
    share: Counter[str] = Counter()
    for data in summaries:
        reads = max(int(data["reads"]), 1)
        for name, count in data["composition"][rank].items():
            share[name] += count / reads
    top = [name for name, _ in sorted(share.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_TAXA]]
    lines = _header(
        f"hytax_composition_{rank}", f"hytax: {rank} composition",
        f"Reads per {rank} (MMseqs2 and BERTax answers together): the {TOP_TAXA} most abundant "
        f"{rank} taxa over all samples, the rest as 'other', and reads without a {rank}.",
        "bargraph",
        {"id": f"hytax_composition_{rank}_plot", "title": f"hytax: {rank} composition",
         "ylab": "Reads", "cpswitch_c_active": False},
    )
    lines.append("\t".join(("Sample", *top, "other", f"no {rank}")))
    for data in summaries:
        counts = data["composition"][rank]
        shown = [int(counts.get(name, 0)) for name in top]
        resolved = sum(int(v) for v in counts.values())
        other = resolved - sum(shown)
        unresolved = int(data["reads"]) - resolved
        lines.append("\t".join(str(v) for v in (data["sample"], *shown, other, unresolved)))
    return lines


def _confidence_table(summaries: list[dict[str, Any]]) -> list[str]:
    centres = [f"{(i + 0.5) / HIST_BINS:.2f}" for i in range(HIST_BINS)]
    lines = _header(
        "hytax_bertax_confidence", "hytax: BERTax confidence",
        "Histogram of BERTax's probability for the answers it contributed (reads MMseqs2 "
        "left open and BERTax filled), ten bins of width 0.1, one line per sample and rank.",
        "linegraph",
        {"id": "hytax_bertax_confidence_plot", "title": "hytax: BERTax probability of used answers",
         "xlab": "BERTax probability (bin centre)", "ylab": "Reads", "xmin": 0, "xmax": 1},
    )
    lines.append("\t".join(("", *centres)))
    for data in summaries:
        for rank in RANKS:
            hist = [int(v) for v in data["bertax_confidence"][rank]]
            if len(hist) != HIST_BINS:
                raise HytaxError(f"summary of '{data['sample']}': {rank} histogram has "
                                 f"{len(hist)} bins, expected {HIST_BINS}")
            lines.append("\t".join((_row_label(data["sample"], rank), *map(str, hist))))
    return lines


def write_multiqc_tables(summaries: Iterable[str | Path], outdir: str | Path) -> None:
    """MultiQC custom-content `*_mqc.tsv` files from the samples' summary JSONs."""
    data = _load_summaries(summaries)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    _write_lines(out / "hytax_sources_mqc.tsv", [], _sources_table(data))
    for rank in RANKS:
        _write_lines(out / f"hytax_composition_{rank}_mqc.tsv", [], _composition_table(data, rank))
    _write_lines(out / "hytax_bertax_confidence_mqc.tsv", [], _confidence_table(data))
