"""Kraken2 report, taxpasta profile, Krona text, summary JSON and MultiQC tables."""

from __future__ import annotations

import base64
import gzip
import importlib.util
import json
import re
import subprocess
import sys
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest
from conftest import DUMP_2025, full_taxonomy

from hytax.errors import HytaxError
from hytax.reports import tally_merged, write_multiqc_tables, write_reports
from hytax.tables import MERGED_COLUMNS as MERGED_HEADER
from hytax.taxonomy import RANKS, Taxonomy

# (superkingdom, phylum, genus taxids, source per rank, confidence per rank, read count);
# real 2013 taxa: E. coli's genus, Staphylococcus, lambda's genus (no phylum), Helicobacter
READS = [
    ((2, 1224, 561), ("mmseqs2",) * 3, (1.0, 1.0, 1.0), 5),
    ((2, 1224, 561), ("mmseqs2", "mmseqs2", "bertax"), (0.92, 0.92, 0.55), 2),
    ((2, 1239, 1279), ("bertax",) * 3, (0.99, 0.95, 0.71), 3),
    ((10239, 0, 186765), ("mmseqs2", "none", "mmseqs2"), (1.0, 0.0, 1.0), 4),
    ((2, 1224, 0), ("bertax", "bertax", "none"), (1.0, 0.62, 0.0), 2),
    ((2, 0, 209), ("bertax", "none", "bertax"), (0.97, 0.0, 0.81), 1),
    ((0, 0, 0), ("none",) * 3, (0.0, 0.0, 0.0), 3),
]
TOTAL = sum(r[-1] for r in READS)


def _merged_table(path: Path, tax: Taxonomy, reads: list = READS) -> Path:
    lines = ["\t".join(MERGED_HEADER)]
    n = 0
    for taxids, sources, confidences, count in reads:
        lowest = max((i for i, t in enumerate(taxids) if t), default=None)
        head = (["unclassified", "0", "unclassified"] if lowest is None
                else [RANKS[lowest], str(taxids[lowest]), tax.name(taxids[lowest])])
        cells: list[str] = []
        for taxid, source, conf in zip(taxids, sources, confidences, strict=True):
            cells += [str(taxid), tax.name(taxid) if taxid else "", source, str(conf)]
        for _ in range(count):
            n += 1
            lines.append("\t".join([f"read{n}", "150", *head, *cells]))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def taxdump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lineages of the test taxa, cut from the real 2013 dump."""
    tax = full_taxonomy()
    out = tmp_path_factory.mktemp("taxdump")
    tax.write_dump(tax.closure([t for r in READS for t in r[0] if t]), out)
    return out


@pytest.fixture(scope="module")
def reports(taxdump: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    merged = _merged_table(out / "merged.tsv", full_taxonomy())
    write_reports(merged, taxdump, "sampleA", out)
    # a second sample with only some of the taxa, so MultiQC plots have two rows
    write_reports(_merged_table(out / "merged_b.tsv", full_taxonomy(), READS[2:5]), taxdump,
                  "sampleB", out)
    return out


def _kraken(path: Path) -> list[tuple[float, int, int, str, int, int, str]]:
    rows = []
    for line in path.read_text().splitlines():
        pct, clade, direct, code, taxid, name = line.split("\t")
        assert pct == f"{float(pct):6.2f}" and len(pct) == 6, line  # kraken2's %6.2f
        indent = len(name) - len(name.lstrip(" "))
        assert indent % 2 == 0
        rows.append((float(pct), int(clade), int(direct), code, int(taxid), indent // 2,
                     name.strip()))
    return rows


def test_kraken_report_counts(reports: Path) -> None:
    rows = _kraken(reports / "sampleA.kraken2.report.txt")
    tax = full_taxonomy()
    unclassified, root = rows[0], rows[1]
    assert unclassified[3:5] == ("U", 0) and unclassified[6] == "unclassified"
    assert root[3:5] == ("R", 1) and root[6] == "root" and root[5] == 0
    assert unclassified[1] == 3
    assert unclassified[1] + root[1] == TOTAL
    assert sum(r[2] for r in rows) == TOTAL  # every read counted once, directly
    for pct, clade, *_ in rows:
        assert pct == pytest.approx(round(100 * clade / TOTAL, 2))

    # every node of every lineage, at its depth, with clade = direct + children's clades
    lowest = Counter()
    for taxids, _, _, count in READS:
        lowest[next((t for t in reversed(taxids) if t), 0)] += count
    expected_nodes = {n for t in lowest if t for n in tax.lineage(t)}
    tree = rows[1:]
    assert {r[4] for r in tree} == expected_nodes
    for i, (_, clade, direct, _, taxid, depth, name) in enumerate(tree):
        assert depth == len(tax.lineage(taxid)) - 1 and name == tax.name(taxid)
        assert direct == lowest.get(taxid, 0)
        children = []
        for later in tree[i + 1:]:
            if later[5] <= depth:
                break
            if later[5] == depth + 1:
                children.append(later[1])
        assert clade == direct + sum(children)
        assert children == sorted(children, reverse=True)
    # a clade count from the whole lineage, not just the three ranks
    proteobacteria = next(r for r in tree if r[6] == "Proteobacteria")
    assert proteobacteria[1] == 5 + 2 + 2 + 1  # Escherichia, phylum-only and Helicobacter


def test_kraken_rank_codes(reports: Path) -> None:
    codes = {r[6]: r[3] for r in _kraken(reports / "sampleA.kraken2.report.txt")}
    assert codes["cellular organisms"] == "R1"
    assert codes["Bacteria"] == "D" and codes["Viruses"] == "D"
    assert codes["Proteobacteria"] == "P" and codes["Escherichia"] == "G"
    assert codes["Enterobacteriaceae"] == "F" and codes["Gammaproteobacteria"] == "C"
    # unranked between phylum and class in 2013: delta/epsilon subdivisions
    assert codes["delta/epsilon subdivisions"] == "P1"
    assert codes["dsDNA viruses, no RNA stage"] == "D1"


def test_kraken_rank_codes_2025(tmp_path: Path) -> None:
    tax = Taxonomy.load(DUMP_2025)
    reads = [((10239, 2497569, 3044781), ("mmseqs2",) * 3, (1.0,) * 3, 2),
             ((2, 1224, 561), ("bertax",) * 3, (0.9,) * 3, 1)]
    write_reports(_merged_table(tmp_path / "m.tsv", tax, reads), DUMP_2025, "s2025", tmp_path)
    codes = {r[6]: r[3] for r in _kraken(tmp_path / "s2025.kraken2.report.txt")}
    assert codes["Viruses"] == "D"  # acellular root
    assert codes["Riboviria"] == "D1"  # a realm is not a superkingdom
    assert codes["Orthornavirae"] == "K" and codes["Negarnaviricota"] == "P"
    assert codes["cellular organisms"] == "R1" and codes["Bacteria"] == "D"  # domain


def test_profile_krona_summary(reports: Path) -> None:
    profile = reports.joinpath("sampleA.profile.tsv").read_text().splitlines()
    assert profile[0] == "taxonomy_id\tcount"
    counts = {int(t): int(c) for t, c in (line.split("\t") for line in profile[1:])}
    assert counts[0] == 3 and counts[561] == 7 and counts[1224] == 2
    assert sum(counts.values()) == TOTAL

    krona = [line.split("\t") for line in reports.joinpath("sampleA.krona.txt").read_text()
             .splitlines()]
    assert sum(int(row[0]) for row in krona) == TOTAL
    paths = {tuple(row[1:]): int(row[0]) for row in krona}
    assert paths[("Bacteria", "Proteobacteria", "Escherichia")] == 7
    assert paths[("Bacteria", "Proteobacteria")] == 2  # trailing empty genus omitted
    assert paths[()] == 3  # unclassified: count only, Krona puts it at the root
    assert all(name for path in paths for name in path)

    summary = json.loads(reports.joinpath("sampleA.summary.json").read_text())
    assert summary["sample"] == "sampleA" and summary["reads"] == TOTAL
    for rank in RANKS:
        assert sum(summary["sources"][rank].values()) == TOTAL
    assert summary["sources"]["genus"] == {"mmseqs2": 9, "bertax": 6, "none": 5}
    assert summary["composition"]["phylum"] == {"Proteobacteria": 9, "Firmicutes": 3}
    hist = summary["bertax_confidence"]
    assert len(hist["bin_edges"]) == 11 and len(hist["genus"]) == 10
    # genus BERTax answers: 0.55 x2, 0.71 x3, 0.81 x1
    assert hist["genus"][5] == 2 and hist["genus"][7] == 3 and hist["genus"][8] == 1
    assert sum(hist["genus"]) == summary["sources"]["genus"]["bertax"]
    assert hist["superkingdom"][9] == 3 + 2 + 1  # 0.99 and 1.0 land in the last bin


def test_multiqc_tables_content(reports: Path, tmp_path: Path) -> None:
    write_multiqc_tables([reports / "sampleA.summary.json", reports / "sampleB.summary.json"],
                         tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["hytax_sources_mqc.tsv", "hytax_bertax_confidence_mqc.tsv",
                            *(f"hytax_composition_{r}_mqc.tsv" for r in RANKS)])
    for path in tmp_path.iterdir():
        text = path.read_text()
        for key in ("id", "section_name", "description", "plot_type", "pconfig"):
            assert re.search(rf"^# {key}:", text, re.M), (path.name, key)
    rows = [line.split("\t") for line in tmp_path.joinpath("hytax_sources_mqc.tsv").read_text()
            .splitlines() if not line.startswith("#")]
    body = {row[0]: [int(v) for v in row[1:]] for row in rows[1:]}
    assert body["sampleA genus"] == [9, 6, 5] and len(body) == 2 * len(RANKS)
    comp = [line.split("\t") for line in tmp_path.joinpath("hytax_composition_genus_mqc.tsv")
            .read_text().splitlines() if not line.startswith("#")]
    for row in comp[1:]:
        reads = TOTAL if row[0] == "sampleA" else sum(r[-1] for r in READS[2:5])
        assert sum(int(v) for v in row[1:]) == reads


def test_multiqc_parses_everything(reports: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("multiqc") is None:
        pytest.skip("multiqc not installed")
    inputs = tmp_path / "in"
    inputs.mkdir()
    for sample in ("sampleA", "sampleB"):
        name = f"{sample}.kraken2.report.txt"
        (inputs / name).write_text((reports / name).read_text())
    write_multiqc_tables([reports / "sampleA.summary.json", reports / "sampleB.summary.json"],
                         inputs)
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "multiqc", str(inputs), "-o", str(out), "-q",
                    "--no-ansi"], check=True, capture_output=True, timeout=180)
    kraken = (out / "multiqc_data" / "multiqc_kraken.txt").read_text().splitlines()
    samples = {line.split("\t")[0] for line in kraken[1:]}
    assert samples == {"sampleA", "sampleB"}
    assert f"'root': {TOTAL - 3}" in next(line for line in kraken if line.startswith("sampleA"))
    html = (out / "multiqc_report.html").read_text()
    for section in ("hytax_sources", "hytax_bertax_confidence",
                    *(f"hytax_composition_{r}" for r in RANKS)):
        assert f'id="{section}"' in html, section
        assert (out / "multiqc_data" / f"multiqc_{section}_plot.txt").is_file(), section


def test_bad_inputs(taxdump: Path, tmp_path: Path, reports: Path) -> None:
    merged = _merged_table(tmp_path / "broken.tsv", full_taxonomy())
    text = merged.read_text()
    merged.write_text(text.replace("genus_source", "genus_origin", 1))
    with pytest.raises(HytaxError, match=r"broken\.tsv: line 1: .*genus_source"):
        write_reports(merged, taxdump, "x", tmp_path)
    lines = text.splitlines()
    lines[3] = lines[3].replace("\tmmseqs2\t", "\tkraken2\t", 1)
    merged.write_text("\n".join(lines) + "\n")
    with pytest.raises(HytaxError, match=r"broken\.tsv: line 4: .*kraken2"):
        write_reports(merged, taxdump, "x", tmp_path)
    bad_json = tmp_path / "bad.summary.json"
    bad_json.write_text('{"sample": "x",')
    with pytest.raises(HytaxError, match=r"bad\.summary\.json"):
        write_multiqc_tables([bad_json], tmp_path)
    summary = reports / "sampleA.summary.json"
    with pytest.raises(HytaxError, match="sampleA"):
        write_multiqc_tables([summary, summary], tmp_path)


def test_report_memory_does_not_grow_with_reads(tmp_path: Path) -> None:
    """The merged table is streamed into counts: twenty times the reads, the same peak memory."""
    tax = full_taxonomy()
    paths = {times: _merged_table(tmp_path / f"x{times}.tsv", tax,
                                  [(*read[:3], read[3] * times) for read in READS])
             for times in (20, 400)}
    tally_merged(paths[400])  # once untraced: first-use caches are not per-read memory
    peaks = {}
    for times, path in paths.items():
        tracemalloc.start()
        tally = tally_merged(path)
        peaks[times] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert tally.reads == TOTAL * times
    # 8000 reads: a list of their ids alone would hold ~0.5 MB; the counts hold a few kB
    assert peaks[400] < peaks[20] + 50_000, peaks


# 15 real genera in 14 phyla, so the composition plots show 10 taxa + 'other' + 'no <rank>'
MANY_GENERA = ("Escherichia", "Staphylococcus", "Helicobacter", "Streptomyces", "Bacteroides",
               "Treponema", "Chlamydia", "Mycoplasma", "Synechocystis", "Aquifex", "Deinococcus",
               "Sulfolobus", "Saccharomyces", "Plasmodium", "Caenorhabditis")


def _plot_data(html: str) -> dict:
    """The plots' data and configuration that MultiQC embeds in its report (gzip, base64)."""
    found = re.search(r'<script[^>]*id="mqc_compressed_plotdata"[^>]*>(.*?)</script>', html,
                      re.S)
    assert found, "no plot data in the MultiQC report"
    return json.loads(gzip.decompress(base64.b64decode(found.group(1).strip())))


def test_multiqc_plot_categories_and_colours(tmp_path: Path) -> None:
    if importlib.util.find_spec("multiqc") is None:
        pytest.skip("multiqc not installed")
    tax = full_taxonomy()
    sources = ("mmseqs2:nt", "mmseqs2:prot", "bertax")  # two database tiers and BERTax
    reads = [((*(tax.ranks(tax.taxid_of(name)).values()),), (sources[i % 3],) * 3,
              (0.9, 0.8, 0.65), 20 - i) for i, name in enumerate(MANY_GENERA)]
    reads += [((2, 1224, 0), ("bertax", "bertax", "none"), (0.9, 0.7, 0.0), 4),
              ((0, 0, 0), ("none",) * 3, (0.0,) * 3, 5)]
    dump = tmp_path / "taxdump"
    tax.write_dump(tax.closure([t for r in reads for t in r[0] if t]), dump)
    inputs = tmp_path / "in"
    for sample, sample_reads in (("deep", reads), ("shallow", reads[3:9])):
        write_reports(_merged_table(tmp_path / f"{sample}.tsv", tax, sample_reads), dump,
                      sample, tmp_path)
    write_multiqc_tables([tmp_path / "deep.summary.json", tmp_path / "shallow.summary.json"],
                         inputs)
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "multiqc", str(inputs), "-o", str(out), "-q",
                    "--no-ansi"], check=True, capture_output=True, timeout=180)
    plots = _plot_data((out / "multiqc_report.html").read_text())

    def categories(plot_id: str) -> list[tuple[str, str]]:
        return [(cat["name"], cat["color"]) for cat in plots[plot_id]["datasets"][0]["cats"]]

    for rank in ("phylum", "genus"):
        cats = categories(f"hytax_composition_{rank}_plot")
        assert len(cats) == 12, cats  # ten taxa, other, no <rank>
        assert [name for name, _ in cats][-2:] == ["other", f"no {rank}"]
        assert len({name for name, _ in cats}) == len({colour for _, colour in cats}) == 12
        # the colours the report shows are the ones our table declares
        header = (inputs / f"hytax_composition_{rank}_mqc.tsv").read_text()
        declared = json.loads(re.search(r"^# categories: (.*)$", header, re.M).group(1))
        assert cats == [(name, c["color"]) for name, c in declared.items()]
    # taxa by their share of reads summed over samples, so the shallow sample counts as much
    share: Counter[str] = Counter()
    for sample_reads in (reads, reads[3:9]):
        total = sum(r[-1] for r in sample_reads)
        for taxids, *_, count in sample_reads:
            if taxids[2]:
                share[tax.name(taxids[2])] += count / total
    top = [name for name, _ in sorted(share.items(), key=lambda kv: (-kv[1], kv[0]))[:10]]
    assert [name for name, _ in categories("hytax_composition_genus_plot")][:10] == top

    sources_plot = categories("hytax_sources_plot")
    assert [name for name, _ in sources_plot] == ["MMseqs2 nt", "MMseqs2 prot", "BERTax",
                                                  "unresolved"]
    assert len({colour for _, colour in sources_plot}) == 4

    confidence = plots["hytax_bertax_confidence_plot"]
    assert confidence["layout"]["showlegend"] is True
    lines = confidence["datasets"][0]["lines"]
    assert len(lines) == 2 * len(RANKS)
    assert len({(line["color"], line["dash"]) for line in lines}) == len(lines)
    assert all(line["showlegend"] for line in lines)
